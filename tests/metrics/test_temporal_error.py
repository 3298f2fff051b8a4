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


def _reference_interpolation(frames, flow_fwd, flow_bwd):
  """Midpoint interpolation with scipy's bilinear map_coordinates (border: nearest)."""
  t, h, w, c = frames.shape
  ys, xs = np.mgrid[:h, :w].astype(np.float64)
  read = lambda image, flow: np.stack([ndimage.map_coordinates(
      image[..., ch], [ys + flow[..., 1], xs + flow[..., 0]], order=1, mode="nearest")
      for ch in range(c)], -1)
  return np.stack([0.5 * (read(frames[k - 1], flow_bwd[k]) + read(frames[k + 1], flow_fwd[k]))
                   for k in range(1, t - 1)])


def test_interpolation_matches_map_coordinates_and_psnr_rewards_consistent_videos():
  rng = np.random.RandomState(2)
  frames = rng.uniform(-1, 1, (5, 10, 12, 3)).astype(np.float32)
  flow_fwd = rng.uniform(-2, 2, (5, 10, 12, 2)).astype(np.float32)
  flow_bwd = rng.uniform(-2, 2, (5, 10, 12, 2)).astype(np.float32)
  ours = np.asarray(jax.jit(metrics.temporal.interpolate_midframes)(frames, flow_fwd, flow_bwd))
  np.testing.assert_allclose(ours, _reference_interpolation(frames, flow_fwd, flow_bwd),
                             atol=1e-5)
  # A video translating 1 px per frame is predicted exactly inside the frame by its flows.
  base = rng.uniform(-1, 1, (16, 24, 3)).astype(np.float32)
  video = np.stack([np.roll(base, k, axis=1) for k in range(4)])
  fwd, bwd = np.zeros((4, 16, 24, 2), np.float32), np.zeros((4, 16, 24, 2), np.float32)
  fwd[..., 0], bwd[..., 0] = 1.0, -1.0
  middle = np.asarray(metrics.temporal.interpolate_midframes(video, fwd, bwd))
  np.testing.assert_allclose(middle[:, :, 1:-1], video[1:-1, :, 1:-1], atol=1e-6)
  # A smooth periodic pattern (np.roll wraps it seamlessly) scores far above a flickering copy.
  ys, xs = np.mgrid[:16, :24]
  smooth = np.stack([np.sin(2 * np.pi * xs / 24 + c) * np.cos(2 * np.pi * ys / 16)
                     for c in range(3)], -1).astype(np.float32)
  video = np.stack([np.roll(smooth, k, axis=1) for k in range(4)])
  flicker = video + rng.uniform(-0.3, 0.3, video.shape).astype(np.float32)
  consistent = float(metrics.interpolation_psnr(video, fwd, bwd, video))
  assert consistent > 40 and consistent > float(metrics.interpolation_psnr(flicker, fwd, bwd,
                                                                           video)) + 10
  with pytest.raises(ValueError, match="T>=3"):
    metrics.interpolation_psnr(video[:2], fwd[:2], bwd[:2], video[:2])
