"""FOMM's networks and motion geometry (psrjax.models.fomm, psrjax.geometry.motion) against
PyTorch modules built as the official code builds them (AliaksandrSiarohin/first-order-model,
modules/*.py: BatchNorm in train mode, F.grid_sample with align_corners=True as torch 1.0,
F.interpolate bilinear with align_corners=False), with identical weights read by
`fomm.from_torch_state_dict`; and the paper's identities (Eq. 4 with equal keypoints, the
thin-plate spline's affine part)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn as tnn

from torch_port import assert_same_tree, nchw, nhwc, normal
from psrjax.geometry import motion
from psrjax.models import fomm
from psrjax.train import lowering

KEY = jax.random.key(0)
ATOL = 1e-4
# Tiny networks for 32 x 32 frames (`networks` defaults to the paper's sizes; the configs hold
# their runlocal and tiny variants' sizes).
TINY = dict(
    num_kp=3, kp_block_expansion=4, kp_max_features=16, kp_num_blocks=2, kp_scale_factor=0.5,
    block_expansion=4, max_features=16, num_down_blocks=1, num_bottleneck_blocks=1,
    dm_block_expansion=4, dm_max_features=16, dm_num_blocks=2, dm_scale_factor=0.5,
    d_block_expansion=4, d_max_features=16, d_num_blocks=2)
# The geometry jitted: one compilation each rather than op-by-op dispatch.
deform = jax.jit(motion.deform, static_argnames="padding")
sparse_motions = jax.jit(motion.sparse_motions, static_argnums=(2, 3))
tps_warp_coordinates = jax.jit(motion.tps_warp_coordinates)
tps_jacobian = jax.jit(motion.tps_jacobian)
tps_warp_image = jax.jit(motion.tps_warp_image)


def _images(*shape, seed=0):
  return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


def _keypoints(b, k, seed, jacobian=True):
  """Random keypoints in [-0.7, 0.7] and Jacobians near the identity, as numpy and torch."""
  rng = np.random.default_rng(seed)
  kp = {"value": rng.uniform(-0.7, 0.7, (b, k, 2)).astype(np.float32)}
  if jacobian:
    kp["jacobian"] = (np.eye(2) + 0.3 * rng.normal(size=(b, k, 2, 2))).astype(np.float32)
  return kp, {n: torch.from_numpy(v) for n, v in kp.items()}


def _randomise(module: tnn.Module, seed: int) -> tnn.Module:
  """Non-trivial norm affines and Jacobian heads (their defaults are 1/0 and the identity)."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in module.named_parameters():
      if "norm" in name or "jacobian" in name:
        p.add_(0.1 * torch.randn(p.shape, generator=g))
  return module.train()


def _params(module: tnn.Module, flax_module, *init_args):
  """The torch module's weights as Flax params, checked against the Flax module's own tree."""
  params = fomm.from_torch_state_dict(module.state_dict())
  assert_same_tree(flax_module, params, *init_args)
  return {"params": params}


# ----------------------------------------------------------------------------- torch reference
def t_grid(h, w):
  """make_coordinate_grid: [H, W, 2] (x, y) in [-1, 1]."""
  x = 2 * (torch.arange(w).float() / (w - 1)) - 1
  y = 2 * (torch.arange(h).float() / (h - 1)) - 1
  return torch.stack([x.view(1, -1).repeat(h, 1), y.view(-1, 1).repeat(1, w)], dim=2)


def t_heatmaps(value, h, w, variance):
  """kp2gaussian: [B, K, H, W]."""
  diff = t_grid(h, w)[None, None] - value[:, :, None, None, :]
  return torch.exp(-0.5 * (diff ** 2).sum(-1) / variance)


def t_sample(x, grid, padding="zeros"):
  return F.grid_sample(x, grid, padding_mode=padding, align_corners=True)


def t_resize(x, size):
  return F.interpolate(x, size=size, mode="bilinear", align_corners=False)




class TDown(tnn.Module):
  def __init__(self, cin, cout):
    super().__init__()
    self.conv, self.norm = tnn.Conv2d(cin, cout, 3, padding=1), tnn.BatchNorm2d(cout)

  def forward(self, x):
    return F.avg_pool2d(F.relu(self.norm(self.conv(x))), 2)


