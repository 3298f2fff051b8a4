"""Input handling shared by the per-image metrics: shapes, masks, leading batch axes."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def prepare(a, b, mask, *, name: str, min_size: int = 1, data_range: float | None = None,
            value_range: tuple[float, float] | None = None
            ) -> tuple[jax.Array, jax.Array, tuple[int, ...]]:
  """Float32 images [N, H, W, C] (masked if `mask` is given) and the leading batch shape.

  a, b: images [..., H, W, C] of equal shape. mask: None, or {0, 1} values broadcastable to
  [..., H, W, C] (e.g. [..., H, W, 1] or [..., H, W]); both images are multiplied by it.
  data_range: when given and the images are concrete (not traced inside `jit`), their values
    must be finite and span at most 1.5 x data_range (slack for unclipped predictions).
  value_range: (lo, hi). When given, the images are mapped to [0, 1] by (x - lo) / (hi - lo)
    BEFORE the mask is applied (so masked-out pixels are 0, black); concrete images must be
    finite and lie within [lo, hi] widened by a quarter of its width on each side.
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
  if value_range is not None:
    lo, hi = check_value_range(value_range, name)
    check_within(a, b, value_range=(lo, hi), name=name)
    a, b = (a - lo) / (hi - lo), (b - lo) / (hi - lo)
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


def check_value_range(value_range, name: str) -> tuple[float, float]:
  """(lo, hi) as Python floats; one-line error unless value_range is a pair with lo < hi."""
  try:
    lo, hi = (float(v) for v in value_range)
  except (TypeError, ValueError):
    raise ValueError(f"{name}: value_range must be a pair (lo, hi) of numbers, e.g. (-1.0, 1.0) "
                     f"for the batch contract's images or (0.0, 255.0), got {value_range!r}") from None
  if not lo < hi:
    raise ValueError(f"{name}: value_range must have lo < hi (e.g. (-1.0, 1.0)), got {value_range!r}")
  return lo, hi


def _extent(a, b, name: str) -> tuple[float, float] | None:
  """(min, max) over both concrete images, None inside `jit`; one-line error for NaN / Inf."""
  if isinstance(a, jax.core.Tracer) or isinstance(b, jax.core.Tracer):
    return None
  lo, hi = float(jnp.minimum(a.min(), b.min())), float(jnp.maximum(a.max(), b.max()))
  if not (jnp.isfinite(lo) and jnp.isfinite(hi)):
    raise ValueError(f"{name}: images contain NaN or Inf values")
  return lo, hi


def check_within(a, b, *, value_range: tuple[float, float], name: str) -> None:
  """One-line error for concrete images outside `value_range` widened by 25% of its width on each
  side (slack for unclipped predictions). Inside `jit` nothing is checked."""
  extent = _extent(a, b, name)
  if extent is None:
    return
  (lo, hi), (vlo, vhi) = extent, value_range
  slack = 0.25 * (vhi - vlo)
  if lo < vlo - slack or hi > vhi + slack:
    raise ValueError(f"{name}: image values span [{lo:g}, {hi:g}], outside value_range=({vlo:g}, {vhi:g}); "
                     "pass the range the images use (e.g. value_range=(0.0, 255.0) for [0, 255])")


def check_values(a, b, *, data_range: float, name: str) -> None:
  """One-line error for non-finite values or values far outside `data_range` (concrete inputs).

  Inside `jit` the values are unknown and nothing is checked.
  """
  extent = _extent(a, b, name)
  if extent is None:
    return
  lo, hi = extent
  if hi - lo > 1.5 * data_range:
    raise ValueError(f"{name}: image values span [{lo:g}, {hi:g}], more than data_range={data_range:g} "
                     "allows; pass [-1, 1] images (data_range=2.0) or the range they use "
                     "(e.g. data_range=255.0 for [0, 255])")
