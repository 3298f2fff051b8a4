"""Input handling shared by the per-image metrics: shapes, masks, leading batch axes."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def prepare(a, b, mask, *, name: str, min_size: int = 1,
            data_range: float | None = None) -> tuple[jax.Array, jax.Array, tuple[int, ...]]:
  """Float32 images [N, H, W, C] (masked if `mask` is given) and the leading batch shape.

  a, b: images [..., H, W, C] of equal shape. mask: None, or {0, 1} values broadcastable to
  [..., H, W, C] (e.g. [..., H, W, 1] or [..., H, W]); both images are multiplied by it.
  data_range: when given and the images are concrete (not traced inside `jit`), their values
    must be finite and span at most 1.5 x data_range (slack for unclipped predictions).
  """
  a, b = jnp.asarray(a), jnp.asarray(b)
  if a.shape != b.shape:
    raise ValueError(f"{name}: image shapes differ: {a.shape} vs {b.shape}")
  if a.ndim < 3:
    raise ValueError(f"{name}: expected images [..., H, W, C], got shape {a.shape}")
  if not (jnp.issubdtype(a.dtype, jnp.floating) and jnp.issubdtype(b.dtype, jnp.floating)):
    raise ValueError(f"{name}: expected floating point images, got {a.dtype} and {b.dtype}; "
                     "convert uint8 frames to float (and pass data_range=255.0 to keep [0, 255])")
  if min(a.shape[-3:-1]) < min_size:
    raise ValueError(f"{name}: images are {a.shape[-3]}x{a.shape[-2]}, need at least {min_size}x{min_size}")
  a, b = a.astype(jnp.float32), b.astype(jnp.float32)
  if data_range is not None:
    check_values(a, b, data_range=data_range, name=name)
  if mask is not None:
    mask = _broadcast_mask(jnp.asarray(mask, jnp.float32), a.shape, name)
    a, b = a * mask, b * mask
  lead = a.shape[:-3]
  return a.reshape((-1,) + a.shape[-3:]), b.reshape((-1,) + b.shape[-3:]), lead


def _broadcast_mask(mask: jax.Array, shape: tuple[int, ...], name: str) -> jax.Array:
  if mask.ndim == len(shape) - 1 and mask.shape == shape[:-1]:
    mask = mask[..., None]
  try:
    return jnp.broadcast_to(mask, shape)
  except ValueError:
    raise ValueError(f"{name}: mask shape {mask.shape} does not broadcast to images {shape}") from None


def check_range(data_range: float, name: str) -> None:
  if not data_range > 0:
    raise ValueError(f"{name}: data_range must be > 0 (2.0 for [-1, 1] images, 255.0 for [0, 255]), got {data_range}")


def check_values(a, b, *, data_range: float, name: str) -> None:
  """One-line error for non-finite values or values far outside `data_range` (concrete inputs).

  Inside `jit` the values are unknown and nothing is checked.
  """
  if isinstance(a, jax.core.Tracer) or isinstance(b, jax.core.Tracer):
    return
  lo, hi = float(jnp.minimum(a.min(), b.min())), float(jnp.maximum(a.max(), b.max()))
  if not (jnp.isfinite(lo) and jnp.isfinite(hi)):
    raise ValueError(f"{name}: images contain NaN or Inf values")
  if hi - lo > 1.5 * data_range:
    raise ValueError(f"{name}: image values span [{lo:g}, {hi:g}], more than data_range={data_range:g} "
                     "allows; pass [-1, 1] images (data_range=2.0) or the range they use "
                     "(e.g. data_range=255.0 for [0, 255])")
