"""KID and Inception Score against their defining formulas; sharpness difference against the
authors' TensorFlow code."""
import jax
import numpy as np
import pytest

from psrjax import metrics


def _mmd2_unbiased(x, y):   # Bińkowski et al. 2018, Eq. 2 with k(x, y) = (x.y / d + 1)^3
  d, m, n = x.shape[1], len(x), len(y)
  k = lambda a, b: (a @ b.T / d + 1) ** 3
  sxx = sum(k(x[i:i + 1], x[j:j + 1])[0, 0] for i in range(m) for j in range(m) if i != j)
  syy = sum(k(y[i:i + 1], y[j:j + 1])[0, 0] for i in range(n) for j in range(n) if i != j)
  return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * k(x, y).mean()


def test_kid_single_full_subset_is_the_unbiased_mmd():
  rng = np.random.RandomState(0)
  x, y = rng.normal(size=(12, 5)), rng.normal(loc=0.5, size=(12, 5))
  mean, std = metrics.kid(x, y, subsets=1, subset_size=12)
  np.testing.assert_allclose(mean, _mmd2_unbiased(x, y), rtol=1e-10)
  assert std == 0.0
  big = rng.normal(size=(400, 5))
  same = metrics.kid(big[:200], big[200:], subsets=5, subset_size=100)[0]
  shifted = metrics.kid(big[:200], big[200:] + 0.5, subsets=5, subset_size=100)[0]
  assert abs(same) < shifted
  with pytest.raises(ValueError, match="at least 2"):
    metrics.kid(x[:1], y)


def test_inception_score_formula():
  rng = np.random.RandomState(1)
  logits = rng.normal(scale=3, size=(40, 7))
  p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  expected = []
  for part in np.split(p, 4):
    py = part.mean(0)
    expected.append(np.exp(np.mean([np.sum(q * np.log(q / py)) for q in part])))
  mean, std = metrics.inception_score(logits, splits=4)
  np.testing.assert_allclose([mean, std], [np.mean(expected), np.std(expected)], rtol=1e-10)
  assert 1 <= mean <= 7
  with pytest.raises(ValueError, match="splits=10"):
    metrics.inception_score(logits[:5])


def test_sharpness_difference_matches_authors_tensorflow_code():
  tf = pytest.importorskip("tensorflow")
  rng = np.random.RandomState(2)
  gen = rng.uniform(-1, 1, (3, 16, 20, 3)).astype(np.float32)
  gt = np.clip(gen + rng.normal(scale=0.2, size=gen.shape), -1, 1).astype(np.float32)
  pos = tf.constant(np.identity(3), dtype=tf.float32)   # adversarial_video_generation's sharp_diff_error
  filter_x = tf.expand_dims(tf.stack([-pos, pos]), 0)
  filter_y = tf.stack([tf.expand_dims(pos, 0), tf.expand_dims(-pos, 0)])
  grads = lambda f: (tf.abs(tf.nn.conv2d(f, filter_x, [1, 1, 1, 1], "SAME"))
                     + tf.abs(tf.nn.conv2d(f, filter_y, [1, 1, 1, 1], "SAME")))
  diff = tf.abs(grads(gt) - grads(gen))
  ref = (10 * np.log10(1 / (tf.reduce_sum(diff, [1, 2, 3]).numpy() / (16 * 20 * 3))))
  ours = jax.jit(metrics.sharpness_difference)(gen, gt)
  np.testing.assert_allclose(ours, ref, rtol=1e-5)
  with pytest.raises(ValueError, match="max_value must be > 0"):
    metrics.sharpness_difference(gen, gt, max_value=0.0)
