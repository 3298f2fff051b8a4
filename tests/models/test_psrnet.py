"""PSR-Net generators (tiny variant) and the 3D layers they are built from."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrjax.geometry import BACKGROUND, OCCLUDED, VISIBLE
from psrjax.models.psrnet import (
    VARIANTS, ReconstructionLayer, RecurrenceLayer, blend, composite, layer_residuals,
    psrnet_layer)
from psrjax.nn import Conv3D, InstanceNorm, conv3d, conv_transpose3d

B, T, H, W = 2, 4, 16, 16


def _key(seed):
  """An "rbg" key: XLA:CPU compiles one threefry call site in ~0.2 s, so initialising a network
  (one random draw per kernel) with threefry keys would dominate this file's runtime."""
  return jax.random.key(seed, impl="rbg")


# ----------------------------------------------------------------------------- layers vs NumPy

def _np_conv3d(x, k, strides, pads):
  """Direct cross-correlation (PyTorch Conv3d semantics) in float64."""
  x = np.pad(x.astype(np.float64), [(0, 0)] + list(pads) + [(0, 0)])
  kt, kh, kw = k.shape[:3]
  st, sh, sw = strides
  out_shape = [(x.shape[i + 1] - k.shape[i]) // s + 1 for i, s in enumerate(strides)]
  out = np.zeros([x.shape[0]] + out_shape + [k.shape[-1]])
  for a in range(kt):
    for b in range(kh):
      for c in range(kw):
        patch = x[:, a: a + st * out_shape[0]: st, b: b + sh * out_shape[1]: sh, c: c + sw * out_shape[2]: sw]
        out += patch @ k[a, b, c]
  return out


def _np_conv_transpose3d(x, k, strides, pads, output_pads):
  """PyTorch ConvTranspose3d by its definition: out[s * i + k - p] += x[i] w[k]."""
  sizes = [(n - 1) * s - 2 * p + kk + o
           for n, s, p, kk, o in zip(x.shape[1:4], strides, pads, k.shape[:3], output_pads)]
  full = np.zeros([x.shape[0]] + [(n - 1) * s + kk + o for n, s, kk, o in
                                  zip(x.shape[1:4], strides, k.shape[:3], output_pads)] + [k.shape[-1]])
  for i in np.ndindex(*x.shape[1:4]):
    for j in np.ndindex(*k.shape[:3]):
      o = tuple(s * a + b for s, a, b in zip(strides, i, j))
      full[(slice(None),) + o] += x[(slice(None),) + i] @ k[j]
  return full[:, pads[0]: pads[0] + sizes[0], pads[1]: pads[1] + sizes[1], pads[2]: pads[2] + sizes[2]]


@pytest.mark.parametrize("impl", ["xla", "fold_time", "onednn"])
@pytest.mark.parametrize("strides,pads", [((1, 1, 1), ((1, 1), (1, 1), (1, 1))),
                                          ((1, 2, 2), ((0, 0), (0, 0), (0, 0))),
                                          ((2, 1, 3), ((2, 1), (0, 2), (1, 0)))])
def test_conv3d_matches_numpy(impl, strides, pads):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 7, 8, 3)).astype(np.float32)
  k = rng.normal(size=(3, 3, 2, 3, 4)).astype(np.float32)
  got = conv3d(jnp.asarray(x), jnp.asarray(k), strides=strides, padding=pads, impl=impl)
  np.testing.assert_allclose(np.asarray(got), _np_conv3d(x, k, strides, pads), atol=1e-4)


@pytest.mark.parametrize("strides,pads", [((1, 1, 1), ((1, 1), (1, 1), (1, 1))),
                                          ((1, 2, 2), ((0, 0), (0, 0), (0, 0))),
                                          ((2, 1, 3), ((2, 1), (0, 2), (1, 0)))])
