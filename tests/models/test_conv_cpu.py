"""Matrix-product kernel gradients of psrjax.nn.cpu.conv_cpu against NumPy and XLA's autodiff."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrjax.nn.cpu import conv_cpu

CASES = [  # (x shape, kernel shape, strides, pads)
    ((2, 7, 6, 5), (3, 3, 5, 4), (1, 1), ((1, 1), (1, 1))),
    ((2, 9, 8, 3), (3, 2, 3, 6), (2, 2), ((1, 0), (0, 2))),
    ((1, 6, 7, 4), (2, 3, 4, 2), (1, 2), ((0, 1), (2, 1))),
]


def _numpy_kernel_grad(x, g, kernel_shape, strides, pads):
  xp = np.pad(np.asarray(x, np.float64), [(0, 0), pads[0], pads[1], (0, 0)])
  (ho, wo), (sh, sw) = g.shape[1:3], strides
  dk = np.zeros(kernel_shape)
  for i, j in np.ndindex(*kernel_shape[:2]):
    window = xp[:, i: i + sh * (ho - 1) + 1: sh, j: j + sw * (wo - 1) + 1: sw]
    dk[i, j] = np.einsum("nhwc,nhwd->cd", window, np.asarray(g, np.float64))
  return dk


def _case(x_shape, kernel_shape, strides, pads, seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=x_shape), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=kernel_shape), jnp.float32)
  y_shape = conv_cpu._xla_conv(x, kernel, strides, pads).shape
  g = jnp.asarray(rng.normal(size=y_shape), jnp.float32)
  return x, kernel, g


@pytest.mark.parametrize("form", ["rows", "shift_out", "xla"])
@pytest.mark.parametrize("x_shape,kernel_shape,strides,pads", CASES)
def test_kernel_grad_forms_match_numpy(form, x_shape, kernel_shape, strides, pads):
  if form == "shift_out" and strides != (1, 1):
    pytest.skip("shift_out is a stride-1 form")
  x, _, g = _case(x_shape, kernel_shape, strides, pads)
  got = conv_cpu.kernel_grad(x, g, kernel_shape, strides, pads, form)
  want = _numpy_kernel_grad(x, g, kernel_shape, strides, pads)
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("x_shape,kernel_shape,strides,pads,form", [
    ((2, 6, 6, 40), (3, 3, 40, 8), (1, 1), ((1, 1), (1, 1)), "shift_out"),
    ((1, 8, 9, 36), (3, 3, 36, 16), (2, 2), ((1, 1), (0, 1)), "rows"),
    ((2, 7, 6, 5), (3, 3, 5, 4), (1, 1), ((1, 1), (1, 1)), "xla"),
])
def test_conv2d_gradients_equal_xla_autodiff(x_shape, kernel_shape, strides, pads, form):
  x, kernel, g = _case(x_shape, kernel_shape, strides, pads, seed=1)
  assert conv_cpu.kernel_grad_form(x.shape, kernel.shape, g.shape[1:], strides, pads) == form

  def loss(conv):
    return lambda a, b: jnp.sum(conv(a, b, strides, pads) * g)

  want = jax.grad(loss(conv_cpu._xla_conv), argnums=(0, 1))(x, kernel)
  got = jax.jit(jax.grad(loss(conv_cpu.conv2d), argnums=(0, 1)))(x, kernel)
  for a, b in zip(got, want):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("name,x_shape,kernel_shape,strides,pads,form", [
    # PSR-Net's paper-width layers, time folded into channels (8 frames of 112²).
    ("residual block", (8, 30, 30, 768), (3, 3, 768, 256), (1, 1), ((0, 1), (0, 1)), "rows"),
    ("fusion", (8, 28, 28, 2304), (3, 3, 2304, 256), (1, 1), ((1, 1), (1, 1)), "shift_out"),
    ("RGB output", (8, 118, 118, 448), (7, 7, 448, 3), (1, 1), ((0, 1), (0, 1)), "shift_out"),
    ("downsampling", (8, 112, 112, 192), (3, 3, 192, 128), (2, 2), ((1, 1), (1, 1)), "rows"),
    ("RGB stem", (8, 118, 118, 21), (7, 7, 21, 64), (1, 1), ((0, 1), (0, 1)), "xla"),
])
def test_kernel_grad_form_choices(name, x_shape, kernel_shape, strides, pads, form):
  ho = (x_shape[1] + sum(pads[0]) - kernel_shape[0]) // strides[0] + 1
  wo = (x_shape[2] + sum(pads[1]) - kernel_shape[1]) // strides[1] + 1
  got = conv_cpu.kernel_grad_form(x_shape, kernel_shape, (ho, wo, kernel_shape[3]), strides, pads)
  assert got == form, name


def test_kernel_grad_form_falls_back_to_xla_when_the_stacked_operand_is_huge():
  shape = (64, 256, 256, 256)
  assert conv_cpu.kernel_grad_form(shape, (3, 3, 256, 256), (256, 256, 256), (1, 1),
                                   ((1, 1), (1, 1))) == "xla"
