"""Convolutional building blocks for 3D (video) generators."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from psrjax.nn.conv import Conv3D
from psrjax.nn.norms import InstanceNorm


class ConvNormReLU3D(nn.Module):
  """Conv3D -> InstanceNorm -> ReLU, the unit of CycleGAN's ResNet generator."""
  features: int
  kernel_size: Any = (3, 3, 3)
  strides: Any = (1, 1, 1)
  padding: Any = 1
  pad_mode: str = "zero"             # "zero" | "reflect" | "edge"
  impl: str = "auto"                 # Conv3D implementation
  dtype: Any = None                  # computation dtype; None: the input's

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = Conv3D(self.features, self.kernel_size, self.strides, self.padding, self.pad_mode,
               impl=self.impl, dtype=self.dtype, name="conv")(x)
    return nn.relu(InstanceNorm(dtype=self.dtype, name="norm")(x))


class ResBlock3D(nn.Module):
  """Residual block of CycleGAN (Zhu et al. 2017) with 3D convolutions, without dropout.

  x + IN(conv(pad(ReLU(IN(conv(pad(x))))))), spatial kernel 3, temporal kernel
  `temporal_kernel` (odd), padding by `pad_mode` ("reflect" in CycleGAN).
  """
  temporal_kernel: int = 3
  pad_mode: str = "reflect"
  impl: str = "auto"
  dtype: Any = None                  # computation dtype; None: the input's

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features = x.shape[-1]
    kt = self.temporal_kernel
    ks, pad = (kt, 3, 3), (kt // 2, 1, 1)
    y = ConvNormReLU3D(features, ks, 1, pad, self.pad_mode, self.impl, self.dtype, name="conv1")(x)
    y = Conv3D(features, ks, 1, pad, self.pad_mode, impl=self.impl, dtype=self.dtype, name="conv2")(y)
    y = InstanceNorm(dtype=self.dtype, name="norm2")(y)
    return x.astype(y.dtype) + y
