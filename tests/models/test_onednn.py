"""oneDNN convolutions (psrjax.nn.cpu.onednn): the built extension, XLA parity, partitioning, modes."""
import functools
from importlib import metadata
import platform
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from psrjax.nn import conv3d, conv_transpose3d
from psrjax.nn.cpu import onednn

DIMENSION_NUMBERS = {2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}

# (x shape, kernel shape, strides, pads): 2D and 3D, strided, asymmetric, 1x1, few channels.
GEOMETRIES = [
    ((2, 9, 10, 5), (3, 3, 5, 7), (1, 1), ((1, 1), (1, 1))),
    ((3, 11, 8, 4), (3, 2, 4, 6), (2, 3), ((0, 1), (2, 0))),
    ((2, 5, 9, 8, 6), (3, 3, 3, 6, 5), (1, 2, 2), ((1, 1), (1, 1), (1, 1))),
    ((1, 6, 7, 7, 3), (7, 7, 7, 3, 4), (1, 1, 1), ((3, 3), (3, 3), (3, 3))),
    ((2, 4, 6, 5, 8), (1, 1, 1, 8, 3), (2, 1, 2), ((0, 0), (0, 0), (0, 0))),
    ((2, 5, 7, 6, 3), (2, 3, 4, 3, 2), (2, 1, 3), ((2, 1), (0, 2), (1, 0))),
    # channels that oneDNN blocks (its kernel gradient reorders the activations), with tails
    ((2, 12, 10, 24), (3, 3, 24, 20), (2, 2), ((1, 1), (1, 0))),
    ((1, 4, 6, 6, 16), (3, 3, 3, 16, 19), (1, 1, 1), ((1, 1), (1, 1), (1, 1))),
    # few outputs, stride 1, no padding: the narrow kernels (narrow_conv.cc) where AVX-512F exists
    ((1, 6, 9, 11, 32), (3, 4, 5, 32, 3), (1, 1, 1), ((0, 0), (0, 0), (0, 0))),
    ((2, 3, 5, 9, 48), (2, 1, 3, 48, 4), (1, 1, 1), ((0, 0), (0, 0), (0, 0))),
    ((2, 7, 9, 16), (3, 3, 16, 1), (1, 1), ((0, 0), (0, 0))),
]

needs_onednn = pytest.mark.skipif(not onednn.available(), reason="oneDNN extension not built")


def _xla(x, k, strides, pads):
  return lax.conv_general_dilated(x, k, strides, pads,
                                  dimension_numbers=DIMENSION_NUMBERS[x.ndim - 2])


def _operands(x_shape, k_shape, strides, pads, seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=x_shape), jnp.float32)
  k = jnp.asarray(rng.normal(size=k_shape) / np.sqrt(np.prod(k_shape[:-1])), jnp.float32)
  dy = jnp.asarray(rng.normal(size=onednn.out_shape(x_shape, k_shape, strides, pads)), jnp.float32)
  return x, k, dy


def _value_and_grads(fn, x, k, dy):
  y, vjp = jax.vjp(fn, x, k)
  return (y,) + vjp(dy)


@pytest.mark.skipif(not (sys.platform == "linux" and platform.machine() == "x86_64"),
                    reason="the extension is built on Linux x86-64 only")
def test_extension_is_built_and_loads_on_linux_x86_64():
  assert onednn._load() is None, onednn._load()
  assert onednn.available()


@needs_onednn
@pytest.mark.parametrize("x_shape,k_shape,strides,pads", GEOMETRIES)
def test_forward_and_gradients_equal_xla(x_shape, k_shape, strides, pads):
  x, k, dy = _operands(x_shape, k_shape, strides, pads)
  got = jax.jit(lambda *a: _value_and_grads(lambda x, k: onednn.conv(x, k, strides, pads), *a))(x, k, dy)
  want = _value_and_grads(lambda x, k: _xla(x, k, strides, pads), x, k, dy)
  for name, g, w in zip(("y", "dx", "dk"), got, want):
    assert g.shape == w.shape, name
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-4, err_msg=name)


