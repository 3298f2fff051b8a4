"""Video discriminators.

`VideoDiscriminator` is MoCoGAN's patch video discriminator (Tulyakov et al. 2018,
`PatchVideoDiscriminator`), the architecture PSR-Net cites for its temporal discriminator D_t:
Conv3d(k=4, stride (1, 2, 2), padding (0, 1, 1), no bias) layers of ndf, 2 ndf, 4 ndf, ... channels
with LeakyReLU(0.2) and batch norm (not after the first layer), then a final such convolution to
one channel of patch logits (no sigmoid: pair it with a logits-based GAN loss).

Choices: batch norm is `BatchStatNorm` (train-mode batch statistics, learnable scale/shift, no
running statistics), also when `train=False`, since the discriminator only runs inside training
steps. The conditioning video (the input view xⁱ) is concatenated on channels. Each layer
shortens time by kt - 1 = 3 frames, so MoCoGAN needs at least 13 frames for 4 layers; shorter
clips are zero-padded in time (symmetrically, the extra frame at the end) to that minimum first.
T = 16 therefore runs MoCoGAN's exact network (4 temporal logit positions), T = 8 gives one.
Spatial sizes divide by 2 per layer (64 -> 4, 112 -> 7, 128 -> 8 with 4 layers).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

import functools

from psrjax.nn import (BatchStatNorm, Conv3D, compute_dtype, pad_video, remat_network,
                       remat_stage)


class VideoDiscriminator(nn.Module):
  """MoCoGAN patch video discriminator, conditioned on a video by channel concatenation.

  `__call__(video, cond=None, *, train=False)` with video (and cond) float [B, T, H, W, C].
  Returns (logits float32 [B, T', H / 2^L, W / 2^L, 1], features: list of the L - 1 hidden
  activations after each LeakyReLU, for feature matching).
  """
  ndf: int = 64                      # channels of the first layer; layer i has ndf * 2^i
  num_layers: int = 4                # convolutions including the final 1-channel one (MoCoGAN: 4)
  kernel_size: int = 4               # kernel in T, H and W (MoCoGAN: 4)
  conv_impl: str = "auto"            # Conv3D implementation: "auto" | "xla" | "fold_time" | "onednn"
  dtype: Any = None                  # computation dtype; None: the video's (params, logits float32)
  remat: str = "none"                # "none" | "blocks" (each layer) | "full" (psrjax.nn.policy)

  def min_frames(self) -> int:
    return 1 + (self.kernel_size - 1) * self.num_layers

  @nn.compact
  def __call__(self, video: jax.Array, cond: jax.Array | None = None, *, train: bool = False):
    del train
    x = self._inputs(video, cond)
    x = x.astype(compute_dtype(self.dtype, video))
    return remat_network(VideoDiscriminator._forward, self.remat)(self, x)

  def _forward(self, x: jax.Array):
    features = []
    for i in range(self.num_layers - 1):
      x = remat_stage(functools.partial(VideoDiscriminator._layer, i=i), self.remat)(self, x)
      features.append(x)
    logits = self._conv(1, f"conv{self.num_layers - 1}")(x)
    return logits.astype(jnp.float32), features

  def _conv(self, features: int, name: str) -> Conv3D:
    return Conv3D(features, self.kernel_size, (1, 2, 2), (0, 1, 1), use_bias=False,
                  impl=self.conv_impl, dtype=self.dtype, name=name)

  def _layer(self, x: jax.Array, *, i: int) -> jax.Array:
    """Layer i: conv (stride (1, 2, 2)), batch norm (not on layer 0), LeakyReLU(0.2)."""
    x = self._conv(self.ndf * 2 ** i, f"conv{i}")(x)
    if i > 0:
      x = BatchStatNorm(dtype=self.dtype, name=f"norm{i}")(x)
    return nn.leaky_relu(x, 0.2)

  def _inputs(self, video: jax.Array, cond: jax.Array | None) -> jax.Array:
    if video.ndim != 5:
      raise ValueError(f"video must be [B, T, H, W, C]; got {video.shape}")
    if cond is not None:
      if cond.shape[:-1] != video.shape[:-1]:
        raise ValueError(f"cond {cond.shape} must match video {video.shape} except in channels")
      video = jnp.concatenate([video, cond.astype(video.dtype)], axis=-1)
    t, h, w = video.shape[1:4]
    if min(h, w) < 2 ** self.num_layers:
      raise ValueError(f"frames must be at least {2 ** self.num_layers} pixels a side for "
                       f"{self.num_layers} stride-2 layers; got {h}x{w}")
    missing = max(self.min_frames() - t, 0)
    return pad_video(video, ((missing // 2, missing - missing // 2), (0, 0), (0, 0)), "zero")