class TUp(TDown):
  def forward(self, x):
    return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2))))


class TSame(tnn.Module):
  def __init__(self, cin, cout, k, pad):
    super().__init__()
    self.conv, self.norm = tnn.Conv2d(cin, cout, k, padding=pad), tnn.BatchNorm2d(cout)

  def forward(self, x):
    return F.relu(self.norm(self.conv(x)))


class TRes(tnn.Module):
  def __init__(self, c):
    super().__init__()
    self.conv1, self.conv2 = tnn.Conv2d(c, c, 3, padding=1), tnn.Conv2d(c, c, 3, padding=1)
    self.norm1, self.norm2 = tnn.BatchNorm2d(c), tnn.BatchNorm2d(c)

  def forward(self, x):
    return x + self.conv2(F.relu(self.norm2(self.conv1(F.relu(self.norm1(x))))))


class THourglass(tnn.Module):
  def __init__(self, be, cin, n, mx):
    super().__init__()
    width = lambda i: min(mx, be * 2 ** i)
    self.encoder, self.decoder = tnn.Module(), tnn.Module()
    self.encoder.down_blocks = tnn.ModuleList(
        [TDown(cin if i == 0 else width(i), width(i + 1)) for i in range(n)])
    self.decoder.up_blocks = tnn.ModuleList(
        [TUp((1 if i == n - 1 else 2) * width(i + 1), width(i)) for i in reversed(range(n))])

  def forward(self, x):
    outs = [x]
    for block in self.encoder.down_blocks:
      outs.append(block(outs[-1]))
    out = outs.pop()
    for block in self.decoder.up_blocks:
      out = torch.cat([block(out), outs.pop()], dim=1)
    return out


class TAntiAlias(tnn.Module):
  def __init__(self, channels, scale):
    super().__init__()
    sigma = (1 / scale - 1) / 2
    size = 2 * round(sigma * 4) + 1
    self.ka = size // 2
    self.kb = self.ka - 1 if size % 2 == 0 else self.ka
    ax = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-ax ** 2 / (2 * sigma ** 2))
    kernel = g[:, None] * g[None, :]
    self.register_buffer("weight", (kernel / kernel.sum()).repeat(channels, 1, 1, 1))
    self.scale, self.step = scale, int(1 / scale)

  def forward(self, x):
    if self.scale == 1.0:
      return x
    out = F.conv2d(F.pad(x, (self.ka, self.kb, self.ka, self.kb)), self.weight,
                   groups=x.shape[1])
    return out[:, :, ::self.step, ::self.step]


class TKeypoints(tnn.Module):
  def __init__(self, be, k, c, mx, n, temperature, scale):
    super().__init__()
    self.predictor = THourglass(be, c, n, mx)
    self.kp = tnn.Conv2d(be + c, k, 7)
    self.jacobian = tnn.Conv2d(be + c, 4 * k, 7)
    self.down, self.temperature = TAntiAlias(c, scale), temperature

  def forward(self, x):
    features = self.predictor(self.down(x))
    logits = self.kp(features)
    b, k, h, w = logits.shape
    heat = F.softmax(logits.view(b, k, -1) / self.temperature, dim=2).view(b, k, h, w)
    value = (heat[..., None] * t_grid(h, w)[None, None]).sum(dim=(2, 3))
    maps = self.jacobian(features).reshape(b, k, 4, h, w)
    jac = (heat[:, :, None] * maps).view(b, k, 4, -1).sum(-1).view(b, k, 2, 2)
    return {"value": value, "jacobian": jac}


