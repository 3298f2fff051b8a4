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
  x = jnp.take(x, _nearest_index(h, size[0]), axis=-3)
  return jnp.take(x, _nearest_index(w, size[1]), axis=-2)


def downsample_avg(x: jax.Array) -> jax.Array:
  """pix2pixHD's image pyramid step: `AvgPool2d(3, stride=2, padding=1, count_include_pad=False)`
  on `x` `[N, H, W, C]`: the mean of the 3x3 window's pixels that lie inside the image, at
  (H - 1) // 2 + 1 by (W - 1) // 2 + 1 positions."""
  if x.ndim != 4:
    raise ValueError(f"downsample_avg expects images [N, H, W, C]; got shape {x.shape}")
  y = nn.avg_pool(x.astype(jnp.float32), (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                  count_include_pad=False)
  return y.astype(x.dtype)
