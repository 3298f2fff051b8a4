"""Liquid Warping GAN's networks against PyTorch modules written here after the authors' code
(svip-lab/impersonator at b041dd4, networks/generator.py: ResidualBlock, ResNetGenerator,
ResUnetGenerator, ImpersonatorGenerator.forward / infer_front; networks/discriminator.py:
PatchDiscriminator with norm_type "instance"; the composition of models/impersonator_trainer.py),
their weights saved with torch.save under the authors' module names and read by the checkpoint
readers; parameter counts at the authors' sizes; the dtype policy, remat and input errors (tiny
sizes)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch import nn as tnn
from torch.nn import functional as F

from torch_port import assert_same_tree, nchw, nhwc, normal, uniform
from psrjax.models import lwgan

KEY = jax.random.key(0, impl="rbg")
ATOL = 1e-5
TINY = dict(ngf=4, n_downsample=2, n_blocks=2)             # 16x16 inputs: bottleneck 4x4, 16 ch
SMALL = dict(ngf=2, n_downsample=1, n_blocks=1)            # the policy tests' (compile time)


# ------------------------------------------------------------------ PyTorch references
def _unit(cin, cout, k, stride, pad):
  return [tnn.Conv2d(cin, cout, k, stride, pad, bias=False), tnn.InstanceNorm2d(cout, affine=True),
          tnn.ReLU(True)]


def _up(cin, cout, k):
  return [tnn.ConvTranspose2d(cin, cout, k, 2, 1, output_padding=1, bias=False),
          tnn.InstanceNorm2d(cout, affine=True), tnn.ReLU(True)]


class TorchResidualBlock(tnn.Module):
  """ResidualBlock: conv, IN, ReLU, conv, IN (zero padding, no bias), plus the input."""

  def __init__(self, dim):
    super().__init__()
    self.main = tnn.Sequential(*_unit(dim, dim, 3, 1, 1), *_unit(dim, dim, 3, 1, 1)[:2])

  def forward(self, x):
    return x + self.main(x)


class TorchResNetGenerator(tnn.Module):
  """ResNetGenerator(conv_dim, c_dim, repeat_num, k_size, n_down) as one Sequential `model`."""

  def __init__(self, conv_dim, c_dim, repeat_num, k_size, n_down):
    super().__init__()
    layers, dim = _unit(c_dim, conv_dim, 7, 1, 3), conv_dim
    for _ in range(n_down):
      layers += _unit(dim, dim * 2, k_size, 2, 1)
      dim *= 2
    layers += [TorchResidualBlock(dim) for _ in range(repeat_num)]
    for _ in range(n_down):
      layers += _up(dim, dim // 2, k_size)
      dim //= 2
    layers += [tnn.Conv2d(dim, 3, 7, 1, 3, bias=False), tnn.Tanh()]
    self.model = tnn.Sequential(*layers)

  def forward(self, x):
    return self.model(x)


class TorchResUnetGenerator(tnn.Module):
  """ResUnetGenerator: encoders, resnets, decoders, skippers, img_reg, attetion_reg."""

  def __init__(self, conv_dim, c_dim, repeat_num, k_size, n_down):
    super().__init__()
    self.n_down = n_down
    encoders, dim = [tnn.Sequential(*_unit(c_dim, conv_dim, 7, 1, 3))], conv_dim
    for _ in range(n_down):
      encoders.append(tnn.Sequential(*_unit(dim, dim * 2, k_size, 2, 1)))
      dim *= 2
    self.encoders = tnn.Sequential(*encoders)
    self.resnets = tnn.Sequential(*[TorchResidualBlock(dim) for _ in range(repeat_num)])
    decoders, skippers = [], []
    for _ in range(n_down):
      decoders.append(tnn.Sequential(*_up(dim, dim // 2, k_size)))
      skippers.append(tnn.Sequential(*_unit(dim, dim // 2, k_size, 1, 1)))
      dim //= 2
    self.decoders, self.skippers = tnn.Sequential(*decoders), tnn.Sequential(*skippers)
    self.img_reg = tnn.Sequential(tnn.Conv2d(dim, 3, 7, 1, 3, bias=False), tnn.Tanh())
    self.attetion_reg = tnn.Sequential(tnn.Conv2d(dim, 1, 7, 1, 3, bias=False), tnn.Sigmoid())

  def decode(self, x, encoder_outs):
    for i in range(self.n_down):
      x = self.decoders[i](x)
      x = self.skippers[i](torch.cat([encoder_outs[self.n_down - 1 - i], x], dim=1))
    return x

  def regress(self, x):
    return self.img_reg(x), self.attetion_reg(x)


def torch_stn(x, grid):
  """grid_sample with PyTorch 1.2's defaults (bilinear, zeros, corners aligned)."""
  return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def torch_resize_trans(x, transform):
  grid = F.interpolate(transform.permute(0, 3, 1, 2), size=x.shape[2:], mode="bilinear",
                       align_corners=True)
  return grid.permute(0, 2, 3, 1)


