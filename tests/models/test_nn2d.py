"""psrjax.nn's 2D layers against PyTorch with identical weights, and the papers' equations.

Convolutions (zero / reflect / replicate padding, transposed), instance norm (with and without
affine parameters), spectral norm (sigma against torch.nn.utils.spectral_norm and numpy's SVD),
SPADE (against a PyTorch SPADE module written after Park et al.'s code), positional norm (Li et
al.'s Eq. 1), resampling, blocks; the dtype policy, remat and bad input.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F

from torch_port import assert_same_tree, conv_params, nchw, nhwc, normal
from psrjax import nn as pnn
from psrjax.nn import spectral as spectral_lib
from psrjax.nn.spectral import power_iteration

KEY = jax.random.key(0, impl="rbg")
ATOL = 1e-5


@pytest.mark.parametrize("impl", ["xla", "fold_time", "onednn"])
@pytest.mark.parametrize("mode,torch_mode", [("zero", "zeros"), ("reflect", "reflect"),
                                             ("edge", "replicate")])
@pytest.mark.parametrize("kernel,stride,pad", [(3, 1, 1), (4, 2, 2), (7, 1, 3)])
def test_conv2d_matches_torch_conv2d_with_each_padding_mode(impl, mode, torch_mode, kernel,
                                                            stride, pad):
  torch.manual_seed(0)
  ref = torch.nn.Conv2d(3, 5, kernel, stride, pad, padding_mode=torch_mode)
  x = normal(2, 9, 8, 3)
  conv = pnn.Conv2D(5, kernel, stride, pad, mode, impl=impl)
  y = conv.apply({"params": conv_params(ref)}, jnp.asarray(x))
  np.testing.assert_allclose(y, nhwc(ref(nchw(x))), atol=ATOL)


@pytest.mark.parametrize("padding", [1, 3, ((0, 2), (4, 1)), ((2, 0), (0, 6))])
def test_reflection_pad_matches_torch_values_and_gradients(padding):
  """ReflectionPad2d's values and input gradients, pads narrower than the axis (one concatenation
  per axis, no mirror of a one-row slice) and wider (6 on an axis of 5: reflected again)."""
  x = normal(2, 7, 5, 3)
  (top, bottom), (left, right) = pnn.pad_pairs(padding, 2)
  ref_x = nchw(x).requires_grad_(True)
  ref = F.pad(ref_x, (left, right, top, bottom), mode="reflect") if max(left, right) < 5 else None
  y, vjp = jax.vjp(lambda v: pnn.pad_image(v, padding, "reflect"), jnp.asarray(x))
  cotangent = normal(*y.shape, seed=1)
  if ref is None:   # torch refuses pads as wide as the axis: numpy's repeated reflection
    np.testing.assert_array_equal(y, np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)),
                                            mode="reflect"))
  else:
    np.testing.assert_array_equal(y, nhwc(ref))
    ref.backward(nchw(cotangent))
    np.testing.assert_allclose(vjp(jnp.asarray(cotangent))[0], nhwc(ref_x.grad), atol=1e-6)
  if padding == 1:
    ops = [e.primitive.name for e in jax.make_jaxpr(
        lambda v: pnn.pad_image(v, 1, "reflect"))(x).jaxpr.eqns]
    assert ops.count("concatenate") == 2 and "rev" not in ops and "pjit" not in ops, ops


@pytest.mark.parametrize("impl", ["xla", "fold_time", "onednn"])
@pytest.mark.parametrize("kernel,stride,pad,out_pad", [(3, 2, 1, 1), (4, 2, 1, 0), (3, 1, 1, 0)])
def test_conv_transpose2d_matches_torch(impl, kernel, stride, pad, out_pad):
  torch.manual_seed(0)
  ref = torch.nn.ConvTranspose2d(4, 3, kernel, stride, pad, out_pad)
  x = normal(2, 5, 6, 4)
  conv = pnn.ConvTranspose2D(3, kernel, stride, pad, out_pad, impl=impl)
  y = conv.apply({"params": conv_params(ref)}, jnp.asarray(x))
  np.testing.assert_allclose(y, nhwc(ref(nchw(x))), atol=ATOL)


def test_same_padding_and_parameters_are_flax_nn_conv_s():
  x = jnp.asarray(normal(2, 8, 7, 3))
  for stride in (1, 2):
    flax_conv = nn.Conv(4, (3, 3), strides=stride)
    params = flax_conv.init(KEY, x)
    ours = pnn.Conv2D(4, 3, stride, padding="same", kernel_init=nn.initializers.lecun_normal())
    assert jax.tree.map(jnp.shape, ours.init(KEY, x)) == jax.tree.map(jnp.shape, params)
    np.testing.assert_allclose(ours.apply(params, x), flax_conv.apply(params, x), atol=ATOL)
  assert pnn.same_pads((8, 7), (3, 3), (2, 2)) == ((0, 1), (1, 1))


def test_leading_batch_axes_are_folded():
  x = jnp.asarray(normal(2, 3, 6, 6, 2))
  conv = pnn.Conv2D(4, 3, padding=1)
  params = conv.init(KEY, x)
  y = conv.apply(params, x)
  assert y.shape == (2, 3, 6, 6, 4)
  np.testing.assert_allclose(y[1, 2], conv.apply(params, x[1, 2][None])[0], atol=ATOL)


@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_2d_matches_torch(affine):
  torch.manual_seed(0)
  ref = torch.nn.InstanceNorm2d(4, affine=affine)
  variables = {}
  if affine:
    with torch.no_grad():
      ref.weight.normal_()
      ref.bias.normal_()
    variables = {"params": {"scale": jnp.asarray(ref.weight.detach().numpy()),
                            "bias": jnp.asarray(ref.bias.detach().numpy())}}
  x = normal(2, 5, 6, 4) * 3 + 1
  norm = pnn.InstanceNorm2D(use_scale=affine, use_bias=affine)
  assert jax.tree.map(jnp.shape, norm.init(KEY, x)) == jax.tree.map(jnp.shape, variables)
  np.testing.assert_allclose(norm.apply(variables, jnp.asarray(x)), nhwc(ref(nchw(x))), atol=ATOL)


def _spectral_params(ref):
  return {"kernel": jnp.asarray(ref.weight_orig.detach().numpy().transpose(2, 3, 1, 0)),
          "bias": jnp.asarray(ref.bias.detach().numpy()),
          pnn.SN_PARAM: jnp.asarray(ref.weight_u.detach().numpy())}


def test_spectral_norm_matches_torch_spectral_norm():
  """The forward of a Conv2D(spectral=True) is PyTorch's train-mode forward from the same u, and
  the optimizer wrapper stores the u that forward's power-iteration step reached."""
  torch.manual_seed(0)
  ref = torch.nn.utils.spectral_norm(torch.nn.Conv2d(3, 5, 3, padding=1))
  x = normal(2, 6, 6, 3)
  params = _spectral_params(ref)
  conv = pnn.Conv2D(5, 3, padding=1, spectral=True)
  assert jax.tree.map(jnp.shape, conv.init(KEY, jnp.asarray(x))["params"]) == {
      "kernel": (3, 3, 3, 5), "bias": (5,), pnn.SN_PARAM: (5,)}
  y = conv.apply({"params": params}, jnp.asarray(x))
  expected = nhwc(ref(nchw(x)))                       # train mode: one power-iteration step
  np.testing.assert_allclose(y, expected, atol=ATOL)
  grads = jax.grad(lambda p: jnp.sum(conv.apply({"params": p}, jnp.asarray(x)) ** 2))(params)
  np.testing.assert_array_equal(grads[pnn.SN_PARAM], 0.0)   # u is not trained
  opt = pnn.with_power_iteration(optax.sgd(0.0))
  updates, _ = opt.update(grads, opt.init(params), params)
  np.testing.assert_allclose(optax.apply_updates(params, updates)[pnn.SN_PARAM],
                             ref.weight_u.detach().numpy(), atol=1e-6)
  np.testing.assert_array_equal(updates["kernel"], 0.0)       # the inner optimizer's (lr 0)


