"""pix2pixHD's generators and multi-scale discriminator, and pix2pix's U-Net, against PyTorch
modules written here and in torch_port.py after the authors' architectures (NVIDIA/pix2pixHD models/networks.py,
pix2pix's UnetGenerator) with identical weights; the bottleneck hook, dtype policy, remat,
the feature-matching and VGG losses (tiny sizes)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch import nn as tnn

from torch_port import (TorchResnetBlock, assert_same_tree, back_names, conv_tree, front_names,
                        instance_norm, nchw, nhwc, torch_back, torch_front, uniform)
from psrjax.losses import adversarial, perceptual
from psrjax.models import pix2pixhd
from psrjax.models.pretrained import vgg
from psrjax.models.unet import UNetGenerator

KEY = jax.random.key(0, impl="rbg")
ATOL = 1e-5
# Tiny networks for 16x16 images (the factories default to the paper's sizes; the configs hold
# their runlocal and tiny variants' sizes).
TINY = {
    "global": dict(ngf=4, n_downsample=2, n_blocks=1),
    "local": dict(ngf=4, n_downsample_global=1, n_blocks_global=1, n_blocks_local=1),
    "unet": dict(ngf=4, num_downs=3, dropout=0.0),
    "discriminator": dict(num_d=2, ndf=4, num_layers=1),
}


def tiny_generator(name, **fields):
  return pix2pixhd.generator(name, **{**TINY[name], **fields})


def tiny_discriminator(**fields):
  return pix2pixhd.discriminator(**{**TINY["discriminator"], **fields})


# ------------------------------------------------------------------ PyTorch references
def torch_global_generator(input_nc, output_nc, ngf, n_down, n_blocks, head=True):
  """pix2pixHD's GlobalGenerator.model (instance norm); without the last 3 layers if not head."""
  layers = [*torch_front(input_nc, ngf, n_down), *torch_back(ngf, n_down, n_blocks)]
  layers += [tnn.ReflectionPad2d(3), tnn.Conv2d(ngf, output_nc, 7), tnn.Tanh()]
  return tnn.Sequential(*(layers if head else layers[:-3]))


class TorchLocalEnhancer(tnn.Module):
  """pix2pixHD's LocalEnhancer with one enhancer."""

  def __init__(self, input_nc, output_nc, ngf, n_down_global, n_blocks_global, n_blocks_local):
    super().__init__()
    self.model = torch_global_generator(input_nc, output_nc, 2 * ngf, n_down_global,
                                        n_blocks_global, head=False)
    self.model1_1 = tnn.Sequential(
        tnn.ReflectionPad2d(3), tnn.Conv2d(input_nc, ngf, 7), instance_norm(ngf), tnn.ReLU(True),
        tnn.Conv2d(ngf, 2 * ngf, 3, 2, 1), instance_norm(2 * ngf), tnn.ReLU(True))
    self.model1_2 = tnn.Sequential(
        *[TorchResnetBlock(2 * ngf) for _ in range(n_blocks_local)],
        tnn.ConvTranspose2d(2 * ngf, ngf, 3, 2, 1, 1), instance_norm(ngf), tnn.ReLU(True),
        tnn.ReflectionPad2d(3), tnn.Conv2d(ngf, output_nc, 7), tnn.Tanh())
    self.downsample = tnn.AvgPool2d(3, stride=2, padding=[1, 1], count_include_pad=False)

  def forward(self, x):
    return self.model1_2(self.model1_1(x) + self.model(self.downsample(x)))


def torch_n_layer_discriminator(input_nc, ndf, n_layers):
  """pix2pixHD's NLayerDiscriminator(getIntermFeat=True) as its list of n_layers + 2 stages."""
  kw, padw = 4, 2
  stages = [[tnn.Conv2d(input_nc, ndf, kw, 2, padw), tnn.LeakyReLU(0.2, True)]]
  nf = ndf
  for _ in range(1, n_layers):
    nf_prev, nf = nf, min(nf * 2, 512)
    stages += [[tnn.Conv2d(nf_prev, nf, kw, 2, padw), instance_norm(nf), tnn.LeakyReLU(0.2, True)]]
  nf_prev, nf = nf, min(nf * 2, 512)
  stages += [[tnn.Conv2d(nf_prev, nf, kw, 1, padw), instance_norm(nf), tnn.LeakyReLU(0.2, True)]]
  stages += [[tnn.Conv2d(nf, 1, kw, 1, padw)]]
  return tnn.ModuleList([tnn.Sequential(*s) for s in stages])