class TorchImpersonatorGenerator(tnn.Module):
  """ImpersonatorGenerator (n_down a parameter here; the authors fix it to 3; k_size 3)."""

  def __init__(self, bg_dim, src_dim, tsf_dim, conv_dim, repeat_num, n_down=3):
    super().__init__()
    self.n_down, self.repeat_num = n_down, repeat_num
    self.bg_model = TorchResNetGenerator(conv_dim, bg_dim, repeat_num, 3, n_down)
    self.src_model = TorchResUnetGenerator(conv_dim, src_dim, repeat_num, 3, n_down)
    self.tsf_model = TorchResUnetGenerator(conv_dim, tsf_dim, repeat_num, 3, n_down)
    for m in self.modules():             # non-trivial affine instance norms
      if isinstance(m, tnn.InstanceNorm2d):
        m.weight.data.normal_(1.0, 0.3)
        m.bias.data.normal_(0.0, 0.3)

  def forward(self, bg_inputs, src_inputs, tsf_inputs, transform):
    img_bg = self.bg_model(bg_inputs)
    src_x, tsf_x = self.src_model.encoders[0](src_inputs), self.tsf_model.encoders[0](tsf_inputs)
    src_outs, tsf_outs = [src_x], [tsf_x]
    for i in range(1, self.n_down + 1):
      src_x = self.src_model.encoders[i](src_x)
      warp = torch_stn(src_x, torch_resize_trans(src_x, transform))
      tsf_x = self.tsf_model.encoders[i](tsf_x) + warp
      src_outs.append(src_x)
      tsf_outs.append(tsf_x)
    grid = torch_resize_trans(src_x, transform)
    for i in range(self.repeat_num):
      src_x = self.src_model.resnets[i](src_x)
      tsf_x = self.tsf_model.resnets[i](tsf_x) + torch_stn(src_x, grid)
    src_img, src_mask = self.src_model.regress(self.src_model.decode(src_x, src_outs))
    tsf_img, tsf_mask = self.tsf_model.regress(self.tsf_model.decode(tsf_x, tsf_outs))
    return img_bg, src_img, src_mask, tsf_img, tsf_mask


def torch_compose(img_bg, src_img, src_mask, tsf_img, tsf_mask, bg_both):
  """Impersonator.forward's composition (models/impersonator_trainer.py)."""
  bs = src_img.shape[0]
  src_bg, tsf_bg = img_bg[:bs], (img_bg[bs:] if bg_both else img_bg[:bs])
  return (src_mask * src_bg + (1 - src_mask) * src_img,
          tsf_mask * tsf_bg + (1 - tsf_mask) * tsf_img)


