"""Normalisation layers for videos `[..., T, H, W, C]` (statistics always in float32)."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from psrjax.nn.policy import compute_dtype


def _normalise(x: jax.Array, axes: tuple[int, ...], eps: float) -> jax.Array:
  x32 = x.astype(jnp.float32)
  mean = jnp.mean(x32, axis=axes, keepdims=True)
  var = jnp.mean(jnp.square(x32 - mean), axis=axes, keepdims=True)  # biased, as PyTorch
  return (x32 - mean) * jax.lax.rsqrt(var + eps)


class InstanceNorm(nn.Module):
  """Instance normalisation over (T, H, W) per example and channel (PyTorch `InstanceNorm3d`).

  CycleGAN's ResNet generator uses it without affine parameters (the default here).
  """
  epsilon: float = 1e-5
  use_scale: bool = False            # learnable per-channel scale (PyTorch affine=True)
  use_bias: bool = False             # learnable per-channel shift (PyTorch affine=True)
  dtype: Any = None                  # output dtype; None: the input's

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if x.ndim < 5:
      raise ValueError(f"InstanceNorm expects [..., T, H, W, C] with a batch axis; got {x.shape}")
    y = _normalise(x, (-4, -3, -2), self.epsilon)
    return _affine(self, y, x.shape[-1]).astype(compute_dtype(self.dtype, x))


class BatchStatNorm(nn.Module):
  """Train-mode batch normalisation without running statistics.

  Normalises with the statistics of the current batch over every axis but the channel axis
  (PyTorch `BatchNorm3d` in train mode), then applies a learnable scale (init 1) and shift
  (init 0). It is stateless: evaluation also uses batch statistics, which suits discriminators
  that are only ever run inside a training step. Under `jit` with a batch sharded over devices the
  mean is the global-batch mean (synchronised batch norm).
  """
  epsilon: float = 1e-5
  use_scale: bool = True
  use_bias: bool = True
  dtype: Any = None                  # output dtype; None: the input's

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = _normalise(x, tuple(range(x.ndim - 1)), self.epsilon)
    return _affine(self, y, x.shape[-1]).astype(compute_dtype(self.dtype, x))


def _affine(module: nn.Module, y: jax.Array, features: int) -> jax.Array:
  if module.use_scale:
    y = y * module.param("scale", nn.initializers.ones, (features,), jnp.float32)
  if module.use_bias:
    y = y + module.param("bias", nn.initializers.zeros, (features,), jnp.float32)
  return y
