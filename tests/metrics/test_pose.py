"""Pose metrics against hand-computed examples and a direct NumPy loop."""
import jax
import numpy as np
import pytest

from psrjax import metrics


def _kp(xy, vis):
  return np.concatenate([np.asarray(xy, np.float32), np.asarray(vis, np.float32)[:, None]], -1)


# Ground truth: bounding box 100 wide, 50 tall -> normaliser 100.
TARGET = _kp([[0, 0], [100, 0], [100, 50], [50, 25], [7, 7]], [1, 1, 1, 1, 0])
PRED = _kp([[3, 4], [100, 30], [100, 50], [0, 0], [7, 7]], [1, 1, 1, 0, 1])


def test_hand_computed_example():
  # distances: 5, 30, 0, (undetected), (gt invisible)
  np.testing.assert_allclose(metrics.keypoint_error(PRED, TARGET), (5 + 30 + 0) / 3, rtol=1e-6)
  np.testing.assert_allclose(metrics.pck(PRED, TARGET, threshold=0.2), 2 / 4)   # 5 and 0 <= 20
  np.testing.assert_allclose(metrics.pck(PRED, TARGET, threshold=0.05), 2 / 4)  # <= 5
  np.testing.assert_allclose(metrics.pck(PRED, TARGET, threshold=0.01), 1 / 4)  # <= 1
  scores = metrics.detection_scores(PRED, TARGET, threshold=0.2)
  np.testing.assert_allclose(scores["precision"], 2 / 4)   # 4 detected
  np.testing.assert_allclose(scores["recall"], 2 / 4)      # 4 visible
  np.testing.assert_allclose(scores["f1"], 0.5)


def test_batched_and_jitted_match_per_example_loop():
  rng = np.random.RandomState(0)
  target = np.concatenate([rng.uniform(0, 128, (4, 3, 18, 2)), rng.uniform(size=(4, 3, 18, 1)) > 0.2], -1)
  pred = np.concatenate([target[..., :2] + rng.normal(scale=8, size=(4, 3, 18, 2)),
                         rng.uniform(size=(4, 3, 18, 1)) > 0.1], -1).astype(np.float32)
  ours = jax.jit(metrics.pck)(pred, target.astype(np.float32))
  assert ours.shape == (4, 3)
  for i in np.ndindex(4, 3):
    t, p = target[i], pred[i]
    vis = t[:, 2] > 0
    scale = (t[vis, :2].max(0) - t[vis, :2].min(0)).max()
    ok = vis & (p[:, 2] > 0) & (np.linalg.norm(p[:, :2] - t[:, :2], axis=1) <= 0.2 * scale)
    np.testing.assert_allclose(ours[i], ok.sum() / vis.sum(), rtol=1e-6)


def test_challenging_poses_picks_farthest_from_training():
  rng = np.random.RandomState(1)
  train = np.concatenate([rng.normal(size=(30, 18, 2)), np.ones((30, 18, 1))], -1)
  val = np.concatenate([train[:12, :, :2] + 0.01, np.ones((12, 18, 1))], -1)
  val[3, :, :2] += 50
  val[7, :, :2] += 20
  np.testing.assert_array_equal(metrics.challenging_poses(val, train, m=2), [3, 7])
  with pytest.raises(ValueError, match="m must be in 1..12"):
    metrics.challenging_poses(val, train, m=13)


def test_bad_shapes():
  with pytest.raises(ValueError, match=r"\[..., K, 3\]"):
    metrics.pck(PRED[:, :2], TARGET[:, :2])
  with pytest.raises(ValueError, match="shapes differ"):
    metrics.keypoint_error(PRED[:4], TARGET)