class TDenseMotion(tnn.Module):
  def __init__(self, be, n, mx, k, c, scale, variance=0.01):
    super().__init__()
    self.hourglass = THourglass(be, (k + 1) * (c + 1), n, mx)
    self.mask = tnn.Conv2d(be + (k + 1) * (c + 1), k + 1, 7, padding=3)
    self.occlusion = tnn.Conv2d(be + (k + 1) * (c + 1), 1, 7, padding=3)
    self.down, self.variance = TAntiAlias(c, scale), variance

  def forward(self, source, kp_driving, kp_source):
    source = self.down(source)
    b, c, h, w = source.shape
    k = kp_source["value"].shape[1]
    heat = (t_heatmaps(kp_driving["value"], h, w, self.variance)
            - t_heatmaps(kp_source["value"], h, w, self.variance))
    heat = torch.cat([torch.zeros(b, 1, h, w), heat], dim=1)[:, :, None]
    grid = t_grid(h, w).view(1, 1, h, w, 2)
    z = grid - kp_driving["value"].view(b, k, 1, 1, 2)
    jac = kp_source["jacobian"] @ torch.inverse(kp_driving["jacobian"])
    z = (jac[:, :, None, None] @ z[..., None])[..., 0] + kp_source["value"].view(b, k, 1, 1, 2)
    motions = torch.cat([grid.repeat(b, 1, 1, 1, 1), z], dim=1)
    repeated = source[:, None].repeat(1, k + 1, 1, 1, 1).view(b * (k + 1), c, h, w)
    deformed = t_sample(repeated, motions.view(b * (k + 1), h, w, 2)).view(b, k + 1, c, h, w)
    features = self.hourglass(torch.cat([heat, deformed], dim=2).view(b, -1, h, w))
    mask = F.softmax(self.mask(features), dim=1)
    deformation = (motions.permute(0, 1, 4, 2, 3) * mask[:, :, None]).sum(1).permute(0, 2, 3, 1)
    return {"sparse_deformed": deformed, "mask": mask, "deformation": deformation,
            "occlusion_map": torch.sigmoid(self.occlusion(features))}


class TGenerator(tnn.Module):
  def __init__(self, c, k, be, mx, n_down, n_bottleneck, dm):
    super().__init__()
    width = lambda i: min(mx, be * 2 ** i)
    self.dense_motion_network = TDenseMotion(k=k, c=c, **dm)
    self.first = TSame(c, be, 7, 3)
    self.down_blocks = tnn.ModuleList([TDown(width(i), width(i + 1)) for i in range(n_down)])
    self.up_blocks = tnn.ModuleList([TUp(width(n_down - i), width(n_down - i - 1))
                                     for i in range(n_down)])
    self.bottleneck = tnn.Sequential()
    for i in range(n_bottleneck):
      self.bottleneck.add_module(f"r{i}", TRes(width(n_down)))
    self.final = tnn.Conv2d(be, c, 7, padding=3)

  @staticmethod
  def deform(x, deformation):
    if deformation.shape[1:3] != x.shape[2:]:
      deformation = t_resize(deformation.permute(0, 3, 1, 2), x.shape[2:]).permute(0, 2, 3, 1)
    return t_sample(x, deformation)

  def forward(self, source, kp_driving, kp_source):
    out = self.first(source)
    for block in self.down_blocks:
      out = block(out)
    dense = self.dense_motion_network(source, kp_driving, kp_source)
    out = self.deform(out, dense["deformation"])
    out = out * t_resize(dense["occlusion_map"], out.shape[2:])
    out = self.bottleneck(out)
    for block in self.up_blocks:
      out = block(out)
    return {**dense, "prediction": torch.sigmoid(self.final(out)),
            "deformed": self.deform(source, dense["deformation"])}


class TDiscBlock(tnn.Module):
  def __init__(self, cin, cout, norm, pool, sn):
    super().__init__()
    self.conv = tnn.Conv2d(cin, cout, 4)
    if sn:
      self.conv = tnn.utils.spectral_norm(self.conv)
    self.norm = tnn.InstanceNorm2d(cout, affine=True) if norm else None
    self.pool = pool

  def forward(self, x):
    out = self.conv(x)
    out = F.leaky_relu(self.norm(out) if self.norm else out, 0.2)
    return F.avg_pool2d(out, 2) if self.pool else out


class TDiscriminator(tnn.Module):
  def __init__(self, c, be, n, mx, sn, k):
    super().__init__()
    width = lambda i: min(mx, be * 2 ** i)
    self.down_blocks = tnn.ModuleList([TDiscBlock(c + k if i == 0 else width(i), width(i + 1),
                                                  i != 0, i != n - 1, sn) for i in range(n)])
    self.conv = tnn.Conv2d(width(n), 1, 1)
    if sn:
      self.conv = tnn.utils.spectral_norm(self.conv)

  def forward(self, x, kp=None):
    out = x if kp is None else torch.cat([x, t_heatmaps(kp["value"], *x.shape[2:], 0.01)], 1)
    maps = []
    for block in self.down_blocks:
      out = block(out)
      maps.append(out)
    return maps, self.conv(out)


