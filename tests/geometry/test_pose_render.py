"""Pose label maps (scikit-image discs) and OpenPose stick figures (an OpenCV drawing)."""
import math

import jax
import numpy as np
import pytest
from scipy import ndimage
from skimage import draw

from psrjax.geometry.skeleton import LIMBS
from psrjax.geometry import pose_render

# A standing COCO-18 pose in a 48 x 48 frame; integer joints, most limbs with integer midpoints.
POSE = np.array([
    [24, 8], [24, 16], [16, 16], [10, 24], [10, 32], [32, 16], [38, 24], [38, 32], [20, 30],
    [20, 38], [20, 46], [28, 30], [28, 38], [28, 46], [22, 6], [26, 6], [20, 8], [28, 8]],
    np.float32)


def _pose(visible=None):
  kp = np.concatenate([POSE, np.ones((18, 1), np.float32)], axis=-1)
  if visible is not None:
    kp[:, 2] = 0.0
    kp[list(visible), 2] = 1.0
  return kp


def _opencv_stick_figure(kp, height, width):
  """OpenPose's demo drawing with OpenCV: circles, then limb ellipses blended at 0.6."""
  cv2 = pytest.importorskip("cv2")   # opencv-python-headless, in the `test` extra
  canvas = np.zeros((height, width, 3), np.uint8)
  colors = pose_render.OPENPOSE_COLORS.tolist()
  for j in range(18):
    if kp[j, 2] > 0:
      cv2.circle(canvas, (int(kp[j, 0]), int(kp[j, 1])), 4, colors[j], thickness=-1)
  for i, (a, b) in enumerate(LIMBS):
    if kp[a, 2] > 0 and kp[b, 2] > 0:
      (xa, ya), (xb, yb) = kp[a, :2], kp[b, :2]
      angle = math.degrees(math.atan2(yb - ya, xb - xa))
      length = math.hypot(xb - xa, yb - ya)
      poly = cv2.ellipse2Poly((int((xa + xb) / 2), int((ya + yb) / 2)), (int(length / 2), 4),
                              int(angle), 0, 360, 1)
      limb = canvas.copy()
      cv2.fillConvexPoly(limb, poly, colors[i])
      canvas = cv2.addWeighted(canvas, 0.4, limb, 0.6, 0)
  return canvas


@pytest.mark.parametrize("visible", [None, (0, 1, 2, 3, 5, 8, 9, 11, 14, 16)])
def test_stick_figure_matches_the_opencv_drawing_up_to_edge_pixels(visible):
  kp = _pose(visible)
  ours = np.asarray(jax.jit(pose_render.stick_figure, static_argnums=(1, 2))(kp, 48, 48)) * 255
  want = _opencv_stick_figure(kp, 48, 48).astype(np.float32)
  differ = np.abs(ours - want).max(-1) > 2.0                 # beyond uint8 rounding of the blends
  # Rasterisation may differ only next to a colour edge of our drawing.
  edge = np.any(ndimage.maximum_filter(ours, size=(3, 3, 1)) !=
                ndimage.minimum_filter(ours, size=(3, 3, 1)), axis=-1)
  assert not np.any(differ & ~edge), np.argwhere(differ & ~edge)[:5]
  drawn = np.any(want > 0, -1)
  assert differ.sum() < 0.04 * drawn.sum()
  np.testing.assert_array_equal(ours[~(drawn | edge)], 0.0)


def test_stick_figure_limb_colour_black_background_and_centred_discs():
  kp = _pose(visible=(8, 9))                       # r_hip -> r_knee: LIMBS[7], vertical, 8 px
  kp[9, 1] = 46.0                                  # lengthen to 16 px: midpoint clear of the discs
  out = np.asarray(pose_render.stick_figure(kp, 48, 48))
  mid = out[38, 20]
  np.testing.assert_allclose(mid, 0.6 * pose_render.OPENPOSE_COLORS[LIMBS.index((8, 9))] / 255,
                             atol=1e-6)
  assert out[38, 20 + 5].max() == 0.0 and out[:20].max() == 0.0    # beyond the 4 px half-width
  # One joint alone: a disc of radius 4 in its colour, centred on it.
  kp = _pose(visible=(4,))
  kp[4, :2] = (17.3, 21.6)
  out = np.asarray(pose_render.stick_figure(kp, 40, 40))
  ys, xs = np.nonzero(out.max(-1) > 0)
  np.testing.assert_allclose(out[ys, xs], np.broadcast_to(pose_render.OPENPOSE_COLORS[4] / 255,
                                                          (len(ys), 3)), atol=1e-6)
  assert len(ys) == np.sum((np.mgrid[:40, :40][1] - 17.3) ** 2 +
                           (np.mgrid[:40, :40][0] - 21.6) ** 2 <= 16)
  np.testing.assert_allclose([xs.mean(), ys.mean()], [17.3, 21.6], atol=0.35)


