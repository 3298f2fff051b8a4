"""MFCI's discriminators (Cheng et al., Sec. 3.5).

- the spatial discriminator D_I(frame, pose): a conditional PatchGAN (`patchgan.PatchGAN`) on a
  frame concatenated with its pose labels, Eq. 1;
- the multi-range temporal discriminators D_V^n, n in {3, 5, 7} (Eq. 2): D_V^n sees n
  consecutive frames and the n - 1 optical flows between them, stacked on channels (as vid2vid's
  temporal discriminator stacks frames and flows), and judges them with a PatchGAN.

Departure: the paper's discriminators are built from residual blocks "following vid2vid"
(details in its supplementary material, not available); here every discriminator is a PatchGAN.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from psrjax.models.patchgan import PatchGAN


class TemporalDiscriminator(nn.Module):
  """D_V^n: `__call__(frames [N, n, H, W, 3], flows [N, n - 1, H, W, 2])` -> PatchGAN logits."""
  frames: int  # n, the time range (paper: 3, 5 and 7)
  ndf: int = 64  # PatchGAN channels
  num_layers: int = 3  # PatchGAN stride-2 layers
  conv_impl: str = "auto"  # Conv2D implementation (psrjax.nn.CONV_IMPLS)
  dtype: Any = None  # computation dtype; None: the frames'
  remat: str = "none"  # PatchGAN's (psrjax.nn.policy)

  @nn.compact
  def __call__(self, frames: jax.Array, flows: jax.Array, *, train=False):
    del train
    n = self.frames
    if frames.ndim != 5 or frames.shape[1] != n:
      raise ValueError(f"D_V^{n} takes exactly {n} frames [N, {n}, H, W, C]; got {frames.shape}")
    if flows.ndim != 5 or flows.shape[1] != n - 1 or flows.shape[-1] != 2:
      raise ValueError(f"D_V^{n} takes exactly {n - 1} flows [N, {n - 1}, H, W, 2]; "
                       f"got {flows.shape}")
    if flows.shape[2:4] != frames.shape[2:4] or flows.shape[0] != frames.shape[0]:
      raise ValueError(f"D_V^{n}: flows {flows.shape} do not match frames {frames.shape}")
    stack = lambda v: jnp.moveaxis(v, 1, 3).reshape(v.shape[0], v.shape[2], v.shape[3], -1)
    x = jnp.concatenate([stack(frames), stack(flows).astype(frames.dtype)], axis=-1)
    return PatchGAN(self.ndf, self.num_layers, conv_impl=self.conv_impl, dtype=self.dtype,
                    remat=self.remat, name="patchgan")(x)


def windows(video: jax.Array, n: int) -> jax.Array:
  """All n-frame windows of `video [B, L, ...]` folded into the batch: [B (L - n + 1), n, ...]."""
  b, length = video.shape[:2]
  if not 1 <= n <= length:
    raise ValueError(f"a window of {n} frames needs 1 <= n <= L = {length}")
  stacked = jnp.stack([video[:, s:s + n] for s in range(length - n + 1)], axis=1)
  return stacked.reshape((b * (length - n + 1), n) + video.shape[2:])


class MultiRangeDiscriminator(nn.Module):
  """D_V = {D_V^n}: every n-window of a video with the flows between its frames.

  `__call__(video [B, L, H, W, 3], flow_bwd [B, L, H, W, 2])` -> list of logits, one per range.
  flow_bwd follows the batch contract (flow_bwd[t] relates frame t to frame t - 1), so a window
  of frames s..s+n-1 comes with flows flow_bwd[s+1..s+n-1].
  """
  ranges: tuple[int, ...] = (3, 5, 7)  # the time ranges n
  ndf: int = 64
  num_layers: int = 3
  conv_impl: str = "auto"  # Conv2D implementation (psrjax.nn.CONV_IMPLS)
  dtype: Any = None  # computation dtype; None: the video's
  remat: str = "none"  # the PatchGANs' (psrjax.nn.policy)

  @nn.compact
  def __call__(self, video: jax.Array, flow_bwd: jax.Array, *, train=False):
    del train
    out = []
    for n in self.ranges:
      d = TemporalDiscriminator(n, self.ndf, self.num_layers, conv_impl=self.conv_impl,
                                dtype=self.dtype, remat=self.remat, name=f"dv{n}")
      frames = windows(video, n)
      flows = windows(flow_bwd, n)[:, 1:]
      out.append(d(frames, flows))
    return out
