"""The bilinear sampler against torch.nn.functional.grid_sample (values and gradients)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from psrjax.geometry import sampler


def _torch_sample(image, grid, cotangent, padding, align_corners):
  """grid_sample of NHWC numpy inputs; returns (out NHWC, d image, d grid) for sum(out * cot)."""
  x = torch.tensor(np.moveaxis(image, -1, 1), dtype=torch.float64, requires_grad=True)
  g = torch.tensor(grid, dtype=torch.float64, requires_grad=True)
  out = torch.nn.functional.grid_sample(x, g, mode="bilinear", padding_mode=padding,
                                        align_corners=align_corners)
  (out * torch.tensor(np.moveaxis(cotangent, -1, 1), dtype=torch.float64)).sum().backward()
  return (np.moveaxis(out.detach().numpy(), 1, -1), np.moveaxis(x.grad.numpy(), 1, -1),
          g.grad.numpy())


@pytest.mark.parametrize("padding", ["zeros", "border"])
@pytest.mark.parametrize("align_corners", [True, False])
def test_matches_torch_grid_sample_values_and_gradients(padding, align_corners):
  rng = np.random.default_rng(0)
  image = rng.normal(size=(2, 3, 7, 9, 2)).astype(np.float32)
  grid = rng.uniform(-1.4, 1.4, size=(2, 3, 5, 6, 2)).astype(np.float32)   # some outside
  cot = rng.normal(size=(2, 3, 5, 6, 2)).astype(np.float32)

  def ours(img, g):
    pos = sampler.from_normalized(g, 7, 9, align_corners=align_corners)
    return sampler.bilinear_sample(img, pos, padding=padding)

  out = jax.jit(ours)(image, grid)
  d_img, d_grid = jax.grad(lambda i, g: jnp.sum(ours(i, g) * cot), argnums=(0, 1))(image, grid)
  want, want_img, want_grid = _torch_sample(image.reshape(6, 7, 9, 2), grid.reshape(6, 5, 6, 2),
                                            cot.reshape(6, 5, 6, 2), padding, align_corners)
  np.testing.assert_allclose(np.asarray(out).reshape(want.shape), want, atol=1e-5)
  np.testing.assert_allclose(np.asarray(d_img).reshape(want_img.shape), want_img, atol=1e-4)
  np.testing.assert_allclose(np.asarray(d_grid).reshape(want_grid.shape), want_grid, atol=1e-3)


def test_pixel_centres_are_integers_and_the_conversions_invert_each_other():
  image = jnp.arange(12.0).reshape(3, 4, 1)
  grid = sampler.pixel_grid(3, 4)
  assert grid.shape == (3, 4, 2) and tuple(grid[2, 1]) == (1.0, 2.0)
  np.testing.assert_array_equal(sampler.bilinear_sample(image, grid), image)
  # Half a pixel past the right edge: half the edge pixel with zeros, the edge pixel with border.
  edge = jnp.array([[[3.5, 1.0]]])
  assert float(sampler.bilinear_sample(image, edge, padding="zeros")[0, 0, 0]) == 3.5
  assert float(sampler.bilinear_sample(image, edge, padding="border")[0, 0, 0]) == 7.0
  for align in (True, False):
    norm = sampler.to_normalized(grid, 3, 4, align_corners=align)
    np.testing.assert_allclose(sampler.from_normalized(norm, 3, 4, align_corners=align), grid,
                               atol=1e-6)
  corner = sampler.to_normalized(jnp.array([-0.5, -0.5]), 3, 4, align_corners=False)
  np.testing.assert_allclose(corner, [-1.0, -1.0], atol=1e-6)   # outer edge of the corner pixel
  inside = sampler.positions_inside(jnp.array([[0.0, 0.0], [3.0, 2.0], [3.01, 0.0]]), 3, 4)
  np.testing.assert_array_equal(inside, [True, True, False])


def test_position_gradient_at_a_pixel_centre_is_one_sided():
  image = jnp.array([[0.0, 1.0, 5.0], [0.0, 1.0, 5.0]])[..., None]   # columns 0, 1, 5
  g = jax.grad(lambda p: sampler.bilinear_sample(image, p)[0, 0, 0])(jnp.array([[[1.0, 0.0]]]))
  np.testing.assert_allclose(g[0, 0], [4.0, 0.0])        # towards the next pixel, as torch


def test_dtypes_and_bad_input():
  pos = jnp.zeros((2, 2, 2))
  assert sampler.bilinear_sample(jnp.ones((3, 3, 1), jnp.bfloat16), pos).dtype == jnp.bfloat16
  assert sampler.bilinear_sample(jnp.ones((3, 3, 1), jnp.int32), pos).dtype == jnp.float32
  with pytest.raises(ValueError, match="padding='reflection' is not a padding mode"):
    sampler.bilinear_sample(jnp.ones((3, 3, 1)), pos, padding="reflection")
  with pytest.raises(ValueError, match="positions must be"):
    sampler.bilinear_sample(jnp.ones((2, 3, 3, 1)), pos)
