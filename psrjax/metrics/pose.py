"""Pose metrics on keypoints [..., K, 3] = (x, y, visibility) in pixels (COCO-18 order).

The keypoints of generated frames come from a pose estimator (or ground truth); a keypoint is
"detected" / "visible" when its visibility is > 0. Conventions (PSR-Net Table 4 reports PCK
with Yang & Ramanan 2013 and precision / recall / F1 without fixing them):
- normaliser: max(height, width) of the bounding box of the visible ground-truth keypoints,
  Yang & Ramanan's PCK scale; PCK@a counts a ground-truth keypoint as correct when it is
  detected within a * normaliser (undetected keypoints are misses);
- precision = correct / detected, recall = correct / visible ground truth, F1 their harmonic
  mean (correct = detected within the threshold of a visible ground-truth keypoint);
- the robustness split of D²G-Net: the M validation poses with the largest nearest-neighbour
  distance to the training poses, the distance being the Euclidean distance of the 2D keypoint
  vectors over keypoints visible in both poses.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

PCK_THRESHOLDS = (0.2, 0.05, 0.01)


def _split(keypoints, name):
  k = jnp.asarray(keypoints, jnp.float32)
  if k.ndim < 2 or k.shape[-1] != 3:
    raise ValueError(f"{name}: expected keypoints [..., K, 3] (x, y, visibility), got shape {k.shape}")
  return k[..., :2], k[..., 2] > 0


def _pair(pred, target, name):
  if jnp.shape(pred) != jnp.shape(target):
    raise ValueError(f"{name}: keypoint shapes differ: {jnp.shape(pred)} vs {jnp.shape(target)}")
  (p, pv), (t, tv) = _split(pred, name), _split(target, name)
  return jnp.linalg.norm(p - t, axis=-1), pv, tv, t


def keypoint_error(pred, target) -> jax.Array:
  """Mean L2 distance (pixels) over keypoints visible in both; [..., K, 3] -> [...] (NaN if none)."""
  dist, pv, tv, _ = _pair(pred, target, "keypoint_error")
  both = pv & tv
  return jnp.sum(jnp.where(both, dist, 0.0), -1) / jnp.sum(both, -1)


def normaliser(target) -> jax.Array:
  """max(height, width) of the bounding box of the visible keypoints, [..., K, 3] -> [...]."""
  xy, vis = _split(target, "normaliser")
  lo = jnp.min(jnp.where(vis[..., None], xy, jnp.inf), axis=-2)
  hi = jnp.max(jnp.where(vis[..., None], xy, -jnp.inf), axis=-2)
  return jnp.max(hi - lo, axis=-1)


def _correct(pred, target, threshold, name):
  dist, pv, tv, _ = _pair(pred, target, name)
  return pv & tv & (dist <= threshold * normaliser(target)[..., None]), pv, tv


def pck(pred, target, *, threshold: float = 0.2) -> jax.Array:
  """Fraction of visible ground-truth keypoints detected within threshold * normaliser; [...]."""
  correct, _, tv = _correct(pred, target, threshold, "pck")
  return jnp.sum(correct, -1) / jnp.sum(tv, -1)


def detection_scores(pred, target, *, threshold: float = 0.2) -> dict[str, jax.Array]:
  """Precision, recall and F1 of the detected keypoints per example ({name: [...]})."""
  correct, pv, tv = _correct(pred, target, threshold, "detection_scores")
  tp = jnp.sum(correct, -1).astype(jnp.float32)
  precision = tp / jnp.maximum(jnp.sum(pv, -1), 1)
  recall = tp / jnp.maximum(jnp.sum(tv, -1), 1)
  f1 = jnp.where(precision + recall > 0, 2 * precision * recall / jnp.maximum(precision + recall, 1e-12), 0.0)
  return {"precision": precision, "recall": recall, "f1": f1}


def challenging_poses(validation, training, *, m: int = 10) -> np.ndarray:
  """Indices of the m validation poses farthest from their nearest training pose (D²G-Net).

  validation [N, K, 3], training [M', K, 3]; returns int indices [m], farthest first.
  """
  val, train = np.asarray(validation, np.float64), np.asarray(training, np.float64)
  if val.ndim != 3 or train.ndim != 3 or val.shape[1:] != train.shape[1:] or val.shape[-1] != 3:
    raise ValueError(f"challenging_poses: expected [N, K, 3] keypoints, got {val.shape} and {train.shape}")
  if not 0 < m <= len(val):
    raise ValueError(f"challenging_poses: m must be in 1..{len(val)}, got {m}")
  both = (val[:, None, :, 2] > 0) & (train[None, :, :, 2] > 0)                  # [N, M', K]
  sq = np.sum((val[:, None, :, :2] - train[None, :, :, :2]) ** 2, axis=-1)       # [N, M', K]
  dist = np.sqrt(np.sum(np.where(both, sq, 0.0), axis=-1))
  nearest = np.min(dist, axis=1)
  return np.argsort(-nearest, kind="stable")[:m]
