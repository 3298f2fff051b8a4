"""Nearest-pose retrieval: the per-person baseline with no learning.

For every query pose the output is the training frame whose normalised pose is nearest: its
RGB and its person mask (`per_person.training_appearance`: of the synthetic person or of a
prepared dataset's training videos). It scores what memorising the training video achieves; the learned
per-person systems (pix2pixHD, Everybody Dance Now) should beat it on unseen poses and actions.
Queries are held-out frames of the learned person (`evaluate`) or, for cross-person driving,
`retrieve(data, index, per_person.driving_keypoints(data, normalize))`.

Normalisation (`torso_normalize`, the default; any `normalize(keypoints) -> keypoints` can be
passed instead): translate the pose so that the mid-hip (the mean of the visible hips; the neck
when no hip is visible) is at the origin and divide by the torso length (neck to mid-hip; when
the neck or both hips are hidden, the RMS distance of the visible joints from the centre). This
removes position and scale, not orientation, so a person seen from the back matches a frontal
pose of the same silhouette only through the visibility flags.

Distance: the mean squared distance of the normalised joints visible (visibility > 0) in BOTH
poses; a training pose sharing no visible joint with the query is never chosen. Computed for
all training frames at once as matrix products (float64), in chunks of queries.

`evaluate` scores the retrieval on the held-out segment with the metric functions and names the
per-person systems report (`METRICS`), in MFCI's conventions: SSIM and masked SSIM on [0, 1]
intensities (`metrics.ssim`'s default for [-1, 1] frames), PSNR with data_range 2, LPIPS with
the packaged AlexNet weights, all per frame and averaged over a run's frames; E_temp of the
retrieved run with the ground-truth backward flow; the IoU of the retrieved frame's person mask
with the true one.
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import numpy as np

from psrjax.metrics import perceptual, runs
from psrjax.data.samplers import per_person

METRICS = ("ssim", "psnr", "lpips", "m_ssim", "tempe", "mask_iou")
NECK, R_HIP, L_HIP = 1, 8, 11
# AlexNet's fifth layer is empty below 31 pixels and LPIPS turns NaN.
LPIPS_MIN_SIZE = 31


def torso_normalize(keypoints) -> np.ndarray:
  """[..., 18, 3] -> [..., 18, 3]: (x, y) centred on the mid-hip and divided by the torso length
  (module docstring), visibility unchanged. A pose with nothing visible is left as it is."""
  kp = np.asarray(keypoints, np.float64)
  xy, vis = kp[..., :2], kp[..., 2] > 0
  hips = vis[..., [R_HIP, L_HIP]]
  n_hips = hips.sum(-1, keepdims=True)
  mid_hip = np.sum(xy[..., [R_HIP, L_HIP], :] * hips[..., None], -2) / np.maximum(n_hips, 1)
  centre = np.where(n_hips > 0, mid_hip, np.where(vis[..., NECK, None], xy[..., NECK, :], 0.0))
  torso = np.linalg.norm(xy[..., NECK, :] - mid_hip, axis=-1)
  n_vis = np.maximum(vis.sum(-1), 1)
  spread = np.sqrt(np.sum(np.sum((xy - centre[..., None, :]) ** 2, -1) * vis, -1) / n_vis)
  scale = np.where(vis[..., NECK] & (n_hips[..., 0] > 0) & (torso > 0), torso, spread)
  scale = np.where(scale > 0, scale, 1.0)
  out = np.concatenate([(xy - centre[..., None, :]) / scale[..., None, None], kp[..., 2:]], -1)
  return out.astype(np.float32)


def _features(keypoints, normalize) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(visibility [N, 18], visibility-weighted xy [N, 36], weighted |xy|^2 [N, 18]), float64."""
  kp = np.asarray(normalize(np.asarray(keypoints, np.float32)), np.float64)
  if kp.ndim != 3 or kp.shape[1:] != (18, 3):
    raise ValueError(f"retrieval needs poses [N, 18, 3] after normalisation; got {kp.shape}")
  vis = (kp[..., 2] > 0).astype(np.float64)
  xy = kp[..., :2] * vis[..., None]
  return vis, xy.reshape(len(kp), -1), np.sum(xy ** 2, -1)


