"""D²G-Net's networks and texture sampling (psrjax/models/d2gnet.py, psrjax/geometry/uv_texture.py)
against PyTorch references written here after the authors' code (Neural-Human-Video-Rendering at
ad21d8b: models/networks.py `MultiHeadGeneraotr`, util/util.py `texture2image` with
torch.nn.functional.grid_sample) with identical weights and inputs; identity sampling, unwrapping
then re-rendering a frame, part probabilities."""
import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn as tnn

from psrjax.data import synthetic
from psrjax.geometry import uv_texture
from psrjax.models import d2gnet

KEY = jax.random.key(0, impl="rbg")
ATOL = 1e-5
RENDER = jax.jit(uv_texture.render)


# ------------------------------------------------------------------ PyTorch references
def _norm(c):
  return tnn.InstanceNorm2d(c, affine=False)


class TorchResnetBlock(tnn.Module):
  def __init__(self, dim):
    super().__init__()
    self.conv_block = tnn.Sequential(
        tnn.ReflectionPad2d(1), tnn.Conv2d(dim, dim, 3), _norm(dim), tnn.ReLU(True),
        tnn.ReflectionPad2d(1), tnn.Conv2d(dim, dim, 3), _norm(dim))

  def forward(self, x):
    return x + self.conv_block(x)


def torch_front(input_nc, ngf, n_down):
  layers = [tnn.ReflectionPad2d(3), tnn.Conv2d(input_nc, ngf, 7), _norm(ngf), tnn.ReLU(True)]
  for i in range(n_down):
    m = 2 ** i
    layers += [tnn.Conv2d(ngf * m, ngf * m * 2, 3, 2, 1), _norm(ngf * m * 2), tnn.ReLU(True)]
  return tnn.Sequential(*layers)


def torch_back(ngf, n_down, n_blocks):
  layers = [TorchResnetBlock(ngf * 2 ** n_down) for _ in range(n_blocks)]
  for i in range(n_down):
    m = 2 ** (n_down - i)
    layers += [tnn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, 2, 1, 1), _norm(ngf * m // 2),
               tnn.ReLU(True)]
  return tnn.Sequential(*layers)


class TorchMultiHead(tnn.Module):
  """The authors' MultiHeadGeneraotr: the global generator's trunk, then c7s1-2N + tanh (UVs)
  and c7s1-(N+1) (part logits)."""

  def __init__(self, input_nc, parts, ngf, n_down, n_blocks):
    super().__init__()
    self.model = tnn.Sequential(torch_front(input_nc, ngf, n_down),
                                torch_back(ngf, n_down, n_blocks))
    self.final_layer1 = tnn.Sequential(tnn.ReflectionPad2d(3), tnn.Conv2d(ngf, 2 * parts, 7),
                                       tnn.Tanh())
    self.final_layer2 = tnn.Sequential(tnn.ReflectionPad2d(3), tnn.Conv2d(ngf, parts + 1, 7))

  def forward(self, x):
    f = self.model(x)
    return self.final_layer1(f), self.final_layer2(f)


class TorchDetails(tnn.Module):
  """D²G after Fig. 3: a global generator whose bottleneck features are concatenated with the
  pose label's (encoded by the generator's front-end shape) and projected back by a 1x1 conv."""

  def __init__(self, feat_nc, label_nc, ngf, n_down, n_blocks):
    super().__init__()
    self.encoder = torch_front(label_nc, ngf, n_down)
    self.front = torch_front(feat_nc, ngf, n_down)
    width = ngf * 2 ** n_down
    self.bottleneck = tnn.Conv2d(2 * width, width, 1)
    self.back = torch_back(ngf, n_down, n_blocks)
    self.head = tnn.Sequential(tnn.ReflectionPad2d(3), tnn.Conv2d(ngf, 3, 7), tnn.Tanh())

  def forward(self, x, label):
    f = torch.cat([self.front(x), self.encoder(label)], 1)
    return self.head(self.back(self.bottleneck(f)))


# ------------------------------------------------------------------ weight transfer
def _conv(conv):
  perm = (2, 3, 0, 1) if isinstance(conv, tnn.ConvTranspose2d) else (2, 3, 1, 0)
  return {"kernel": jnp.asarray(conv.weight.detach().numpy().transpose(perm)),
          "bias": jnp.asarray(conv.bias.detach().numpy())}


def _convs(module):
  return [m for m in module.modules() if isinstance(m, (tnn.Conv2d, tnn.ConvTranspose2d))]


def _front_names(n_down):
  return [("stem", "conv")] + [(f"down{i}", "conv") for i in range(n_down)]