@needs_onednn
def test_auto_leaves_empty_operands_to_xla():
  """VGG's deep layers on a tiny face crop see images pooled to 0x0: "auto" gives them to XLA."""
  from psrjax.nn.conv2d import conv2d  # pylint: disable=g-import-not-at-top
  x, k = jnp.zeros((2, 0, 0, 8)), jnp.ones((3, 3, 8, 4))
  assert not onednn.usable(x, k) and onednn.usable(jnp.zeros((2, 1, 1, 8)), k)
  y = jax.jit(lambda x, k: conv2d(x, k, padding=1))(x, k)
  assert y.shape == (2, 0, 0, 4)


@needs_onednn
def test_calls_of_growing_and_shrinking_sizes_share_the_kept_buffers_correctly():
  """The blocked kernel, the scratchpad and a kernel gradient's blocked activations are buffers
  kept between calls (onednn_conv.cc's `Workspace`): a large call after a small one grows them,
  a small one after reuses them."""
  sizes = [((1, 6, 6, 8), (3, 3, 8, 16)), ((1, 10, 10, 64), (3, 3, 64, 128)),
           ((2, 5, 5, 4), (3, 3, 4, 8)), ((1, 10, 10, 64), (3, 3, 64, 128))]
  for i, (x_shape, k_shape) in enumerate(sizes):
    pads = ((1, 1), (1, 1))
    x, k, dy = _operands(x_shape, k_shape, (1, 1), pads, seed=i)
    got = jax.jit(lambda *a: _value_and_grads(
        lambda x, k: onednn.conv(x, k, (1, 1), pads), *a))(x, k, dy)
    want = _value_and_grads(lambda x, k: _xla(x, k, (1, 1), pads), x, k, dy)
    for name, g, w in zip(("y", "dx", "dk"), got, want):
      np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-4,
                                 err_msg=f"call {i} {name}")


@needs_onednn
def test_bfloat16_matches_float32_within_bfloat16_precision():
  x_shape, k_shape, strides, pads = GEOMETRIES[2]
  x, k, dy = _operands(x_shape, k_shape, strides, pads, seed=1)
  want = _value_and_grads(lambda x, k: onednn.conv(x, k, strides, pads), x, k, dy)
  bf = [a.astype(jnp.bfloat16) for a in (x, k, dy)]
  got = _value_and_grads(lambda x, k: onednn.conv(x, k, strides, pads), *bf)
  for g, w in zip(got, want):
    assert g.dtype == jnp.bfloat16
    scale = float(jnp.max(jnp.abs(w)))
    np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(w), atol=0.03 * scale)


def _cpu_flags() -> set[str]:
  try:
    with open("/proc/cpuinfo") as f:
      return {w for line in f if line.startswith("flags") for w in line.split(":", 1)[1].split()}
  except OSError:
    return set()


@needs_onednn
def test_bf16_native_follows_the_cpu():
  """oneDNN's bfloat16 convolutions need AVX-512 (core) or AVX2-VNNI-2; AVX2 alone has none."""
  flags = _cpu_flags()
  if not flags:
    pytest.skip("no /proc/cpuinfo")
  if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
    assert onednn.bf16_native()
  if not flags & {"avx512bw", "avx_ne_convert", "avx_vnni", "amx_bf16"}:
    assert not onednn.bf16_native()


@needs_onednn
def test_bfloat16_without_native_kernels_is_float32_rounded():
  """Where the CPU has no bfloat16 kernels the extension widens the bfloat16 operands, runs the
  float32 kernel and rounds once: exactly the float32 result on the same values, rounded."""
  x_shape, k_shape, strides, pads = GEOMETRIES[2]
  x, k, dy = _operands(x_shape, k_shape, strides, pads, seed=2)
  bf = [a.astype(jnp.bfloat16) for a in (x, k, dy)]
  got = _value_and_grads(lambda x, k: onednn.conv(x, k, strides, pads), *bf)
  wide = [a.astype(jnp.float32) for a in bf]
  want = _value_and_grads(lambda x, k: onednn.conv(x, k, strides, pads), *wide)
  for g, w in zip(got, want):
    assert g.dtype == jnp.bfloat16
    if onednn.bf16_native():   # native kernels may accumulate in another order
      scale = float(jnp.max(jnp.abs(w)))
      np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(w), atol=0.02 * scale)
    else:
      np.testing.assert_array_equal(np.asarray(g), np.asarray(w.astype(jnp.bfloat16)))