class TorchPatchDiscriminator(tnn.Module):
  """PatchDiscriminator(input_nc, ndf, n_layers, norm_type="instance", use_sigmoid=False)."""

  def __init__(self, input_nc, ndf=64, n_layers=3):
    super().__init__()
    norm = functools.partial(tnn.InstanceNorm2d, affine=False)
    seq = [tnn.Conv2d(input_nc, ndf, 4, 2, 1), tnn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, n_layers):
      prev, mult = mult, min(2 ** n, 8)
      seq += [tnn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=True), norm(ndf * mult),
              tnn.LeakyReLU(0.2, True)]
    prev, mult = mult, min(2 ** n_layers, 8)
    seq += [tnn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=True), norm(ndf * mult),
            tnn.LeakyReLU(0.2, True), tnn.Conv2d(ndf * mult, 1, 4, 1, 1)]
    self.model = tnn.Sequential(*seq)

  def forward(self, x):
    return self.model(x)


def _saved_state(module, tmp_path):
  path = tmp_path / "net.pth"
  torch.save(module.state_dict(), path)
  return torch.load(path)


def _transform(n, size, seed=2):
  """A non-trivial T: the identity grid zoomed out 1.15x (the border reads outside the image,
  grid_sample's zero padding), rotated a little, plus noise."""
  g = np.linspace(-1.0, 1.0, size, dtype=np.float32)
  x, y = np.meshgrid(g, g, indexing="xy")
  grids = []
  for k in range(n):
    a = 0.2 * (k + 1)
    gx, gy = np.cos(a) * x - np.sin(a) * y, np.sin(a) * x + np.cos(a) * y
    grids.append(1.15 * np.stack([gx, gy], -1))
  return (np.stack(grids) + normal(n, size, size, 2, seed=seed, scale=0.05)).astype(np.float32)


def _inputs(n=2, size=16, tsf_bg=False):
  out = dict(bg_inputs=uniform(n, size, size, 4), src_inputs=uniform(n, size, size, 6, seed=1),
             tsf_inputs=uniform(n, size, size, 6, seed=3), transform=_transform(n, size))
  if tsf_bg:
    out["tsf_bg_inputs"] = uniform(n, size, size, 4, seed=4)
  return out


def _args(x):
  return x["bg_inputs"], x["src_inputs"], x["tsf_inputs"], x["transform"]


def _random_params(module, *args):
  """Parameters of `module.init`'s tree, N(0, 0.3) draws, without compiling the init."""
  shapes = jax.eval_shape(module.init, KEY, *args)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(shapes))
  leaves, tree = jax.tree.flatten(shapes)
  return jax.tree.unflatten(tree, [jnp.asarray(normal(*p.shape, seed=i, scale=0.3))
                                   for i, p in enumerate(leaves)])


# ------------------------------------------------------------------ parity
def test_liquid_warp_is_the_authors_transform():
  features, transform = uniform(2, 8, 6, 3), _transform(2, 16)
  expected = torch_stn(nchw(features), torch_resize_trans(nchw(features), torch.from_numpy(
      transform)))
  np.testing.assert_allclose(lwgan.liquid_warp(features, transform), nhwc(expected), atol=ATOL)


