"""Jump-flooding nearest-seed transform against brute force."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrjax.geometry.jump_flood import jfa_steps, nearest_seed


def test_steps():
  assert jfa_steps(128) == (64, 32, 16, 8, 4, 2, 1, 2, 1)
  assert jfa_steps(100) == (64, 32, 16, 8, 4, 2, 1, 2, 1)
  assert jfa_steps(1) == (2, 1)


@pytest.mark.parametrize("shape,density", [((6, 17, 23), 0.02), ((4, 32, 32), 0.005), ((3, 1, 9), 0.2)])
def test_distances_match_brute_force(shape, density):
  rng = np.random.default_rng(0)
  seeds = rng.random(shape) < density
  seeds[0] = False                                           # an image without seeds
  seeds[1] = False
  seeds[1, 0, 0] = True                                      # a single seed in a corner
  got = np.asarray(jax.jit(nearest_seed)(jnp.asarray(seeds)))
  h, w = shape[1:]
  ys, xs = np.mgrid[:h, :w]
  np.testing.assert_array_equal(got[0], -1)
  for i in range(1, shape[0]):
    pts = np.argwhere(seeds[i])
    if len(pts) == 0:
      np.testing.assert_array_equal(got[i], -1)
      continue
    best = ((ys[..., None] - pts[:, 0]) ** 2 + (xs[..., None] - pts[:, 1]) ** 2).min(-1)
    gy, gx = got[i] // w, got[i] % w
    assert seeds[i][gy, gx].all()                            # every answer is a seed
    np.testing.assert_array_equal((ys - gy) ** 2 + (xs - gx) ** 2, best)


def test_leading_axes():
  seeds = np.zeros((2, 3, 8, 8), bool)
  seeds[1, 2, 5, 6] = True
  got = np.asarray(nearest_seed(jnp.asarray(seeds)))
  assert got.shape == seeds.shape
  np.testing.assert_array_equal(got[1, 2], 5 * 8 + 6)
  np.testing.assert_array_equal(got[0], -1)
