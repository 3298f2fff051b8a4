"""Which detection in each view is the recorded person: cross-view association of 2D people.

A 2D pose estimator reports everyone it finds in a frame (passers-by, reflections, false
detections) in any order, and the largest detection in one view need not be the person the
cameras were aimed at. With calibrated cameras the person is the one whose detections agree in
3D: per frame, every combination of one detection (or none) per view, with at least two views,
is triangulated (confidence-weighted DLT, `triangulation.triangulate_dlt`) and scored by its
reprojection errors; the cheapest combination wins (Pose2Sim's person association does the same
for one person; Dong et al., "Fast and robust multi-person 3D pose estimation from multiple
views", CVPR 2019, solve the general problem).

The score uses points a left/right confusion cannot move (the nose, the neck and the midpoint of
every left/right pair: `invariant_points`), since estimators swap sides in some views, which
`triangulation.repair_left_right_swaps` repairs only after the association. A combination costs
sum over its views' points of min(error, threshold)^2 plus threshold^2 per point of every view
it leaves out although that view has a detection, so a view joins whenever its detection agrees
better than the threshold. When both the previous frame's choice and this one's are placed, a
move of the person's centre by more than `jump_m` (world units) costs as much as one whole view
left out: another consistent person (a second actor) is not switched to while the first stays
in sight. Conventions: `triangulation`'s (distorted pixels in, calibrated `Camera`s).

A camera that sees the person from the side sees one side only: no left/right pair is complete,
and with neither nose nor neck in view its detection has no invariant point to be scored by, so
it ties with any other detection of that view. `choose_by_skeleton` settles every view's choice
once the person is triangulated: the detection whose keypoints lie nearest the projected 3D
skeleton, each keypoint compared with its own joint and with its mirror (a side view's labels
may be exchanged), the median over its keypoints within `threshold_px`.

Left and right over time (`consistent_sides`): `triangulation.repair_left_right_swaps` labels
each frame's sides by the majority of the views, which is a tie when exactly half of them are
exchanged (one of two cameras, two of four): either labelling explains the views equally, and
the first view's decides. A person cannot exchange sides between frames, so a tied frame takes
the labelling whose sided joints lie nearer to those of the nearest frame that is not tied.
"""
from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np

from psrjax.geometry.calibration import Camera
from psrjax.geometry.skeleton import COCO_NAMES, NUM_KEYPOINTS
from psrjax.geometry.triangulation import (FLIP_INDEX, LEFT_RIGHT_PAIRS, TriangulatedSequence,
                                           error_report, reprojection_errors, triangulate_dlt)

_CENTRE = (COCO_NAMES.index("nose"), COCO_NAMES.index("neck"))
NUM_INVARIANT = len(_CENTRE) + len(LEFT_RIGHT_PAIRS)


def invariant_points(keypoints) -> np.ndarray:
  """float64 [..., NUM_INVARIANT, 3]: nose, neck and the midpoint of each left/right pair of
  COCO-18 keypoints [..., 18, 3] (confidence the smaller of the pair's; 0 unless both seen)."""
  kp = np.asarray(keypoints, np.float64)
  right, left = kp[..., [r for r, _ in LEFT_RIGHT_PAIRS], :], kp[..., [l for _, l in LEFT_RIGHT_PAIRS], :]
  both = (right[..., 2] > 0) & (left[..., 2] > 0)
  mid = np.concatenate([(right[..., :2] + left[..., :2]) / 2,
                        np.where(both, np.minimum(right[..., 2], left[..., 2]), 0.0)[..., None]], -1)
  return np.concatenate([kp[..., list(_CENTRE), :], mid], axis=-2)


