"""vid2vid's networks against PyTorch modules written here after the authors' code (NVIDIA/vid2vid
models/networks.py: CompositeGenerator, BaseNetwork.resample, MultiscaleDiscriminator,
NLayerDiscriminator; batch norm in train mode, as that code runs it), their weights saved with
torch.save under the authors' module names and read by the checkpoint readers; the dtype
policy, remat, sizes and input errors (tiny sizes)."""
import copy
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch import nn as tnn
from torch.nn import functional as F

from torch_port import assert_same_tree, nchw, nhwc, normal, uniform
from psrjax.models import vid2vid

KEY = jax.random.key(0, impl="rbg")
ATOL = 1e-5
TINY_G = dict(ngf=4, n_downsample=2, n_blocks=3)           # 16x16 frames; blocks split 2 + 1
TINY_D = dict(num_d=2, ndf=4, num_layers=2)                # scale widths 4 and 8
SMALL_G = dict(ngf=4, n_downsample=1, n_blocks=2)          # the policy tests' (compile time)


# ------------------------------------------------------------------ PyTorch references
class TorchResBlock(tnn.Module):
  """The authors' ResnetBlock (reflect padding, batch norm)."""

  def __init__(self, dim):
    super().__init__()
    self.conv_block = tnn.Sequential(
        tnn.ReflectionPad2d(1), tnn.Conv2d(dim, dim, 3), tnn.BatchNorm2d(dim), tnn.ReLU(True),
        tnn.ReflectionPad2d(1), tnn.Conv2d(dim, dim, 3), tnn.BatchNorm2d(dim))

  def forward(self, x):
    return x + self.conv_block(x)


def _randomise_norms(module):
  for m in module.modules():
    if isinstance(m, tnn.BatchNorm2d):
      m.weight.data.normal_(1.0, 0.3)
      m.bias.data.normal_(0.0, 0.3)


def torch_resample(image, flow):
  """BaseNetwork.resample (grid_sample under PyTorch 0.4: align_corners=True)."""
  b, _, h, w = image.size()
  hor = torch.linspace(-1.0, 1.0, w).view(1, 1, 1, w).expand(b, 1, h, w)
  ver = torch.linspace(-1.0, 1.0, h).view(1, 1, h, 1).expand(b, 1, h, w)
  grid = torch.cat([hor, ver], 1)
  flow = torch.cat([flow[:, 0:1] / ((w - 1.0) / 2.0), flow[:, 1:2] / ((h - 1.0) / 2.0)], dim=1)
  return F.grid_sample(image, (grid + flow).permute(0, 2, 3, 1), mode="bilinear",
                       padding_mode="border", align_corners=True)


