"""The masked temporal warp loss and its forward-backward occlusion mask.

The short-term temporal loss of Lai et al. 2018 ("Learning blind video temporal consistency"),
which D²G-Net takes over as its L_temp and INTERnet writes as its flow warp loss (Eqs. 2-3), and
which Everybody-Dance-Now-style video generators add for temporal smoothness:

  L = 1 / ((T-1) H W C) sum_{t>=1} sum_p M_t(p) |x_t(p) - W(y_{t-1}, b_t)(p)|    (or squared),

with b_t = flow_bwd[t] (the batch contract's flow from frame t to frame t-1, pixels, (x, y)),
W the bilinear backward warp (`psrjax.geometry.sampler`, border padding: W(y, b)(p) =
y(p + b(p))), y = x (the same video) unless `previous` is given (INTERnet compares its output
with the warped previous ground-truth frame), and M_t the occlusion mask below. The mean runs over
all pixels and channels of frames 1..T-1 (occluded pixels count as zeros), as Lai et al.
average it. Direction: INTERnet's Eq. 2 warps the current frame into the previous one; psrjax
warps the previous frame into the current one, like Lai et al. and D²G-Net, so that the mask
lives on frame t.

Occlusion mask (Sundaram et al. 2010, ECCV): a flow w is consistent at p with the reverse
flow ŵ read at its end point when

  |w(p) + ŵ(p + w(p))|^2 <= 0.01 (|w(p)|^2 + |ŵ(p + w(p))|^2) + 0.5.

Here w = flow_bwd[t] and ŵ = flow_fwd[t-1] (frame t-1 -> t) read bilinearly at p + w(p):
M_t(p) = 1 when frame t's pixel p is seen in frame t-1, i.e. its end point lies inside frame t-1
and the test passes; M_0 = 0 (no previous frame). With `motion_boundaries`, Sundaram et al.'s
second test also drops the pixels on motion boundaries, where the flow's spatial gradient is
large:

  |grad u(p)|^2 + |grad v(p)|^2 > 0.01 |w(p)|^2 + 0.002,

with w = (u, v) = flow_bwd[t] and central differences (one-sided at the border).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from psrjax.geometry.sampler import bilinear_sample, pixel_grid, positions_inside

NORMS = ("l1", "l2")
AVERAGES = ("pixels", "mask")


def _check_flows(flow_fwd, flow_bwd, name: str):
  flow_fwd = jnp.asarray(flow_fwd, jnp.float32)
  flow_bwd = jnp.asarray(flow_bwd, jnp.float32)
  if flow_bwd.ndim < 4 or flow_bwd.shape[-1] != 2 or flow_fwd.shape != flow_bwd.shape:
    raise ValueError(f"{name}: flow_fwd and flow_bwd must both be [..., T, H, W, 2] (pixels, x y); "
                     f"got {flow_fwd.shape} and {flow_bwd.shape}")
  return flow_fwd, flow_bwd


def occlusion_mask(flow_fwd, flow_bwd, *, motion_boundaries: bool = False) -> jax.Array:
  """float32 `[..., T, H, W]`: 1 where frame t's pixel is seen in frame t-1 (0 for t = 0).

  flow_fwd, flow_bwd: `[..., T, H, W, 2]` as in the batch contract. The forward-backward test of
  the module docstring, with flow_bwd[t] checked against flow_fwd[t-1]; with
  `motion_boundaries` also its motion-boundary test. No gradient.
  """
  flow_fwd, flow_bwd = _check_flows(flow_fwd, flow_bwd, "occlusion_mask")
  flow_fwd, flow_bwd = jax.lax.stop_gradient(flow_fwd), jax.lax.stop_gradient(flow_bwd)
  h, w = flow_bwd.shape[-3:-1]
  back = flow_bwd[..., 1:, :, :, :]
  positions = pixel_grid(h, w) + back
  forth = bilinear_sample(flow_fwd[..., :-1, :, :, :], positions, padding="border")
  mismatch = jnp.sum(jnp.square(back + forth), axis=-1)
  bound = 0.01 * (jnp.sum(jnp.square(back), -1) + jnp.sum(jnp.square(forth), -1)) + 0.5
  seen = (mismatch <= bound) & positions_inside(positions, h, w)
  if motion_boundaries:
    seen = seen & ~motion_boundary(back)
  first = jnp.zeros_like(seen[..., :1, :, :])
  return jnp.concatenate([first, seen], axis=-3).astype(jnp.float32)


def motion_boundary(flow) -> jax.Array:
  """bool `[..., H, W]`: Sundaram et al.'s motion boundaries of a flow `[..., H, W, 2]` (pixels):
  |grad u|^2 + |grad v|^2 > 0.01 |w|^2 + 0.002, central differences (one-sided at the border)."""
  flow = jnp.asarray(flow, jnp.float32)
  gy, gx = jnp.gradient(flow, axis=(-3, -2))
  spread = jnp.sum(jnp.square(gx) + jnp.square(gy), axis=-1)
  return spread > 0.01 * jnp.sum(jnp.square(flow), axis=-1) + 0.002


def temporal_warp_loss(frames, flow_fwd, flow_bwd, *, previous=None, norm: str = "l1",
                       mask=None, occlusion: bool = True, motion_boundaries: bool = False,
                       average: str = "pixels") -> jax.Array:
  """The occlusion-masked warp loss L of the module docstring (a float32 scalar).

  Args:
    frames: `[..., T, H, W, C]` the video x (T >= 2).
    flow_fwd, flow_bwd: `[..., T, H, W, 2]` the batch contract's flows of the video.
    previous: optional `[..., T, H, W, C]` video y whose frame t-1 is warped (default: frames).
      Gradients reach both; stop_gradient it to treat it as a target.
    norm: "l1" (|.|, Lai et al.) or "l2" (squared difference).
    mask: optional extra weights `[..., T, H, W]` or `[..., T, H, W, 1]` (e.g. a foreground mask)
      multiplied with the occlusion mask.
    occlusion: weight by the occlusion mask (False: every pixel of frames 1.. counts, INTERnet's
      unmasked Eq. 2 and its intrinsic Eq. 4, which masks with `mask` alone).
    motion_boundaries: the occlusion mask also drops motion boundaries (INTERnet's Eq. 3).
    average: "pixels" divides the weighted sum by every pixel and channel of frames 1.. (Lai et
      al.); "mask" by the sum of the weights (times the channels): the mean error over the
      masked pixels, which a uniform scaling of a learned mask leaves unchanged, so that the
      loss cannot be lowered by shrinking the whole mask (INTERnet's intrinsic Eq. 4).
  """
  if norm not in NORMS:
    raise ValueError(f"temporal_warp_loss: norm must be one of {', '.join(NORMS)}; got {norm!r}")
  if average not in AVERAGES:
    raise ValueError(f"temporal_warp_loss: average must be one of {', '.join(AVERAGES)}; "
                     f"got {average!r}")
  flow_fwd, flow_bwd = _check_flows(flow_fwd, flow_bwd, "temporal_warp_loss")
  frames = jnp.asarray(frames)
  previous = frames if previous is None else jnp.asarray(previous)
  if (frames.shape[:-1] != flow_bwd.shape[:-1] or previous.shape != frames.shape
      or frames.shape[-4] < 2):
    raise ValueError(f"temporal_warp_loss: frames (and previous) must be [..., T>=2, H, W, C] "
                     f"matching the flows {flow_bwd.shape}; got {frames.shape} and {previous.shape}")
  if occlusion:
    weight = occlusion_mask(flow_fwd, flow_bwd, motion_boundaries=motion_boundaries)[..., None]
  else:
    weight = jnp.ones(flow_bwd.shape[:-1] + (1,), jnp.float32)
  if mask is not None:
    mask = jnp.asarray(mask, jnp.float32)
    extra = mask[..., None] if mask.ndim == frames.ndim - 1 else mask
    if extra.shape != weight.shape:
      raise ValueError(f"temporal_warp_loss: mask must be [..., T, H, W] or [..., T, H, W, 1] "
                       f"matching frames {frames.shape}; got {mask.shape}")
    weight = weight * extra
  positions = pixel_grid(*frames.shape[-3:-1]) + flow_bwd[..., 1:, :, :, :]
  warped = bilinear_sample(previous[..., :-1, :, :, :].astype(jnp.float32), positions,
                           padding="border")
  diff = frames[..., 1:, :, :, :].astype(jnp.float32) - warped
  err = jnp.abs(diff) if norm == "l1" else jnp.square(diff)
  weight = weight[..., 1:, :, :, :]
  if average == "mask":
    return jnp.sum(err * weight) / (jnp.sum(weight) * err.shape[-1] + 1e-6)
  return jnp.mean(err * weight)
