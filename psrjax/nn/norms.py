"""Normalisation layers for images `[..., H, W, C]` and videos `[..., T, H, W, C]`.

Statistics are always computed in float32; outputs are in the compute dtype (`dtype`, else the
input's). `InstanceNorm` (videos) and `InstanceNorm2D` (images) are PyTorch's InstanceNorm3d /
InstanceNorm2d; `BatchStatNorm` works on either; `positional_norm` is PONO (Li et al. 2019).
SPADE, whose modulation is learned from a label map, is in `psrjax.nn.spade`.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from psrjax.nn.policy import compute_dtype


def normalise(x: jax.Array, axes: tuple[int, ...], eps: float) -> jax.Array:
  """(x - mean) / sqrt(var + eps) over `axes` (biased variance, as PyTorch), float32.

  The statistics are broadcast back with `broadcast_in_dim` rather than kept as size-1 axes:
  the HLO then holds no reshape next to the statistics that XLA's simplifier could move one way
  when their only use is the forward and another way under differentiation, so two applications
  of a layer to the same input (a discriminator read by two phases of a step) stay identical
  and XLA's common-subexpression pass computes them once.
  """
  x32 = x.astype(jnp.float32)
  axes = tuple(sorted(a % x.ndim for a in axes))
  kept = tuple(d for d in range(x.ndim) if d not in axes)
  expand = lambda s: jax.lax.broadcast_in_dim(s, x.shape, kept)
  centred = x32 - expand(jnp.mean(x32, axis=axes))
  var = jnp.mean(jnp.square(centred), axis=axes)  # biased, as PyTorch
  return centred * expand(jax.lax.rsqrt(var + eps))


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
    y = normalise(x, (-4, -3, -2), self.epsilon)
    return _affine(self, y, x.shape[-1]).astype(compute_dtype(self.dtype, x))


class InstanceNorm2D(nn.Module):
  """Instance normalisation over (H, W) per image and channel (PyTorch `InstanceNorm2d`).

  pix2pixHD's `--norm instance` has no affine parameters (the default here); pix2pix's instance
  norm option and most SPADE-era generators use `use_scale=use_bias=True` (PyTorch affine=True).
  """
  epsilon: float = 1e-5
  use_scale: bool = False            # learnable per-channel scale (PyTorch affine=True)
  use_bias: bool = False             # learnable per-channel shift (PyTorch affine=True)
  dtype: Any = None                  # output dtype; None: the input's

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if x.ndim < 4:
      raise ValueError(f"InstanceNorm2D expects [..., H, W, C] with a batch axis; got {x.shape}")
    y = normalise(x, (-3, -2), self.epsilon)
    return _affine(self, y, x.shape[-1]).astype(compute_dtype(self.dtype, x))


def positional_norm(x: jax.Array, epsilon: float = 1e-5, *, unbiased: bool = False,
                    dtype: Any = None) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Positional normalisation, PONO (Li et al. 2019, Eq. 1): every position normalised across
  its channels, (x - mu) / sigma with mu = mean_c x and sigma = sqrt(var_c x + epsilon).

  Returns (normalised `[..., C]` in the compute dtype, mu and sigma `[..., 1]` float32): the
  moments are returned because PONO's moment shortcut and CoCosNet re-inject them downstream.
  The paper's variance is the biased 1/C mean (the default); the authors' code (and CoCosNet's)
  uses PyTorch's unbiased `var` (1/(C - 1)): `unbiased=True`.
  """
  if x.ndim < 2 or (unbiased and x.shape[-1] < 2):
    raise ValueError(f"positional_norm needs [..., C] with C >= {2 if unbiased else 1}; "
                     f"got shape {x.shape}")
  x32 = x.astype(jnp.float32)
  mean = jnp.mean(x32, axis=-1, keepdims=True)
  var = jnp.sum(jnp.square(x32 - mean), axis=-1, keepdims=True) / (x.shape[-1] - int(unbiased))
  std = jnp.sqrt(var + epsilon)
  return ((x32 - mean) / std).astype(compute_dtype(dtype, x)), mean, std


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
    y = normalise(x, tuple(range(x.ndim - 1)), self.epsilon)
    return _affine(self, y, x.shape[-1]).astype(compute_dtype(self.dtype, x))


def _affine(module: nn.Module, y: jax.Array, features: int) -> jax.Array:
  if module.use_scale:
    y = y * module.param("scale", nn.initializers.ones, (features,), jnp.float32)
  if module.use_bias:
    y = y + module.param("bias", nn.initializers.zeros, (features,), jnp.float32)
  return y