@needs_onednn
def test_conv3d_onednn_crops_negative_pads():
  x, k, _ = _operands((1, 6, 7, 8, 2), (3, 2, 3, 2, 3), (1, 1, 1), ((0, 0), (0, 0), (0, 0)))
  pads = ((-1, 1), (0, -2), (2, -1))
  got = conv3d(x, k, padding=pads, impl="onednn")
  np.testing.assert_allclose(np.asarray(got), np.asarray(conv3d(x, k, padding=pads, impl="xla")),
                             rtol=1e-4, atol=1e-4)


@needs_onednn
def test_batch_sharded_calls_run_per_device_and_sum_the_kernel_gradient():
  """Under a jit over 8 devices with the batch sharded, the result equals the single-device
  one, and the compiled program gathers no activations (only the kernel gradient is reduced)."""
  assert jax.device_count() >= 8
  x_shape, k_shape, strides, pads = (8, 4, 6, 6, 3), (3, 3, 3, 3, 4), (1, 1, 1), ((1, 1),) * 3
  x, k, dy = _operands(x_shape, k_shape, strides, pads, seed=2)
  mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
  batch, whole = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
  fn = jax.jit(lambda *a: _value_and_grads(lambda x, k: onednn.conv(x, k, strides, pads), *a),
               in_shardings=(batch, whole, batch), out_shardings=(batch, batch, whole))
  compiled = fn.lower(x, k, dy).compile()
  hlo = compiled.as_text()
  assert "all-gather" not in hlo and "all-reduce" in hlo
  got = compiled(jax.device_put(x, batch), jax.device_put(k, whole), jax.device_put(dy, batch))
  want = _value_and_grads(lambda x, k: _xla(x, k, strides, pads), x, k, dy)
  for g, w in zip(got, want):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-4)


def test_mode_off_disables_it(monkeypatch):
  monkeypatch.setenv(onednn.ENV, "off")
  assert not onednn.available()
  assert not onednn.usable(jnp.zeros((1, 2, 2, 2, 1)))


def test_unknown_mode_is_a_clear_error(monkeypatch):
  monkeypatch.setenv(onednn.ENV, "fast")
  with pytest.raises(ValueError, match="PSRJAX_ONEDNN must be one of"):
    onednn.available()


def test_mode_on_raises_when_it_cannot_load(monkeypatch):
  monkeypatch.setenv(onednn.ENV, "on")
  monkeypatch.setattr(onednn, "_load", lambda: "psrjax's oneDNN extension is not built")
  with pytest.raises(onednn.OneDNNUnavailable, match="PSRJAX_ONEDNN=on but .* not built"):
    onednn.available()


def test_calling_conv_without_the_extension_is_a_clear_error(monkeypatch):
  monkeypatch.setattr(onednn, "_load", lambda: "psrjax's oneDNN extension is not built")
  with pytest.raises(onednn.OneDNNUnavailable, match="unavailable: .* not built"):
    onednn.conv(jnp.zeros((1, 4, 4, 16)), jnp.zeros((3, 3, 16, 2)), (1, 1), ((1, 1), (1, 1)))


@needs_onednn
def test_an_extension_built_against_another_jaxlib_is_unavailable(monkeypatch):
  def register(*args, **kwargs):
    raise jax.errors.JaxRuntimeError(
        "INVALID_ARGUMENT: XLA FFI handler registration for psrjax_conv_forward on platform Host "
        "failed because the handler's API version (0.5) is incompatible with the framework's API "
        "version (0.3).\nMinimum supported API version is (0.1).")
  monkeypatch.setattr(jax.ffi, "register_ffi_target", register)
  reason = onednn._load.__wrapped__()   # the uncached load: this session's targets stay registered
  assert reason.startswith("psrjax's oneDNN extension does not fit this jaxlib (INVALID_ARGUMENT")
  assert "\n" not in reason and reason.endswith(f"jaxlib=={metadata.version('jaxlib')})")


