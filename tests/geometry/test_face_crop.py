"""Face boxes from head keypoints; crops against OpenCV and torch resampling; crop-paste round trips."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from psrjax.geometry import face_crop


def _head(rng, n):
  """Keypoints [n, 18, 3]: a random head (face keypoints and neck) per row, body hidden."""
  kp = np.zeros((n, 18, 3), np.float32)
  centre = rng.uniform(20, 40, (n, 1, 2))
  kp[:, face_crop.HEAD_KEYPOINTS, :2] = centre + rng.uniform(-6, 6, (n, 6, 2))
  kp[:, face_crop.HEAD_KEYPOINTS, 1] += np.array([0, 8, 0, 0, 0, 0])  # the neck lies lower
  kp[:, face_crop.HEAD_KEYPOINTS, 2] = 1.0
  return kp


def test_boxes_are_square_and_contain_every_visible_head_keypoint():
  rng = np.random.default_rng(0)
  kp = _head(rng, 12)
  kp[::3, 16, 2] = 0.0                                   # some hidden ears ...
  kp[::3, 16, :2] = 500.0                                # ... far away: ignored
  kp[1, list(face_crop.FACE_KEYPOINTS), 2] = 0.0         # only the neck: centred on it
  boxes = np.asarray(jax.jit(face_crop.face_boxes)(kp))
  np.testing.assert_allclose(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1], rtol=1e-6)
  for b, row in zip(boxes, kp):
    seen = row[list(face_crop.HEAD_KEYPOINTS)]
    seen = seen[seen[:, 2] > 0, :2]
    assert np.all(seen >= b[:2]) and np.all(seen <= b[2:])
  np.testing.assert_allclose(0.5 * (boxes[1, :2] + boxes[1, 2:]), kp[1, 1, :2], atol=1e-5)
  assert boxes[1, 2] - boxes[1, 0] == pytest.approx(8.0)    # min_size when only one keypoint
  face = kp[2, list(face_crop.FACE_KEYPOINTS), :2]
  np.testing.assert_allclose(0.5 * (boxes[2, :2] + boxes[2, 2:]),
                             0.5 * (face.min(0) + face.max(0)), atol=1e-5)
  fixed = np.asarray(face_crop.face_boxes(kp, size=20.0))  # EDN: fixed size around the nose
  nose = kp[:, 0, :2]
  np.testing.assert_allclose(fixed[2:], np.concatenate([nose - 10, nose + 10], -1)[2:], atol=1e-5)
  np.testing.assert_allclose(fixed[1], np.concatenate([kp[1, 1, :2] - 10, kp[1, 1, :2] + 10]),
                             atol=1e-5)                  # nose hidden: the rule's centre
  assert list(np.asarray(face_crop.has_head(kp[:2] * [1, 1, 0]))) == [False, False]


def test_whole_frame_crop_is_torch_bilinear_resize():
  image = np.random.default_rng(1).normal(size=(2, 12, 15, 3)).astype(np.float32)
  frame = np.array([[-0.5, -0.5, 14.5, 11.5]] * 2, np.float32)
  for size in ((7, 9), (20, 33)):
    ours = np.asarray(face_crop.crop_box(image, frame, size, padding="border"))
    want = torch.nn.functional.interpolate(torch.tensor(np.moveaxis(image, -1, 1)), size=size,
                                           mode="bilinear", align_corners=False)
    np.testing.assert_allclose(ours, np.moveaxis(want.numpy(), 1, -1), atol=1e-5)


def test_crop_matches_an_opencv_affine_warp():
  cv2 = pytest.importorskip("cv2")   # opencv-python-headless, in the `test` extra
  ys, xs = np.mgrid[:24, :30].astype(np.float32)
  image = np.stack([np.sin(xs / 4.0) + np.cos(ys / 5.0), np.cos((xs - ys) / 6.0)], -1)
  boxes = np.array([[3.2, 4.9, 14.7, 16.4], [20.0, -3.0, 34.0, 11.0]], np.float32)  # 2nd: partly out
  ours = np.asarray(face_crop.crop_box(np.stack([image, image]), boxes, (11, 13)))
  for crop, (x0, y0, x1, y1) in zip(ours, boxes):
    sx, sy = (x1 - x0) / 13, (y1 - y0) / 11
    crop_to_frame = np.array([[sx, 0, x0 + 0.5 * sx], [0, sy, y0 + 0.5 * sy]])
    want = cv2.warpAffine(image, crop_to_frame, (13, 11), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    np.testing.assert_allclose(crop, want, atol=1e-2)   # OpenCV rounds positions to 1/32 px


def test_crop_then_paste_back_is_the_identity_inside_and_untouched_outside():
  ys, xs = np.mgrid[:40, :48].astype(np.float32)
  smooth = np.stack([np.sin(xs / 7.0) * np.cos(ys / 9.0), np.cos((xs + ys) / 11.0)], -1)
  image = np.stack([smooth, -smooth])                    # batch of 2
  boxes = np.array([[10.3, 8.7, 26.3, 24.7], [20.0, 12.0, 32.0, 24.0]], np.float32)
  crops = face_crop.crop_box(image, boxes, 24)           # 16 px and 12 px boxes, upsampled
  back = np.asarray(jax.jit(face_crop.paste_box)(np.zeros_like(image) + 5.0, crops, boxes))
  inside = np.asarray(face_crop.box_mask(boxes, 40, 48)) > 0
  deep = np.asarray(face_crop.box_mask(boxes + np.array([1, 1, -1, -1]), 40, 48)) > 0
  assert inside.sum() > 300
  np.testing.assert_allclose(back[deep], image[deep], atol=0.01)
  # Within half a crop pixel of the edge the paste repeats the crop's edge samples.
  np.testing.assert_allclose(back[inside], image[inside], atol=0.05)
  np.testing.assert_array_equal(back[~inside], 5.0)
  same = np.asarray(face_crop.paste_box(image, crops, boxes))
  np.testing.assert_array_equal(same[~inside], image[~inside])
  # A feathered paste blends from the canvas at the box edge to the crop inside.
  soft = np.asarray(face_crop.box_mask(boxes[:1], 40, 48, feather=4.0))[0]
  assert soft[16, 10] == 0.0 and soft[16, 18] == 1.0 and 0 < soft[16, 12] < 1


def test_bad_input():
  with pytest.raises(ValueError, match=r"keypoints must be \[\.\.\., 18, 3\]"):
    face_crop.face_boxes(np.zeros((14, 3)))
  with pytest.raises(ValueError, match="boxes must be"):
    face_crop.crop_box(jnp.zeros((2, 8, 8, 3)), jnp.zeros((4,)), 4)
  with pytest.raises(ValueError, match="size must be a positive int"):
    face_crop.crop_box(jnp.zeros((8, 8, 3)), jnp.zeros((4,)), 0)
  with pytest.raises(ValueError, match="paste_box"):
    face_crop.paste_box(jnp.zeros((8, 8, 3)), jnp.zeros((4, 4, 1)), jnp.zeros((4,)))
