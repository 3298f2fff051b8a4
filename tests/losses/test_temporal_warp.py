"""The masked temporal warp loss and the forward-backward occlusion mask (Sundaram et al. 2010)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from psrjax import losses
from psrjax.geometry import backward_warp


def _reference_mask(flow_fwd, flow_bwd):
  """The consistency test with scipy's bilinear interpolation, one frame pair at a time."""
  t, h, w, _ = flow_bwd.shape
  ys, xs = np.mgrid[:h, :w].astype(np.float64)
  mask = np.zeros((t, h, w), np.float32)
  for k in range(1, t):
    b = flow_bwd[k].astype(np.float64)
    x, y = xs + b[..., 0], ys + b[..., 1]
    f = np.stack([ndimage.map_coordinates(flow_fwd[k - 1, ..., c], [y, x], order=1, mode="nearest")
                  for c in range(2)], -1)
    ok = np.sum((b + f) ** 2, -1) <= 0.01 * (np.sum(b ** 2, -1) + np.sum(f ** 2, -1)) + 0.5
    mask[k] = ok & (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
  return mask


def test_mask_matches_a_direct_implementation_of_the_consistency_check():
  rng = np.random.default_rng(0)
  base = rng.uniform(-3, 3, (2, 4, 10, 12, 2)).astype(np.float32)
  flow_fwd = ndimage.gaussian_filter(base, sigma=(0, 0, 2, 2, 0))          # smooth motion
  flow_bwd = -flow_fwd + rng.normal(0, 0.6, flow_fwd.shape).astype(np.float32)   # partly inconsistent
  ours = np.asarray(jax.jit(losses.occlusion_mask)(flow_fwd, flow_bwd))
  assert ours.shape == (2, 4, 10, 12)
  for i in range(2):
    want = _reference_mask(flow_fwd[i], flow_bwd[i])
    np.testing.assert_array_equal(ours[i], want)
  assert 0.2 < ours[:, 1:].mean() < 0.95         # both outcomes occur


def test_exactly_warped_sequence_has_zero_loss():
  rng = np.random.default_rng(1)
  flow_bwd = ndimage.gaussian_filter(rng.uniform(-2, 2, (3, 9, 11, 2)), (0, 2, 2, 0)).astype(np.float32)
  frames = [rng.uniform(-1, 1, (9, 11, 3)).astype(np.float32)]
  for t in range(1, 3):
    frames.append(np.asarray(backward_warp(jnp.asarray(frames[-1]), jnp.asarray(flow_bwd[t]))))
  frames = np.stack(frames)
  flow_fwd = -flow_bwd[[1, 2, 2]]                 # roughly consistent, so the mask keeps pixels
  assert float(losses.temporal_warp_loss(frames, flow_fwd, flow_bwd)) < 1e-7
  assert float(losses.temporal_warp_loss(frames, flow_fwd, flow_bwd, norm="l2")) < 1e-12
  still = np.zeros_like(flow_bwd)
  assert float(losses.temporal_warp_loss(frames, still, still)) > 0.05     # wrong flow: an error


def _moving_square():
  """A square moving 2 px right over a static background: frame 1 reveals background at x = 2, 3."""
  rng = np.random.default_rng(2)
  background = rng.uniform(-1, 1, (8, 12, 3)).astype(np.float32)
  frames = np.stack([background, background])
  frames[0, 2:6, 2:6] = 1.0
  frames[1, 2:6, 4:8] = 1.0
  flow_fwd = np.zeros((2, 8, 12, 2), np.float32)
  flow_bwd = np.zeros((2, 8, 12, 2), np.float32)
  flow_fwd[0, 2:6, 2:6, 0] = 2.0                  # the square's pixels in frame 0 go right
  flow_bwd[1, 2:6, 4:8, 0] = -2.0                 # and come from 2 px to the left in frame 1
  return frames, flow_fwd, flow_bwd


def test_disoccluded_pixels_are_masked_out_of_the_loss():
  frames, flow_fwd, flow_bwd = _moving_square()
  mask = np.asarray(losses.occlusion_mask(flow_fwd, flow_bwd))
  revealed = np.zeros((8, 12), bool)
  revealed[2:6, 2:4] = True                       # background hidden under the square in frame 0
  np.testing.assert_array_equal(mask[1], ~revealed)
  np.testing.assert_array_equal(mask[0], 0.0)
  assert float(losses.temporal_warp_loss(frames, flow_fwd, flow_bwd)) == 0.0
  warped = np.asarray(backward_warp(jnp.asarray(frames[0]), jnp.asarray(flow_bwd[1])))
  assert np.abs(frames[1] - warped)[revealed].mean() > 0.3     # what the mask leaves out


def test_normalisation_norms_previous_video_extra_mask_and_gradients():
  frames = np.full((1, 3, 4, 5, 2), 0.5, np.float32)
  previous = np.zeros_like(frames)
  still = np.zeros((1, 3, 4, 5, 2), np.float32)
  # Mean over all pixels and channels of frames 1..T-1: |0.5 - 0| = 0.5, squared 0.25.
  assert float(losses.temporal_warp_loss(frames, still, still, previous=previous)) == 0.5
  l2 = losses.temporal_warp_loss(frames, still, still, previous=previous, norm="l2")
  assert float(l2) == 0.25
  half = np.zeros((1, 3, 4, 5), np.float32)
  half[..., :2, :] = 1.0                          # keep 2 of 4 rows: masked pixels count as zeros
  masked = losses.temporal_warp_loss(frames, still, still, previous=previous, mask=half)
  assert float(masked) == 0.25
  g = jax.grad(lambda x: losses.temporal_warp_loss(x, still, still, previous=previous))(frames)
  np.testing.assert_allclose(np.asarray(g)[:, 1:], 1.0 / (2 * 4 * 5 * 2))
  np.testing.assert_array_equal(np.asarray(g)[:, 0], 0.0)


def test_mask_average_is_the_mean_over_the_mask_and_ignores_its_scale():
  frames = np.full((1, 3, 4, 5, 2), 0.5, np.float32)
  frames[..., 2:, :, :] = 0.1                     # rows 2-3 err by 0.1, rows 0-1 by 0.5
  previous = np.zeros_like(frames)
  still = np.zeros((1, 3, 4, 5, 2), np.float32)
  half = np.zeros((1, 3, 4, 5), np.float32)
  half[..., :2, :] = 1.0
  loss = lambda m: float(losses.temporal_warp_loss(frames, still, still, previous=previous,
                                                   mask=m, average="mask"))
  assert abs(loss(half) - 0.5) < 1e-5             # the mean over the kept rows only
  assert abs(loss(0.01 * half) - 0.5) < 1e-4      # a uniformly smaller mask: the same loss
  # The pixels average of the same mask falls with its scale: what lets Eq. 4 shrink M.
  pixels = lambda m: float(losses.temporal_warp_loss(frames, still, still, previous=previous,
                                                     mask=m))
  assert pixels(0.01 * half) < 0.02 * pixels(half)
  # Its gradient raises the mask where the error is below the masked mean, lowers it above.
  g = jax.grad(lambda m: losses.temporal_warp_loss(frames, still, still, previous=previous,
                                                   mask=m, average="mask"))(
      jnp.full((1, 3, 4, 5), 0.5, jnp.float32))
  assert float(g[0, 1, 0, 0]) > 0 > float(g[0, 1, 3, 0])


def test_bad_input():
  frames, flow_fwd, flow_bwd = _moving_square()
  with pytest.raises(ValueError, match="norm must be one of l1, l2"):
    losses.temporal_warp_loss(frames, flow_fwd, flow_bwd, norm="huber")
  with pytest.raises(ValueError, match="average must be one of pixels, mask"):
    losses.temporal_warp_loss(frames, flow_fwd, flow_bwd, average="weights")
  with pytest.raises(ValueError, match="flow_fwd and flow_bwd must both be"):
    losses.occlusion_mask(flow_fwd, flow_bwd[:1])
  with pytest.raises(ValueError, match=r"T>=2"):
    losses.temporal_warp_loss(frames[:1], flow_fwd[:1], flow_bwd[:1])
  with pytest.raises(ValueError, match="mask must be"):
    losses.temporal_warp_loss(frames, flow_fwd, flow_bwd, mask=np.ones((2, 8, 11)))


def test_motion_boundaries_and_the_unmasked_loss():
  """Sundaram et al.'s boundary test marks the columns around a step in the flow (hand-computed
  central differences) and nowhere else; `occlusion=False` counts every pixel."""
  flow = np.zeros((2, 6, 8, 2), np.float32)
  flow[:, :, 4:, 0] = 2.0                   # the right half moves 2 px: a step between x 3 and 4
  boundary = np.asarray(losses.temporal.motion_boundary(flow[1]))
  # central differences: |du/dx| = 1 at x = 3 and 4; 1 > 0.01 |w|^2 + 0.002 on both sides
  expected = np.zeros((6, 8), bool)
  expected[:, 3:5] = True
  np.testing.assert_array_equal(boundary, expected)
  fwd = -flow                               # consistent flows: only boundaries are dropped
  plain = np.asarray(losses.occlusion_mask(fwd, flow))[1]
  dropped = np.asarray(losses.occlusion_mask(fwd, flow, motion_boundaries=True))[1]
  np.testing.assert_array_equal(dropped, plain * ~expected)
  frames = np.random.default_rng(3).uniform(-1, 1, (2, 6, 8, 3)).astype(np.float32)
  zero = np.zeros_like(flow)
  unmasked = float(losses.temporal_warp_loss(frames, zero, zero, occlusion=False))
  np.testing.assert_allclose(unmasked, np.mean(np.abs(frames[1] - frames[0])), rtol=1e-5)
