"""The synthetic world's estimated-geometry mode: a clip's geometry maps from a body fitted to its
noisy, triangulated 2D keypoints, as a calibrated multi-view recording would give them, while
its rgb stays the true render.

For a rendered clip (`synthetic.render_clip`): every camera's true 2D keypoints get Gaussian
pixel noise of sigma = `noise` x the image height and, with probability `swap_rate` per camera
and frame, their left and right labels exchanged (the two errors real 2D pose estimators make);
`triangulation.triangulate_sequence` turns them into 3D keypoints through the clip's
calibration (swap repair, RANSAC, Butterworth smoothing at the clip's frame rate);
`body_fit.fit_body` fits the body to them and `body_fit.render_fit` renders it in the clip's
cameras. Its depth, face, part, uv and flows replace the clip's and the noisy detections its
keypoints; rgb, background and the room stay true, and so does the mask: it is the target's
foreground the masked metrics are measured on (a real recording's would come from a
segmenter, not from the body). The random draws come from the clip's seed, so a clip is
estimated alike in every process.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from psrjax.data.preparation import body_fit
from psrjax.data.synthetic.cameras import Cameras
from psrjax.data.synthetic.clip import CLIP_FPS
from psrjax.geometry.calibration import Camera
from psrjax.geometry.skeleton import COCO_NAMES
from psrjax.geometry.triangulation import TriangulatedSequence, triangulate_sequence

GEOMETRIES = ("exact", "estimated")
# The maps the fitted body replaces.
ESTIMATED_KEYS = ("depth", "face", "part", "uv", "flow_fwd", "flow_bwd", "keypoints")
# COCO-18 index pairs exchanged by a left/right swap.
_SWAP = [(COCO_NAMES.index(n), COCO_NAMES.index("l" + n[1:]))
         for n in COCO_NAMES if n.startswith("r")]


@dataclasses.dataclass(frozen=True)
class Estimate:
  """How to estimate a clip's geometry (module docstring); `fit_steps` as `fit_body`'s steps."""
  noise: float = 0.01
  swap_rate: float = 0.0
  fit_steps: int = 600

  def __post_init__(self):
    if not (np.isfinite(self.noise) and self.noise >= 0):
      raise ValueError(f"keypoint noise must be a fraction of the image height >= 0; got "
                       f"{self.noise}")
    if not 0 <= self.swap_rate <= 1:
      raise ValueError(f"the left/right swap rate must lie in [0, 1]; got {self.swap_rate}")
    if int(self.fit_steps) < 1:
      raise ValueError(f"fit_steps must be >= 1; got {self.fit_steps}")


def check_geometry(geometry: str) -> str:
  if geometry not in GEOMETRIES:
    raise ValueError(f"data.geometry must be one of {GEOMETRIES}; got {geometry!r}")
  return geometry


def clip_cameras(clip: dict) -> list[Camera]:
  """The clip's cameras as calibration `Camera`s (undistorted pinholes)."""
  height, width = clip["rgb"].shape[2:4]
  return [Camera(f"cam{v + 1}", (width, height), clip["K"][v], np.zeros(5), clip["R"][v],
                 clip["t"][v]) for v in range(len(clip["K"]))]


def noisy_detections(keypoints: np.ndarray, height: int, width: int, estimate: Estimate,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """(detections [V, T, 18, 3] (x, y, confidence), swapped [V, T]) from true keypoints
  [V, T, 18, 3]: pixel noise, left/right swaps where swapped, confidence 1 inside the image and
  0 outside (module docstring)."""
  xy = keypoints[..., :2] + rng.normal(0.0, estimate.noise * height, keypoints[..., :2].shape)
  inside = (xy[..., 0] >= -0.5) & (xy[..., 0] <= width - 0.5) & (xy[..., 1] >= -0.5) & (
      xy[..., 1] <= height - 0.5)
  out = np.concatenate([xy, inside[..., None]], axis=-1).astype(np.float32)
  swapped = rng.random(out.shape[:2]) < estimate.swap_rate
  for right, left in _SWAP:
    out[swapped, right], out[swapped, left] = out[swapped, left], out[swapped, right]
  return out, swapped


def fit_clip(clip: dict, estimate: Estimate,
             seed: int) -> tuple[body_fit.BodyFit, np.ndarray, TriangulatedSequence]:
  """(body fit, detections [V, T, 18, 3], their triangulation) of a rendered clip."""
  height, width = clip["rgb"].shape[2:4]
  rng = np.random.default_rng([0xE57, int(seed)])
  detections, _ = noisy_detections(clip["keypoints"], height, width, estimate, rng)
  tri = triangulate_sequence(detections, clip_cameras(clip), fps=CLIP_FPS, seed=int(seed))
  fit = body_fit.fit_body(tri.points3d, tri.confidence, steps=int(estimate.fit_steps),
                          seed=int(seed))
  return fit, detections, tri


def estimate_clip(clip: dict, estimate: Estimate, seed: int) -> dict:
  """A copy of `clip` whose `ESTIMATED_KEYS` come from the fitted body (module docstring)."""
  fit, detections, _ = fit_clip(clip, estimate, seed)
  height, width = clip["rgb"].shape[2:4]
  cameras = Cameras(np.asarray(clip["K"], np.float64), np.asarray(clip["R"], np.float64),
                    np.asarray(clip["t"], np.float64), int(height), int(width))
  maps = body_fit.render_fit(fit, cameras)
  out = dict(clip)
  out.update({k: maps[k] for k in ESTIMATED_KEYS if k != "keypoints"})
  out["keypoints"] = detections
  return out