def test_spectral_norm_sigma_converges_to_the_largest_singular_value():
  kernel = jnp.asarray(np.random.default_rng(1).normal(size=(3, 3, 3, 5)), jnp.float32)
  params = {"kernel": kernel, pnn.SN_PARAM: jnp.ones((5,), jnp.float32)}
  opt = pnn.with_power_iteration(optax.sgd(0.0))
  state = opt.init(params)
  for _ in range(50):
    updates, state = opt.update(jax.tree.map(jnp.zeros_like, params), state, params)
    params = optax.apply_updates(params, updates)
  sigma = power_iteration(kernel, params[pnn.SN_PARAM])[2]
  np.testing.assert_allclose(sigma, np.linalg.svd(np.asarray(kernel).reshape(-1, 5),
                                                  compute_uv=False)[0], rtol=1e-5)
  normalized = spectral_lib.normalize_kernel(kernel, params[pnn.SN_PARAM])
  np.testing.assert_allclose(np.linalg.svd(np.asarray(normalized).reshape(-1, 5),
                                           compute_uv=False)[0], 1.0, rtol=1e-5)


class TorchSPADE(torch.nn.Module):
  """SPADE as in Park et al.'s code: param-free norm, shared conv + ReLU, gamma / beta convs."""

  def __init__(self, norm_nc, label_nc, hidden, ks, norm):
    super().__init__()
    if norm == "positional":   # CoCosNet's PONO (normalization.py: unbiased torch.var, eps 1e-5)
      self.param_free_norm = lambda x: ((x - x.mean(dim=1, keepdim=True))
                                        / (x.var(dim=1, keepdim=True) + 1e-5).sqrt())
    else:
      self.param_free_norm = (torch.nn.InstanceNorm2d(norm_nc, affine=False)
                              if norm == "instance" else torch.nn.BatchNorm2d(norm_nc, affine=False))
    mode = "reflect" if norm == "positional" else "zeros"   # CoCosNet pads its convs by reflection
    conv = lambda cin, cout: torch.nn.Conv2d(cin, cout, ks, padding=ks // 2, padding_mode=mode)
    self.mlp_shared = torch.nn.Sequential(conv(label_nc, hidden), torch.nn.ReLU())
    self.mlp_gamma = conv(hidden, norm_nc)
    self.mlp_beta = conv(hidden, norm_nc)

  def forward(self, x, segmap):
    normalized = self.param_free_norm(x)
    segmap = F.interpolate(segmap, size=x.size()[2:], mode="nearest")
    actv = self.mlp_shared(segmap)
    return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


@pytest.mark.parametrize("norm", ["instance", "batch", "positional"])
@pytest.mark.parametrize("label_size", [(6, 5), (12, 10), (9, 7)])
def test_spade_matches_a_torch_spade_module(norm, label_size):
  torch.manual_seed(0)
  ref = TorchSPADE(4, 3, 8, 3, norm).train()
  x, label = normal(2, 6, 5, 4, seed=1) * 2 + 1, normal(2, *label_size, 3, seed=2)
  params = {name: conv_params(conv) for name, conv in
            (("mlp_shared", ref.mlp_shared[0]), ("mlp_gamma", ref.mlp_gamma),
             ("mlp_beta", ref.mlp_beta))}
  spade = pnn.SPADE(hidden=8, norm=norm, pad_mode="reflect" if norm == "positional" else "zero")
  assert_same_tree(spade, params, x, label)
  y = spade.apply({"params": params}, jnp.asarray(x), jnp.asarray(label))
  np.testing.assert_allclose(y, nhwc(ref(nchw(x), nchw(label))), atol=ATOL)
  # gamma and beta come from one convolution of the shared activation: two in all.
  xla = pnn.SPADE(hidden=8, norm=norm, impl="xla")
  text = str(jax.make_jaxpr(lambda a, b: xla.apply({"params": params}, a, b))(x, label))
  assert text.count("conv_general_dilated[") == 2, text.count("conv_general_dilated[")


@pytest.mark.parametrize("unbiased", [False, True])
def test_positional_norm_follows_eq_1_and_returns_the_moments(unbiased):
  x = normal(2, 3, 4, 6) * 2 + 0.5
  y, mean, std = pnn.positional_norm(jnp.asarray(x), unbiased=unbiased)
  mu = x.mean(-1, keepdims=True)
  sigma = np.sqrt(x.var(-1, keepdims=True, ddof=int(unbiased)) + 1e-5)   # Li et al. Eq. 1
  np.testing.assert_allclose(mean, mu, atol=ATOL)
  np.testing.assert_allclose(std, sigma, atol=ATOL)
  np.testing.assert_allclose(y, (x - mu) / sigma, atol=ATOL)
  np.testing.assert_allclose(y * std + mean, x, atol=1e-4)        # re-injecting the moments
  if unbiased:                                                    # the authors' torch.var
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    t_std = (t.var(dim=1, keepdim=True) + 1e-5).sqrt()
    np.testing.assert_allclose(std, nhwc(t_std), atol=ATOL)


@pytest.mark.parametrize("size", [(3, 5), (12, 7), (4, 4), (13, 2), (24, 15), (2, 1)])
def test_resize_nearest_is_torch_interpolate_nearest(size):
  """Values and gradients (whole-number factors take a repeat or a strided slice, the other
  ratios a gather)."""
  x = normal(1, 6, 5, 2)
  weights = normal(1, *size, 2, seed=3)
  t = nchw(x).requires_grad_(True)
  out = F.interpolate(t, size=size, mode="nearest")
  (out * nchw(weights)).sum().backward()
  np.testing.assert_array_equal(pnn.resize_nearest(jnp.asarray(x), size), nhwc(out))
  grad = jax.grad(lambda v: jnp.sum(pnn.resize_nearest(v, size) * weights))(jnp.asarray(x))
  np.testing.assert_allclose(grad, nhwc(t.grad), atol=1e-6)


def test_downsample_avg_is_pix2pixhd_average_pool():
  x = normal(2, 7, 8, 3)
  pool = torch.nn.AvgPool2d(3, stride=2, padding=[1, 1], count_include_pad=False)
  np.testing.assert_allclose(pnn.downsample_avg(jnp.asarray(x)), nhwc(pool(nchw(x))), atol=1e-6)


def test_res_block_2d_is_pix2pixhd_resnet_block():
  torch.manual_seed(0)
  conv1, conv2 = torch.nn.Conv2d(4, 4, 3), torch.nn.Conv2d(4, 4, 3)
  ref = torch.nn.Sequential(torch.nn.ReflectionPad2d(1), conv1, torch.nn.InstanceNorm2d(4),
                            torch.nn.ReLU(), torch.nn.ReflectionPad2d(1), conv2,
                            torch.nn.InstanceNorm2d(4))
  x = normal(2, 6, 5, 4)
  params = {"conv1": conv_params(conv1), "conv2": conv_params(conv2)}
  y = pnn.ResBlock2D().apply({"params": params}, jnp.asarray(x))
  np.testing.assert_allclose(y, x + nhwc(ref(nchw(x))), atol=ATOL)


@pytest.mark.parametrize("mode,kernel", [("transpose", 3), ("transpose", 4), ("resize", 3),
                                         ("resize", 4)])
def test_up_block_doubles_the_size(mode, kernel):
  x = jnp.asarray(normal(2, 5, 3, 4))
  block = pnn.UpBlock2D(6, kernel, mode)
  assert block.apply(block.init(KEY, x), x).shape == (2, 10, 6, 6)


BLOCKS = [
    (pnn.Conv2D(4, 3, padding=1, pad_mode="reflect"), ()),
    (pnn.ConvTranspose2D(4), ()),
    (pnn.ConvNormAct2D(4, strides=2, norm="instance_affine"), ()),
    (pnn.ResBlock2D(norm="batch"), ()),
    (pnn.UpBlock2D(4, mode="resize"), ()),
    (pnn.InstanceNorm2D(use_scale=True, use_bias=True), ()),
    (pnn.SPADE(hidden=4), ((2, 4, 4, 3),)),
]


@pytest.mark.parametrize("module,extra", BLOCKS, ids=lambda v: type(v).__name__)
def test_bfloat16_in_bfloat16_out_float32_parameters(module, extra):
  x = jnp.asarray(normal(2, 8, 8, 3), jnp.bfloat16)
  args = [x] + [jnp.ones(s, jnp.bfloat16) for s in extra]
  variables = module.init(KEY, *args)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
  assert module.apply(variables, *args).dtype == jnp.bfloat16
  assert module.clone(dtype=jnp.float32).apply(variables, *args).dtype == jnp.float32


def test_positional_norm_statistics_are_float32_under_bfloat16():
  y, mean, std = pnn.positional_norm(jnp.ones((1, 2, 2, 4), jnp.bfloat16))
  assert (y.dtype, mean.dtype, std.dtype) == (jnp.bfloat16, jnp.float32, jnp.float32)


@pytest.mark.parametrize("block", [pnn.ConvNormAct2D(3), pnn.ResBlock2D(), pnn.UpBlock2D(3)],
                         ids=lambda v: type(v).__name__)
def test_remat_blocks_give_the_same_values_and_gradients(block):
  x = jnp.asarray(normal(2, 6, 6, 3))
  params = block.init(KEY, x)

  def loss(p, b):
    return jnp.sum(jnp.square(b.apply(p, x)))

  plain = jax.value_and_grad(loss)(params, block)
  remat = jax.value_and_grad(loss)(params, block.clone(remat="blocks"))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), plain, remat)


