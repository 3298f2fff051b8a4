"""benchmarks/vfid_floor.py: the Fréchet distance of two disjoint halves of real clips' features,
against scipy's matrix square root."""
import numpy as np
import scipy.linalg

from benchmarks import vfid_floor


def test_floor_is_the_frechet_distance_of_the_two_halves():
  rng = np.random.default_rng(0)
  features = rng.normal(size=(40, 6)) * np.arange(1, 7) + 3.0
  a, b = features[:20], features[20:40]
  sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  diff = a.mean(0) - b.mean(0)
  want = diff @ diff + np.trace(sa + sb - 2 * np.real(scipy.linalg.sqrtm(sa @ sb)))
  np.testing.assert_allclose(vfid_floor.floor(features, 20), want, rtol=1e-6)
  assert vfid_floor.floor(features, 20) > 0