def _back_names(n_down, n_blocks):
  names = []
  for i in range(n_blocks):
    names += [(f"block{i}", "conv1"), (f"block{i}", "conv2")]
  return names + [(f"up{i}", "conv") for i in range(n_down)]


def _nest(modules, names):
  convs = [c for m in modules for c in _convs(m)]
  assert len(convs) == len(names)
  tree = {}
  for path, conv in zip(names, convs):
    node = tree
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = _conv(conv)
  return tree


def _torch(x):
  return torch.from_numpy(np.ascontiguousarray(np.moveaxis(np.asarray(x, np.float32), -1, 1)))


def _numpy(t):
  return np.moveaxis(t.detach().numpy(), 1, -1)


def _image(*shape, seed=0):
  return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _same_tree(module, params, *args):
  shapes = jax.eval_shape(module.init, KEY, *args)["params"]
  shape = lambda a: tuple(a.shape)
  assert jax.tree.map(shape, params) == jax.tree.map(shape, shapes)


# ------------------------------------------------------------------ networks
def test_uv_generator_matches_the_authors_two_headed_generator():
  torch.manual_seed(0)
  parts, n_down, n_blocks = 3, 2, 1
  ref = TorchMultiHead(5, parts, 4, n_down, n_blocks)
  x = _image(2, 16, 12, 5)
  g = d2gnet.UVGenerator(num_parts=parts, ngf=4, n_downsample=n_down, n_blocks=n_blocks)
  trunk = _nest([ref.model], _front_names(n_down) + _back_names(n_down, n_blocks))
  params = {"trunk": trunk, "uv_head": _conv(_convs(ref.final_layer1)[0]),
            "part_head": _conv(_convs(ref.final_layer2)[0])}
  _same_tree(g, params, x)
  coords, logits = jax.jit(g.apply)({"params": params}, x)
  uvs, probs = ref(_torch(x))
  assert coords.shape == (2, 16, 12, parts, 2)
  # channels 2 (i - 1), 2 i - 1 of the authors' 48 are part i's (u, v)
  np.testing.assert_allclose(coords.reshape(2, 16, 12, 2 * parts), _numpy(uvs), atol=ATOL)
  np.testing.assert_allclose(logits, _numpy(probs), atol=ATOL)
  p = d2gnet.part_probabilities(logits)
  np.testing.assert_allclose(np.sum(p, axis=-1), 1.0, atol=1e-6)   # P_0..P_N sum to one
  np.testing.assert_allclose(p, _numpy(torch.softmax(probs, 1)), atol=1e-6)


def test_dynamic_details_generator_concatenates_the_pose_at_the_bottleneck():
  torch.manual_seed(1)
  n_down, n_blocks = 2, 1
  ref = TorchDetails(6, 4, 4, n_down, n_blocks)
  x, label = _image(2, 16, 16, 6, seed=1), _image(2, 16, 16, 4, seed=2)
  g = d2gnet.DynamicDetailsGenerator(ngf=4, n_downsample=n_down, n_blocks=n_blocks)
  generator = _nest([ref.front], _front_names(n_down))
  generator.update(_nest([ref.back], _back_names(n_down, n_blocks)))
  generator["bottleneck"] = _conv(ref.bottleneck)
  generator["head"] = _conv(_convs(ref.head)[0])
  params = {"generator": generator, "pose_encoder": _nest([ref.encoder], _front_names(n_down))}
  _same_tree(g, params, x, label)
  np.testing.assert_allclose(jax.jit(g.apply)({"params": params}, x, label),
                             _numpy(ref(_torch(x), _torch(label))), atol=ATOL)
  free = d2gnet.DynamicDetailsGenerator(ngf=4, n_downsample=n_down, n_blocks=n_blocks,
                                        pose_condition=False)
  shapes = jax.eval_shape(free.init, KEY, x)["params"]
  assert "pose_encoder" not in shapes and "bottleneck" not in shapes["generator"]


