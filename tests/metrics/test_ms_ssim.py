"""MS-SSIM against TensorFlow's tf.image.ssim_multiscale on random and real images."""
import jax
import numpy as np
import pytest

from psrjax import metrics

TOL = 1e-4


def _images():
  from skimage import data as skdata
  rng = np.random.RandomState(0)
  photo = skdata.astronaut()[40:217, 100:277].astype(np.float32) / 127.5 - 1   # 177x177: odd sizes
  a = np.stack([photo, rng.uniform(-1, 1, photo.shape).astype(np.float32)])
  b = np.clip(a + rng.normal(scale=0.1, size=a.shape), -1, 1).astype(np.float32)
  b[0] = (b[0] + np.roll(b[0], 2, axis=0)) / 2
  return a, b


def test_matches_tensorflow():
  tf = pytest.importorskip("tensorflow")
  a, b = _images()
  ref = tf.image.ssim_multiscale(tf.constant(a), tf.constant(b), max_val=2.0).numpy()
  ours = jax.jit(metrics.ms_ssim)(a, b)
  assert ours.shape == (2,)
  np.testing.assert_allclose(ours, ref, atol=TOL)
  a255, b255 = (a + 1) * 127.5, (b + 1) * 127.5
  ref255 = tf.image.ssim_multiscale(tf.constant(a255), tf.constant(b255), max_val=255.0).numpy()
  np.testing.assert_allclose(metrics.ms_ssim(a255, b255, data_range=255.0), ref255, atol=TOL)


def test_identical_and_too_small():
  a, _ = _images()
  np.testing.assert_allclose(metrics.ms_ssim(a, a), 1.0, rtol=1e-6)
  with pytest.raises(ValueError, match="need at least 161x161"):
    metrics.ms_ssim(a[:, :160], a[:, :160])