def torch_multiscale_forward(scales, x):
  """pix2pixHD's MultiscaleDiscriminator.forward: `scales[i]` sees the input pooled i times."""
  pool = tnn.AvgPool2d(3, stride=2, padding=[1, 1], count_include_pad=False)
  result = []
  for i, stages in enumerate(scales):
    outs = [x]
    for stage in stages:
      outs.append(stage(outs[-1]))
    result.append(outs[1:])
    x = pool(x)
  return result


class TorchUnetBlock(tnn.Module):
  """pix2pix's UnetSkipConnectionBlock with instance norm (use_bias=True), no dropout."""

  def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False,
               innermost=False):
    super().__init__()
    self.outermost = outermost
    input_nc = outer_nc if input_nc is None else input_nc
    downconv = tnn.Conv2d(input_nc, inner_nc, 4, 2, 1)
    downrelu, uprelu = tnn.LeakyReLU(0.2, True), tnn.ReLU(True)
    if outermost:
      upconv = tnn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1)
      model = [downconv, submodule, uprelu, upconv, tnn.Tanh()]
    elif innermost:
      upconv = tnn.ConvTranspose2d(inner_nc, outer_nc, 4, 2, 1)
      model = [downrelu, downconv, uprelu, upconv, instance_norm(outer_nc)]
    else:
      upconv = tnn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1)
      model = [downrelu, downconv, instance_norm(inner_nc), submodule, uprelu, upconv,
               instance_norm(outer_nc)]
    self.model = tnn.Sequential(*model)

  def forward(self, x):
    return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


def torch_unet(input_nc, output_nc, num_downs, ngf):
  """pix2pix's UnetGenerator (its block nesting)."""
  block = TorchUnetBlock(ngf * 8, ngf * 8, innermost=True)
  for _ in range(num_downs - 5):
    block = TorchUnetBlock(ngf * 8, ngf * 8, submodule=block)
  block = TorchUnetBlock(ngf * 4, ngf * 8, submodule=block)
  block = TorchUnetBlock(ngf * 2, ngf * 4, submodule=block)
  block = TorchUnetBlock(ngf, ngf * 2, submodule=block)
  return TorchUnetBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True)


# ------------------------------------------------------------------ weight transfer
def _global_names(n_down, n_blocks, head=True):
  """Our conv paths in the order the reference's modules() lists its convs."""
  return front_names(n_down) + back_names(n_down, n_blocks) + ([("head",)] if head else [])


# ------------------------------------------------------------------ parity
def test_global_generator_matches_pix2pixhd():
  torch.manual_seed(0)
  ref = torch_global_generator(5, 3, ngf=4, n_down=2, n_blocks=2)
  x = uniform(2, 16, 12, 5)
  g = pix2pixhd.GlobalGenerator(3, ngf=4, n_downsample=2, n_blocks=2)
  params = conv_tree(ref, _global_names(2, 2))
  assert_same_tree(g, params, x)
  np.testing.assert_allclose(g.apply({"params": params}, x), nhwc(ref(nchw(x))), atol=ATOL)


def test_local_enhancer_matches_pix2pixhd():
  torch.manual_seed(0)
  ref = TorchLocalEnhancer(3, 3, ngf=4, n_down_global=1, n_blocks_global=1, n_blocks_local=1)
  x = uniform(1, 16, 16, 3)
  g = pix2pixhd.LocalEnhancer(3, ngf=4, n_downsample_global=1, n_blocks_global=1,
                              n_blocks_local=1)
  local = [("local1_stem", "conv"), ("local1_down", "conv"), ("local1_block0", "conv1"),
           ("local1_block0", "conv2"), ("local1_up", "conv"), ("head",)]
  params = {**conv_tree(ref.model1_1, local[:2]), **conv_tree(ref.model1_2, local[2:]),
            "global": conv_tree(ref.model, _global_names(1, 1, head=False))}
  assert_same_tree(g, params, x)
  np.testing.assert_allclose(g.apply({"params": params}, x), nhwc(ref(nchw(x))), atol=ATOL)


