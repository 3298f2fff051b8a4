"""pix2pix's U-Net generator (Isola et al. 2017, "Image-to-Image Translation with Conditional
Adversarial Networks", Sec. 3.2.1 and appendix 6.1.1; the authors' `UnetGenerator`).

Encoder: num_downs 4x4 stride-2 convs of ngf, 2 ngf, 4 ngf, 8 ngf, 8 ngf, ... channels, each
but the first preceded by LeakyReLU(0.2) and each but the first and the innermost followed by
the norm. Decoder, innermost first: ReLU, a 4x4 stride-2 transposed conv, the norm (dropout 0.5 on
the 8 ngf layers between the innermost and the 8 ngf -> 4 ngf one, i.e. levels 4..num_downs - 2),
its output concatenated after the encoder activation of the same size (the skip first, as the
authors' `torch.cat([x, model(x)], 1)`); the outermost transposed conv maps to the output
channels, then tanh. num_downs = 8 takes 256x256 images to a 1x1 bottleneck; fewer suit smaller
images. As in the authors' code the convs have biases only when the norm is not batch norm
(the outermost transposed conv always has one). The encoder's in-place LeakyReLU in the authors'
code also rewrites the skip tensors, which changes nothing: the decoder applies ReLU to them first.
"""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from psrjax.nn import Conv2D, ConvTranspose2D, compute_dtype, remat_network, remat_stage
from psrjax.nn.blocks2d import check_norm_act, make_norm


class UNetGenerator(nn.Module):
  """`__call__(x [N, H, W, C], *, train=False)` -> image [N, H, W, out_channels] in (-1, 1).

  H and W must be divisible by 2^num_downs. Dropout needs a "dropout" rng when `train`; pix2pix
  also keeps it at test time, which `train=True` gives. Parameters: down{i}, down{i}_norm,
  up{i}, up{i}_norm for level i = 0 (outermost) .. num_downs - 1 (innermost).
  """
  out_channels: int = 3
  ngf: int = 64                      # channels of the outermost level (pix2pix: 64)
  num_downs: int = 8                 # stride-2 levels, >= 2 (pix2pix: 8 for 256x256)
  norm: str = "batch"                # psrjax.nn.NORMS (pix2pix: batch; "instance" its option)
  dropout: float = 0.5               # rate on the inner 8 ngf decoder layers; 0 = none
  conv_impl: str = "auto"            # Conv2D implementation
  dtype: Any = None                  # computation dtype; None: the input's (params float32)
  remat: str = "none"                # "none" | "blocks" (each level's conv unit) | "full"

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    check_norm_act(self.norm, "relu")
    if self.num_downs < 2:
      raise ValueError(f"UNetGenerator needs num_downs >= 2 levels; got {self.num_downs}")
    if x.ndim != 4 or x.shape[1] % 2 ** self.num_downs or x.shape[2] % 2 ** self.num_downs:
      raise ValueError(f"UNetGenerator with {self.num_downs} levels expects images [N, H, W, C] "
                       f"with H and W divisible by {2 ** self.num_downs}; got shape {x.shape}")
    x = x.astype(compute_dtype(self.dtype, x))
    forward = functools.partial(UNetGenerator._forward, train=train)
    return remat_network(forward, self.remat)(self, x)

  def _width(self, i: int) -> int:
    return self.ngf * min(2 ** i, 8)

  def _forward(self, x, *, train: bool):
    skips = []
    for i in range(self.num_downs):
      x = remat_stage(functools.partial(UNetGenerator._down, i=i), self.remat)(self, x)
      skips.append(x)
    for i in reversed(range(self.num_downs)):
      if i < self.num_downs - 1:
        x = jnp.concatenate([skips[i], x], axis=-1)
      up = functools.partial(UNetGenerator._up, i=i, train=train)
      x = remat_stage(up, self.remat)(self, x)
    return x

  def _norm(self, x, name: str):
    norm = make_norm(self.norm, dtype=self.dtype, name=name)
    return x if norm is None else norm(x)

  def _down(self, x, *, i: int):
    """Level i's encoder step: (LeakyReLU), 4x4 stride-2 conv, (norm)."""
    if i > 0:
      x = nn.leaky_relu(x, 0.2)
    x = Conv2D(self._width(i), 4, 2, 1, use_bias=self.norm != "batch", impl=self.conv_impl,
               dtype=self.dtype, name=f"down{i}")(x)
    return self._norm(x, f"down{i}_norm") if 0 < i < self.num_downs - 1 else x

  def _up(self, x, *, i: int, train: bool):
    """Level i's decoder step: ReLU, 4x4 stride-2 transposed conv, norm (+ dropout) or tanh."""
    outermost = i == 0
    features = self.out_channels if outermost else self._width(i - 1)
    x = ConvTranspose2D(features, 4, 2, 1, 0, use_bias=outermost or self.norm != "batch",
                        impl=self.conv_impl, dtype=self.dtype, name=f"up{i}")(nn.relu(x))
    if outermost:
      return jnp.tanh(x)
    x = self._norm(x, f"up{i}_norm")
    if self.dropout > 0 and 4 <= i <= self.num_downs - 2:
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return x
