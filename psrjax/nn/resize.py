"""Resampling of images `[..., H, W, C]` with the conventions of the GAN papers' PyTorch code."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def _nearest_index(size_in: int, size_out: int) -> np.ndarray:
  """PyTorch's legacy nearest source index floor(i * in / out), computed in float32 as PyTorch."""
  scale = np.float32(size_in) / np.float32(size_out)
  index = np.floor(np.arange(size_out, dtype=np.float32) * scale).astype(np.int64)
  return np.minimum(index, size_in - 1)


def resize_nearest(x: jax.Array, size: Sequence[int]) -> jax.Array:
  """`F.interpolate(x, size, mode="nearest")` on `x` `[..., H, W, C]` -> `[..., *size, C]`.

  PyTorch's "nearest" takes source pixel floor(i * in / out) (no half-pixel offset), which is how
  SPADE and pix2pixHD resize label maps; `jax.image.resize(..., "nearest")` samples pixel centres
  instead and differs from it when downsampling or at non-integer ratios.
  """
  if x.ndim < 3 or len(size) != 2 or min(size) < 1:
    raise ValueError(f"resize_nearest expects x [..., H, W, C] and size (H', W') >= 1; "
                     f"got {x.shape} and {tuple(size)}")
  h, w = x.shape[-3:-1]
  if (h, w) == tuple(size):
    return x
  return _nearest_axis(_nearest_axis(x, size[0], -3), size[1], -2)


def _nearest_axis(x: jax.Array, size_out: int, axis: int) -> jax.Array:
  """`x` resized to `size_out` along `axis` by PyTorch's nearest index. Whole-number factors
  are a repeat or a strided slice (their gradients a window sum and a strided pad, where a
  gather's is a scatter-add: several times slower on XLA:CPU); other ratios gather."""
  size_in = x.shape[axis]
  index = _nearest_index(size_in, size_out)
  if size_out == size_in:
    return x
  factor = size_out // size_in
  if size_out % size_in == 0 and np.array_equal(index, np.arange(size_out) // factor):
    axis = axis % x.ndim
    shape = x.shape[:axis + 1] + (factor,) + x.shape[axis + 1:]
    repeated = jnp.broadcast_to(jnp.expand_dims(x, axis + 1), shape)
    return repeated.reshape(x.shape[:axis] + (size_out,) + x.shape[axis + 1:])
  step = size_in // size_out
  if size_in % size_out == 0 and np.array_equal(index, np.arange(size_out) * step):
    return jax.lax.slice_in_dim(x, 0, size_in, step, axis=axis)
  return jnp.take(x, index, axis=axis)


def downsample_avg(x: jax.Array) -> jax.Array:
  """pix2pixHD's image pyramid step: `AvgPool2d(3, stride=2, padding=1, count_include_pad=False)`
  on `x` `[N, H, W, C]`: the mean of the 3x3 window's pixels that lie inside the image, at
  (H - 1) // 2 + 1 by (W - 1) // 2 + 1 positions."""
  if x.ndim != 4:
    raise ValueError(f"downsample_avg expects images [N, H, W, C]; got shape {x.shape}")
  y = nn.avg_pool(x.astype(jnp.float32), (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                  count_include_pad=False)
  return y.astype(x.dtype)