def test_multiscale_discriminator_matches_pix2pixhd_logits_and_features():
  torch.manual_seed(0)
  num_d, n_layers = 2, 2
  scales = [torch_n_layer_discriminator(5, 4, n_layers) for _ in range(num_d)]
  image, label = uniform(2, 16, 16, 3), uniform(2, 16, 16, 2, seed=1)
  d = pix2pixhd.MultiScaleDiscriminator(num_d, ndf=4, num_layers=n_layers)
  names = [(f"conv{j}",) for j in range(n_layers + 2)]
  params = {f"scale{i}": conv_tree(s, names) for i, s in enumerate(scales)}
  assert_same_tree(d, params, image, label)
  logits, features = d.apply({"params": params}, image, label)
  expected = torch_multiscale_forward(scales, nchw(np.concatenate([image, label], -1)))
  assert len(logits) == len(features) == num_d
  for i in range(num_d):
    assert len(features[i]) == n_layers + 1
    for ours, theirs in zip(features[i] + [logits[i]], expected[i]):
      np.testing.assert_allclose(ours, nhwc(theirs), atol=ATOL)


def test_unet_generator_matches_pix2pix():
  torch.manual_seed(0)
  depth = 6
  ref = torch_unet(3, 2, depth, ngf=2)
  x = uniform(1, 64, 64, 3)
  g = UNetGenerator(2, ngf=2, num_downs=depth, norm="instance", dropout=0.0)
  # The reference nests level i + 1's block between level i's down and up convs.
  names = [(f"down{i}",) for i in range(depth)] + [(f"up{i}",) for i in reversed(range(depth))]
  params = conv_tree(ref, names)
  assert_same_tree(g, params, x)
  np.testing.assert_allclose(g.apply({"params": params}, x), nhwc(ref(nchw(x))), atol=ATOL)


def test_feature_matching_weights_each_layer_as_pix2pixhd():
  d = tiny_discriminator(num_layers=2)
  real, fake = uniform(2, 16, 16, 3), uniform(2, 16, 16, 3, seed=1)
  params = d.init(KEY, real)
  (_, feats_real), (_, feats_fake) = d.apply(params, real), d.apply(params, fake)
  # pix2pixHD_model.py: sum_i sum_j D_weights * feat_weights * L1, D_weights = 1 / num_D,
  # feat_weights = 4 / (n_layers_D + 1), over all of D_i's outputs but its logits.
  expected = sum(1 / d.num_d * 4 / (d.num_layers + 1) * np.mean(np.abs(f - r))
                 for fs, rs in zip(feats_fake, feats_real) for f, r in zip(fs, rs))
  np.testing.assert_allclose(adversarial.feature_matching(feats_real, feats_fake), expected,
                             rtol=1e-5)


def test_vgg_loss_weights_relu1_1_to_relu5_1_as_pix2pixhd():
  assert set(perceptual.PIX2PIXHD_VGG_LAYERS) <= set(vgg.endpoints(19)) & set(vgg.endpoints(16))
  rng = np.random.default_rng(0)
  feats = {n: jnp.asarray(rng.normal(size=(2, 3, 3, 4)), jnp.float32)
           for n in perceptual.PIX2PIXHD_VGG_LAYERS}
  fake_vgg = lambda x: {n: f * jnp.mean(x) for n, f in feats.items()}
  pred, target = jnp.full((2, 4, 4, 3), 0.5), jnp.full((2, 4, 4, 3), -0.25)
  expected = sum(w * np.mean(np.abs(f * 0.5 - f * -0.25)) for w, f in
                 zip((1 / 32, 1 / 16, 1 / 8, 1 / 4, 1), feats.values()))
  np.testing.assert_allclose(perceptual.vgg_loss(fake_vgg, pred, target), expected, rtol=1e-6)
  np.testing.assert_allclose(perceptual.vgg_loss(fake_vgg, pred, fake_vgg(target)), expected,
                             rtol=1e-6)


# ------------------------------------------------------------------ the bottleneck hook
@pytest.mark.parametrize("name", ["global", "local"])
def test_bottleneck_features_enter_before_the_residual_blocks(name):
  g = tiny_generator(name)
  x = jnp.asarray(uniform(2, 16, 16, 3))
  feats = jnp.asarray(uniform(2, 4, 4, 5, seed=2))     # 16 / 2^2; local: 16 / 2 (pooled) / 2^1
  params = g.init(KEY, x, feats)
  plain = g.apply(params, x)
  np.testing.assert_allclose(g.apply(params, x, feats), plain, atol=1e-6)   # "add" starts at 0
  params = jax.tree.map(lambda p: p + 0.1, params)
  assert float(jnp.abs(g.apply(params, x, feats) - g.apply(params, x, 2 * feats)).max()) > 1e-4
  with pytest.raises(ValueError, match="bottleneck_features must be"):
    g.apply(params, x, feats[:, :2])


