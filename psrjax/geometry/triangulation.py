"""Triangulation of COCO-18 keypoints seen by calibrated cameras, and its clean-up.

Conventions: 2D keypoints are `[V, ..., 18, 3]` per view (x, y pixels with pixel centres at
integers, and a confidence; `psrjax.geometry.skeleton`), cameras are
`psrjax.geometry.calibration.Camera`s, 3D points are world coordinates in the calibration's units
and NaN where they could not be triangulated. A detection counts where its confidence is > 0 and
its coordinates are finite. The functions on undistorted pixels take projection matrices
`[V, 3, 4]` (`Camera.projection`, K [R | t]); any scale or sign of a projection matrix is
accepted: each is normalised so that its third row gives the depth (Hartley & Zisserman,
Multiple View Geometry, 2nd ed., Sec. 6.2.3).

- `triangulate_dlt`: confidence-weighted linear triangulation (H&Z Sec. 12.2);
- `triangulate_ransac`: RANSAC over view pairs with an inlier threshold in pixels (Fischler &
  Bolles 1981), refit by DLT on the inliers;
- `repair_left_right_swaps`: per frame and view, the labelling (as given or left/right
  exchanged) that best explains all views together;
- `smooth_trajectories`: zero-phase Butterworth low-pass with short gaps interpolated, as
  Pose2Sim filters its 3D keypoints;
- `triangulate_sequence`: all of it, from per-view detections to a 3D sequence and a report.
NumPy throughout: this is data preparation.
"""
from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np
from scipy import signal

from psrjax.geometry.calibration import Camera
from psrjax.geometry.skeleton import COCO_NAMES, NUM_KEYPOINTS

# (right, left) keypoint index pairs: every "r_<part>" with its "l_<part>" in COCO_NAMES.
LEFT_RIGHT_PAIRS = tuple((COCO_NAMES.index("r_" + n[2:]), i)
                         for i, n in enumerate(COCO_NAMES) if n.startswith("l_"))
# FLIP_INDEX[j]: the keypoint that takes j's place when left and right are exchanged.
FLIP_INDEX = tuple(next((r if j == l else l for r, l in LEFT_RIGHT_PAIRS if j in (r, l)), j)
                   for j in range(NUM_KEYPOINTS))
_SIDED = np.array(sorted(j for pair in LEFT_RIGHT_PAIRS for j in pair))


# ---- linear triangulation -----------------------------------------------------------------------

def _normalized_projections(projections) -> np.ndarray:
  """[V, 3, 4] projections scaled by sign(det M) / |m3| so that P[2] . X is the depth."""
  P = np.asarray(projections, np.float64)
  if P.ndim != 3 or P.shape[1:] != (3, 4) or not np.all(np.isfinite(P)):
    raise ValueError(f"projections must be finite [V, 3, 4] (Camera.projection); got {P.shape}")
  scale = np.sign(np.linalg.det(P[:, :, :3])) * np.linalg.norm(P[:, 2, :3], axis=-1)
  if np.any(scale == 0):
    raise ValueError("a projection matrix has a singular left 3x3 block; pass K [R | t]")
  return P / scale[:, None, None]


def _views(points, confidences, projections):
  """(x [V, N, 2] with missing detections zeroed, w [V, N] with them 0, P, leading shape)."""
  P = _normalized_projections(projections)
  x = np.asarray(points, np.float64)
  w = np.asarray(confidences, np.float64)
  if x.shape[:1] != P.shape[:1] or x.shape[-1] != 2 or w.shape != x.shape[:-1]:
    raise ValueError(f"need points [V, ..., 2] and confidences [V, ...] for V = {len(P)} "
                     f"projections; got {x.shape} and {w.shape}")
  lead = x.shape[1:-1]
  x, w = x.reshape(len(P), -1, 2), w.reshape(len(P), -1)
  seen = (w > 0) & np.all(np.isfinite(x), axis=-1) & np.isfinite(w)
  return np.where(seen[..., None], x, 0.0), np.where(seen, w, 0.0), P, lead


