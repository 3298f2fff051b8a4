"""Fréchet distance against a scipy.linalg.sqrtm reference; streaming statistics equal one batch."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from psrjax.metrics import distribution


def _reference(mu1, sigma1, mu2, sigma2):
  """pytorch-fid's calculate_frechet_distance (sqrtm, eps offset if singular, real part)."""
  covmean, _ = scipy.linalg.sqrtm(sigma1.dot(sigma2), disp=False)
  if not np.isfinite(covmean).all():
    offset = np.eye(sigma1.shape[0]) * 1e-6
    covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
  covmean = covmean.real
  diff = mu1 - mu2
  return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def _stats(rng, n, d, scale):
  x = rng.normal(size=(n, d)) @ (rng.normal(size=(d, d)) * scale) + rng.normal(size=d)
  return x.mean(0), np.cov(x, rowvar=False)


@pytest.mark.parametrize("case", ["well_conditioned", "ill_conditioned", "rank_deficient"])
def test_matches_sqrtm_reference(case):
  rng = np.random.RandomState(0)
  d = 32
  if case == "well_conditioned":
    (m1, s1), (m2, s2) = _stats(rng, 500, d, 1.0), _stats(rng, 500, d, 0.8)
  elif case == "ill_conditioned":   # eigenvalues spanning 12 orders of magnitude
    q1, q2 = np.linalg.qr(rng.normal(size=(d, d)))[0], np.linalg.qr(rng.normal(size=(d, d)))[0]
    s1 = (q1 * np.logspace(-10, 2, d)) @ q1.T
    s2 = (q2 * np.logspace(-9, 1, d)) @ q2.T
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
  else:                             # fewer samples than dimensions, as with small eval sets
    (m1, s1), (m2, s2) = _stats(rng, 20, d, 1.0), _stats(rng, 24, d, 1.0)
  ours = distribution.frechet_distance(m1, s1, m2, s2)
  ref = _reference(m1, s1, m2, s2)
  assert abs(ours - ref) <= 1e-3 * abs(ref)
  assert abs(distribution.frechet_distance(m1, s1, m1, s1)) <= 1e-6 * np.trace(s1)


def test_streaming_over_uneven_sharded_batches_equals_one_batch():
  rng = np.random.RandomState(1)
  features = rng.normal(size=(103, 16)) * 3 + 10
  mesh = jax.make_mesh((len(jax.devices()),), ("data",))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  embed = jax.jit(lambda x: x * 1.0, out_shardings=sharding)
  stats = distribution.FeatureStats.empty(16)
  bounds = [0, 5, 21, 22, 40, 64, 90, 103]     # 7 uneven batches
  for lo, hi in zip(bounds[:-1], bounds[1:]):
    batch = np.zeros((32, 16))               # padded to a multiple of the device count
    batch[:hi - lo] = features[lo:hi]
    valid = np.arange(32) < hi - lo
    out = embed(jnp.asarray(batch, jnp.float32))
    stats = stats.update(np.asarray(jax.device_get(out)), valid)
  whole = distribution.FeatureStats.of(features.astype(np.float32))
  assert stats.count == whole.count == 103
  np.testing.assert_allclose(stats.mean, whole.mean, rtol=1e-6)
  np.testing.assert_allclose(stats.covariance, whole.covariance, rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(whole.covariance, np.cov(features.astype(np.float32), rowvar=False), rtol=1e-6)


def test_save_load_and_errors(tmp_path):
  stats = distribution.FeatureStats.of(np.random.RandomState(2).normal(size=(10, 4)))
  stats.save(tmp_path / "real.npz")
  again = distribution.FeatureStats.load(tmp_path / "real.npz")
  assert again.count == 10
  np.testing.assert_array_equal(again.m2, stats.m2)
  with pytest.raises(ValueError, match="at least 2 samples, got 1"):
    distribution.FeatureStats.of(np.ones((1, 4))).covariance
  with pytest.raises(ValueError, match="feature sizes differ"):
    stats.merge(distribution.FeatureStats.empty(5))
  with pytest.raises(ValueError, match="mismatched shapes"):
    distribution.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