class PoseIndex:
  """Nearest training pose by the co-visible mean squared distance (module docstring)."""

  def __init__(self, keypoints, *, normalize: Callable | None = None, chunk: int = 1024):
    """keypoints: [N, 18, 3] training poses; normalize: None for `torso_normalize`."""
    self.normalize = torso_normalize if normalize is None else normalize
    self.chunk = int(chunk)
    if self.chunk < 1:
      raise ValueError(f"chunk must be >= 1 query per matrix product, got {chunk}")
    self.vis, self.xy, self.sq = _features(keypoints, self.normalize)
    if len(self.vis) == 0:
      raise ValueError("PoseIndex needs at least one training pose")

  def __len__(self) -> int:
    return len(self.vis)

  def distances(self, queries) -> np.ndarray:
    """[M, N]: mean squared distance over joints visible in both; inf where none is."""
    vis, xy, sq = _features(queries, self.normalize)
    total = sq @ self.vis.T + vis @ self.sq.T - 2.0 * (xy @ self.xy.T)
    count = vis @ self.vis.T
    return np.where(count > 0, np.maximum(total, 0.0) / np.maximum(count, 1.0), np.inf)

  def nearest(self, queries) -> tuple[np.ndarray, np.ndarray]:
    """(training index [M] int64, distance [M]) of each query pose [M, 18, 3] (-1, inf when no
    training pose shares a visible joint with it)."""
    queries = np.asarray(queries, np.float32)
    index, dist = [], []
    for lo in range(0, len(queries), self.chunk):
      d = self.distances(queries[lo:lo + self.chunk])
      best = np.argmin(d, axis=1)
      dist.append(d[np.arange(len(d)), best])
      index.append(np.where(np.isfinite(dist[-1]), best, -1))
    if not index:
      return np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(index).astype(np.int64), np.concatenate(dist)


def build_index(data, *, normalize: Callable | None = None) -> PoseIndex:
  """The index of every training-segment frame of the person (`per_person.train_keypoints`)."""
  return PoseIndex(per_person.train_keypoints(data), normalize=normalize)


def retrieve(data, index: PoseIndex, keypoints) -> dict[str, np.ndarray]:
  """For poses [..., 18, 3]: "rgb" [..., H, W, 3] in [-1, 1] and "mask" [..., H, W, 1] of the
  nearest training frames, their "train_index" [...] and pose "distance" [...]. A pose sharing
  no visible joint with any training pose gets training frame 0 ("train_index" -1)."""
  kp = np.asarray(keypoints, np.float32)
  lead = kp.shape[:-2]
  found, dist = index.nearest(kp.reshape((-1,) + kp.shape[-2:]))
  unique, inverse = np.unique(np.maximum(found, 0), return_inverse=True)
  frames = per_person.training_appearance(data, unique)
  rgb, mask = frames["rgb"][inverse], frames["mask"][inverse]
  return {"rgb": rgb.reshape(lead + rgb.shape[1:]), "mask": mask.reshape(lead + mask.shape[1:]),
          "train_index": found.reshape(lead), "distance": dist.reshape(lead)}


@functools.partial(jax.jit, static_argnames=("lpips_net",))
def run_metrics(pred, pred_mask, target, mask, flow_bwd, lpips_variables, *,
                lpips_net: str | None) -> dict[str, jax.Array]:
  """Per run [B] of `METRICS` for predicted runs pred [B, T, H, W, 3] with masks
  [B, T, H, W, 1] against the ground truth (`psrjax.metrics.runs.run_metrics`)."""
  return runs.run_metrics(pred, target, mask, flow_bwd=flow_bwd, pred_mask=pred_mask,
                          lpips_net=lpips_net, lpips_variables=lpips_variables)


def evaluate(data, *, normalize: Callable | None = None, num_runs: int | None = None,
             batch_size: int = 8, lpips_net: str | None = "alexnet") -> dict[str, float]:
  """Mean over the held-out runs (`per_person.eval_dataset`) of `METRICS` for the retrieval
  baseline; lpips_net=None leaves LPIPS out. Also "distance": the mean distance from a
  held-out pose to its retrieved training pose; and "<metric>/seen", "<metric>/novel": the means
  over runs of actions the training segment shows / never shows (`per_person.run_groups`)."""
  if lpips_net is not None and data.resolution < LPIPS_MIN_SIZE:
    raise ValueError(f"LPIPS ({lpips_net}) needs frames of at least {LPIPS_MIN_SIZE} pixels; "
                     f"data.resolution is {data.resolution}: raise it or pass lpips_net=None")
  index = build_index(data, normalize=normalize)
  variables = None if lpips_net is None else perceptual.load_variables(lpips_net)
  held_out = per_person.eval_dataset(data, shard_index=0, shard_count=1, num_runs=num_runs)
  per_run = []
  for batch in held_out.batch(batch_size):
    out = retrieve(data, index, batch["keypoints"])
    values = run_metrics(out["rgb"], out["mask"], batch["rgb"], batch["mask"], batch["flow_bwd"],
                         variables, lpips_net=lpips_net)
    values["distance"] = np.mean(out["distance"], axis=1)
    values["group"] = per_person.run_groups(data, batch["frame_index"])
    per_run.append({k: np.asarray(v, np.float64) for k, v in values.items()})
  stacked = {k: np.concatenate([r[k] for r in per_run]) for k in per_run[0]}
  groups = stacked.pop("group").astype(int)
  result = {name: float(v.mean()) for name, v in stacked.items()}
  for g, group in enumerate(per_person.RUN_GROUPS):
    if np.any(groups == g):
      result.update({f"{name}/{group}": float(v[groups == g].mean()) for name, v in stacked.items()})
  return result
