"""E_temp against a scipy.ndimage.map_coordinates reference and on an exactly translating video."""
import jax
import numpy as np
import pytest
from scipy import ndimage

from psrjax import metrics


def _reference(frames, flow, mask, data_range=2.0):
  frames = frames / data_range
  t, h, w, c = frames.shape
  ys, xs = np.mgrid[:h, :w].astype(np.float64)
  errors = []
  for k in range(1, t):
    y, x = ys + flow[k, ..., 1], xs + flow[k, ..., 0]
    warped = np.stack([ndimage.map_coordinates(frames[k - 1, ..., ch], [y, x], order=1) for ch in range(c)], -1)
    weight = mask[k] * ((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1))
    errors.append(np.sum(((frames[k] - warped) ** 2).sum(-1) * weight) / weight.sum())
  return np.mean(errors)


def test_matches_map_coordinates_reference():
  rng = np.random.RandomState(0)
  frames = rng.uniform(-1, 1, (2, 4, 12, 14, 3)).astype(np.float32)
  flow = rng.uniform(-3, 3, (2, 4, 12, 14, 2)).astype(np.float32)
  mask = (rng.uniform(size=(2, 4, 12, 14)) > 0.3).astype(np.float32)
  ours = jax.jit(metrics.temporal_error)(frames, flow, mask=mask)
  assert ours.shape == (2,)
  for i in range(2):
    np.testing.assert_allclose(ours[i], _reference(frames[i], flow[i], mask[i]), rtol=1e-5)


def test_translating_video_with_its_flow_has_zero_error():
  base = np.random.RandomState(1).uniform(-1, 1, (16, 24, 3)).astype(np.float32)
  frames = np.stack([np.roll(base, k, axis=1) for k in range(4)])     # content moves right 1 px / frame
  flow = np.zeros((4, 16, 24, 2), np.float32)
  flow[1:, ..., 0] = -1.0                                             # it came from 1 px to the left
  assert float(metrics.temporal_error(frames, flow)) < 1e-10
  assert float(metrics.temporal_error(frames, np.zeros_like(flow))) > 0.01
  with pytest.raises(ValueError, match="temporal_error"):
    metrics.temporal_error(frames, flow[..., :1])