def test_auto_falls_back_to_fold_time_when_unavailable(monkeypatch):
  x, k, _ = _operands((1, 4, 5, 5, 2), (3, 3, 3, 2, 3), (1, 1, 1), ((1, 1),) * 3)
  flops = lambda: onednn.jaxpr_flops(jax.make_jaxpr(lambda x, k: conv3d(x, k, padding=1))(x, k).jaxpr)
  assert flops() > 0 or not onednn.available()
  monkeypatch.setattr(onednn, "_load", lambda: "not built")
  assert flops() == 0
  with pytest.raises(ValueError, match="impl 'onednn' needs"):
    conv3d(x, k, padding=1, impl="onednn")


def test_integer_operands_are_refused_by_the_onednn_impl():
  x = jnp.zeros((1, 4, 5, 5, 2), jnp.int32)
  with pytest.raises(ValueError, match="impl 'onednn' needs"):
    conv3d(x, jnp.zeros((3, 3, 3, 2, 3), jnp.int32), padding=1, impl="onednn")


@needs_onednn
@pytest.mark.parametrize("ksize,strides,pads,output_pads", [
    ((3, 3, 3), (1, 2, 2), (1, 1, 1), (0, 1, 1)),         # the generators' upsampling
    ((2, 4, 3), (2, 2, 3), (1, 2, 2), (1, 0, 1))])
def test_conv_transpose3d_onednn_gradients_equal_the_xla_path(ksize, strides, pads, output_pads):
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.normal(size=(2, 3, 4, 5, 3)), jnp.float32)
  k = jnp.asarray(rng.normal(size=ksize + (3, 2)), jnp.float32)
  fn = {impl: functools.partial(conv_transpose3d, strides=strides, padding=pads,
                                output_padding=output_pads, impl=impl) for impl in ("xla", "onednn")}
  jaxpr = jax.make_jaxpr(fn["onednn"])(x, k).jaxpr     # one oneDNN deconvolution, no sub-pixel conv
  assert onednn.jaxpr_flops(jaxpr) == 2.0 * x.size * np.prod(ksize) * k.shape[-1]
  dy = jnp.asarray(rng.normal(size=fn["xla"](x, k).shape), jnp.float32)
  got = _value_and_grads(fn["onednn"], x, k, dy)
  want = _value_and_grads(fn["xla"], x, k, dy)
  for name, g, w in zip(("y", "dx", "dk"), got, want):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-4, err_msg=name)


@needs_onednn
def test_flops_of_the_onednn_calls_are_counted_from_the_jaxpr():
  x, k, dy = _operands((2, 4, 6, 6, 3), (3, 3, 3, 3, 5), (1, 1, 1), ((1, 1),) * 3)
  per_call = 2.0 * 2 * 4 * 6 * 6 * 5 * 27 * 3      # output elements x taps x input channels
  fwd = jax.make_jaxpr(lambda x, k: onednn.conv(x, k, (1, 1, 1), ((1, 1),) * 3))(x, k)
  assert onednn.jaxpr_flops(fwd.jaxpr) == per_call
  grads = jax.make_jaxpr(jax.grad(lambda x, k: jnp.sum(onednn.conv(x, k, (1, 1, 1), ((1, 1),) * 3)),
                                  argnums=(0, 1)))(x, k)
  assert onednn.jaxpr_flops(grads.jaxpr) == 3 * per_call
  up = jax.make_jaxpr(lambda x, k: onednn.conv_transpose(x, k, (1, 2, 2), ((1, 1),) * 3))(
      dy[..., :3], jnp.zeros((3, 3, 3, 3, 4)))
  assert onednn.jaxpr_flops(up.jaxpr) == 2.0 * 2 * 4 * 6 * 6 * 3 * 27 * 4