def test_label_map_discs_match_scikit_image_and_limbs_are_thick_lines():
  rng = np.random.default_rng(0)
  kp = np.concatenate([rng.uniform(3, 29, (2, 18, 2)), np.ones((2, 18, 1))], -1).astype(np.float32)
  kp[1, 5, 2] = 0.0
  maps = np.asarray(pose_render.pose_label_map(kp, 32, 32, radius=2.5, limb_width=3.0))
  assert maps.shape == (2, 32, 32, 35) == (2, 32, 32, pose_render.num_label_channels())
  assert pose_render.num_label_channels(with_limbs=False) == 18
  for b in range(2):
    for j in range(18):
      want = np.zeros((32, 32))
      if kp[b, j, 2] > 0:
        want[draw.disk((kp[b, j, 1], kp[b, j, 0]), 2.5, shape=(32, 32))] = 1.0
      np.testing.assert_array_equal(maps[b, ..., j], want)
  # LIMBS[1] = (neck, l_shoulder) touches the hidden joint 5: empty.
  assert maps[1, ..., 18 + LIMBS.index((1, 5))].max() == 0.0
  flat = np.zeros((18, 3), np.float32)
  flat[1], flat[2] = (4, 8, 1), (12, 8, 1)         # LIMBS[0], horizontal, width 3: rounded caps
  lines = np.asarray(pose_render.pose_label_map(flat, 16, 16, radius=1.0, limb_width=3.0))
  want = np.zeros((16, 16))
  want[7:10, 3:14] = 1.0
  np.testing.assert_array_equal(lines[..., 18], want)
  only_discs = pose_render.pose_label_map(flat, 16, 16, radius=1.0)
  assert only_discs.shape == (16, 16, 18)
  with pytest.raises(ValueError, match=r"keypoints must be \[\.\.\., 18, 3\]"):
    pose_render.stick_figure(np.zeros((17, 3)), 16, 16)


@pytest.mark.parametrize("height", [48, 96])
def test_limb_distance_maps_are_the_distance_transform_of_the_limb_strokes(height):
  """CoCosNet's limb channels: a distance transform of each limb's stroke (here scipy's exact
  Euclidean one of the stroke the maps themselves mark with 0), divided by 3 in pixels of a
  256-pixel frame, 1 where the limb is missing."""
  kp = _pose(visible=[j for j in range(18) if j != 5])            # l_shoulder hidden
  kp[:, :2] *= height / 48
  maps = np.asarray(pose_render.limb_distance_maps(kp, height, height, stick_width=2.0))
  assert maps.shape == (height, height, 17) and maps.min() == 0.0
  np.testing.assert_array_equal(maps[..., LIMBS.index((1, 5))], 1.0)   # touches the hidden joint
  limb = LIMBS.index((8, 9))                                        # r_hip -> r_knee
  stroke = maps[..., limb] == 0.0
  a, b = kp[8, :2], kp[9, :2]
  yy, xx = np.mgrid[:height, :height]
  t = np.clip(((xx - a[0]) * (b[0] - a[0]) + (yy - a[1]) * (b[1] - a[1]))
              / np.sum(np.square(b - a)), 0, 1)
  d = np.hypot(xx - (a[0] + t * (b[0] - a[0])), yy - (a[1] + t * (b[1] - a[1])))
  np.testing.assert_array_equal(stroke, d <= 2.0)                   # the capsule of radius 2
  edt = ndimage.distance_transform_edt(~stroke)                     # pixels to the nearest stroke pixel
  want = np.minimum(edt * (256 / height) / 3, 255) / 255
  np.testing.assert_allclose(maps[..., limb], want, atol=1.0 * (256 / height) / 3 / 255)
