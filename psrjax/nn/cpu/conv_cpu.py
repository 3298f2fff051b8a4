"""A 2D NHWC convolution whose kernel gradient is computed by matrix products (for XLA:CPU):
the 2D convolution of conv impl "fold_time" (`psrjax.nn.cpu.fold_time`).

XLA:CPU computes a convolution's kernel gradient as a convolution with the batch and spatial
axes contracted, which its convolution kernels run 2-5x slower than its matrix products (and
about 4x slower than PyTorch's oneDNN). `conv2d` keeps XLA's own forward pass and input
gradient and computes dL/dW as one of:

- "rows": for each kernel row i, the kw shifted windows of the padded input stacked on
  channels, `[B*Ho*Wo, kw*Cin]`, times the output gradient `[B*Ho*Wo, Cout]` (any stride);
- "shift_out": stride 1 only, the output gradient shifted by every tap (i, j) and stacked on
  channels, `[B*Hp*Wp, kh*kw*Cout]`, times the padded input `[B*Hp*Wp, Cin]`: one product,
  narrow when Cout is small (an RGB output layer);
- "xla": XLA's own, for inputs with few channels (an RGB or depth stem), where neither pays.

`kernel_grad_form` picks the form with the narrower stacked operand among those that fit. Measured per layer at
PSR-Net's paper shapes (8 frames of 112², 2 cores): 1.7-5x faster than XLA's kernel gradient.
The stacked operands are built only once the output gradient exists (an optimization barrier
over both), so they are transient rather than held from the forward pass.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")
MIN_INPUT_CHANNELS = 32        # fewer (an RGB or depth stem): XLA's own kernel gradient is faster
MAX_STACKED_BYTES = 768 << 20  # larger stacked operands: XLA's own (bounded transient memory)


def _xla_conv(x, kernel, strides, pads):
  return lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=DIMENSION_NUMBERS)


def _pad(x, pads):
  zero = jnp.zeros((), x.dtype)
  return lax.pad(x, zero, [(0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)])


def _contract_rows(a, b):
  """a [M, P], b [M, Q] -> a^T b [P, Q]."""
  return lax.dot_general(a, b, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)


def kernel_grad_form(x_shape, kernel_shape, out_shape, strides, pads, itemsize: int = 4) -> str:
  """"rows" | "shift_out" | "xla" for this convolution (see the module docstring).

  x_shape `[B, H, W, Cin]`, kernel_shape `[kh, kw, Cin, Cout]`, out_shape `[Ho, Wo, Cout]`.
  """
  kh, kw, cin, cout = kernel_shape
  rows = (kw * cin, x_shape[0] * out_shape[0] * out_shape[1] * kw * cin)
  padded = x_shape[0] * (x_shape[1] + sum(pads[0])) * (x_shape[2] + sum(pads[1]))
  shift = (kh * kw * cout, padded * kh * kw * cout)
  candidates = [c for c in [rows] + ([shift] if tuple(strides) == (1, 1) else [])
                if c[1] * itemsize <= MAX_STACKED_BYTES]
  if cin < MIN_INPUT_CHANNELS or not candidates:
    return "xla"
  return "shift_out" if min(candidates) == shift else "rows"


def _kernel_grad_rows(xp, g, kernel_shape, strides):
  kh, kw, cin, cout = kernel_shape
  (sh, sw), (ho, wo) = strides, g.shape[1:3]
  g2 = g.reshape(-1, cout)
  per_row = []
  for i in range(kh):
    windows = [xp[:, i: i + sh * (ho - 1) + 1: sh, j: j + sw * (wo - 1) + 1: sw]
               for j in range(kw)]
    stacked = jnp.concatenate(windows, axis=-1).reshape(-1, kw * cin)
    per_row.append(_contract_rows(stacked, g2).reshape(kw, cin, cout))
  return jnp.stack(per_row)


def _kernel_grad_shift_out(xp, g, kernel_shape):
  kh, kw, cin, cout = kernel_shape
  (hp, wp), (ho, wo) = xp.shape[1:3], g.shape[1:3]
  zero = jnp.zeros((), g.dtype)
  shifted = [lax.pad(g, zero, [(0, 0, 0), (i, hp - ho - i, 0), (j, wp - wo - j, 0), (0, 0, 0)])
             for i in range(kh) for j in range(kw)]
  stacked = jnp.concatenate(shifted, axis=-1).reshape(-1, kh * kw * cout)
  grad = _contract_rows(xp.reshape(-1, cin), stacked)
  return grad.reshape(cin, kh, kw, cout).transpose(1, 2, 0, 3)


def kernel_grad(x, g, kernel_shape, strides, pads, form: str):
  """dL/dkernel `[kh, kw, Cin, Cout]` of `conv2d(x, kernel)` given dL/dy `g` (the product forms
  accumulate and return float32)."""
  if form == "xla":
    kernel = jnp.zeros(kernel_shape, x.dtype)
    return jax.vjp(lambda k: _xla_conv(x, k, strides, pads), kernel)[1](g)[0]
  x, g = lax.optimization_barrier((x, g))   # build the stacked operands in the backward pass
  xp = _pad(x, pads)
  if form == "shift_out":
    return _kernel_grad_shift_out(xp, g, kernel_shape)
  return _kernel_grad_rows(xp, g, kernel_shape, strides)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
           pads: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
  """Cross-correlation of `x` `[B, H, W, Cin]` with `kernel` `[kh, kw, Cin, Cout]` (zero `pads`)."""
  return _xla_conv(x, kernel, strides, pads)


def _conv2d_fwd(x, kernel, strides, pads):
  return _xla_conv(x, kernel, strides, pads), (x, kernel)


def _conv2d_bwd(strides, pads, residuals, g):
  x, kernel = residuals
  dx = jax.vjp(lambda a: _xla_conv(a, kernel, strides, pads), x)[1](g)[0]
  form = kernel_grad_form(x.shape, kernel.shape, g.shape[1:], strides, pads, x.dtype.itemsize)
  dk = kernel_grad(x, g, kernel.shape, strides, pads, form)
  return dx, dk.astype(kernel.dtype)


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)