class TTransform:
  """model.py's Transform with given parameters: warp_coordinates, jacobian, transform_frame."""

  def __init__(self, theta, control_params, points):
    self.theta, self.params = torch.from_numpy(theta), torch.from_numpy(control_params)[:, None]
    self.points = t_grid(points, points).view(1, -1, 2)

  def warp(self, c):
    out = (self.theta[:, None, :, :2] @ c[..., None] + self.theta[:, None, :, 2:])[..., 0]
    r = torch.abs(c.view(c.shape[0], -1, 1, 2) - self.points.view(1, 1, -1, 2)).sum(-1)
    spline = (r ** 2 * torch.log(r + 1e-6) * self.params).sum(dim=2)
    return out + spline.view(self.theta.shape[0], c.shape[1], 1)

  def jacobian(self, c):
    new = self.warp(c)
    gx = torch.autograd.grad(new[..., 0].sum(), c, create_graph=True)[0]
    gy = torch.autograd.grad(new[..., 1].sum(), c, create_graph=True)[0]
    return torch.stack([gx, gy], dim=-2)

  def frame(self, x):
    h, w = x.shape[2:]
    grid = self.warp(t_grid(h, w).view(1, h * w, 2)).view(x.shape[0], h, w, 2)
    return t_sample(x, grid, "reflection")


# ----------------------------------------------------------------------------- geometry
def test_grid_heatmaps_and_heatmap_peaks_match_the_official_functions():
  np.testing.assert_allclose(motion.coordinate_grid(5, 7), t_grid(5, 7).numpy(), atol=1e-7)
  value = np.array([[[-0.5, 0.5], [1.0, -1.0], [0.25, 0.0]]], np.float32)   # grid points at 9 x 9
  heat = np.asarray(motion.keypoint_heatmaps({"value": value}, 9, 9, 0.01))
  ref = t_heatmaps(torch.from_numpy(value), 9, 9, 0.01).numpy()
  np.testing.assert_allclose(heat, np.moveaxis(ref, 1, -1), atol=1e-6)
  for k, (x, y) in enumerate(value[0]):                  # each Gaussian peaks at its keypoint
    i, j = np.unravel_index(np.argmax(heat[0, :, :, k]), (9, 9))
    assert (j, i) == (round((x + 1) * 4), round((y + 1) * 4)) and heat[0, i, j, k] == 1.0
  diff = motion.heatmap_difference({"value": value}, {"value": value[:, ::-1]}, 9, 9, 0.01)
  assert diff.shape == (1, 9, 9, 4) and not np.any(diff[..., 0])
  np.testing.assert_allclose(diff[..., 1:], heat[..., ::-1] - heat, atol=1e-6)


def test_deform_and_resize_match_grid_sample_and_interpolate():
  x = normal(2, 6, 7, 3)
  grid = normal(2, 5, 4, 2, seed=1, scale=0.8)            # reaches outside [-1, 1]
  for padding in ("zeros", "border", "reflection"):
    np.testing.assert_allclose(deform(x, grid, padding=padding),
                               nhwc(t_sample(nchw(x), torch.from_numpy(grid), padding)),
                               atol=1e-5, err_msg=padding)
  np.testing.assert_allclose(deform(x, motion.coordinate_grid(6, 7)[None].repeat(2, 0)),
                             x, atol=1e-6)
  for size in ((12, 14), (3, 5), (4, 3), (6, 7)):          # up, down (no antialiasing), same
    np.testing.assert_allclose(fomm.resize_bilinear(jnp.asarray(x), size),
                               nhwc(t_resize(nchw(x), size)), atol=1e-6, err_msg=str(size))


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.25, 0.125])
def test_anti_alias_interpolation_matches_the_official_module(scale):
  """Values and gradients (the official module: one 2-D convolution, then every n-th pixel)."""
  x = _images(2, 36, 20, 3)
  t = nchw(x).requires_grad_(True)
  expected = TAntiAlias(3, scale)(t)
  weights = _images(*nhwc(expected.detach()).shape, seed=7)
  (expected * nchw(weights)).sum().backward()
  layer = fomm.AntiAliasInterpolation2d(scale)
  np.testing.assert_allclose(layer(jnp.asarray(x)), nhwc(expected.detach()), atol=1e-6)
  grad = jax.grad(lambda v: jnp.sum(layer(v) * weights))(jnp.asarray(x))
  np.testing.assert_allclose(grad, nhwc(t.grad), atol=1e-6)