def _candidates(frame_people, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
  """(undistorted invariant points [P, N, 2], confidences [P, N]) of one view's detections."""
  if len(frame_people) == 0:
    return np.zeros((0, NUM_INVARIANT, 2)), np.zeros((0, NUM_INVARIANT))
  inv = invariant_points(np.stack(frame_people))
  xy = camera.undistort_points(inv[..., :2])
  ok = (inv[..., 2] > 0) & np.all(np.isfinite(xy), axis=-1)
  return np.where(ok[..., None], xy, 0.0), np.where(ok, inv[..., 2], 0.0)


def _combinations(counts: Sequence[int], limit: int) -> np.ndarray:
  """int [C, V]: one candidate index per view (count = none), at least two views used; views
  with many detections keep only their first ones so that C stays below `limit`."""
  counts = list(counts)
  while np.prod([c + 1 for c in counts]) > limit and max(counts) > 1:
    counts[int(np.argmax(counts))] -= 1
  combos = np.array(list(itertools.product(*(range(c + 1) for c in counts))), np.int64)
  used = (combos < np.array(counts)).sum(-1)
  return combos[used >= 2]


def _score(x, w, combos, counts, P, threshold_px: float) -> tuple[np.ndarray, np.ndarray]:
  """(cost [C], centre [C, 3]) of each combination (module docstring)."""
  num_views = len(x)
  X = np.zeros((num_views, len(combos), NUM_INVARIANT, 2))
  W = np.zeros((num_views, len(combos), NUM_INVARIANT))
  for v in range(num_views):
    pick = combos[:, v] < counts[v]
    X[v, pick], W[v, pick] = x[v][combos[pick, v]], w[v][combos[pick, v]]
  points = triangulate_dlt(X, W, P)                                     # [C, N, 3]
  h = np.einsum("vij,cnj->vcni", P[:, :, :3], points) + P[:, None, None, :, 3]
  with np.errstate(divide="ignore", invalid="ignore"):
    err = np.linalg.norm(h[..., :2] / h[..., 2:] - X, axis=-1)
  err = np.where((h[..., 2] > 0) & np.isfinite(err), np.minimum(err, threshold_px), threshold_px)
  cost = np.sum(np.where(W > 0, err ** 2, 0.0), axis=(0, 2))
  left_out = np.array([(combos[:, v] >= counts[v]) & (counts[v] > 0) for v in range(num_views)])
  cost = cost + threshold_px ** 2 * NUM_INVARIANT * left_out.sum(0)
  finite = np.all(np.isfinite(points), axis=-1, keepdims=True)
  count = finite.sum(1)
  centre = np.where(finite, points, 0.0).sum(1) / np.maximum(count, 1)
  return cost, np.where(count > 0, centre, np.nan)


def associate_people(people, cameras: Sequence[Camera], *, threshold_px: float = 20.0,
                     jump_m: float = 0.5, max_combinations: int = 4096) -> tuple[np.ndarray, np.ndarray]:
  """The recorded person's detections in every view (module docstring).

  people: per view, per frame, a sequence of float32 [18, 3] detections (distorted pixels,
  `keypoint_io.load_people`); all views must have the same number of frames. Returns
  (keypoints float32 [V, T, 18, 3], zeros where a view holds no detection of the person;
  chosen int [V, T], the index of the detection taken, -1 for none).
  """
  num_views = len(cameras)
  if len(people) != num_views or num_views < 2:
    raise ValueError(f"need the detections of each of the {num_views} cameras (at least 2); got "
                     f"{len(people)} views")
  frames = {len(p) for p in people}
  if len(frames) != 1:
    raise ValueError(f"every view needs the same number of frames; got {sorted(frames)}")
  num_frames = frames.pop()
  P = np.stack([cam.projection for cam in cameras])
  out = np.zeros((num_views, num_frames, NUM_KEYPOINTS, 3), np.float32)
  chosen = np.full((num_views, num_frames), -1, np.int64)
  previous = None
  for t in range(num_frames):
    views = [_candidates(people[v][t], cam) for v, cam in enumerate(cameras)]
    counts = [len(x) for x, _ in views]
    combos = _combinations(counts, max_combinations)
    if len(combos) == 0:
      continue
    cost, centre = _score([x for x, _ in views], [w for _, w in views], combos, counts, P,
                          threshold_px)
    if previous is not None:
      moved = np.linalg.norm(centre - previous, axis=-1) > jump_m
      cost = cost + np.where(moved, threshold_px ** 2 * NUM_INVARIANT, 0.0)
    best = int(np.argmin(cost))
    if np.all(np.isfinite(centre[best])):
      previous = centre[best]
    for v in range(num_views):
      if combos[best, v] < counts[v]:
        chosen[v, t] = combos[best, v]
        out[v, t] = people[v][t][combos[best, v]]
  return out, chosen


def _skeleton_error(person: np.ndarray, projected: np.ndarray) -> float:
  """Median over the detection's keypoints [18, 3] of the distance to the projected skeleton
  [18, 2] at the same joint or its mirror, whichever is nearer (inf without 2 keypoints)."""
  seen = (person[:, 2] > 0) & np.all(np.isfinite(projected), -1)
  seen &= np.all(np.isfinite(projected[list(FLIP_INDEX)]), -1)
  if seen.sum() < 2:
    return np.inf
  same = np.linalg.norm(person[seen, :2] - projected[seen], axis=-1)
  mirror = np.linalg.norm(person[seen, :2] - projected[list(FLIP_INDEX)][seen], axis=-1)
  return float(np.median(np.minimum(same, mirror)))


def choose_by_skeleton(people, cameras: Sequence[Camera], points3d, *,
                       threshold_px: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
  """(keypoints [V, T, 18, 3], chosen [V, T]) as `associate_people` returns them, every view's
  detection chosen by its distance to the skeleton points3d [T, 18, 3] (module docstring);
  none where no detection lies within `threshold_px`."""
  num_frames = len(points3d)
  out = np.zeros((len(cameras), num_frames, NUM_KEYPOINTS, 3), np.float32)
  chosen = np.full((len(cameras), num_frames), -1, np.int64)
  for v, cam in enumerate(cameras):
    projected = cam.project(np.asarray(points3d, np.float64))
    projected = np.where((cam.depth(points3d) > 0)[..., None], projected, np.nan)
    for t in range(num_frames):
      errors = [_skeleton_error(np.asarray(p), projected[t]) for p in people[v][t]]
      if errors and min(errors) <= threshold_px:
        chosen[v, t] = int(np.argmin(errors))
        out[v, t] = people[v][t][chosen[v, t]]
  return out, chosen


def _tied_flips(points3d: np.ndarray, tied: np.ndarray) -> np.ndarray:
  """bool [T]: the tied frames whose sides are nearer the nearest untied frame's exchanged."""
  sided = [j for pair in LEFT_RIGHT_PAIRS for j in pair]
  flips = np.zeros(len(tied), bool)
  settled = np.flatnonzero(~tied & np.all(np.isfinite(points3d[:, sided]), axis=(1, 2)))
  if not len(settled):
    return flips
  for t in np.flatnonzero(tied):
    ref = points3d[settled[np.argmin(np.abs(settled - t))], sided]
    as_is = np.nansum(np.linalg.norm(points3d[t, sided] - ref, axis=-1))
    flipped = np.nansum(np.linalg.norm(points3d[t][list(FLIP_INDEX)][sided] - ref, axis=-1))
    flips[t] = flipped < as_is
  return flips


def consistent_sides(tri: TriangulatedSequence, cameras: Sequence[Camera], *,
                     min_confidence: float = 0.3) -> TriangulatedSequence:
  """`tri` with the sides of its tied frames chosen over time (module docstring); the report
  is recomputed (the same errors, 3D and 2D labels move together; swapped frames recounted)
  from the detections of at least `min_confidence`, as `triangulate_sequence` computes it."""
  num_views = tri.swapped.shape[0]
  flips = _tied_flips(tri.points3d, 2 * tri.swapped.sum(0) == num_views)
  if not flips.any():
    return tri
  side = list(FLIP_INDEX)
  points = np.where(flips[:, None, None], tri.points3d[:, side], tri.points3d)
  conf = np.where(flips[:, None], tri.confidence[:, side], tri.confidence)
  kp = np.where(flips[None, :, None, None], tri.keypoints2d[:, :, side], tri.keypoints2d)
  inliers = np.where(flips[None, :, None], tri.inliers[:, :, side], tri.inliers)
  swapped = tri.swapped ^ flips[None]
  w = np.where(kp[..., 2] >= min_confidence, kp[..., 2], 0.0)
  errors = reprojection_errors(points, kp[..., :2], w, cameras)
  report = error_report(errors, [c.name for c in cameras], inliers=inliers, swapped=swapped)
  return dataclasses.replace(tri, points3d=points, confidence=conf, keypoints2d=kp,
                             inliers=inliers, swapped=swapped, report=report)
