"""The offline pose estimator: the missing-extra error, the 33 -> COCO-18 conversion, and (with
the `pose` extra installed) MediaPipe on rendered synthetic people against the exact keypoints
and masks."""
import builtins

import cv2
import imageio.v3 as iio
import numpy as np
import pytest

from psrjax.data.preparation import pose_estimator
from psrjax.data.sources import still_image
from psrjax.data.synthetic import cameras as cams, sequence


def test_missing_mediapipe_raises_the_install_hint(monkeypatch):
  real_import = builtins.__import__

  def no_mediapipe(name, *args, **kwargs):
    if name == "mediapipe" or name.startswith("mediapipe."):
      raise ImportError("No module named 'mediapipe'")
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, "__import__", no_mediapipe)
  with pytest.raises(ImportError, match=r"pip install 'psrjax\[pose\]'.*--keypoints"):
    pose_estimator.MediaPipePose()


def test_only_the_shipped_model_is_accepted():
  with pytest.raises(ValueError, match="model_complexity"):
    pose_estimator.MediaPipePose(model_complexity=2)


def test_mediapipe_on_a_rendered_person():
  pytest.importorskip("mediapipe")
  res = 256
  cam = cams.camera_ring([0.0], height=res, width=res, fov_y_deg=sequence.DEFAULT_FOV_Y_DEG)
  seq = sequence.ScriptedSequence(3, (("wave", 8),), cameras=cam, seed=3)
  out = seq.render_frames([0, 2, 4, 6])
  rgb, exact, mask = out["rgb"][0], out["keypoints"][0], out["mask"][0].astype(bool)
  with pose_estimator.MediaPipePose() as pose:
    kp, seg = pose.estimate_video(rgb)
  assert kp.shape == exact.shape and seg.shape == mask.shape
  both = (exact[..., 2] > 0) & (kp[..., 2] > 0.5)
  err = np.linalg.norm(kp[..., :2] - exact[..., :2], axis=-1)
  print(f"MediaPipe: {both.sum()} keypoints, mean error {err[both].mean():.2f} px, "
        f"segmentation IoU {_iou(seg > 0.5, mask):.3f}")
  assert both.sum() >= 0.8 * (exact[..., 2] > 0).sum()
  assert err[both].mean() < 8.0                          # measured 6.2 px
  assert _iou(seg > 0.5, mask) > 0.93                    # measured 0.965


def _iou(a, b):
  return float((a & b).sum() / max((a | b).sum(), 1))


def test_a_still_image_read_with_mediapipe(tmp_path):
  """`--source IMAGE` without keypoint and mask files: MediaPipe's on the image's centred square,
  moved and scaled with it (a wide rendered frame: the square is its middle)."""
  pytest.importorskip("mediapipe")
  height, width, res = 192, 256, 64
  cam = cams.camera_ring([0.0], height=height, width=width, fov_y_deg=sequence.DEFAULT_FOV_Y_DEG)
  out = sequence.ScriptedSequence(3, (("wave", 8),), cameras=cam, seed=3).render_frames([0])
  image = tmp_path / "person.png"
  iio.imwrite(image, out["rgb"][0, 0])
  person = still_image.read_person(str(image), res)
  exact = out["keypoints"][0, 0].copy()
  exact[:, 0] -= (width - height) // 2   # the centred square's left edge
  exact[:, :2] = (exact[:, :2] + 0.5) * res / height - 0.5
  left = (width - height) // 2
  mask = np.asarray(out["mask"][0, 0], np.float32).reshape(height, width)[:, left:left + height]
  want = cv2.resize(mask, (res, res), interpolation=cv2.INTER_AREA) >= 0.5
  both = (exact[:, 2] > 0) & (person.keypoints[:, 2] > 0)
  err = np.linalg.norm(person.keypoints[both, :2] - exact[both, :2], axis=-1)
  iou = _iou(person.mask[..., 0] > 0, want)
  print(f"still image: {both.sum()} keypoints, mean error {err.mean():.2f} px at {res} px, "
        f"mask IoU {iou:.3f}")
  assert both.sum() >= 0.8 * (exact[:, 2] > 0).sum() and err.mean() < 2.5   # 8 px at 192 px
  assert iou > 0.9