def test_identical_keypoints_give_identity_motions_and_deform_returns_the_source():
  kp, _ = _keypoints(2, 3, seed=4)
  motions = sparse_motions(kp, kp, 8, 10)
  identity = np.broadcast_to(motion.coordinate_grid(8, 10), (2, 4, 8, 10, 2))
  np.testing.assert_allclose(motions, identity, atol=1e-5)
  source = _images(2, 8, 10, 3, seed=5)
  warped = deform(np.broadcast_to(source[:, None], (2, 4, 8, 10, 3)), motions)
  np.testing.assert_allclose(warped, np.broadcast_to(source[:, None], warped.shape), atol=1e-5)
  # Without Jacobians (zeroth order): a translation by p_s - p_d.
  moved = dict(value=kp["value"] + 0.25)
  shift = sparse_motions(moved, {"value": kp["value"]}, 8, 10)
  np.testing.assert_allclose(shift[:, 1:], identity[:, 1:] + 0.25, atol=1e-6)


def test_tps_identity_and_affine_part_and_jacobian():
  points = normal(2, 6, 2, seed=6, scale=0.5)
  image = _images(2, 9, 11, 3, seed=7)
  identity = motion.tps_parameters(np.tile(np.eye(2, 3, dtype=np.float32), (2, 1, 1)))
  np.testing.assert_allclose(tps_warp_coordinates(identity, points), points, atol=1e-6)
  np.testing.assert_allclose(tps_jacobian(identity, points),
                             np.broadcast_to(np.eye(2), (2, 6, 2, 2)), atol=1e-6)
  np.testing.assert_allclose(tps_warp_image(identity, image), image, atol=1e-6)
  theta = (np.eye(2, 3) + normal(2, 2, 3, seed=8, scale=0.1)).astype(np.float32)
  affine = motion.tps_parameters(theta)
  np.testing.assert_allclose(tps_warp_coordinates(affine, points),
                             np.einsum("bij,bnj->bni", theta[:, :, :2], points)
                             + theta[:, None, :, 2], atol=1e-6)
  np.testing.assert_allclose(tps_jacobian(affine, points),
                             np.broadcast_to(theta[:, None, :, :2], (2, 6, 2, 2)), atol=1e-6)


def test_fitted_tps_interpolates_its_control_points():
  """Zero displacements fit the identity (zero weights); random targets are met exactly at the
  control points, and the fitted spline is smooth in between."""
  grid = np.asarray(motion.coordinate_grid(5, 5)).reshape(1, 25, 2)
  identity = motion.fit_tps(grid)
  np.testing.assert_allclose(identity["theta"][0], np.eye(2, 3), atol=1e-4)
  np.testing.assert_allclose(identity["control_params"], 0.0, atol=1e-4)
  targets = grid + normal(2, 25, 2, seed=11, scale=0.05)
  tps = motion.fit_tps(targets)
  np.testing.assert_allclose(tps_warp_coordinates(tps, grid), targets, atol=1e-4)
  between = (grid[:, :-1] + grid[:, 1:]) / 2                              # off the grid
  moved = np.asarray(tps_warp_coordinates(tps, between))
  assert np.abs(moved - between).max() < 0.5
  with pytest.raises(ValueError, match="fit_tps"):
    motion.fit_tps(targets[:, :24])


