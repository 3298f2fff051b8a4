"""2D convolutions on images `[..., H, W, C]`, with the implementation switch of `psrjax.nn.conv`.

Kernels are stored `[kh, kw, cin, cout]` (the layout of Flax's `nn.Conv`, so a module built from
`nn.Conv` keeps its parameter tree; a PyTorch `Conv2d` weight transposed by (2, 3, 1, 0), a
`ConvTranspose2d` weight by (2, 3, 0, 1)). `impl` is resolved as for 3D convolutions
(`psrjax.nn.conv` docstring): "xla" is `lax.conv_general_dilated` (GPU, TPU); on the CPU backend
"auto" is oneDNN's 2D convolution where `psrjax.nn.cpu.onednn.usable`, else "fold_time", which
for an image is the 3D path with one frame: XLA's forward pass with the kernel gradient by matrix
products (`psrjax.nn.cpu.conv_cpu`). All are mathematically identical.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from psrjax.nn import spectral
from psrjax.nn.conv import _cpu, _phase_table, _resolve_impl, default_kernel_init
from psrjax.nn.padding import pad_image, pad_pairs
from psrjax.nn.policy import compute_dtype

SAME = "same"


def _pair(v: int | Sequence[int], name: str) -> tuple[int, int]:
  if isinstance(v, int):
    return (v, v)
  v = tuple(int(a) for a in v)
  if len(v) != 2:
    raise ValueError(f"{name} must be an int or 2 ints for (H, W); got {v!r}")
  return v  # type: ignore[return-value]


def same_pads(size: Sequence[int], kernel: Sequence[int], strides: Sequence[int]):
  """XLA's / TensorFlow's "SAME" padding (Flax `nn.Conv`'s default): ceil(n / s) outputs, the
  odd pixel of padding at the end (for stride 2 on an even size: (0, 1), not PyTorch's (1, 1))."""
  pairs = []
  for n, k, s in zip(size, kernel, strides):
    total = max((-(-n // s) - 1) * s + k - n, 0)
    pairs.append((total // 2, total - total // 2))
  return tuple(pairs)


def conv2d(x: jax.Array, kernel: jax.Array, *, strides=1, padding=0,
           impl: str = "auto") -> jax.Array:
  """Cross-correlates `x` `[N, H, W, Cin]` with `kernel` `[kh, kw, Cin, Cout]`.

  padding: zero padding (int, 2 ints or 2 (lo, hi) pairs; negative values crop).
  impl: "auto" | "xla" | "fold_time" | "onednn" (module docstring).
  """
  if x.ndim != 4 or kernel.ndim != 4:
    raise ValueError(f"conv2d expects x [N, H, W, C] and kernel [kh, kw, Cin, Cout]; "
                     f"got {x.shape} and {kernel.shape}")
  if x.shape[-1] != kernel.shape[2]:
    raise ValueError(f"conv2d: input has {x.shape[-1]} channels but the kernel expects "
                     f"{kernel.shape[2]}")
  strides, pads = _pair(strides, "strides"), pad_pairs(padding, 2)
  impl = _resolve_impl(impl, x, kernel)
  if impl == "xla":
    return lax.conv_general_dilated(x, kernel, strides, pads,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))
  if impl == "onednn":
    crops = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for n, (lo, hi) in zip(x.shape[1:3], pads))
    x = x[(slice(None),) + crops]
    return _cpu().onednn.conv(x, kernel, strides, tuple((max(lo, 0), max(hi, 0)) for lo, hi in pads))
  y = _cpu().conv3d(x[:, None], kernel[None], (1,) + strides, ((0, 0),) + pads, impl)
  return y[:, 0]


def conv_transpose2d(x: jax.Array, kernel: jax.Array, *, strides=2, padding=1, output_padding=1,
                     impl: str = "auto") -> jax.Array:
  """PyTorch `ConvTranspose2d` on `x` `[N, H, W, Cin]`, kernel `[kh, kw, Cin, Cout]`.

  Output size per axis: (n - 1) * stride - 2 * padding + kernel + output_padding. As
  `conv_transpose3d`: one oneDNN deconvolution where `impl` resolves to "onednn" (and padding >=
  output_padding), else a sub-pixel decomposition: one ordinary `conv2d` whose kernel holds every
  output phase (stride_h * stride_w * Cout channels), then depth-to-space.
  """
  if x.ndim != 4 or kernel.ndim != 4:
    raise ValueError(f"conv_transpose2d expects x [N, H, W, C] and kernel [kh, kw, Cin, Cout]; "
                     f"got {x.shape} and {kernel.shape}")
  st, p, op = (_pair(v, name) for v, name in
               ((strides, "strides"), (padding, "padding"), (output_padding, "output_padding")))
  if _resolve_impl(impl, x, kernel) == "onednn" and all(a >= b for a, b in zip(p, op)):
    return _cpu().onednn.conv_transpose(x, kernel, st, tuple((a, a - b) for a, b in zip(p, op)))
  (th, *rest_h), (tw, *rest_w) = [_phase_table(n, k, s, pi, o) for n, k, s, pi, o
                                  in zip(x.shape[1:3], kernel.shape[:2], st, p, op)]
  big = kernel[np.ix_(np.maximum(th, 0).reshape(-1), np.maximum(tw, 0).reshape(-1))]
  big = big.reshape(th.shape + tw.shape + kernel.shape[2:])             # [Dh, sh, Dw, sw, Ci, Co]
  valid = (th >= 0)[:, :, None, None] & (tw >= 0)[None, None]
  big = jnp.where(valid[..., None, None], big, jnp.zeros((), big.dtype))
  big = jnp.transpose(big, (0, 2, 4, 1, 3, 5)).reshape(th.shape[0], tw.shape[0], kernel.shape[2], -1)
  y = conv2d(x, big, padding=(tuple(rest_h[:2]), tuple(rest_w[:2])), impl=impl)
  n, qh, qw = y.shape[:3]
  y = y.reshape(n, qh, qw, st[0], st[1], kernel.shape[3])
  y = jnp.transpose(y, (0, 1, 3, 2, 4, 5)).reshape(n, qh * st[0], qw * st[1], -1)
  return y[:, :rest_h[3], :rest_w[3]]


def _flatten_batch(x: jax.Array, name: str) -> tuple[jax.Array, tuple[int, ...]]:
  if x.ndim < 4:
    raise ValueError(f"{name} expects images [..., H, W, C] with at least one batch axis; "
                     f"got shape {x.shape}")
  lead = x.shape[:-3]
  return x.reshape((math.prod(lead),) + x.shape[-3:]), lead


class Conv2D(nn.Module):
  """2D convolution on `[..., H, W, C]` (leading axes are batch), PyTorch `Conv2d` semantics.

  Parameters `kernel` `[kh, kw, cin, cout]` and `bias` `[cout]` (float32), named as `nn.Conv`'s;
  with `spectral` also the power-iteration vector `sn_u` `[cout]`, and the layer convolves with
  the spectrally normalised kernel (`psrjax.nn.spectral`).
  """
  features: int                      # output channels
  kernel_size: Any = (3, 3)          # (kh, kw) or one int
  strides: Any = 1                   # (sh, sw) or one int
  padding: Any = 0                   # int, 2 ints, 2 (lo, hi) pairs or "same" (`same_pads`)
  pad_mode: str = "zero"             # "zero" | "reflect" | "edge" (replicate)
  use_bias: bool = True
  impl: str = "auto"                 # "auto" | "xla" | "fold_time" | "onednn" (module docstring)
  dtype: Any = None                  # computation dtype; None: the input's (parameters float32)
  kernel_init: Callable = default_kernel_init   # N(0, 0.02) as pix2pix / pix2pixHD
  spectral: bool = False             # spectral normalisation of the kernel (psrjax.nn.spectral)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x, lead = _flatten_batch(x, "Conv2D")
    dtype = compute_dtype(self.dtype, x)
    ks, st = _pair(self.kernel_size, "kernel_size"), _pair(self.strides, "strides")
    kernel = self.param("kernel", self.kernel_init, ks + (x.shape[-1], self.features), jnp.float32)
    if self.spectral:
      u = self.param(spectral.SN_PARAM, spectral.init_u, (self.features,), jnp.float32)
      kernel = spectral.normalize_kernel(kernel, u)
    pads = self.padding
    if isinstance(pads, str):
      if pads.lower() != SAME:
        raise ValueError(f"Conv2D padding must be an int, 2 ints, 2 (lo, hi) pairs or 'same'; "
                         f"got {pads!r}")
      pads = same_pads(x.shape[1:3], ks, st)
    x, kernel = x.astype(dtype), kernel.astype(dtype)
    if self.pad_mode != "zero":
      x, pads = pad_image(x, pads, self.pad_mode), 0
    y = conv2d(x, kernel, strides=st, padding=pads, impl=self.impl)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32).astype(dtype)
    return y.reshape(lead + y.shape[1:])


class Conv2DParams(nn.Module):
  """The parameters of a `Conv2D` (`kernel` `[kh, kw, cin, features]`, `bias`; same names,
  shapes and initialisers) without the convolution: `__call__(cin)` -> (kernel, bias).
  For convolutions of one input that run as one (`parallel_conv2d`) while keeping the parameter
  trees of separate layers."""
  features: int
  kernel_size: Any = (3, 3)
  kernel_init: Callable = default_kernel_init

  @nn.compact
  def __call__(self, in_features: int) -> tuple[jax.Array, jax.Array]:
    ks = _pair(self.kernel_size, "kernel_size")
    kernel = self.param("kernel", self.kernel_init, ks + (in_features, self.features), jnp.float32)
    return kernel, self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)


def parallel_conv2d(x: jax.Array, layers: Sequence[tuple[jax.Array, jax.Array]], *,
                    padding, pad_mode: str = "zero", impl: str = "auto",
                    dtype=None) -> list[jax.Array]:
  """The outputs of several stride-1 convolutions (kernel, bias) of ONE input `x`
  `[N, H, W, C]` with the same kernel size, as one convolution: the input padded once, the
  kernels concatenated on their output channels (equal to separate `Conv2D`s up to the
  convolution's summation order; fewer, wider operations on an accelerator)."""
  dtype = compute_dtype(dtype, x)
  kernel = jnp.concatenate([k for k, _ in layers], axis=-1).astype(dtype)
  bias = jnp.concatenate([b for _, b in layers]).astype(dtype)
  x = x.astype(dtype)
  if pad_mode != "zero":
    x, padding = pad_image(x, padding, pad_mode), 0
  y = conv2d(x, kernel, padding=padding, impl=impl) + bias
  splits = np.cumsum([k.shape[-1] for k, _ in layers])[:-1]
  return jnp.split(y, splits, axis=-1)


class ConvTranspose2D(nn.Module):
  """Transposed 2D convolution with PyTorch `ConvTranspose2d` semantics (`conv_transpose2d`).

  Defaults are pix2pixHD's upsampling layer (kernel 3, stride 2, padding 1, output_padding 1:
  exactly doubles H and W). The kernel is stored `[kh, kw, cin, cout]`.
  """
  features: int                      # output channels
  kernel_size: Any = (3, 3)
  strides: Any = 2
  padding: Any = 1                   # PyTorch `padding` (int or 2 ints)
  output_padding: Any = 1            # PyTorch `output_padding` (int or 2 ints)
  use_bias: bool = True
  impl: str = "auto"                 # as Conv2D's
  dtype: Any = None                  # computation dtype; None: the input's (parameters float32)
  kernel_init: Callable = default_kernel_init

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x, lead = _flatten_batch(x, "ConvTranspose2D")
    dtype = compute_dtype(self.dtype, x)
    ks = _pair(self.kernel_size, "kernel_size")
    kernel = self.param("kernel", self.kernel_init, ks + (x.shape[-1], self.features), jnp.float32)
    y = conv_transpose2d(x.astype(dtype), kernel.astype(dtype), strides=self.strides,
                         padding=self.padding, output_padding=self.output_padding, impl=self.impl)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32).astype(dtype)
    return y.reshape(lead + y.shape[1:])