def test_generator_matches_the_authors_through_their_state_dict(tmp_path):
  torch.manual_seed(0)
  ref = TorchImpersonatorGenerator(4, 6, 6, conv_dim=4, repeat_num=2, n_down=2)
  params = lwgan.params_from_torch(_saved_state(ref, tmp_path), n_downsample=2, n_blocks=2)
  x = _inputs(tsf_bg=True)
  g = lwgan.generator(**TINY)
  assert_same_tree(g, params, *_args(x))
  apply = jax.jit(lambda *a: g.apply({"params": params}, *a[:4], tsf_bg_inputs=a[4]))
  # The authors' default (the target frame on the source's background) is tsf_bg_inputs =
  # bg_inputs here, so that one compiled function serves both cases.
  for bg_both in (False, True):
    tsf_bg = x["tsf_bg_inputs"] if bg_both else x["bg_inputs"]
    out = apply(*_args(x), tsf_bg)
    bg = nchw(x["bg_inputs"])
    if bg_both:
      bg = torch.cat([bg, nchw(tsf_bg)], dim=0)
    with torch.no_grad():
      expected = ref(bg, nchw(x["src_inputs"]), nchw(x["tsf_inputs"]),
                     torch.from_numpy(x["transform"]))
      src_image, image = torch_compose(*expected, bg_both)
    img_bg, src_img, src_mask, tsf_img, tsf_mask = expected
    pairs = {"background": img_bg[:2], "target_background": img_bg[2:] if bg_both else img_bg,
             "source_color": src_img, "source_mask": src_mask, "source_image": src_image,
             "color": tsf_img, "mask": tsf_mask, "image": image}
    for name, theirs in pairs.items():
      np.testing.assert_allclose(out[name], nhwc(theirs), atol=ATOL, err_msg=f"{name} {bg_both}")
  # The Liquid Warping Block matters: with T pointing outside the source, the warps read zeros.
  far = apply(*_args(x)[:3], x["transform"] + 5.0, tsf_bg)
  assert float(jnp.abs(far["color"] - out["color"]).max()) > 1e-2
  np.testing.assert_allclose(far["source_color"], out["source_color"], atol=1e-6)


def test_discriminator_matches_the_authors_through_their_state_dict(tmp_path):
  torch.manual_seed(0)
  ref = TorchPatchDiscriminator(6, ndf=4, n_layers=4)
  params = lwgan.discriminator_params_from_torch(_saved_state(ref, tmp_path), num_layers=4)
  image, cond = uniform(2, 64, 64, 3), uniform(2, 64, 64, 3, seed=1)
  d = lwgan.discriminator(ndf=4)
  assert_same_tree(d, params, image, cond)
  logits = jax.jit(d.apply)({"params": params}, image, cond)
  with torch.no_grad():
    expected = ref(torch.cat([nchw(image), nchw(cond)], dim=1))
  assert logits.shape == (2, 2, 2, 1) and logits.dtype == jnp.float32
  np.testing.assert_allclose(logits, nhwc(expected), atol=ATOL)


def test_readers_take_dataparallel_names_and_reject_other_sizes(tmp_path):
  torch.manual_seed(0)
  ref = TorchPatchDiscriminator(6, ndf=2, n_layers=4)
  state = {f"module.{k}": v for k, v in ref.state_dict().items()}
  params = lwgan.discriminator_params_from_torch(state)
  np.testing.assert_array_equal(params["conv5"]["bias"], ref.model[14].bias.detach().numpy())
  with pytest.raises(ValueError, match="no model.17.weight"):
    lwgan.discriminator_params_from_torch(state, num_layers=5)
  with pytest.raises(ValueError, match="entries the network lacks"):
    lwgan.discriminator_params_from_torch(state, num_layers=3)
  g_state = TorchImpersonatorGenerator(4, 6, 6, conv_dim=2, repeat_num=1, n_down=1).state_dict()
  assert lwgan.params_from_torch(g_state, n_downsample=1, n_blocks=1)["transfer"]["mask_head"]
  with pytest.raises(ValueError, match="no bg_model.model.6.weight"):
    lwgan.params_from_torch(g_state, n_downsample=1, n_blocks=0)
  with pytest.raises(ValueError, match=r"entries the network lacks \(extra.weight"):
    lwgan.params_from_torch({**g_state, "extra.weight": torch.zeros(1)}, n_downsample=1,
                            n_blocks=1)


# ------------------------------------------------------------------ sizes, policy, errors
def test_parameter_counts_at_the_authors_sizes_equal_the_references():
  count = lambda m, *args: sum(p.size for p in jax.tree.leaves(
      jax.eval_shape(functools.partial(m.init, KEY), *args)))
  torch_count = lambda m: sum(p.numel() for p in m.parameters())
  x = _inputs(n=1, size=32)
  g = lwgan.generator()
  assert (g.ngf, g.n_downsample, g.n_blocks) == (64, 3, 6)
  ours = count(g, *_args(x))
  with torch.device("meta"):             # shapes only, no memory or initialisation
    theirs = TorchImpersonatorGenerator(4, 6, 6, conv_dim=64, repeat_num=6)
    d_theirs = TorchPatchDiscriminator(6, ndf=64, n_layers=4)
  assert ours == torch_count(theirs) == 97_452_736
  assert torch_count(theirs.bg_model) == 31_445_184
  assert torch_count(theirs.src_model) == torch_count(theirs.tsf_model) == 33_003_776
  image = jnp.zeros((1, 256, 256, 3))
  assert count(lwgan.discriminator(), image, image) == torch_count(d_theirs) == 6_962_625