def test_random_tps_matches_the_official_transform():
  tps = motion.random_tps(jax.random.key(3), 2, sigma_affine=0.05, sigma_tps=0.05, points=5)
  assert tps["theta"].shape == (2, 2, 3) and tps["control_params"].shape == (2, 25)
  ref = TTransform(np.array(tps["theta"]), np.array(tps["control_params"]), 5)
  points = torch.from_numpy(normal(2, 7, 2, seed=9, scale=0.6)).requires_grad_(True)
  np.testing.assert_allclose(tps_warp_coordinates(tps, points.detach().numpy()),
                             ref.warp(points).detach().numpy(), atol=1e-6)
  np.testing.assert_allclose(tps_jacobian(tps, points.detach().numpy()),
                             ref.jacobian(points).detach().numpy(), atol=1e-5)
  image = _images(2, 12, 10, 3, seed=10)
  np.testing.assert_allclose(tps_warp_image(tps, image),
                             nhwc(ref.frame(nchw(image))), atol=1e-5)


# ----------------------------------------------------------------------------- networks
def test_hourglass_matches_the_official_structure():
  torch.manual_seed(0)
  ref = _randomise(THourglass(4, 5, 3, 12), 1)
  module = fomm.Hourglass(4, 3, 12)
  x = normal(2, 16, 24, 5, seed=2)
  out = jax.jit(module.apply)(_params(ref, module, x), x)
  assert out.shape == (2, 16, 24, 9)
  np.testing.assert_allclose(out, nhwc(ref(nchw(x))), atol=ATOL)


def test_keypoint_detector_matches_the_official_values_and_jacobians():
  torch.manual_seed(1)
  ref = _randomise(TKeypoints(4, 3, 3, 16, 2, 0.1, 0.5), 2)
  module = fomm.KeypointDetector(num_kp=3, block_expansion=4, max_features=16, num_blocks=2,
                                 scale_factor=0.5)
  x = _images(2, 32, 32, 3, seed=3)
  out = jax.jit(module.apply)(_params(ref, module, x), x)
  expected = ref(nchw(x))
  assert out["value"].dtype == out["jacobian"].dtype == jnp.float32
  np.testing.assert_allclose(out["value"], expected["value"].detach().numpy(), atol=ATOL)
  np.testing.assert_allclose(out["jacobian"], expected["jacobian"].detach().numpy(), atol=ATOL)
  # A fresh detector's Jacobians are the identity (a zero kernel and the identity bias).
  fresh = jax.jit(module.init)(KEY, x)
  np.testing.assert_allclose(module.apply(fresh, x)["jacobian"],
                             np.broadcast_to(np.eye(2), (2, 3, 2, 2)), atol=1e-6)


def test_dense_motion_network_matches_the_official_structure():
  torch.manual_seed(2)
  dm = dict(be=4, n=2, mx=16, scale=0.5)
  ref = _randomise(TDenseMotion(k=3, c=3, **dm), 3)
  module = fomm.DenseMotionNetwork(4, 2, 16, scale_factor=0.5)
  source = _images(2, 32, 32, 3, seed=4)
  (kp_s, tkp_s), (kp_d, tkp_d) = _keypoints(2, 3, 5), _keypoints(2, 3, 6)
  out = jax.jit(module.apply)(_params(ref, module, source, kp_s, kp_d), source, kp_s, kp_d)
  expected = ref(nchw(source), tkp_d, tkp_s)
  np.testing.assert_allclose(out["sparse_deformed"],
                             np.moveaxis(expected["sparse_deformed"].detach().numpy(), 2, -1),
                             atol=ATOL)
  for name in ("mask", "occlusion_map"):
    np.testing.assert_allclose(out[name], nhwc(expected[name]), atol=ATOL, err_msg=name)
  np.testing.assert_allclose(out["deformation"], expected["deformation"].detach().numpy(),
                             atol=ATOL)