def test_bad_input_is_a_clear_value_error():
  x = jnp.zeros((1, 8, 8, 3))
  cases = [
      (lambda: pnn.Conv2D(4, pad_mode="circular").init(KEY, x), "pad mode"),
      (lambda: pnn.Conv2D(4, padding="valid").init(KEY, x), "padding must be"),
      (lambda: pnn.Conv2D(4).init(KEY, x[0]), r"\[\.\.\., H, W, C\]"),
      (lambda: pnn.Conv2D(4, padding=(1, 1, 1)).init(KEY, x), r"2 ints or 2 \(lo, hi\) pairs"),
      (lambda: pnn.conv2d(x, jnp.zeros((3, 3, 4, 2))), "kernel expects 4"),
      (lambda: pnn.ConvNormAct2D(4, norm="layer").init(KEY, x), "unknown norm 'layer'"),
      (lambda: pnn.ResBlock2D(activation="gelu").init(KEY, x), "unknown activation 'gelu'"),
      (lambda: pnn.UpBlock2D(4, mode="pixelshuffle").init(KEY, x), "up-sampling mode"),
      (lambda: pnn.InstanceNorm2D().init(KEY, x[0]), "with a batch axis"),
      (lambda: pnn.SPADE(norm="layer").init(KEY, x, x), "SPADE norm"),
      (lambda: pnn.SPADE().init(KEY, x, x[0]), "label map"),
      (lambda: pnn.positional_norm(jnp.zeros((1, 2, 2, 1)), unbiased=True), "C >= 2"),
      (lambda: pnn.with_power_iteration(optax.sgd(0.1)).update({}, (), None), "parameters"),
      (lambda: pnn.resize_nearest(x, (0, 4)), "size"),
      (lambda: pnn.downsample_avg(x[0]), r"\[N, H, W, C\]"),
  ]
  for fn, match in cases:
    with pytest.raises(ValueError, match=match):
      fn()
