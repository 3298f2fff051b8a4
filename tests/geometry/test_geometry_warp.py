"""Backward warping against scipy.ndimage.map_coordinates, and PSR-Net's Eq. 3."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from psrjax.geometry import backward_warp, temporal_refine
from psrjax.geometry.warp import inverse_temporal_refine


def test_matches_scipy_map_coordinates():
  rng = np.random.default_rng(0)
  image = rng.normal(size=(2, 3, 9, 13, 4)).astype(np.float32)
  flow = rng.uniform(-5, 5, size=(2, 3, 9, 13, 2)).astype(np.float32)   # many samples leave the image
  got = np.asarray(jax.jit(backward_warp)(jnp.asarray(image), jnp.asarray(flow)))
  ys, xs = np.mgrid[:9, :13].astype(np.float64)
  for idx in np.ndindex(2, 3):
    coords = np.stack([ys + flow[idx][..., 1], xs + flow[idx][..., 0]])
    for c in range(4):
      # mode="nearest" replicates the edge pixel, i.e. clamps the sampling position (border mode)
      want = ndimage.map_coordinates(image[idx][..., c].astype(np.float64), coords, order=1, mode="nearest")
      np.testing.assert_allclose(got[idx][..., c], want, atol=1e-5)


def test_flow_convention_predicts_the_next_frame():
  """flow_bwd[t](p) points to p's position in frame t-1, so warping frame t-1 predicts frame t."""
  rng = np.random.default_rng(1)
  prev = rng.normal(size=(8, 10, 3)).astype(np.float32)
  cur = np.roll(prev, 2, axis=1)                      # content moved 2 pixels right (+x)
  flow_bwd = np.zeros((8, 10, 2), np.float32)
  flow_bwd[..., 0] = -2.0
  pred = np.asarray(backward_warp(jnp.asarray(prev), jnp.asarray(flow_bwd)))
  np.testing.assert_allclose(pred[:, 2:], cur[:, 2:], atol=1e-6)


def test_subpixel_and_gradients():
  image = jnp.arange(12.0).reshape(3, 4, 1)           # value = 4 * y + x, linear -> bilinear exact
  flow = jnp.full((3, 4, 2), 0.25)
  out = backward_warp(image, flow)
  np.testing.assert_allclose(np.asarray(out)[:2, :3, 0], np.asarray(image)[:2, :3, 0] + 4 * 0.25 + 0.25)
  g = jax.grad(lambda f: backward_warp(image, f)[1, 1, 0])(flow)
  np.testing.assert_allclose(np.asarray(g)[1, 1], [1.0, 4.0], atol=1e-5)   # d/dx, d/dy


def test_temporal_refine_eq3():
  rng = np.random.default_rng(2)
  x = rng.uniform(-1, 1, (2, 4, 6, 7, 3)).astype(np.float32)
  flow = rng.uniform(-2, 2, (2, 4, 6, 7, 2)).astype(np.float32)
  flow[:, 0] = 0.0
  out = np.asarray(temporal_refine(jnp.asarray(x), jnp.asarray(flow), zeta=0.1))
  np.testing.assert_array_equal(out[:, 0], x[:, 0])                       # t = 1
  warped = np.asarray(backward_warp(jnp.asarray(x[:, :-1]), jnp.asarray(flow[:, 1:])))
  np.testing.assert_allclose(out[:, 1:], x[:, 1:] + 0.1 * warped, atol=1e-6)


def test_temporal_refine_stops_gradient_through_the_warp():
  x = jnp.asarray(np.random.default_rng(3).normal(size=(1, 3, 5, 5, 3)), jnp.float32)
  flow = jnp.zeros((1, 3, 5, 5, 2))
  g = jax.grad(lambda v: jnp.sum(temporal_refine(v, flow, zeta=0.1)))(x)
  np.testing.assert_array_equal(np.asarray(g), 1.0)      # only the identity term carries gradient


def test_inverse_temporal_refine_is_the_eq3_pre_image():
  rng = np.random.default_rng(4)
  target = jnp.asarray(rng.uniform(-1, 1, (2, 5, 6, 7, 3)), jnp.float32)
  flow = jnp.asarray(rng.uniform(-3, 3, (2, 5, 6, 7, 2)), jnp.float32)
  pre = inverse_temporal_refine(target, flow, zeta=0.1)
  np.testing.assert_allclose(np.asarray(temporal_refine(pre, flow, zeta=0.1)), np.asarray(target),
                             atol=1e-6)
  np.testing.assert_array_equal(np.asarray(pre[:, 0]), np.asarray(target[:, 0]))
  assert not np.allclose(np.asarray(pre[:, 1:]), np.asarray(target[:, 1:]), atol=1e-2)


def test_bad_flow_shape():
  with pytest.raises(ValueError):
    backward_warp(jnp.zeros((4, 5, 3)), jnp.zeros((4, 5, 3)))
  with pytest.raises(ValueError):
    temporal_refine(jnp.zeros((1, 2, 4, 5, 3)), jnp.zeros((1, 2, 4, 5, 3)))
  with pytest.raises(ValueError, match="flow_bwd"):
    inverse_temporal_refine(jnp.zeros((1, 2, 4, 5, 3)), jnp.zeros((1, 2, 4, 5, 3)))