def test_bfloat16_inputs_compute_in_bfloat16_with_float32_parameters():
  x = _inputs(n=1, size=8)
  args = [jnp.asarray(a, jnp.bfloat16) for a in _args(x)[:3]] + [jnp.asarray(x["transform"])]
  g = lwgan.generator(**SMALL)
  params = _random_params(g, *args)         # asserts float32 parameters
  out = jax.jit(g.apply)(params, *args)
  assert {v.dtype for v in out.values()} == {jnp.dtype(jnp.bfloat16)}
  assert out["image"].shape == (1, 8, 8, 3) and out["mask"].shape == (1, 8, 8, 1)
  # Without tsf_bg_inputs the target frame is composed on the source's background.
  np.testing.assert_array_equal(out["target_background"], out["background"])
  d = lwgan.discriminator(ndf=2, num_layers=2)
  image = jnp.asarray(uniform(1, 16, 16, 3), jnp.bfloat16)
  params = _random_params(d, image, image)
  assert jax.jit(d.apply)(params, image, image).dtype == jnp.float32


def test_remat_modes_give_the_same_values_and_gradients():
  x = _inputs(n=1, size=8)
  g = lwgan.generator(**SMALL)
  params = _random_params(g, *_args(x))

  def loss(p, m):
    return sum(jnp.mean(jnp.square(y)) for y in jax.tree.leaves(m.apply(p, *_args(x))))

  grad = lambda m, run=jax.jit: run(jax.value_and_grad(functools.partial(loss, m=m)))(params)
  shapes_only = lambda f: functools.partial(jax.eval_shape, f)
  plain = grad(g)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), plain,
               grad(g.clone(remat="blocks")))
  # "full" (the whole generator recomputed) traces to the same structure; its values are those
  # of the same layers.
  shape = lambda a: (a.shape, a.dtype)
  assert jax.tree.map(shape, grad(g.clone(remat="full"), run=shapes_only)) == \
      jax.tree.map(shape, plain)


def test_bad_input_is_a_clear_value_error():
  x = _inputs(n=1, size=16)
  g = lwgan.generator(**TINY)
  bg, src, tsf, transform = _args(x)
  image = jnp.zeros((1, 64, 64, 3))
  cases = [
      (lambda: g.init(KEY, bg, src, tsf, np.moveaxis(transform, -1, 1)), "transform must be"),
      (lambda: g.init(KEY, bg[..., :3], src, tsf, transform), r"bg_inputs must be \[N, H, W, 4\]"),
      (lambda: g.init(KEY, bg, src, tsf[:, :8], transform), "tsf_inputs must be"),
      (lambda: g.init(KEY, bg, src, tsf, transform, tsf_bg_inputs=src), "tsf_bg_inputs must be"),
      (lambda: g.init(KEY, *(a[:, :14, :14] for a in (bg, src, tsf, transform))),
       "divisible by 4"),
      (lambda: lwgan.generator("huge"), "unknown Liquid Warping GAN variant 'huge'"),
      (lambda: lwgan.discriminator().init(KEY, image, image[..., :2]), "cond"),
      (lambda: lwgan.liquid_warp(src, transform[0]), "liquid_warp expects"),
      (lambda: lwgan.params_from_torch({}, n_downsample=1, n_blocks=1), "no bg_model.model.0"),
  ]
  for fn, match in cases:
    with pytest.raises(ValueError, match=match):
      fn()
