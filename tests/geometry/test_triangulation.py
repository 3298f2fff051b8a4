"""Triangulation against cv2.triangulatePoints and known synthetic scenes: noise, missing views,
outliers (RANSAC), injected left/right swaps, smoothing with gaps, and the whole sequence."""
import cv2
import numpy as np
import pytest

from psrjax.data.synthetic.cameras import camera_ring
from psrjax.geometry.calibration import Camera
from psrjax.geometry.skeleton import COCO_NAMES
from psrjax.geometry.triangulation import (FLIP_INDEX, LEFT_RIGHT_PAIRS, error_report,
                                           repair_left_right_swaps, reprojection_errors,
                                           smooth_trajectories, triangulate_dlt,
                                           triangulate_ransac, triangulate_sequence)

# A standing person facing +y, metres, z up (COCO-18 order); its right side is at +x.
_RIGHT_SIDE = {"shoulder": (0.18, 0.0, 1.43), "elbow": (0.22, 0.0, 1.15),
               "wrist": (0.24, 0.05, 0.90), "hip": (0.10, 0.0, 0.95), "knee": (0.11, 0.02, 0.52),
               "ankle": (0.11, 0.0, 0.08), "eye": (0.035, 0.08, 1.66), "ear": (0.075, 0.0, 1.63)}


def _template():
  joints = {"nose": (0.0, 0.10, 1.62), "neck": (0.0, 0.0, 1.45)}
  for part, (x, y, z) in _RIGHT_SIDE.items():
    joints["r_" + part], joints["l_" + part] = (x, y, z), (-x, y, z)
  return np.array([joints[name] for name in COCO_NAMES])


def _motion(frames, fps=30.0):
  """[T, 18, 3] a person turning +-15 degrees, stepping sideways and swinging the arms."""
  t = np.arange(frames) / fps
  pts = np.repeat(_template()[None], frames, axis=0)
  swing = 0.2 * np.sin(2 * np.pi * 1.0 * t)[:, None]
  for j, sign in ((3, 0.5), (4, 1.0), (6, -0.5), (7, -1.0), (9, -0.5), (12, 0.5)):
    pts[:, j, 1] += sign * swing[:, 0]
  yaw = np.deg2rad(15.0) * np.sin(2 * np.pi * 0.3 * t)
  c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
  x, y = pts[..., 0].copy(), pts[..., 1].copy()
  pts[..., 0], pts[..., 1] = c * x - s * y, s * x + c * y
  pts[..., 0] += 0.3 * np.sin(2 * np.pi * 0.2 * t)[:, None]
  return pts


def _cameras(yaws, dist=()):
  rig = camera_ring(yaws, height=720, width=960)
  return [Camera(f"cam{v}", (960, 720), rig.K[v], dist, rig.R[v], rig.t[v])
          for v in range(len(yaws))]


def _observe(cams, pts, rng, noise_px=0.0, confidence=0.9):
  """[V, ..., 18, 3] detections of world points in every camera."""
  xy = np.stack([cam.project(pts) for cam in cams])
  xy = xy + rng.normal(0.0, noise_px, xy.shape)
  return np.concatenate([xy, np.full(xy.shape[:-1] + (1,), confidence)], -1)


def _cloud(rng, shape):
  return rng.uniform([-0.4, -0.3, 0.0], [0.4, 0.3, 1.8], shape + (3,))


