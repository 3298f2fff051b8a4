"""Padding helpers for images `[..., H, W, C]` and videos `[..., T, H, W, C]`."""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

PAD_MODES = ("zero", "reflect", "edge")
_AXES = {2: "H, W", 3: "T, H, W"}

Pairs = tuple[tuple[int, int], ...]


def pad_pairs(padding: int | Sequence[int] | Sequence[Sequence[int]], ndim: int = 3) -> Pairs:
  """Normalises `padding` to `ndim` (lo, hi) pairs, e.g. ((t0, t1), (h0, h1), (w0, w1)).

  Accepts one int (same on every side), `ndim` ints (symmetric per axis) or `ndim` (lo, hi)
  pairs.
  """
  if isinstance(padding, int):
    return ((padding, padding),) * ndim
  padding = tuple(padding)
  if len(padding) != ndim:
    raise ValueError(f"padding must be an int, {ndim} ints or {ndim} (lo, hi) pairs for "
                     f"({_AXES[ndim]}); got {padding!r}")
  pairs = []
  for p in padding:
    if isinstance(p, int):
      pairs.append((p, p))
    else:
      lo, hi = p
      pairs.append((int(lo), int(hi)))
  return tuple(pairs)


def pad_spatial(x: jax.Array, padding, mode: str = "zero", ndim: int = 3) -> jax.Array:
  """Pads the `ndim` axes before the channel axis of `x` `[..., *spatial, C]`.

  mode: "zero" (constant 0), "reflect" (mirror without repeating the edge, like PyTorch's
  ReflectionPad; pads wider than the axis reflect repeatedly) or "edge" (replicate, PyTorch's
  ReplicationPad).
  """
  if ndim not in _AXES:
    raise ValueError(f"pad_spatial pads 2 (H, W) or 3 (T, H, W) axes; got ndim={ndim}")
  if mode not in PAD_MODES:
    raise ValueError(f"pad mode must be one of {PAD_MODES}; got {mode!r}")
  if x.ndim < ndim + 1:
    raise ValueError(f"padding expects [..., {_AXES[ndim]}, C]; got shape {x.shape}")
  pairs = pad_pairs(padding, ndim)
  if all(lo == 0 and hi == 0 for lo, hi in pairs):
    return x
  widths = [(0, 0)] * (x.ndim - ndim - 1) + list(pairs) + [(0, 0)]
  if mode == "reflect" and all(max(lo, hi) < n for (lo, hi), n in zip(widths, x.shape)):
    return _reflect(x, widths)
  np_mode = {"zero": "constant", "reflect": "reflect", "edge": "edge"}[mode]
  return jnp.pad(x, widths, mode=np_mode)


def _reflect(x: jax.Array, widths) -> jax.Array:
  """`jnp.pad(x, widths, mode="reflect")` for pads narrower than their axes: per padded axis
  ONE concatenation of the mirrored edge slices and `x`, a mirror only where a slice is wider
  than one row (jnp.pad concatenates twice per axis and flips every slice inside a nested
  program: a CoCosNet generator's hundreds of reflection pads made a quarter of its train
  step's operations)."""
  for axis, (lo, hi) in enumerate(widths):
    if not lo and not hi:
      continue
    n = x.shape[axis]
    mirror = lambda s: jax.lax.rev(s, (axis,)) if s.shape[axis] > 1 else s
    parts = [mirror(jax.lax.slice_in_dim(x, 1, lo + 1, axis=axis))] if lo else []
    parts.append(x)
    if hi:
      parts.append(mirror(jax.lax.slice_in_dim(x, n - 1 - hi, n - 1, axis=axis)))
    x = jax.lax.concatenate(parts, axis)
  return x


def pad_video(x: jax.Array, padding, mode: str = "zero") -> jax.Array:
  """Pads the T, H, W axes (-4, -3, -2) of `x` `[..., T, H, W, C]` (see `pad_spatial`)."""
  return pad_spatial(x, padding, mode, ndim=3)


def pad_image(x: jax.Array, padding, mode: str = "zero") -> jax.Array:
  """Pads the H, W axes (-3, -2) of `x` `[..., H, W, C]` (see `pad_spatial`)."""
  return pad_spatial(x, padding, mode, ndim=2)
