"""MS-SSIM against TensorFlow's tf.image.ssim_multiscale on random images and photographs.

psrjax takes [-1, 1] images; the reference gets the same images as [0, 1] intensities
(max_val=1) or [0, 255] (max_val=255): the luminance term at the coarsest scale depends on
absolute intensities, so photographs of different mean brightness are compared.
"""
import jax
import numpy as np
import pytest

from psrjax import metrics

TOL = 1e-4
MS_SSIM = jax.jit(metrics.ms_ssim, static_argnames="value_range")


def _images():
  """[-1, 1] float32 pairs, 177x177 (odd sizes): a dark, a mid and a bright photograph and noise."""
  from skimage import data as skdata
  rng = np.random.RandomState(0)
  camera = skdata.camera()[0:177, 230:407]
  photos = [skdata.hubble_deep_field()[:177, :177], skdata.astronaut()[40:217, 100:277],
            np.repeat(camera[..., None], 3, -1)]
  photos = [p.astype(np.float32) / 127.5 - 1 for p in photos]
  a = np.stack(photos + [rng.uniform(-1, 1, photos[0].shape).astype(np.float32)])
  b = np.clip(a + rng.normal(scale=0.1, size=a.shape), -1, 1).astype(np.float32)
  b[1] = (b[1] + np.roll(b[1], 2, axis=0)) / 2
  return a, b


def test_matches_tensorflow_on_unit_and_0_255_images():
  tf = pytest.importorskip("tensorflow")
  a, b = _images()
  means = (a[:3].mean(axis=(1, 2, 3)) + 1) / 2
  assert means.min() < 0.1 and means.max() > 0.6
  unit_a, unit_b = (a + 1) / 2, (b + 1) / 2
  ref = tf.image.ssim_multiscale(tf.constant(unit_a), tf.constant(unit_b), max_val=1.0).numpy()
  ours = MS_SSIM(a, b)
  assert ours.shape == (4,)
  np.testing.assert_allclose(ours, ref, atol=TOL)
  a255, b255 = unit_a * 255, unit_b * 255
  ref255 = tf.image.ssim_multiscale(tf.constant(a255), tf.constant(b255), max_val=255.0).numpy()
  np.testing.assert_allclose(MS_SSIM(a255, b255, value_range=(0.0, 255.0)), ref255, atol=TOL)


def test_masked_matches_tensorflow_on_masked_unit_images():
  tf = pytest.importorskip("tensorflow")
  a, b = _images()
  yy, xx = np.mgrid[:177, :177]
  mask = ((((yy - 90) ** 2 + (xx - 80) ** 2) < 60 ** 2).astype(np.float32))[..., None]
  unit_a, unit_b = (a + 1) / 2 * mask, (b + 1) / 2 * mask
  ref = tf.image.ssim_multiscale(tf.constant(unit_a), tf.constant(unit_b), max_val=1.0).numpy()
  np.testing.assert_allclose(MS_SSIM(a, b, mask=mask), ref, atol=TOL)


def test_identical_and_too_small():
  a, _ = _images()
  np.testing.assert_allclose(MS_SSIM(a, a), 1.0, rtol=1e-6)
  with pytest.raises(ValueError, match="need at least 161x161"):
    metrics.ms_ssim(a[:, :160], a[:, :160])
