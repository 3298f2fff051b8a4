"""The U-Net of the MFCI networks, on psrjax.nn's 2D layers.

MFCI (Cheng et al.) generates videos frame by frame, so its networks are 2D: frames (and source
frames) are folded into the batch axis. Images are NHWC. Its convolutions are Flax `nn.Conv`'s
(lecun-normal kernels, "same" padding): the parameter tree of checkpoints written before MFCI
moved onto `psrjax.nn` is unchanged.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from psrjax.nn.blocks2d import ConvNormAct2D
from psrjax.nn.policy import compute_dtype, remat_network

# Flax `nn.Conv`'s initialiser, which MFCI's networks were trained with.
KERNEL_INIT = nn.initializers.lecun_normal()


def conv_act(features: int, *, strides: int = 1, impl: str = "auto", dtype: Any = None,
             remat: str = "none", name: str) -> ConvNormAct2D:
  """3x3 convolution ("same" padding, optionally strided) followed by LeakyReLU(0.2)."""
  return ConvNormAct2D(features, 3, strides, padding="same", norm="none", activation="leaky_relu",
                       impl=impl, dtype=dtype, kernel_init=KERNEL_INIT, remat=remat, name=name)


class UNet(nn.Module):
  """Encoder-decoder with skip connections (Balakrishnan et al.'s U-Nets, without their exact
  layer counts): `depth` stride-2 levels of `base * 2^i` channels (capped at 8 base), nearest
  upsampling with skip concatenation, and a last 3x3 conv + LeakyReLU to `out_features`.

  Returns the last features `[N, H, W, out_features]` (no output head); H and W must be
  divisible by 2^depth.
  """
  base: int  # channels of the first level
  depth: int  # number of stride-2 levels
  out_features: int  # channels of the returned features
  conv_impl: str = "auto"  # Conv2D implementation (psrjax.nn.CONV_IMPLS)
  dtype: Any = None  # computation dtype; None: the input's
  remat: str = "none"  # "none" | "blocks" (each conv unit) | "full" (psrjax.nn.policy)

  @nn.compact
  def __call__(self, x, *, train=False):
    del train
    h, w = x.shape[-3:-1]
    if h % 2 ** self.depth or w % 2 ** self.depth:
      raise ValueError(f"U-Net of depth {self.depth} needs H and W divisible by "
                       f"{2 ** self.depth}; got {h}x{w}")
    return remat_network(UNet._forward, self.remat)(self, x.astype(compute_dtype(self.dtype, x)))

  def _forward(self, x):
    width = lambda i: self.base * min(2 ** i, 8)
    unit = lambda f, name, strides=1: conv_act(f, strides=strides, impl=self.conv_impl,
                                               dtype=self.dtype, remat=self.remat, name=name)
    x = unit(width(0), "in")(x)
    skips = []
    for i in range(self.depth):
      skips.append(x)
      x = unit(width(i + 1), f"down{i}", strides=2)(x)
    x = unit(width(self.depth), "mid")(x)
    for i in reversed(range(self.depth)):
      n, hh, ww, c = x.shape
      x = jax.image.resize(x, (n, hh * 2, ww * 2, c), "nearest")
      x = jnp.concatenate([x, skips[i].astype(x.dtype)], axis=-1)
      x = unit(width(i), f"up{i}")(x)
    return unit(self.out_features, "out")(x)
