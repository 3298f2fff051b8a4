"""Padding helpers for videos laid out `[..., T, H, W, C]`."""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

PAD_MODES = ("zero", "reflect", "edge")

Pairs = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


def pad_pairs(padding: int | Sequence[int] | Sequence[Sequence[int]]) -> Pairs:
  """Normalises `padding` to ((t0, t1), (h0, h1), (w0, w1)).

  Accepts one int (same on every side), three ints (symmetric per axis) or three (lo, hi) pairs.
  """
  if isinstance(padding, int):
    return ((padding, padding),) * 3
  padding = tuple(padding)
  if len(padding) != 3:
    raise ValueError(f"padding must be an int, 3 ints or 3 (lo, hi) pairs for (T, H, W); got {padding!r}")
  pairs = []
  for p in padding:
    if isinstance(p, int):
      pairs.append((p, p))
    else:
      lo, hi = p
      pairs.append((int(lo), int(hi)))
  return tuple(pairs)  # type: ignore[return-value]


def pad_video(x: jax.Array, padding, mode: str = "zero") -> jax.Array:
  """Pads the T, H, W axes (-4, -3, -2) of `x` `[..., T, H, W, C]`.

  mode: "zero" (constant 0), "reflect" (mirror without repeating the edge, like PyTorch's
  ReflectionPad; pads wider than the axis reflect repeatedly) or "edge" (replicate).
  """
  if mode not in PAD_MODES:
    raise ValueError(f"pad mode must be one of {PAD_MODES}; got {mode!r}")
  if x.ndim < 4:
    raise ValueError(f"pad_video expects [..., T, H, W, C]; got shape {x.shape}")
  pairs = pad_pairs(padding)
  if all(lo == 0 and hi == 0 for lo, hi in pairs):
    return x
  widths = [(0, 0)] * (x.ndim - 4) + list(pairs) + [(0, 0)]
  np_mode = {"zero": "constant", "reflect": "reflect", "edge": "edge"}[mode]
  return jnp.pad(x, widths, mode=np_mode)