def test_dense_motion_without_the_background_mixes_only_the_keypoint_motions():
  """keep_background False: the mask's background channel is 0 and the K keypoint channels are
  the softmax of their own logits; True everywhere: the official network's output."""
  module = fomm.DenseMotionNetwork(4, 2, 16, scale_factor=0.5)
  source = _images(2, 32, 32, 3, seed=4)
  (kp_s, _), (kp_d, _) = _keypoints(2, 3, 5), _keypoints(2, 3, 6)
  variables = jax.jit(module.init)(jax.random.key(0), source, kp_s, kp_d)
  apply = jax.jit(module.apply)
  official = apply(variables, source, kp_s, kp_d)
  kept = apply(variables, source, kp_s, kp_d, jnp.array([True, True]))
  np.testing.assert_array_equal(kept["mask"], official["mask"])
  mixed = apply(variables, source, kp_s, kp_d, jnp.array([False, True]))
  np.testing.assert_array_equal(mixed["mask"][1], official["mask"][1])
  assert float(jnp.max(mixed["mask"][0, ..., 0])) == 0.0
  without = official["mask"][0, ..., 1:] / official["mask"][0, ..., 1:].sum(-1, keepdims=True)
  np.testing.assert_allclose(mixed["mask"][0, ..., 1:], without, rtol=1e-5, atol=1e-7)
  grads = jax.grad(lambda v: jnp.sum(apply(v, source, kp_s, kp_d, jnp.array([False, True]))[
      "deformation"] ** 2))(variables)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("dm_scale", [0.5, 0.25])   # deformation at / below the feature size
def test_generator_matches_the_official_structure_end_to_end(dm_scale):
  torch.manual_seed(3)
  dm = dict(be=4, n=2, mx=16, scale=dm_scale)
  ref = _randomise(TGenerator(3, 3, 4, 16, 1, 2, dm), 4)
  module = fomm.OcclusionAwareGenerator(4, 16, 1, 2, dm_block_expansion=4, dm_max_features=16,
                                        dm_num_blocks=2, dm_scale_factor=dm_scale)
  source = _images(2, 32, 32, 3, seed=5)
  (kp_s, tkp_s), (kp_d, tkp_d) = _keypoints(2, 3, 7), _keypoints(2, 3, 8)
  out = jax.jit(module.apply)(_params(ref, module, source, kp_s, kp_d), source, kp_s, kp_d)
  expected = ref(nchw(source), tkp_d, tkp_s)
  for name in ("prediction", "deformed", "mask", "occlusion_map"):
    np.testing.assert_allclose(out[name], nhwc(expected[name]), atol=ATOL, err_msg=name)
  np.testing.assert_allclose(out["deformation"], expected["deformation"].detach().numpy(),
                             atol=ATOL)


@pytest.mark.parametrize("sn,use_kp", [(False, False), (True, True)])
def test_discriminator_matches_the_official_structure(sn, use_kp):
  torch.manual_seed(4)
  ref = _randomise(TDiscriminator(3, 4, 3, 16, sn, 3 if use_kp else 0), 5)
  module = fomm.Discriminator(4, 3, 16, spectral=sn, use_kp=use_kp)
  x = _images(2, 32, 32, 3, seed=6)
  kp, tkp = _keypoints(2, 3, 9, jacobian=False)
  kp = kp if use_kp else None
  params = _params(ref, module, x, kp)                  # before torch's power iteration
  maps, prediction = jax.jit(module.apply)(params, x, kp)
  ref_maps, ref_prediction = ref(nchw(x), tkp if use_kp else None)
  assert len(maps) == 3 and prediction.dtype == jnp.float32
  for ours, theirs in zip(maps, ref_maps):
    np.testing.assert_allclose(ours, nhwc(theirs), atol=ATOL)
  np.testing.assert_allclose(prediction, nhwc(ref_prediction), atol=ATOL)