def test_bottleneck_concat_mode_fuses_with_a_1x1_conv():
  g = tiny_generator("global", bottleneck_mode="concat")
  x, feats = jnp.ones((1, 16, 16, 3)), jnp.ones((1, 4, 4, 5))
  params = g.init(KEY, x, feats)["params"]
  assert params["bottleneck"]["kernel"].shape == (1, 1, 16 + 5, 16)
  assert g.apply({"params": params}, x, feats).shape == (1, 16, 16, 3)


# ------------------------------------------------------------------ policy and sizes
def _modules():
  return [tiny_generator(n) for n in pix2pixhd.GENERATORS] + \
      [tiny_discriminator()]


@pytest.mark.parametrize("index", range(4), ids=["global", "local", "unet", "discriminator"])
def test_bfloat16_inputs_compute_in_bfloat16_with_float32_parameters(index):
  module = _modules()[index]
  x = jnp.asarray(uniform(2, 16, 16, 3), jnp.bfloat16)
  params = module.init(KEY, x)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  out = module.apply(params, x)
  if isinstance(module, pix2pixhd.MultiScaleDiscriminator):
    logits, features = out
    assert all(l.dtype == jnp.float32 for l in logits)
    assert all(f.dtype == jnp.bfloat16 for scale in features for f in scale)
  else:
    assert out.dtype == jnp.bfloat16 and out.shape == (2, 16, 16, 3)


@pytest.mark.parametrize("index", range(4), ids=["global", "local", "unet", "discriminator"])
def test_remat_modes_give_the_same_values_and_gradients(index):
  module = _modules()[index]
  x = jnp.asarray(uniform(2, 16, 16, 3))
  params = jax.jit(module.init)(KEY, x)

  def loss(p, m):
    return sum(jnp.sum(jnp.square(y)) for y in jax.tree.leaves(m.apply(p, x)))

  # jitted: one compiled program per mode instead of hundreds of one-operation ones
  value_and_grad = lambda m: jax.jit(jax.value_and_grad(lambda p: loss(p, m)))(params)
  plain = value_and_grad(module)
  for mode in ("blocks", "full"):
    remat = value_and_grad(module.clone(remat=mode))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), plain, remat)


def test_paper_sizes_and_keyword_sizes():
  paper = pix2pixhd.generator("global")
  assert (paper.ngf, paper.n_downsample, paper.n_blocks) == (64, 4, 9)
  assert pix2pixhd.discriminator().num_d == 3
  shapes = jax.eval_shape(functools.partial(pix2pixhd.generator("unet").init, KEY),
                          jnp.zeros((1, 256, 256, 3)))
  assert sum(p.size for p in jax.tree.leaves(shapes)) == 54_413_955      # pix2pix's U-Net
  small = pix2pixhd.generator("global", "paper", ngf=16, n_downsample=3, out_channels=1)
  assert (small.ngf, small.n_downsample, small.n_blocks, small.out_channels) == (16, 3, 9, 1)


def test_bad_input_is_a_clear_value_error():
  x = jnp.zeros((1, 16, 16, 3))
  cases = [
      (lambda: pix2pixhd.generator("cyclegan"), "unknown generator 'cyclegan'"),
      (lambda: pix2pixhd.generator("global", "huge"), "unknown pix2pixHD variant 'huge'"),
      (lambda: pix2pixhd.discriminator("tiny"), "unknown pix2pixHD variant 'tiny'"),
      (lambda: tiny_generator("global").init(KEY, x[:, :14]), "divisible by 4"),
      (lambda: tiny_generator("local").init(KEY, x[:, :14]), "divisible by 4"),
      (lambda: tiny_generator("unet").init(KEY, x[:, :12]), "divisible by 8"),
      (lambda: tiny_generator("unet", num_downs=1).init(KEY, x), "num_downs >= 2"),
      (lambda: tiny_generator("global", norm="group").init(KEY, x), "unknown norm"),
      (lambda: tiny_generator("global", bottleneck_mode="mul").init(KEY, x),
       "bottleneck_mode"),
      (lambda: tiny_discriminator().init(KEY, x, x[:, :8]), "condition"),
  ]
  for fn, match in cases:
    with pytest.raises(ValueError, match=match):
      fn()
