"""Temporal warping error E_temp (Lai et al. 2018, as used by D²G-Net after Huang et al. 2017).

E_temp = 1/(T-1) sum_{t>=1} sum_p M_t(p) ||V_t(p) - W(V_{t-1}, f_t)(p)||^2 / sum_p M_t(p), with
W the bilinear backward warp of frame t-1 by the batch contract's flow_bwd[t] (the point seen
at p in frame t was at p + flow_bwd[t](p) in frame t-1; `psrjax.geometry.sampler`, border
padding), M_t the non-occlusion mask (1 = count) times the pixels whose source lies inside frame
t-1, and ||.||^2 the squared colour difference summed over channels, with frames scaled by
1 / data_range (i.e. measured in [0, 1] units).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from psrjax.geometry.sampler import bilinear_sample, pixel_grid, positions_inside


def temporal_error(frames, flow_bwd, *, mask=None, data_range: float = 2.0) -> jax.Array:
  """E_temp per video: frames [..., T, H, W, C], flow_bwd [..., T, H, W, 2] -> [...].

  mask: optional non-occlusion masks [..., T, H, W] or [..., T, H, W, 1] (1 where frame t's
  pixel is visible in frame t-1), e.g. the forward-backward flow consistency check
  `psrjax.losses.temporal.occlusion_mask`.
  """
  frames, flow = jnp.asarray(frames, jnp.float32) / data_range, jnp.asarray(flow_bwd, jnp.float32)
  if frames.ndim < 4 or flow.shape != frames.shape[:-1] + (2,) or frames.shape[-4] < 2:
    raise ValueError(f"temporal_error: expected frames [..., T>=2, H, W, C] and flow [..., T, H, W, 2], "
                     f"got {frames.shape} and {flow.shape}")
  lead, (t, h, w, c) = frames.shape[:-4], frames.shape[-4:]
  frames, flow = frames.reshape(-1, t, h, w, c), flow.reshape(-1, t, h, w, 2)
  valid = jnp.ones((frames.shape[0], t, h, w)) if mask is None else \
      jnp.broadcast_to(jnp.asarray(mask, jnp.float32).reshape(-1, t, h, w), (frames.shape[0], t, h, w))
  positions = pixel_grid(h, w) + flow[:, 1:]
  warped = bilinear_sample(frames[:, :-1], positions, padding="border")
  inside = positions_inside(positions, h, w)
  weight = valid[:, 1:] * inside
  err = jnp.sum(jnp.square(frames[:, 1:] - warped), axis=-1)
  per_step = jnp.sum(err * weight, axis=(2, 3)) / jnp.maximum(jnp.sum(weight, axis=(2, 3)), 1.0)
  return jnp.mean(per_step, axis=1).reshape(lead)


def interpolate_midframes(frames, flow_fwd, flow_bwd) -> jax.Array:
  """Frames 1..T-2 of a video predicted from their neighbours with the flows of the batch
  contract: I_t(p) ~ (W(V_{t-1}, flow_bwd[t]) + W(V_{t+1}, flow_fwd[t])) / 2, each neighbour
  read bilinearly (border padding) where frame t's pixel moves to. [..., T, H, W, C] ->
  [..., T - 2, H, W, C] float32."""
  frames = jnp.asarray(frames, jnp.float32)
  flow_fwd, flow_bwd = jnp.asarray(flow_fwd, jnp.float32), jnp.asarray(flow_bwd, jnp.float32)
  if (frames.ndim < 4 or frames.shape[-4] < 3 or flow_fwd.shape != frames.shape[:-1] + (2,)
      or flow_bwd.shape != flow_fwd.shape):
    raise ValueError(f"interpolate_midframes: expected frames [..., T>=3, H, W, C] and flows "
                     f"[..., T, H, W, 2]; got {frames.shape}, {flow_fwd.shape}, {flow_bwd.shape}")
  grid = pixel_grid(*frames.shape[-3:-1])
  before = bilinear_sample(frames[..., :-2, :, :, :], grid + flow_bwd[..., 1:-1, :, :, :],
                           padding="border")
  after = bilinear_sample(frames[..., 2:, :, :, :], grid + flow_fwd[..., 1:-1, :, :, :],
                          padding="border")
  return 0.5 * (before + after)


def interpolation_psnr(frames, flow_fwd, flow_bwd, reference, *,
                       data_range: float = 2.0) -> jax.Array:
  """INTERnet's Interp-PSNR per video: the mean over t = 1..T-2 of PSNR(interpolated frame t,
  reference frame t), the interpolation `interpolate_midframes` of the video `frames` [..., T,
  H, W, C]; `reference` the ground-truth video (the paper's "predict each frame I_t from O_{t-1}
  and O_{t+1}") or `frames` itself (the video's own consistency). -> [...]."""
  middle = interpolate_midframes(frames, flow_fwd, flow_bwd)
  target = jnp.asarray(reference, jnp.float32)[..., 1:-1, :, :, :]
  mse = jnp.mean(jnp.square(middle - target), axis=(-3, -2, -1))
  psnr = 10.0 * jnp.log10(data_range ** 2 / jnp.maximum(mse, 1e-10))
  return jnp.mean(psnr, axis=-1)