def test_left_right_pairs_follow_coco_names():
  names = [(COCO_NAMES[r], COCO_NAMES[l]) for r, l in LEFT_RIGHT_PAIRS]
  assert names == [("r_" + n, "l_" + n) for n in
                   ("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "eye", "ear")]
  assert [FLIP_INDEX[j] for j in FLIP_INDEX] == list(range(18))
  assert FLIP_INDEX[0] == 0 and FLIP_INDEX[1] == 1 and COCO_NAMES[FLIP_INDEX[4]] == "l_wrist"


def test_dlt_recovers_noiseless_points_and_matches_cv2_for_two_views():
  rng = np.random.default_rng(0)
  cams = _cameras([-60, -20, 20, 60])
  P = np.stack([c.projection for c in cams])
  pts = _cloud(rng, (5, 18))
  x = np.stack([c.project(pts) for c in cams])
  np.testing.assert_allclose(triangulate_dlt(x, np.ones((4, 5, 18)), P), pts, atol=1e-6)
  conf = rng.uniform(0.1, 1.0, (4, 5, 18))
  np.testing.assert_allclose(triangulate_dlt(x, conf, 3.0 * P), pts, atol=1e-6)
  noisy = x + rng.normal(0.0, 2.0, x.shape)
  for i, j in ((0, 1), (1, 3)):
    h = cv2.triangulatePoints(P[i], P[j], noisy[i].reshape(-1, 2).T, noisy[j].reshape(-1, 2).T)
    want = (h[:3] / h[3]).T.reshape(5, 18, 3)
    got = triangulate_dlt(noisy[[i, j]], np.ones((2, 5, 18)), P[[i, j]])
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_dlt_with_pixel_noise_and_views_without_detections():
  rng = np.random.default_rng(1)
  cams = _cameras([-60, -20, 20, 60])
  P = np.stack([c.projection for c in cams])
  pts = _cloud(rng, (200,))
  x = np.stack([c.project(pts) for c in cams]) + rng.normal(0.0, 1.0, (4, 200, 2))
  err = np.linalg.norm(triangulate_dlt(x, np.ones((4, 200)), P) - pts, axis=-1)
  assert np.median(err) < 0.005 and err.max() < 0.02          # 1 px is ~4 mm at 3 m
  conf = np.ones((4, 200))
  conf[3] = 0.0
  x_bad = x.copy()
  x_bad[3] = rng.uniform(-1e4, 1e4, (200, 2))
  x_bad[3, :10] = np.nan
  np.testing.assert_allclose(triangulate_dlt(x_bad, conf, P),
                             triangulate_dlt(x[:3], np.ones((3, 200)), P[:3]), atol=1e-12)
  conf[1:, :5] = 0.0                                           # one view left: no point
  conf[2, 5:8] = np.nan
  got = triangulate_dlt(x_bad, conf, P)
  assert np.isnan(got[:5]).all() and np.isfinite(got[5:]).all()
  with pytest.raises(ValueError, match="confidences"):
    triangulate_dlt(x, np.ones((4, 199)), P)


def test_ransac_recovers_from_a_gross_outlier_that_misleads_dlt():
  rng = np.random.default_rng(2)
  cams = _cameras([-75, -45, -15, 15, 45, 75])
  P = np.stack([c.projection for c in cams])
  pts = _cloud(rng, (300,))
  x = np.stack([c.project(pts) for c in cams]) + rng.normal(0.0, 1.0, (6, 300, 2))
  bad = rng.random(300) < 0.3
  x[1, bad] += rng.choice([-1, 1], (bad.sum(), 2)) * rng.uniform(80, 300, (bad.sum(), 2))
  conf = np.ones((6, 300))
  dlt_err = np.linalg.norm(triangulate_dlt(x, conf, P) - pts, axis=-1)
  assert np.median(dlt_err[bad]) > 0.03
  for max_pairs in (64, 8):                                    # all 15 pairs, or 8 drawn
    got, inliers = triangulate_ransac(x, conf, P, threshold_px=10.0, max_pairs=max_pairs)
    err = np.linalg.norm(got - pts, axis=-1)
    assert err.max() < 0.015 and np.median(err) < 0.005
    np.testing.assert_array_equal(inliers[1], ~bad)
    assert inliers[[0, 2, 3, 4, 5]].all()
  conf[2:] = 0.0                                               # two views that disagree: no point
  got, inliers = triangulate_ransac(x, conf, P, threshold_px=10.0)
  assert np.isnan(got[bad]).all() and not inliers[:, bad].any()
  assert np.isfinite(got[~bad]).all()


def _inject_swaps(rng, frames, num_views, max_swapped):
  swapped = np.zeros((num_views, frames), bool)
  for t in range(frames):
    k = rng.choice(max_swapped + 1, p=np.linspace(2, 1, max_swapped + 1) / np.linspace(
        2, 1, max_swapped + 1).sum())
    swapped[rng.choice(num_views, k, replace=False), t] = True
  return swapped


def _swap(kp, swapped):
  return np.where(swapped[:, :, None, None], kp[:, :, list(FLIP_INDEX)], kp)


@pytest.mark.parametrize("max_exhaustive_views", [8, 1])      # exhaustive, coordinate descent
def test_swap_repair_finds_exactly_the_injected_swaps(max_exhaustive_views):
  rng = np.random.default_rng(3)
  cams = _cameras([-50, -25, 0, 25, 50])
  kp = _observe(cams, _motion(40), rng, noise_px=1.0)
  kp[..., 2] = np.where(rng.random(kp.shape[:-1]) < 0.05, 0.0, kp[..., 2])   # a few misses
  injected = _inject_swaps(rng, 40, 5, max_swapped=2)
  assert injected.any(0).sum() > 15 and (injected.sum(0) == 2).any()
  repaired, swapped = repair_left_right_swaps(_swap(kp, injected), cams,
                                              max_exhaustive_views=max_exhaustive_views)
  np.testing.assert_array_equal(swapped, injected)
  np.testing.assert_array_equal(repaired, kp)
  P = np.stack([c.projection for c in cams])
  pts = triangulate_dlt(repaired[..., :2], repaired[..., 2], P)
  err = reprojection_errors(pts, repaired[..., :2], repaired[..., 2], cams)
  assert np.nanmedian(err) < 1.5 and np.nanmax(err) < 6.0
  given = _swap(kp, injected)                               # without the repair:
  before = reprojection_errors(triangulate_dlt(given[..., :2], given[..., 2], P), given[..., :2],
                               given[..., 2], cams)
  sided = [j for pair in LEFT_RIGHT_PAIRS for j in pair]
  assert np.nanmedian(before[injected][:, sided]) > 10.0


def test_smoothing_reduces_jitter_and_keeps_long_gaps():
  rng = np.random.default_rng(4)
  fps, frames = 50.0, 300
  t = np.arange(frames) / fps
  truth = np.stack([0.3 * np.sin(2 * np.pi * 0.5 * t), 0.2 * np.cos(2 * np.pi * 0.8 * t),
                    1.0 + 0.1 * np.sin(2 * np.pi * 1.2 * t)], -1)[:, None].repeat(2, axis=1)
  noisy = truth + rng.normal(0.0, 0.01, truth.shape)
  noisy[:3] = np.nan                                        # leading gap
  noisy[100:105, 0] = np.nan                                # short gap: filled
  noisy[150:190, 0] = np.nan                                # long gap: kept
  noisy[200, 1] = np.nan
  noisy[202:240, 1] = np.nan                                # a lone frame between two gaps
  out = smooth_trajectories(noisy, fps=fps, cutoff_hz=4.0, max_gap=10)
  assert np.isnan(out[:3]).all() and np.isnan(out[150:190, 0]).all()
  assert np.isnan(out[202:240, 1]).all() and np.isfinite(out[199:202, 1]).all()
  assert np.isfinite(out[100:105, 0]).all()
  np.testing.assert_allclose(out[100:105, 0], truth[100:105, 0], atol=0.02)
  keep = np.isfinite(out).all(-1) & np.isfinite(noisy).all(-1)
  rms = lambda a: np.sqrt(np.mean(np.sum((a[keep] - truth[keep]) ** 2, -1)))
  assert rms(out) < 0.5 * rms(noisy)
  with pytest.raises(ValueError, match="cutoff_hz must lie between 0 and fps / 2"):
    smooth_trajectories(noisy, fps=fps, cutoff_hz=30.0)
  with pytest.raises(ValueError, match="order must be even"):
    smooth_trajectories(noisy, fps=fps, order=3)


def test_reprojection_errors_and_report():
  rng = np.random.default_rng(5)
  cams = _cameras([-30, 30], dist=[-0.2, 0.05, 0.0, 0.0, 0.0])
  pts = _cloud(rng, (3, 18))
  kp = _observe(cams, pts, rng)
  kp[0, 1, 4, :2] += [3.0, 4.0]                             # 5 px off
  kp[1, 2, :, 2] = 0.0                                      # no detections
  err = reprojection_errors(pts, kp[..., :2], kp[..., 2], cams)
  assert err.shape == (2, 3, 18) and np.isnan(err[1, 2]).all()
  assert err[0, 1, 4] == pytest.approx(5.0) and np.nanmax(np.delete(err.ravel(), 22)) < 1e-9
  inliers = np.isfinite(err) & (err < 1.0)
  swapped = np.array([[False, True, False], [False, False, False]])
  report = error_report(err, ["a", "b"], inliers=inliers, swapped=swapped)
  assert report["overall"]["count"] == 2 * 3 * 18 - 18
  assert report["per_camera"]["a"]["count"] == 54 and report["per_camera"]["b"]["count"] == 36
  assert report["per_camera"]["a"]["mean"] == pytest.approx(5.0 / 54)
  assert report["per_camera"]["a"]["outlier_fraction"] == pytest.approx(1 / 54)
  assert report["per_camera"]["a"]["swapped_frames"] == 1
  assert report["per_joint"]["r_wrist"]["median"] < 1e-9
  assert report["per_joint"]["r_wrist"]["mean"] == pytest.approx(5.0 / 5)
  with pytest.raises(ValueError, match="3 cameras"):
    error_report(err, ["a", "b", "c"])


def test_triangulate_sequence_end_to_end():
  rng = np.random.default_rng(6)
  fps, frames = 30.0, 60
  cams = _cameras([-50, -20, 20, 50], dist=[-0.15, 0.04, 5e-4, -5e-4, 0.0])
  truth = _motion(frames, fps)
  kp = _observe(cams, truth, rng, noise_px=1.0)
  kp[2, 20:23, 4, 2] = 0.1                                  # below min_confidence
  kp[[0, 1, 3], 20:23, 4, 2] = 0.0                          # r_wrist unseen for 3 frames
  outliers = [(t, j) for t, j in zip(rng.choice(frames, 12, replace=False),
                                     rng.choice(18, 12))]
  for t, j in outliers:
    kp[1, t, j, :2] += [150.0, -120.0]
  injected = _inject_swaps(rng, frames, 4, max_swapped=1)
  result = triangulate_sequence(_swap(kp, injected), cams, fps=fps, ransac_threshold_px=10.0,
                                min_confidence=0.3, smooth_cutoff_hz=6.0)
  np.testing.assert_array_equal(result.swapped, injected)
  np.testing.assert_array_equal(result.keypoints2d, kp)     # repaired, confidences as given
  assert result.points3d.shape == (frames, 18, 3)
  err = np.linalg.norm(result.points3d - truth, axis=-1)
  assert np.median(err) < 0.005 and err.max() < 0.03
  assert np.all(result.confidence[20:23, 4] == 0.0)         # filled by interpolation, not seen
  np.testing.assert_allclose(np.delete(result.confidence.reshape(-1), [20 * 18 + 4, 21 * 18 + 4,
                                                                       22 * 18 + 4]), 0.9)
  for t, j in outliers:
    assert not result.inliers[1, t, j]
  report = result.report
  assert list(report["per_camera"]) == ["cam0", "cam1", "cam2", "cam3"]
  assert report["overall"]["median"] < 1.5
  assert report["per_camera"]["cam1"]["outlier_fraction"] >= 12 / (frames * 18)
  assert [report["per_camera"][c.name]["swapped_frames"] for c in cams] == list(injected.sum(1))
  unsmoothed = triangulate_sequence(_swap(kp, injected), cams, ransac_threshold_px=10.0,
                                    smooth_cutoff_hz=None)
  assert np.isnan(unsmoothed.points3d[20:23, 4]).all()
  with pytest.raises(ValueError, match="pass fps"):
    triangulate_sequence(kp, cams)
  with pytest.raises(ValueError, match=r"\[V, T, 18, 3\]"):
    triangulate_sequence(kp[:3], cams, fps=fps)