def test_paper_networks_have_the_official_parameter_counts():
  """The fashion-256 networks, counted from the reference modules above at the yaml's sizes
  (weights and biases; batch norm's running statistics are buffers)."""
  count = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))
  torch_count = lambda m: sum(p.numel() for p in m.parameters())
  detector, generator, discriminator = fomm.networks()
  x = jnp.zeros((1, 128, 128, 3))
  kp = jax.eval_shape(detector.init, KEY, x)
  kp_out = {"value": jnp.zeros((1, 10, 2)), "jacobian": jnp.zeros((1, 10, 2, 2))}
  assert count(kp) == torch_count(TKeypoints(32, 10, 3, 1024, 5, 0.1, 0.25))
  dm = dict(be=64, n=5, mx=1024, scale=0.25)
  assert count(jax.eval_shape(generator.init, KEY, x, kp_out, kp_out)) == torch_count(
      TGenerator(3, 10, 64, 512, 2, 6, dm))
  assert count(jax.eval_shape(discriminator.init, KEY, x)) == torch_count(
      TDiscriminator(3, 32, 4, 512, False, 0))
  multi = fomm.MultiScaleDiscriminator((1.0, 0.5), dict(block_expansion=4, num_blocks=2))
  shapes = jax.eval_shape(multi.init, KEY, x)["params"]
  assert set(shapes) == {"scale_1", "scale_0_5"}
  out = jax.eval_shape(multi.apply, {"params": shapes}, x)
  assert out[1.0][1].shape == (1, 59, 59, 1) and out[0.5][1].shape == (1, 27, 27, 1)
  single = fomm.KeypointDetector(num_kp=3, block_expansion=4, max_features=8, num_blocks=2,
                                 single_jacobian_map=True)
  jac = jax.eval_shape(lambda x: single.init_with_output(KEY, x)[0]["jacobian"], x)
  assert jac.shape == (1, 3, 2, 2)
  with pytest.raises(ValueError, match="unknown FOMM network settings"):
    fomm.networks(TINY, num_keypoints=3)


def test_bfloat16_step_lowers_for_tpu_with_float32_geometry():
  """The detector, generator and discriminator and the equivariance transform, differentiated
  in bfloat16: every convolution and (outside the float32 geometry) every matrix product of
  the forward and backward passes is bfloat16; keypoints and the deformation are float32."""
  detector, generator, discriminator = fomm.networks(TINY, conv_impl="xla")
  image = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.bfloat16)
  kp = jax.eval_shape(detector.apply, jax.eval_shape(detector.init, KEY, image), image)
  params = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, jnp.bfloat16), (
      jax.eval_shape(detector.init, KEY, image),
      jax.eval_shape(generator.init, KEY, image, kp, kp),
      jax.eval_shape(discriminator.init, KEY, image)))

  def step(params, source, driving, key):
    p_kp, p_g, p_d = params
    kp_s, kp_d = detector.apply(p_kp, source), detector.apply(p_kp, driving)
    out = generator.apply(p_g, source, kp_s, kp_d)
    tps = motion.random_tps(key, 2)
    kp_t = detector.apply(p_kp, tps_warp_image(tps, driving))
    loss = (jnp.mean(discriminator.apply(p_d, out["prediction"])[1])
            + jnp.mean(jnp.abs(kp_d["value"] - tps_warp_coordinates(tps, kp_t["value"])))
            + jnp.mean(tps_jacobian(tps, kp_t["value"]) * kp_t["jacobian"]))
    return loss, (kp_d, out)

  traced = jax.jit(jax.value_and_grad(step, has_aux=True)).trace(params, image, image, KEY)
  text = traced.lower(lowering_platforms=("tpu",)).as_text()
  convs = [t for op, t in lowering.compute_dtypes(text) if op == "stablehlo.convolution"]
  assert convs and all(set(t) == {"bf16"} for t in convs), convs
  ops = lowering.jaxpr_compute_dtypes(traced.jaxpr)
  assert ops and all(set(d) == {"bfloat16"} for _, d in ops), ops
  (_, (kp_d, out)), _ = traced.out_info
  assert kp_d["value"].dtype == kp_d["jacobian"].dtype == out["deformation"].dtype == jnp.float32
  assert out["prediction"].dtype == jnp.bfloat16


def test_remat_modes_compute_the_same_generator():
  source = jnp.asarray(_images(2, 32, 32, 3, seed=11))
  (kp_s, _), (kp_d, _) = _keypoints(2, 3, 12), _keypoints(2, 3, 13)
  results = []
  for remat in ("none", "blocks", "full"):
    _, generator, _ = fomm.networks(TINY, remat=remat)
    params = jax.jit(generator.init)(KEY, source, kp_s, kp_d)
    loss = lambda p: jnp.mean(generator.apply(p, source, kp_s, kp_d)["prediction"])
    results.append(jax.jit(jax.value_and_grad(loss))(params))
  for other in results[1:]:
    jax.tree.map(functools.partial(np.testing.assert_allclose, atol=1e-6), other, results[0])