def _dlt(x: np.ndarray, w: np.ndarray, P: np.ndarray) -> np.ndarray:
  """[N, 3] weighted DLT of x [V, N, 2] with weights w [V, N] (0: unused); NaN with < 2 views."""
  rows = x[..., None] * P[:, None, 2:3, :] - P[:, None, :2, :]      # [V, N, 2, 4]
  A = np.moveaxis(rows * w[..., None, None], 0, 1).reshape(x.shape[1], -1, 4)
  X = np.linalg.svd(A)[2][:, -1, :]                                  # smallest singular vector
  with np.errstate(divide="ignore", invalid="ignore"):
    out = X[:, :3] / X[:, 3:]
  bad = (np.sum(w > 0, axis=0) < 2) | (np.abs(X[:, 3]) < 1e-12)
  out[bad] = np.nan
  return out


def triangulate_dlt(points, confidences, projections) -> np.ndarray:
  """`[..., 3]` world points from undistorted pixels `[V, ..., 2]`, confidences `[V, ...]`
  and projections `[V, 3, 4]`.

  The linear (DLT) method of Hartley & Zisserman Sec. 12.2: each view contributes the rows
  x P3 - P1 and y P3 - P2, multiplied by its confidence; the point is the right singular vector
  of the smallest singular value. With unit confidences and projections K [R | t] this is
  cv2.triangulatePoints. NaN where fewer than 2 views have confidence > 0.
  """
  x, w, P, lead = _views(points, confidences, projections)
  return _dlt(x, w, P).reshape(lead + (3,))


