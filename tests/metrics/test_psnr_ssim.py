"""PSNR and SSIM against scikit-image on random images and on photographs shipped by skimage.data."""
import jax
import numpy as np
import pytest

skimage = pytest.importorskip("skimage")
from skimage import data as skdata  # noqa: E402
from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # noqa: E402

from psrjax import metrics  # noqa: E402

TOL = 1e-4
SSIM = jax.jit(metrics.ssim, static_argnames="data_range")
PSNR = jax.jit(metrics.psnr, static_argnames="data_range")


def _sk_ssim(a, b, data_range=2.0):
  return structural_similarity(np.float64(a), np.float64(b), gaussian_weights=True, sigma=1.5,
                               use_sample_covariance=False, data_range=data_range, channel_axis=-1)


def _sk_psnr(a, b, data_range=2.0):
  return peak_signal_noise_ratio(np.float64(a), np.float64(b), data_range=data_range)


def _pairs(images, seed=0):
  rng = np.random.RandomState(seed)
  noisy = np.clip(images + rng.normal(scale=0.1, size=images.shape), -1, 1)
  return images.astype(np.float32), noisy.astype(np.float32)


def _photos():
  """Real photographs (RGB and grayscale as RGB) cropped to 128x128, in [-1, 1]."""
  crops = [skdata.astronaut()[100:228, 180:308], skdata.chelsea()[50:178, 100:228],
           skdata.coffee()[120:248, 200:328], np.repeat(skdata.camera()[100:228, 200:328, None], 3, -1)]
  return np.stack(crops).astype(np.float64) / 127.5 - 1


def test_random_images_with_leading_batch_axes():
  a = np.random.RandomState(1).uniform(-1, 1, (2, 3, 24, 20, 3))
  a, b = _pairs(a)
  ours_ssim, ours_psnr = SSIM(a, b), PSNR(a, b)
  assert ours_ssim.shape == ours_psnr.shape == (2, 3)
  for i in np.ndindex(2, 3):
    assert abs(float(ours_ssim[i]) - _sk_ssim(a[i], b[i])) <= TOL
    assert abs(float(ours_psnr[i]) - _sk_psnr(a[i], b[i])) <= TOL


def test_real_photographs():
  a, b = _pairs(_photos())
  blurred = (a + np.roll(a, 1, axis=1) + np.roll(a, 1, axis=2)) / 3
  for x, y in ((a, b), (a, blurred), (b, blurred)):
    ours_ssim, ours_psnr = SSIM(x, y), PSNR(x, y)
    for i in range(len(x)):
      assert abs(float(ours_ssim[i]) - _sk_ssim(x[i], y[i])) <= TOL
      assert abs(float(ours_psnr[i]) - _sk_psnr(x[i], y[i])) <= TOL


def test_other_data_range_and_single_channel():
  a, b = _pairs(_photos()[:2, :40, :48, :1])
  a255, b255 = (a + 1) * 127.5, (b + 1) * 127.5
  ours = SSIM(a255, b255, data_range=255.0)
  for i in range(2):
    assert abs(float(ours[i]) - _sk_ssim(a255[i], b255[i], 255.0)) <= TOL
    assert abs(float(PSNR(a255, b255, data_range=255.0)[i]) - _sk_psnr(a255[i], b255[i], 255.0)) <= TOL


def test_masked_metrics_multiply_both_images_by_the_mask():
  a, b = _pairs(_photos()[:2, :64, :64])
  yy, xx = np.mgrid[:64, :64]
  mask = (((yy - 32) ** 2 + (xx - 28) ** 2) < 20 ** 2).astype(np.float32)
  masks = np.stack([mask, mask.T])[..., None]
  ours_ssim, ours_psnr = SSIM(a, b, mask=masks), PSNR(a, b, mask=masks[..., 0])
  for i in range(2):
    assert abs(float(ours_ssim[i]) - _sk_ssim(a[i] * masks[i], b[i] * masks[i])) <= TOL
    assert abs(float(ours_psnr[i]) - _sk_psnr(a[i] * masks[i], b[i] * masks[i])) <= TOL
  # Differences outside the mask do not count.
  outside = b + (1 - masks) * 0.5
  np.testing.assert_allclose(SSIM(a, outside, mask=masks), ours_ssim, rtol=1e-6)


def test_identical_images():
  a = _photos()[:1].astype(np.float32)
  np.testing.assert_allclose(SSIM(a, a), 1.0, rtol=1e-6)
  assert np.isposinf(PSNR(a, a)[0])


def test_bad_inputs():
  a = np.zeros((1, 16, 16, 3), np.float32)
  with pytest.raises(ValueError, match="shapes differ"):
    metrics.ssim(a, a[:, :15])
  with pytest.raises(ValueError, match="need at least 11x11"):
    metrics.ssim(a[:, :10], a[:, :10])
  with pytest.raises(ValueError, match="floating point"):
    metrics.psnr(a.astype(np.uint8), a.astype(np.uint8))
  with pytest.raises(ValueError, match="data_range must be > 0"):
    metrics.psnr(a, a, data_range=0.0)
  with pytest.raises(ValueError, match="mask shape"):
    metrics.psnr(a, a, mask=np.ones((1, 8, 8, 1)))
