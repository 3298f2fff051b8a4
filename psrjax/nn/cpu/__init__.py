"""Implementations of 3D convolution for XLA:CPU, whose native 3D convolution is a slow generic
loop (and whose 2D kernels are 1.3-20x slower than oneDNN's on x86).

`psrjax.nn.conv` imports this package only when a convolution resolves to one of these
implementations (impl "auto" on the CPU backend, or "fold_time" / "onednn" named explicitly),
never on GPU/TPU with "auto" or "xla":

- `fold_time`: impl "fold_time", 3D convolution as one XLA 2D convolution with the temporal
  taps stacked on channels (pure JAX, runs on any backend).
- `conv_cpu`: the 2D convolution "fold_time" uses, with its kernel gradient computed by matrix
  products.
- `onednn`: impl "onednn", oneDNN's convolutions through XLA's FFI (CPU backend only), from the
  C++ extension `psrjax.nn.cpu._onednn_conv` that setup.py builds from `onednn_conv.cc` and
  `narrow_conv.cc` / `narrow_conv.h` (psrjax's kernels for convolutions with 1-4 outputs).
"""
from __future__ import annotations

import jax

from psrjax.nn.cpu import fold_time, onednn

__all__ = ["conv3d", "fold_time", "onednn", "resolve_impl"]


def resolve_impl(impl: str, x: jax.Array, kernel: jax.Array) -> str:
  """"onednn" or "fold_time" for impl "auto", "fold_time" or "onednn".

  "auto" is "onednn" where `onednn.usable(x, kernel)`, else "fold_time". "onednn" raises
  ValueError where it is not usable.
  """
  if impl == "auto":
    return "onednn" if onednn.usable(x, kernel) else "fold_time"
  if impl == "onednn" and not onednn.usable(x, kernel):
    raise ValueError(f"conv impl 'onednn' needs the CPU backend, float32 or bfloat16 operands "
                     f"(got {x.dtype}, {kernel.dtype}) and psrjax's oneDNN extension "
                     f"(available: {onednn.available()}); use impl 'auto'")
  if impl not in ("fold_time", "onednn"):
    raise ValueError(f"not a CPU conv impl: {impl!r}")
  return impl


def conv3d(x: jax.Array, kernel: jax.Array, strides, pads, impl: str) -> jax.Array:
  """`psrjax.nn.conv.conv3d` by impl "fold_time" or "onednn" (resolved): `x` `[N, T, H, W, Cin]`,
  `kernel` `[kt, kh, kw, Cin, Cout]`, `strides` 3 ints, `pads` 3 (lo, hi) pairs (negative: crop)."""
  if impl == "onednn":
    return _onednn_conv3d(x, kernel, strides, pads)
  if impl == "fold_time":
    return fold_time.conv3d(x, kernel, strides, pads)
  raise ValueError(f"not a resolved CPU conv impl: {impl!r}")


def _onednn_conv3d(x, kernel, strides, pads):
  """oneDNN's 3D convolution; negative pads (crops) are applied first, as slices."""
  crops = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for n, (lo, hi) in zip(x.shape[1:4], pads))
  x = x[(slice(None),) + crops]
  return onednn.conv(x, kernel, strides, tuple((max(lo, 0), max(hi, 0)) for lo, hi in pads))