class TorchCompositeGenerator(tnn.Module):
  """The authors' CompositeGenerator without the foreground model, batch norm."""

  def __init__(self, input_nc, output_nc, prev_nc, ngf, n_down, n_blocks):
    super().__init__()
    relu = tnn.ReLU(True)
    down = [tnn.ReflectionPad2d(3), tnn.Conv2d(input_nc, ngf, 7), tnn.BatchNorm2d(ngf), relu]
    for i in range(n_down):
      m = 2 ** i
      down += [tnn.Conv2d(ngf * m, ngf * m * 2, 3, 2, 1), tnn.BatchNorm2d(ngf * m * 2), relu]
    mult = 2 ** n_down
    down += [TorchResBlock(ngf * mult) for _ in range(n_blocks - n_blocks // 2)]
    down_img = [tnn.ReflectionPad2d(3), tnn.Conv2d(prev_nc, ngf, 7), tnn.BatchNorm2d(ngf), relu]
    down_img += copy.deepcopy(down[4:])
    res = [TorchResBlock(ngf * mult) for _ in range(n_blocks // 2)]
    up = []
    for i in range(n_down):
      m = 2 ** (n_down - i)
      up += [tnn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, 2, 1, 1), tnn.BatchNorm2d(ngf * m // 2),
             relu]
    self.model_down_seg, self.model_down_img = tnn.Sequential(*down), tnn.Sequential(*down_img)
    self.model_res_img, self.model_up_img = tnn.Sequential(*res), tnn.Sequential(*up)
    self.model_final_img = tnn.Sequential(tnn.ReflectionPad2d(3), tnn.Conv2d(ngf, output_nc, 7),
                                          tnn.Tanh())
    self.model_res_flow, self.model_up_flow = copy.deepcopy(self.model_res_img), \
        copy.deepcopy(self.model_up_img)
    self.model_final_flow = tnn.Sequential(tnn.ReflectionPad2d(3), tnn.Conv2d(ngf, 2, 7))
    self.model_final_w = tnn.Sequential(tnn.ReflectionPad2d(3), tnn.Conv2d(ngf, 1, 7),
                                        tnn.Sigmoid())
    for m in self.modules():
      if isinstance(m, (tnn.Conv2d, tnn.ConvTranspose2d)):
        m.reset_parameters()           # the deep copies get weights of their own
    _randomise_norms(self)

  def forward(self, input, img_prev, use_raw_only=False):
    downsample = self.model_down_seg(input) + self.model_down_img(img_prev)
    img_raw = self.model_final_img(self.model_up_img(self.model_res_img(downsample)))
    flow_feat = self.model_up_flow(self.model_res_flow(downsample))
    flow = self.model_final_flow(flow_feat) * 20
    weight = self.model_final_w(flow_feat)
    if use_raw_only:
      return img_raw, flow, weight, img_raw
    img_warp = torch_resample(img_prev[:, -3:], flow)
    weight_ = weight.expand_as(img_raw)
    return img_raw * weight_ + img_warp * (1 - weight_), flow, weight, img_raw


def _n_layer_stages(input_nc, ndf, n_layers):
  """NLayerDiscriminator(getIntermFeat=True)'s stages (padding 2, batch norm)."""
  stages = [[tnn.Conv2d(input_nc, ndf, 4, 2, 2), tnn.LeakyReLU(0.2, True)]]
  nf = ndf
  for n in range(1, n_layers + 1):
    nf_prev, nf = nf, min(nf * 2, 512)
    stride = 2 if n < n_layers else 1
    stages += [[tnn.Conv2d(nf_prev, nf, 4, stride, 2), tnn.BatchNorm2d(nf),
                tnn.LeakyReLU(0.2, True)]]
  stages += [[tnn.Conv2d(nf, 1, 4, 1, 2)]]
  return [tnn.Sequential(*s) for s in stages]


class TorchMultiscaleDiscriminator(tnn.Module):
  """The authors' MultiscaleDiscriminator(getIntermFeat=True) with its ndf_max = 64."""

  def __init__(self, input_nc, ndf, n_layers, num_d):
    super().__init__()
    self.num_d, self.n_layers = num_d, n_layers
    for i in range(num_d):
      for j, stage in enumerate(_n_layer_stages(input_nc, min(64, ndf * 2 ** (num_d - 1 - i)),
                                                n_layers)):
        setattr(self, f"scale{i}_layer{j}", stage)
    self.downsample = tnn.AvgPool2d(3, stride=2, padding=[1, 1], count_include_pad=False)
    _randomise_norms(self)

  def forward(self, x):
    result = []
    for i in range(self.num_d):
      outs = [x]
      for j in range(self.n_layers + 2):
        outs.append(getattr(self, f"scale{self.num_d - 1 - i}_layer{j}")(outs[-1]))
      result.append(outs[1:])
      if i != self.num_d - 1:
        x = self.downsample(x)
    return result


def _saved_state(module, tmp_path):
  path = tmp_path / "net.pth"
  torch.save(module.state_dict(), path)
  return torch.load(path)


def _channels_first_frames(x):
  """[N, T, H, W, C] -> the authors' [N, T * C, H, W] (`view` of [N, T, C, H, W])."""
  t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 1, 4, 2, 3)
  return t.reshape(t.shape[0], -1, *t.shape[3:])


def _inputs(n=2, size=16, label_nc=2):
  return uniform(n, 3, size, size, label_nc), uniform(n, 2, size, size, 3, seed=1)


# ------------------------------------------------------------------ parity
def test_warp_is_the_authors_resample():
  image, flow = uniform(2, 8, 10, 3), normal(2, 8, 10, 2, seed=1, scale=4.0)
  expected = torch_resample(nchw(image), nchw(flow))
  np.testing.assert_allclose(vid2vid.warp(image, flow), nhwc(expected), atol=ATOL)


@pytest.mark.parametrize("raw_only", [False, True], ids=["composite", "raw_only"])
def test_generator_matches_the_authors_through_their_state_dict(tmp_path, raw_only):
  torch.manual_seed(0)
  ref = TorchCompositeGenerator(3 * 2, 3, 2 * 3, ngf=4, n_down=2, n_blocks=3)
  params = vid2vid.params_from_torch(_saved_state(ref, tmp_path), n_downsample=2, n_blocks=3)
  labels, previous = _inputs()
  g = vid2vid.generator(**TINY_G)
  assert_same_tree(g, params, labels, previous)
  out = jax.jit(functools.partial(g.apply, raw_only=raw_only))({"params": params}, labels,
                                                               previous)
  image, flow, weight, raw = ref(_channels_first_frames(labels), _channels_first_frames(previous),
                                 raw_only)
  np.testing.assert_allclose(out["raw"], nhwc(raw), atol=ATOL)
  np.testing.assert_allclose(out["weight"], nhwc(weight), atol=ATOL)
  # The flow is 20 times a conv output, so its rounding is 20 times larger, and the warp turns a
  # flow difference into an image difference of up to the image's gradient times it.
  np.testing.assert_allclose(out["flow"], nhwc(flow), atol=20 * ATOL)
  np.testing.assert_allclose(out["image"], nhwc(image), atol=10 * ATOL)
  assert float(jnp.abs(out["flow"]).max()) > 1.0        # the warp moves pixels
  if not raw_only:
    assert float(jnp.abs(out["image"] - out["raw"]).max()) > 1e-2


@pytest.mark.parametrize("kind", ["image", "temporal"])
def test_discriminators_match_the_authors_through_their_state_dict(tmp_path, kind):
  torch.manual_seed(0)
  if kind == "image":
    labels, image = uniform(2, 16, 16, 2), uniform(2, 16, 16, 3, seed=1)
    d, args = vid2vid.image_discriminator(**TINY_D), (labels, image)
    torch_input = nchw(np.concatenate([labels, image], -1))
  else:
    frames, flows = uniform(2, 3, 16, 16, 3), normal(2, 2, 16, 16, 2, seed=1, scale=5.0)
    d, args = vid2vid.temporal_discriminator(**TINY_D), (frames, flows)
    torch_input = torch.cat([_channels_first_frames(frames), _channels_first_frames(flows) / 20],
                            dim=1)
  ref = TorchMultiscaleDiscriminator(torch_input.shape[1], ndf=4, n_layers=2, num_d=2)
  params = vid2vid.discriminator_params_from_torch(_saved_state(ref, tmp_path), num_d=2,
                                                   num_layers=2)
  assert_same_tree(d, params, *args)
  logits, features = jax.jit(d.apply)({"params": params}, *args)
  expected = ref(torch_input)
  assert [p["conv0"]["kernel"].shape[-1] for p in params.values()] == [4, 8]
  for i in range(2):
    assert len(features[i]) == 3
    for ours, theirs in zip(features[i] + [logits[i]], expected[i]):
      np.testing.assert_allclose(ours, nhwc(theirs), atol=ATOL)


# ------------------------------------------------------------------ policy and sizes
def test_bfloat16_inputs_compute_in_bfloat16_with_float32_parameters():
  labels, previous = (jnp.asarray(x, jnp.bfloat16) for x in _inputs())
  g = vid2vid.generator(**SMALL_G)
  params = jax.jit(g.init)(KEY, labels, previous)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  out = jax.jit(g.apply)(params, labels, previous)
  assert {k: v.dtype for k, v in out.items()} == {
      "image": jnp.bfloat16, "raw": jnp.bfloat16, "weight": jnp.bfloat16, "flow": jnp.float32}
  assert out["image"].shape == (2, 16, 16, 3) and out["flow"].shape == (2, 16, 16, 2)
  d = vid2vid.temporal_discriminator(**TINY_D)
  frames = jnp.asarray(uniform(2, 3, 16, 16, 3), jnp.bfloat16)
  flows = jnp.asarray(normal(2, 2, 16, 16, 2))
  params = jax.jit(d.init)(KEY, frames, flows)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  logits, features = jax.jit(d.apply)(params, frames, flows)
  assert all(l.dtype == jnp.float32 for l in logits)
  assert all(f.dtype == jnp.bfloat16 for scale in features for f in scale)


def test_remat_modes_give_the_same_values_and_gradients():
  labels, previous = _inputs(n=1)
  g = vid2vid.generator(**SMALL_G)
  params = jax.jit(g.init)(KEY, labels, previous)

  def loss(p, m):
    return sum(jnp.mean(jnp.square(y)) for y in jax.tree.leaves(m.apply(p, labels, previous)))

  grad = lambda m: jax.jit(jax.value_and_grad(functools.partial(loss, m=m)))(params)
  plain = grad(g)
  # Biases followed by batch norm have zero gradient up to rounding: compare on the largest scale.
  atol = 1e-5 * max(float(jnp.abs(x).max()) for x in jax.tree.leaves(plain[1]))
  for mode in ("blocks", "full"):
    remat = grad(g.clone(remat=mode))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=atol), plain, remat)


def test_no_flow_generates_the_raw_image_without_a_flow_decoder():
  labels, previous = _inputs(n=1)
  g = vid2vid.generator(**SMALL_G, no_flow=True)
  params = g.init(KEY, labels, previous)["params"]
  assert not any(k.startswith(("flow", "weight")) for k in params)
  out = g.apply({"params": params}, labels, previous)
  assert out["flow"] is None and out["weight"] is None
  np.testing.assert_array_equal(out["image"], out["raw"])


def test_paper_sizes():
  g = vid2vid.generator()
  assert (g.ngf, g.n_downsample, g.n_blocks, g.n_frames, g.norm) == (128, 3, 9, 3, "batch")
  assert vid2vid.image_discriminator().num_d == vid2vid.temporal_discriminator().num_d == 2
  labels, previous = jnp.zeros((1, 3, 64, 64, 6)), jnp.zeros((1, 2, 64, 64, 3))   # pose inputs
  count = lambda m: sum(p.size for p in jax.tree.leaves(
      jax.eval_shape(functools.partial(m.init, KEY), labels, previous)))
  assert count(g) == 364_826_886
  assert count(vid2vid.generator(ngf=64)) == 91_285_638


def test_bad_input_is_a_clear_value_error():
  labels, previous = _inputs(n=1)
  g = vid2vid.generator(**TINY_G)
  frames, flows = jnp.zeros((1, 3, 16, 16, 3)), jnp.zeros((1, 2, 16, 16, 2))
  cases = [
      (lambda: g.init(KEY, labels[:, :, :14], previous[:, :, :14]), "divisible by 4"),
      (lambda: g.init(KEY, labels[:, :2], previous), r"labels must be \[N, 3"),
      (lambda: g.init(KEY, labels, previous[:, :1]), r"previous must be \[N, 2"),
      (lambda: g.init(KEY, labels, previous[..., :2]), "previous must be"),
      (lambda: vid2vid.generator("huge"), "unknown vid2vid variant 'huge'"),
      (lambda: vid2vid.temporal_discriminator(**TINY_D).init(KEY, frames, flows[:, :1]),
       "flows must be"),
      (lambda: vid2vid.image_discriminator(**TINY_D).init(KEY, frames[:, 0, :8], frames[:, 0]),
       "same N, H, W"),
      (lambda: vid2vid.params_from_torch({}, n_downsample=1, n_blocks=1), "no model_down_seg"),
  ]
  for fn, match in cases:
    with pytest.raises(ValueError, match=match):
      fn()
