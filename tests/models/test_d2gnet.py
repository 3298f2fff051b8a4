"""D²G-Net's networks and texture sampling (psrjax/models/d2gnet.py, psrjax/geometry/uv_texture.py)
against PyTorch references written here after the authors' code (Neural-Human-Video-Rendering at
ad21d8b: models/networks.py `MultiHeadGeneraotr`, util/util.py `texture2image` with
torch.nn.functional.grid_sample) with identical weights and inputs; identity sampling, unwrapping
then re-rendering a frame, part probabilities."""
import jax
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn as tnn

from torch_port import (assert_same_tree, back_names, conv_params, conv_tree, convs,
                        front_names, nchw, nhwc, torch_back, torch_front, uniform)
from psrjax.data import synthetic
from psrjax.geometry import uv_texture
from psrjax.models import d2gnet

KEY = jax.random.key(0, impl="rbg")
ATOL = 1e-5
RENDER = jax.jit(uv_texture.render)


# ------------------------------------------------------------------ PyTorch references
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


# ------------------------------------------------------------------ networks
def test_uv_generator_matches_the_authors_two_headed_generator():
  torch.manual_seed(0)
  parts, n_down, n_blocks = 3, 2, 1
  ref = TorchMultiHead(5, parts, 4, n_down, n_blocks)
  x = uniform(2, 16, 12, 5)
  g = d2gnet.UVGenerator(num_parts=parts, ngf=4, n_downsample=n_down, n_blocks=n_blocks)
  trunk = conv_tree(ref.model, front_names(n_down) + back_names(n_down, n_blocks))
  params = {"trunk": trunk, "uv_head": conv_params(convs(ref.final_layer1)[0]),
            "part_head": conv_params(convs(ref.final_layer2)[0])}
  assert_same_tree(g, params, x)
  coords, logits = jax.jit(g.apply)({"params": params}, x)
  uvs, probs = ref(nchw(x))
  assert coords.shape == (2, 16, 12, parts, 2)
  # channels 2 (i - 1), 2 i - 1 of the authors' 48 are part i's (u, v)
  np.testing.assert_allclose(coords.reshape(2, 16, 12, 2 * parts), nhwc(uvs), atol=ATOL)
  np.testing.assert_allclose(logits, nhwc(probs), atol=ATOL)
  p = d2gnet.part_probabilities(logits)
  np.testing.assert_allclose(np.sum(p, axis=-1), 1.0, atol=1e-6)   # P_0..P_N sum to one
  np.testing.assert_allclose(p, nhwc(torch.softmax(probs, 1)), atol=1e-6)


def test_dynamic_details_generator_concatenates_the_pose_at_the_bottleneck():
  torch.manual_seed(1)
  n_down, n_blocks = 2, 1
  ref = TorchDetails(6, 4, 4, n_down, n_blocks)
  x, label = uniform(2, 16, 16, 6, seed=1), uniform(2, 16, 16, 4, seed=2)
  g = d2gnet.DynamicDetailsGenerator(ngf=4, n_downsample=n_down, n_blocks=n_blocks)
  generator = conv_tree(ref.front, front_names(n_down))
  generator.update(conv_tree(ref.back, back_names(n_down, n_blocks)))
  generator["bottleneck"] = conv_params(ref.bottleneck)
  generator["head"] = conv_params(convs(ref.head)[0])
  params = {"generator": generator, "pose_encoder": conv_tree(ref.encoder, front_names(n_down))}
  assert_same_tree(g, params, x, label)
  np.testing.assert_allclose(jax.jit(g.apply)({"params": params}, x, label),
                             nhwc(ref(nchw(x), nchw(label))), atol=ATOL)
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
    want = want + nhwc(img) * probs[..., i + 1, None]
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