# ------------------------------------------------------------------ sampling (Eq. 1)
def test_sampling_matches_grid_sample_with_aligned_corners():
  rng = np.random.default_rng(0)
  parts, size, channels = 4, 7, 5
  texture = rng.uniform(0, 1, (parts, size, size, channels)).astype(np.float32)
  coords = rng.uniform(-1.0, 1.0, (2, 6, 9, parts, 2)).astype(np.float32)
  logits = rng.normal(size=(2, 6, 9, parts + 1)).astype(np.float32)
  probs = np.asarray(d2gnet.part_probabilities(logits))
  got = np.asarray(RENDER(texture, coords, probs[..., 1:]))
  # the authors' texture2image: grid_sample per part (torch 1.1: align_corners=True), x P_i
  want = 0.0
  for i in range(parts):
    tex = torch.from_numpy(np.moveaxis(texture[i], -1, 0))[None].repeat(2, 1, 1, 1)
    img = F.grid_sample(tex, torch.from_numpy(coords[..., i, :]), align_corners=True)
    want = want + _numpy(img) * probs[..., i + 1, None]
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_sampling_with_identity_uv_returns_the_texture():
  rng = np.random.default_rng(1)
  size, channels = 9, 18
  texture = rng.uniform(0, 1, (24, size, size, channels)).astype(np.float32)
  v, u = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
  uv = np.stack([u, v], axis=-1).astype(np.float32)
  for p in (1, 13, 24):
    coords, probs = uv_texture.label_coords(np.full((size, size), p), uv)
    out = RENDER(texture, coords, probs[..., 1:])
    np.testing.assert_allclose(out, texture[p - 1], atol=1e-6)
    np.testing.assert_allclose(np.sum(probs, -1), 1.0)


def test_unwrapping_then_rendering_a_frame_reproduces_it_where_observed():
  clip = synthetic.render_clip(4, num_views=1, num_frames=1, resolution=64)
  rgb = clip["rgb"][0, :1].astype(np.float32) / 255.0
  part, uv = clip["part"][0, :1], clip["uv"][0, :1]
  size = 48
  texture, count = uv_texture.unwrap(rgb, part, uv, size)
  assert count.sum() == (part > 0).sum() and texture.shape == (24, size, size, 3)
  # read back at the texel each pixel was written to: exactly the mean of that texel's pixels,
  # and the pixel itself where it was the texel's only one
  ij = uv_texture.texel_index(uv, size)
  snapped = ij[..., ::-1] / (size - 1)
  coords, probs = uv_texture.label_coords(part, snapped)
  again = np.asarray(RENDER(texture, coords, probs[..., 1:]))
  fg = part > 0
  texel = (np.maximum(part - 1, 0), ij[..., 0], ij[..., 1])
  alone = fg & (count[texel] == 1)
  assert alone.mean() > 0.5 * fg.mean()
  np.testing.assert_allclose(again[alone], rgb[alone], atol=1e-5)   # float32 weights
  np.testing.assert_allclose(again[fg], texture[texel][fg], atol=1e-5)
  assert np.all(again[~fg] == 0)
  # at the true (u, v) the bilinear read stays close once unseen texels are filled
  coords, probs = uv_texture.label_coords(part, uv)
  filled = uv_texture.fill_unobserved(texture, count)
  bilinear = np.asarray(RENDER(filled, coords, probs[..., 1:]))
  assert np.abs(bilinear[fg] - rgb[fg]).mean() < 0.05
  assert np.all(filled[count > 0] == texture[count > 0])


def test_composite_follows_eq_3_and_the_atlas_lays_out_24_parts():
  fg, bg = np.full((1, 2, 2, 3), 0.5, np.float32), np.full((2, 2, 3), -1.0, np.float32)
  p0 = np.array([[[[0.0], [1.0]], [[0.25], [0.5]]]], np.float32)
  out = np.asarray(uv_texture.composite(fg, bg, p0))
  np.testing.assert_allclose(out[0, :, :, 0], [[0.5, -1.0], [0.125, -0.25]])
  texture = np.arange(24, dtype=np.float32)[:, None, None, None] * np.ones((24, 3, 3, 1))
  image = uv_texture.atlas(texture)
  assert image.shape == (18, 12, 1) and image[3 * 2, 3 * 1, 0] == 6 * 1 + 2


def test_unseen_texels_take_their_front_or_back_counterpart_then_their_nearest_neighbour():
  texture = np.zeros((24, 4, 4, 3), np.float32)
  count = np.zeros((24, 4, 4), np.int32)
  texture[1, :, :2], count[1, :, :2] = 0.5, 1            # torso front (2), left half seen
  texture[0, 0, 3], count[0, 0, 3] = 0.9, 1              # torso back (1), one texel seen
  filled = uv_texture.fill_unobserved(texture, count)
  np.testing.assert_array_equal(filled[0, :, :2], 0.5)    # from the front, texel by texel
  assert filled[0, 0, 3, 0] == np.float32(0.9)
  assert np.all(filled[0, 1:, 2:] > 0.49)                 # then the nearest seen or filled one
  assert filled[1, 0, 3, 0] == np.float32(0.9)             # and the back's seen texel to the front
  assert np.all(filled[1, 2:, 2:] == 0.5)                 # the front's own nearest texels
  np.testing.assert_allclose(filled[5], texture[count > 0].mean(0) * np.ones((4, 4, 1)))