def _pinhole_errors(P: np.ndarray, X: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
  """[V, N] pixel distances of X [N, 3] projected by P to x [V, N, 2]; NaN where w = 0 or X is
  NaN, inf where X is not in front of the camera."""
  h = np.einsum("vij,nj->vni", P[:, :, :3], X) + P[:, None, :, 3]
  with np.errstate(divide="ignore", invalid="ignore"):
    err = np.linalg.norm(h[..., :2] / h[..., 2:] - x, axis=-1)
  err = np.where(h[..., 2] > 0, err, np.inf)
  return np.where((w > 0) & np.all(np.isfinite(X), axis=-1), err, np.nan)


# ---- RANSAC ------------------------------------------------------------------------------------

def _view_pairs(num_views: int, max_pairs: int, seed: int) -> list[tuple[int, int]]:
  pairs = list(itertools.combinations(range(num_views), 2))
  if len(pairs) <= max_pairs:
    return pairs
  keep = np.random.default_rng(seed).choice(len(pairs), size=max_pairs, replace=False)
  return [pairs[i] for i in sorted(keep)]


def triangulate_ransac(points, confidences, projections, *, threshold_px: float = 15.0,
                       max_pairs: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """RANSAC triangulation (Fischler & Bolles 1981) of undistorted pixels `[V, ..., 2]`.

  Every hypothesis is the DLT of one view pair: all V (V - 1) / 2 pairs, or `max_pairs` of them
  drawn once with `seed` when there are more (the same pairs for every point). A view is an
  inlier of a hypothesis when its detection reprojects within `threshold_px` in front of the
  camera; each point keeps the hypothesis with the most inliers, ties broken by the smaller sum
  of inlier errors, and is refit by weighted DLT on those inliers. Returns (points `[..., 3]`,
  NaN without 2 inliers; inliers bool `[V, ...]`, the views each point was refit from).
  Cost: one 2-view DLT and one projection into all views per pair and point.
  """
  x, w, P, lead = _views(points, confidences, projections)
  num_views, n = w.shape
  best_key, best_in = np.full(n, -np.inf), np.zeros((num_views, n), bool)
  for i, j in _view_pairs(num_views, max_pairs, seed):
    pair = np.zeros_like(w)
    pair[[i, j]] = w[[i, j]]
    err = _pinhole_errors(P, _dlt(x, pair, P), x, w)
    inl = err < threshold_px
    key = inl.sum(0) - np.where(inl, err / threshold_px, 0.0).sum(0) / (num_views + 1)
    key = np.where(inl.sum(0) >= 2, key, -np.inf)
    better = key > best_key
    best_key = np.where(better, key, best_key)
    best_in[:, better] = inl[:, better]
  X = _dlt(x, np.where(best_in, w, 0.0), P)
  return X.reshape(lead + (3,)), best_in.reshape((num_views,) + lead)


# ---- reprojection errors and their report --------------------------------------------------------

def reprojection_errors(points3d, points2d, confidences, cameras: Sequence[Camera]) -> np.ndarray:
  """`[V, ...]` pixel distances between world points `[..., 3]` projected through each Camera
  (with its lens distortion) and the detections `[V, ..., 2]` in the recorded images; NaN where
  a view has no detection (confidence <= 0) or the point is NaN."""
  X = np.asarray(points3d, np.float64)
  x = np.asarray(points2d, np.float64)
  conf = np.asarray(confidences, np.float64)
  if x.shape != (len(cameras),) + X.shape[:-1] + (2,) or conf.shape != x.shape[:-1]:
    raise ValueError(f"need points3d [..., 3], points2d [V, ..., 2], confidences [V, ...] for "
                     f"V = {len(cameras)} cameras; got {X.shape}, {x.shape}, {conf.shape}")
  err = np.stack([np.linalg.norm(cam.project(X) - x[v], axis=-1) for v, cam in enumerate(cameras)])
  return np.where(conf > 0, err, np.nan)


def _stats(errors: np.ndarray) -> dict:
  e = errors[np.isfinite(errors)]
  if e.size == 0:
    return {"count": 0, "median": float("nan"), "mean": float("nan"), "p90": float("nan")}
  return {"count": int(e.size), "median": float(np.median(e)), "mean": float(e.mean()),
          "p90": float(np.percentile(e, 90))}


def error_report(errors, camera_names, *, joint_names=COCO_NAMES, inliers=None,
                 swapped=None) -> dict:
  """Reprojection errors `[V, ..., J]` (`reprojection_errors`) summarised for a person to read:
  {"overall": s, "per_camera": {name: s}, "per_joint": {name: s}} with s = {"count", "median",
  "mean", "p90"} in pixels over the finite errors. With inliers bool `[V, ..., J]` each camera
  also gets "outlier_fraction" (its detections RANSAC left out), with swapped bool `[V, T]`
  "swapped_frames" (frames whose left/right labels were exchanged)."""
  e = np.asarray(errors, np.float64)
  if e.shape[0] != len(camera_names) or e.shape[-1] != len(joint_names):
    raise ValueError(f"errors {e.shape} must be [V, ..., J] for {len(camera_names)} cameras and "
                     f"{len(joint_names)} joints")
  per_camera = {}
  for v, name in enumerate(camera_names):
    per_camera[name] = _stats(e[v])
    if inliers is not None:
      detected = np.isfinite(e[v])
      out = detected & ~np.asarray(inliers, bool)[v]
      per_camera[name]["outlier_fraction"] = float(out.sum() / max(detected.sum(), 1))
    if swapped is not None:
      per_camera[name]["swapped_frames"] = int(np.asarray(swapped, bool)[v].sum())
  per_joint = {name: _stats(e[..., j]) for j, name in enumerate(joint_names)}
  return {"overall": _stats(e), "per_camera": per_camera, "per_joint": per_joint}


# ---- left/right swaps --------------------------------------------------------------------------

def _apply_swaps(keypoints: np.ndarray, swapped: np.ndarray) -> np.ndarray:
  """keypoints [V, T, 18, C] with every left/right pair exchanged where swapped [V, T]."""
  return np.where(swapped[:, :, None, None], keypoints[:, :, list(FLIP_INDEX)], keypoints)


def _swap_cost(x, w, P, labels, threshold_px: float) -> np.ndarray:
  """[T] sum over the sided joints' detections of min(error^2, threshold^2) after triangulating
  them with the views relabelled by `labels` [V, T] (a detection left unexplained costs the
  threshold^2)."""
  xs = _apply_swaps(x, labels)[:, :, _SIDED]
  ws = _apply_swaps(w[..., None], labels)[:, :, _SIDED, 0]
  num_views, frames = labels.shape
  xs, ws = xs.reshape(num_views, -1, 2), ws.reshape(num_views, -1)
  err = _pinhole_errors(P, _dlt(xs, ws, P), xs, ws)
  cost = np.where(np.isfinite(err), np.minimum(err, threshold_px) ** 2, threshold_px ** 2)
  cost = np.where(ws > 0, cost, 0.0)
  return cost.reshape(num_views, frames, -1).sum(axis=(0, 2))


def _exhaustive_labels(cost_of, num_views: int, frames: int, tol: float) -> np.ndarray:
  """Every labelling with view 0 as given (the others are their complements), fewest swaps
  first; a later one replaces the best only if strictly cheaper."""
  labellings = [np.array((0,) + bits, bool)
                for bits in itertools.product((0, 1), repeat=num_views - 1)]
  labellings.sort(key=lambda s: min(s.sum(), num_views - s.sum()))
  best, best_cost = np.zeros((num_views, frames), bool), np.full(frames, np.inf)
  for s in labellings:
    cost = cost_of(np.repeat(s[:, None], frames, axis=1))
    better = cost < best_cost - tol
    best[:, better] = s[:, None]
    best_cost = np.where(better, cost, best_cost)
  return best


def _greedy_labels(cost_of, num_views: int, frames: int, tol: float,
                   max_sweeps: int = 10) -> np.ndarray:
  """Coordinate descent from the labels as given: per view, exchange where strictly cheaper;
  sweeps over the views until nothing changes."""
  labels = np.zeros((num_views, frames), bool)
  cost = cost_of(labels)
  for _ in range(max_sweeps):
    changed = False
    for v in range(num_views):
      trial = labels.copy()
      trial[v] = ~trial[v]
      trial_cost = cost_of(trial)
      better = trial_cost < cost - tol
      labels[v, better] = trial[v, better]
      cost = np.where(better, trial_cost, cost)
      changed |= bool(better.any())
    if not changed:
      break
  return labels


def _find_swaps(x, w, P, threshold_px: float, max_exhaustive_views: int) -> np.ndarray:
  """swapped bool [V, T] for undistorted x [V, T, 18, 2] and confidences w [V, T, 18]."""
  num_views, frames = w.shape[:2]
  cost_of = lambda labels: _swap_cost(x, w, P, labels, threshold_px)
  tol = 1e-6 * threshold_px ** 2
  search = _exhaustive_labels if num_views <= max_exhaustive_views else _greedy_labels
  labels = search(cost_of, num_views, frames, tol)
  # Exchanging every view's labels explains the views equally well: keep the fewer exchanges
  # (on a tie, view 0 as given).
  n = labels.sum(0)
  flip = (n > num_views - n) | ((n == num_views - n) & labels[0])
  return labels ^ flip


def _check_sequence(keypoints2d, cameras) -> np.ndarray:
  kp = np.asarray(keypoints2d, np.float64)
  if kp.ndim != 4 or kp.shape[2:] != (NUM_KEYPOINTS, 3) or kp.shape[0] != len(cameras):
    raise ValueError(f"keypoints2d must be [V, T, 18, 3] (COCO-18 x, y, confidence) for "
                     f"V = {len(cameras)} cameras; got {kp.shape}")
  if len(cameras) < 2:
    raise ValueError(f"triangulation needs at least 2 cameras; got {len(cameras)}")
  return kp


def _undistorted(kp: np.ndarray, cameras) -> tuple[np.ndarray, np.ndarray]:
  """(undistorted pixels [V, T, 18, 2], confidences [V, T, 18], 0 where not usable)."""
  x = np.stack([cam.undistort_points(kp[v, ..., :2]) for v, cam in enumerate(cameras)])
  ok = np.all(np.isfinite(x), axis=-1) & np.isfinite(kp[..., 2]) & (kp[..., 2] > 0)
  return np.where(ok[..., None], x, 0.0), np.where(ok, kp[..., 2], 0.0)


def repair_left_right_swaps(keypoints2d, cameras: Sequence[Camera], *, threshold_px: float = 15.0,
                            max_exhaustive_views: int = 8) -> tuple[np.ndarray, np.ndarray]:
  """Undoes pose estimators' left/right confusions in keypoints `[V, T, 18, 3]` (recorded,
  distorted pixels) of V calibrated `cameras`.

  For each frame every view is read either as given or with all pairs of `LEFT_RIGHT_PAIRS`
  (shoulders, elbows, wrists, hips, knees, ankles, eyes, ears) exchanged; the chosen labelling
  minimises the sum over the sided joints' detections of min(reprojection error,
  `threshold_px`)^2 after DLT triangulation with all views. Exchanging every view explains the
  detections equally well, so the labelling with fewer exchanges is kept (the majority of views
  is taken as right). Search: exhaustive over the 2^(V - 1) labellings (fewest exchanges first,
  so ties keep the detections as given) when V <= `max_exhaustive_views`, which costs 2^(V - 1)
  DLTs of T x 16 points; otherwise coordinate descent from the labels as given (per view,
  exchange where cheaper; sweeps until stable, at most 10), 2 V DLTs of T x 16 points a sweep.
  Returns (the repaired keypoints, swapped bool `[V, T]`).
  """
  kp = _check_sequence(keypoints2d, cameras)
  x, w = _undistorted(kp, cameras)
  P = np.stack([cam.projection for cam in cameras])
  swapped = _find_swaps(x, w, _normalized_projections(P), threshold_px, max_exhaustive_views)
  return _apply_swaps(kp, swapped), swapped


# ---- temporal smoothing ------------------------------------------------------------------------

def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
  """(start, stop) of every run of True in a 1-D mask."""
  edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
  return list(zip(edges[::2], edges[1::2]))


def _fill_short_gaps(track: np.ndarray, max_gap: int) -> np.ndarray:
  """track [T, 3] with interior NaN gaps of at most `max_gap` frames linearly interpolated."""
  seen = np.all(np.isfinite(track), axis=-1)
  out = track.copy()
  frames = np.arange(len(track))
  for start, stop in _runs(~seen):
    if start > 0 and stop < len(track) and stop - start <= max_gap:
      for c in range(track.shape[1]):
        out[start:stop, c] = np.interp(frames[start:stop], frames[seen], track[seen, c])
  return out


def smooth_trajectories(points3d, *, fps: float, cutoff_hz: float = 6.0, order: int = 4,
                        max_gap: int = 10) -> np.ndarray:
  """Low-passed trajectories `[T, ..., 3]` (NaN gaps allowed) as Pose2Sim filters its 3D
  keypoints: interior gaps of at most `max_gap` frames are interpolated linearly, longer gaps
  and the ends stay NaN, and every finite stretch is filtered by a zero-phase Butterworth
  low-pass (scipy.signal.sosfiltfilt, forward and backward) of `order` in total (a filter of
  order / 2 run twice) with the -6 dB cutoff at `cutoff_hz`."""
  pts = np.asarray(points3d, np.float64)
  if pts.ndim < 2 or pts.shape[-1] != 3:
    raise ValueError(f"points3d must be [T, ..., 3]; got {pts.shape}")
  if order < 2 or order % 2:
    raise ValueError(f"order must be even and >= 2 (the filter runs twice); got {order}")
  if not 0 < cutoff_hz < fps / 2:
    raise ValueError(f"cutoff_hz must lie between 0 and fps / 2 = {fps / 2}; got {cutoff_hz}")
  sos = signal.butter(order // 2, cutoff_hz, fs=fps, output="sos")
  tracks = pts.reshape(len(pts), -1, 3)
  out = np.full_like(tracks, np.nan)
  for k in range(tracks.shape[1]):
    filled = _fill_short_gaps(tracks[:, k], max_gap)
    for start, stop in _runs(np.all(np.isfinite(filled), axis=-1)):
      if stop - start < 2:
        out[start:stop, k] = filled[start:stop]
        continue
      padlen = min(3 * (2 * len(sos) + 1), stop - start - 1)
      out[start:stop, k] = signal.sosfiltfilt(sos, filled[start:stop], axis=0, padlen=padlen)
  return out.reshape(pts.shape)


# ---- the whole sequence ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TriangulatedSequence:
  """`triangulate_sequence`'s result.

  points3d: [T, 18, 3] world points, NaN where not seen (short gaps filled when smoothing);
  confidence: [T, 18] mean confidence of the inlier detections, 0 where not seen (also where a
    gap was filled);
  inliers: [V, T, 18] the detections each point was triangulated from;
  swapped: [V, T] the frames whose left/right labels were exchanged;
  keypoints2d: [V, T, 18, 3] the input detections (confidences as given) with those exchanges
    applied;
  report: `error_report` of the final points against the detections used.
  """
  points3d: np.ndarray
  confidence: np.ndarray
  inliers: np.ndarray
  swapped: np.ndarray
  keypoints2d: np.ndarray
  report: dict


def triangulate_sequence(keypoints2d, cameras: Sequence[Camera], *, fps: float | None = None,
                         ransac_threshold_px: float = 15.0, min_confidence: float = 0.3,
                         smooth_cutoff_hz: float | None = 6.0, repair_swaps: bool = True,
                         max_gap: int = 10, seed: int = 0) -> TriangulatedSequence:
  """3D keypoints of one person from detections `[V, T, 18, 3]` in V calibrated views.

  Detections below `min_confidence` are dropped; the rest are undistorted through each Camera,
  left/right swaps are repaired (`repair_left_right_swaps`), each point is triangulated by
  `triangulate_ransac` with `ransac_threshold_px` and, unless `smooth_cutoff_hz` is None,
  smoothed by `smooth_trajectories` at `fps` (which then must be given) with `max_gap`.
  The thresholds follow Pose2Sim's demo configuration (likelihood 0.3, 15 px, a 4th-order
  Butterworth at 6 Hz); gaps are filled up to 10 frames (Pose2Sim's demo: under 20).
  """
  given = _check_sequence(keypoints2d, cameras)
  if smooth_cutoff_hz is not None and fps is None:
    raise ValueError("smoothing needs the frame rate: pass fps, or smooth_cutoff_hz=None")
  kp = given.copy()
  kp[..., 2] = np.where(kp[..., 2] >= min_confidence, kp[..., 2], 0.0)
  x, w = _undistorted(kp, cameras)
  P = _normalized_projections(np.stack([cam.projection for cam in cameras]))
  swapped = np.zeros(w.shape[:2], bool)
  if repair_swaps:
    swapped = _find_swaps(x, w, P, ransac_threshold_px, max_exhaustive_views=8)
    kp, x = _apply_swaps(kp, swapped), _apply_swaps(x, swapped)
    w = _apply_swaps(w[..., None], swapped)[..., 0]
  X, inliers = triangulate_ransac(x, w, P, threshold_px=ransac_threshold_px, seed=seed)
  seen = np.all(np.isfinite(X), axis=-1)
  used = np.where(inliers, w, 0.0)
  confidence = np.where(seen, used.sum(0) / np.maximum(inliers.sum(0), 1), 0.0)
  if smooth_cutoff_hz is not None:
    X = smooth_trajectories(X, fps=fps, cutoff_hz=smooth_cutoff_hz, max_gap=max_gap)
  errors = reprojection_errors(X, kp[..., :2], w, cameras)
  report = error_report(errors, [cam.name for cam in cameras], inliers=inliers, swapped=swapped)
  return TriangulatedSequence(X, confidence, inliers, swapped, _apply_swaps(given, swapped), report)