@pytest.mark.parametrize("impl", ["fold_time", "onednn"])
def test_conv3d_gradients_match_the_definition(impl, strides, pads):
  """Gradients through the fold_time and oneDNN paths equal autodiff of XLA's 3D convolution
  and a NumPy kernel gradient."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(2, 5, 7, 8, 3)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, 2, 3, 4)), jnp.float32)
  y_shape = conv3d(x, k, strides=strides, padding=pads, impl="xla").shape
  dy = jnp.asarray(rng.normal(size=y_shape), jnp.float32)
  grads = {name: jax.grad(lambda a, b: jnp.sum(conv3d(a, b, strides=strides, padding=pads,
                                                      impl=name) * dy), argnums=(0, 1))(x, k)
           for name in ("xla", impl)}
  for want, got in zip(grads["xla"], grads[impl]):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-4)
  xp = np.pad(np.asarray(x, np.float64), [(0, 0)] + list(pads) + [(0, 0)])
  out = y_shape[1:4]
  dk = np.zeros(k.shape)
  for tap in np.ndindex(*k.shape[:3]):
    sl = tuple(slice(a, a + s * (o - 1) + 1, s) for a, s, o in zip(tap, strides, out))
    dk[tap] = np.einsum("nthwc,nthwd->cd", xp[(slice(None),) + sl], np.asarray(dy, np.float64))
  np.testing.assert_allclose(np.asarray(grads[impl][1]), dk, atol=1e-4)


@pytest.mark.parametrize("impl", ["xla", "fold_time", "onednn"])
@pytest.mark.parametrize("ksize,strides,pads,output_pads", [
    ((3, 3, 3), (1, 2, 2), (1, 1, 1), (0, 1, 1)),         # the generators' upsampling
    ((2, 4, 3), (2, 2, 3), (0, 1, 1), (1, 0, 2)),
    ((2, 4, 3), (2, 2, 3), (1, 2, 2), (1, 0, 1)),
    ((1, 1, 1), (1, 2, 2), (0, 0, 0), (0, 1, 0))])
def test_conv_transpose3d_matches_pytorch_definition(impl, ksize, strides, pads, output_pads):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(1, 3, 4, 3, 2)).astype(np.float32)
  k = rng.normal(size=ksize + (2, 3)).astype(np.float32)
  got = conv_transpose3d(jnp.asarray(x), jnp.asarray(k), strides=strides, padding=pads,
                         output_padding=output_pads, impl=impl)
  want = _np_conv_transpose3d(x.astype(np.float64), k.astype(np.float64), strides, pads, output_pads)
  assert got.shape == want.shape
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-4)


def test_conv3d_module_reflect_padding_and_layout():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(2, 4, 6, 6, 3)).astype(np.float32)
  module = Conv3D(5, (3, 3, 3), padding=1, pad_mode="reflect")
  params = module.init(jax.random.key(0), x)
  kernel = np.asarray(params["params"]["kernel"])
  assert kernel.shape == (3, 3, 3, 3, 5)                      # [kt, kh, kw, cin, cout]
  got = np.asarray(module.apply(params, x))
  padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (1, 1), (0, 0)], mode="reflect")
  np.testing.assert_allclose(got, _np_conv3d(padded, kernel, (1, 1, 1), ((0, 0),) * 3), atol=1e-5)


def test_instance_norm_normalises_each_example_and_channel():
  x = jax.random.normal(jax.random.key(0), (2, 3, 4, 5, 6)) * 3.0 + 2.0
  y = np.asarray(InstanceNorm().apply({}, x))
  np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), 0.0, atol=1e-5)
  np.testing.assert_allclose(y.var(axis=(1, 2, 3)), 1.0, atol=1e-3)


# ----------------------------------------------------------------------------- tiny generators

def _inputs():
  k = jax.random.split(jax.random.key(0), 4)
  x_i = jax.random.uniform(k[0], (B, T, H, W, 3), minval=-1, maxval=1)
  x_hat = jax.random.uniform(k[1], (B, T, H, W, 3), minval=-1, maxval=1)
  d_j = jax.random.uniform(k[2], (B, T, H, W, 1))
  vis = jax.random.randint(k[3], (B, T, H, W), BACKGROUND, OCCLUDED + 1)
  return x_i, x_hat, d_j, vis


@pytest.fixture(scope="module")
def g1():
  model = psrnet_layer(1, "tiny")
  x_i, x_hat, d_j, vis = _inputs()
  params = jax.jit(model.init)(_key(1), x_i, x_hat, d_j, vis)
  out = jax.jit(model.apply)(params, x_i, x_hat, d_j, vis)
  return model, params, out


@pytest.fixture(scope="module")
def g2():
  model = psrnet_layer(2, "tiny")
  x_i, x_hat, d_j, _ = _inputs()
  params = jax.jit(model.init)(_key(2), x_i, x_hat, d_j)
  return model, params, jax.jit(model.apply)(params, x_i, x_hat, d_j)


def test_reconstruction_layer_outputs(g1):
  model, params, out = g1
  assert isinstance(model, ReconstructionLayer)
  assert set(out) == {"x_tilde", "background", "visible", "occluded"}
  for v in out.values():
    assert v.shape == (B, T, H, W, 3) and v.dtype == jnp.float32
    assert np.all(np.abs(np.asarray(v)) <= 1.0)
  names = set(params["params"])
  assert {"encoder_x", "encoder_x_hat0", "encoder_depth", "trunk", "decoder_background",
          "decoder_visible", "decoder_occluded"} == names


def test_eq2_composite_selects_the_branch_of_each_label(g1):
  _, _, out = g1
  vis = np.asarray(_inputs()[3])
  x_tilde = np.asarray(out["x_tilde"])
  for label, name in ((BACKGROUND, "background"), (VISIBLE, "visible"), (OCCLUDED, "occluded")):
    sel = vis == label
    assert sel.any()
    np.testing.assert_array_equal(x_tilde[sel], np.asarray(out[name])[sel])


def test_composite_function():
  b, v, o = (jnp.full((1, 2, 2, 2, 3), c) for c in (1.0, 2.0, 3.0))
  vis = jnp.array([[[[1, 2], [3, 0]], [[3, 3], [2, 1]]]])
  got = np.asarray(composite(b, v, o, vis))[..., 0]
  np.testing.assert_array_equal(got, [[[[1, 2], [3, 0]], [[3, 3], [2, 1]]]])


def test_recurrence_layer_outputs(g2):
  model, params, out = g2
  assert isinstance(model, RecurrenceLayer)
  assert out.shape == (B, T, H, W, 3) and out.dtype == jnp.float32
  assert set(params["params"]) == {"encoder_videos", "encoder_depth", "trunk", "decoder"}
  stem = params["params"]["encoder_videos"]["stem"]["conv"]["kernel"]
  assert stem.shape[3] == 6                                   # x_i and x̂ᵏ⁻¹ concatenated


def test_eq1_blend():
  g, prev = jnp.full((2, 3), 0.8), jnp.full((2, 3), -0.4)
  np.testing.assert_allclose(np.asarray(blend(g, prev)), 0.2)
  np.testing.assert_allclose(np.asarray(blend(g, prev, alpha=0.25)), 0.25 * 0.8 - 0.75 * 0.4)
  np.testing.assert_allclose(np.asarray(blend(g, prev, alpha=1.0)), 0.8)
  with pytest.raises(ValueError):
    blend(g, prev, alpha=1.5)


def test_jit_grad_smoke_reaches_only_labelled_branches(g1):
  model, params, _ = g1
  x_i, x_hat, d_j, vis = _inputs()
  vis = jnp.where(vis == BACKGROUND, VISIBLE, vis)          # no background pixels at all

  @jax.jit
  def loss_grad(p):
    loss = lambda p: jnp.mean(jnp.abs(model.apply(p, x_i, x_hat, d_j, vis)["x_tilde"] - x_hat))
    return jax.value_and_grad(loss)(p)

  loss, grads = loss_grad(params)
  assert np.isfinite(float(loss))
  norms = {k: float(optax_global_norm(v)) for k, v in grads["params"].items()}
  assert all(np.isfinite(n) for n in norms.values())
  assert norms["decoder_background"] == 0.0
  for name in ("decoder_visible", "decoder_occluded", "trunk", "encoder_x", "encoder_x_hat0", "encoder_depth"):
    assert norms[name] > 0.0, name


def optax_global_norm(tree):
  return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def test_recurrence_layer_grad_smoke(g2):
  model, params, _ = g2
  x_i, x_hat, d_j, _ = _inputs()
  grads = jax.jit(jax.grad(lambda p: jnp.mean(jnp.square(model.apply(p, x_i, x_hat, d_j) - x_i))))(params)
  norm = float(optax_global_norm(grads))
  assert np.isfinite(norm) and norm > 0.0


def test_conv_impls_agree_on_a_layer(g2):
  model, params, out = g2
  x_i, x_hat, d_j, _ = _inputs()
  other = psrnet_layer(2, "tiny", conv_impl="xla")
  np.testing.assert_allclose(np.asarray(jax.jit(other.apply)(params, x_i, x_hat, d_j)), np.asarray(out),
                             atol=2e-5)


def test_bfloat16_compute(g2):
  _, params, out = g2
  x_i, x_hat, d_j, _ = _inputs()
  low = psrnet_layer(2, "tiny", dtype=jnp.bfloat16)
  got = jax.jit(low.apply)(params, x_i, x_hat, d_j)
  assert got.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(out), atol=0.1)


def test_compute_dtype_follows_the_inputs(g2):
  model, params, out = g2
  low = [v.astype(jnp.bfloat16) for v in _inputs()[:3]]
  got = jax.jit(model.apply)(params, *low)
  assert got.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(out), atol=0.1)


@pytest.mark.parametrize("remat", ["blocks", "full"])
def test_remat_keeps_values_and_gradients(g2, remat):
  model, params, _ = g2
  x_i, x_hat, d_j, _ = _inputs()
  other = psrnet_layer(2, "tiny", remat=remat)

  def grads(m):
    return jax.jit(jax.grad(lambda p: jnp.mean(jnp.square(m.apply(p, x_i, x_hat, d_j) - x_i))))(params)

  want, got = grads(model), grads(other)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-7)


def test_remat_mode_is_checked():
  x_i, x_hat, d_j, _ = _inputs()
  with pytest.raises(ValueError, match="remat='some' is not a rematerialisation mode"):
    psrnet_layer(2, "tiny", remat="some").init(jax.random.key(0), x_i, x_hat, d_j)


# ----------------------------------------------------------------------------- paper layout

def _param_shapes(model, *args):
  shapes = jax.eval_shape(model.init, jax.random.key(0), *args)["params"]
  return shapes


def test_paper_variant_layout():
  b, t, h, w = 1, 16, 128, 128
  x = jax.ShapeDtypeStruct((b, t, h, w, 3), jnp.float32)
  d = jax.ShapeDtypeStruct((b, t, h, w, 1), jnp.float32)
  vis = jax.ShapeDtypeStruct((b, t, h, w), jnp.int32)
  p = _param_shapes(psrnet_layer(1), x, x, d, vis)
  assert p["encoder_x"]["stem"]["conv"]["kernel"].shape == (7, 7, 7, 3, 64)
  assert p["encoder_depth"]["stem"]["conv"]["kernel"].shape == (7, 7, 7, 1, 64)
  assert p["encoder_x"]["down1"]["conv"]["kernel"].shape == (3, 3, 3, 128, 256)
  assert p["trunk"]["fusion"]["conv"]["kernel"].shape == (3, 3, 3, 3 * 256, 256)
  assert sorted(k for k in p["trunk"] if k.startswith("block")) == [f"block{i}" for i in range(6)]
  assert p["decoder_visible"]["up0"]["kernel"].shape == (3, 3, 3, 256, 128)
  assert p["decoder_visible"]["out"]["kernel"].shape == (7, 7, 7, 64, 3)
  out = jax.eval_shape(psrnet_layer(1).apply, {"params": p}, x, x, d, vis)
  assert out["x_tilde"].shape == (b, t, h, w, 3)


def test_factory_variants_and_overrides():
  assert set(VARIANTS) == {"paper", "runlocal", "tiny"}
  layer = psrnet_layer(3, "runlocal", num_blocks=1, temporal_kernel=1)
  assert isinstance(layer, RecurrenceLayer) and layer.num_blocks == 1 and layer.temporal_kernel == 1
  assert layer.base_channels == VARIANTS["runlocal"]["base_channels"]
  assert psrnet_layer(1).base_channels == 64 and psrnet_layer(1).num_blocks == 6


@pytest.mark.parametrize("call", [
    functools.partial(psrnet_layer, 0),
    functools.partial(psrnet_layer, 1, "huge"),
    functools.partial(psrnet_layer, 1, "tiny", channels=3)])
def test_factory_bad_arguments(call):
  with pytest.raises(ValueError):
    call()


@pytest.mark.parametrize("bad", ["size", "depth", "even_kernel", "vis"])
def test_bad_inputs(bad):
  x_i, x_hat, d_j, vis = _inputs()
  model = psrnet_layer(1, "tiny")
  if bad == "size":
    x_i, x_hat, d_j, vis = x_i[:, :, :14], x_hat[:, :, :14], d_j[:, :, :14], vis[:, :, :14]
  elif bad == "depth":
    d_j = x_hat
  elif bad == "even_kernel":
    model = psrnet_layer(1, "tiny", temporal_kernel=2)
  else:
    vis = vis[:, :2]
  with pytest.raises(ValueError):
    jax.eval_shape(model.init, jax.random.key(0), x_i, x_hat, d_j, vis)


def test_residual_layers_start_from_their_input_estimates():
  """With residual=True every decoder starts at its base: G¹ background = x_i, visible and
  occluded = x̂⁰ (zero-initialised output convs); Gᵏ = x̂ᵏ⁻¹."""
  ks = jax.random.split(_key(3), 3)
  x_i = jax.random.uniform(ks[0], (1, T, H, W, 3), minval=-1, maxval=1)
  x0 = jax.random.uniform(ks[1], (1, T, H, W, 3), minval=-1, maxval=1)
  d = jnp.ones((1, T, H, W, 1))
  vis = jax.random.randint(ks[2], (1, T, H, W), 1, 4)
  g1 = psrnet_layer(1, "tiny", residual=True)
  out = g1.apply(g1.init(_key(4), x_i, x0, d, vis), x_i, x0, d, vis)
  np.testing.assert_allclose(out["background"], x_i, atol=1e-6)
  np.testing.assert_allclose(out["occluded"], x0, atol=1e-6)
  np.testing.assert_allclose(out["x_tilde"], composite(x_i, x0, x0, vis), atol=1e-6)
  base = jax.random.uniform(ks[2], (1, T, H, W, 3), minval=-1, maxval=1)
  np.testing.assert_allclose(g1.apply(g1.init(_key(4), x_i, x0, d, vis), x_i, x0, d, vis,
                                      base=base)["x_tilde"], base, atol=1e-6)
  g2 = psrnet_layer(2, "tiny", residual=True)
  np.testing.assert_allclose(g2.apply(g2.init(_key(5), x_i, x0, d), x_i, x0, d), x0, atol=1e-6)


@pytest.mark.parametrize("value, layers, want", [
    (True, 3, (True, True, True)), (False, 1, (False,)),
    ((True, False), 3, (True, False, False)),          # the last value repeats
    ((True, False, True), 2, (True, False)),           # a longer tuple is cut
    ([False, True], 2, (False, True))])                # a saved config's list
def test_layer_residuals_one_value_per_layer(value, layers, want):
  assert layer_residuals(value, layers) == want


@pytest.mark.parametrize("value", [(), 1, "false", None, (True, 0), ((True,),)])
def test_layer_residuals_bad_values(value):
  with pytest.raises(ValueError, match=r"^model.residual must be True, False or .*; got ") as e:
    layer_residuals(value, 3)
  assert "\n" not in str(e.value)


def test_full_frame_recurrence_layer_does_not_start_at_its_input():
  """Beside test_residual_layers_start_from_their_input_estimates: without residual, Gᵏ paints
  its own frame at initialisation, not x̂ᵏ⁻¹."""
  ks = jax.random.split(_key(6), 2)
  x_i, x_prev = (jax.random.uniform(k, (1, T, H, W, 3), minval=-1, maxval=1) for k in ks)
  d = jnp.ones((1, T, H, W, 1))
  g2 = psrnet_layer(2, "tiny", residual=False)
  out = g2.apply(g2.init(_key(5), x_i, x_prev, d), x_i, x_prev, d)
  assert float(jnp.abs(out - x_prev).mean()) > 0.1
