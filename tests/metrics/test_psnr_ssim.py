"""PSNR and SSIM against scikit-image on random images and on photographs shipped by skimage.data.

psrjax takes the batch contract's [-1, 1] images; its SSIM must be the standard metric, i.e.
scikit-image's on the same images as [0, 1] intensities (data_range=1) or as uint8 [0, 255]
(data_range=255). SSIM's luminance term depends on absolute intensities, so photographs of
different mean brightness are compared, not only shift-invariant quantities.
"""
import jax
import numpy as np
import pytest

skimage = pytest.importorskip("skimage")
from skimage import data as skdata  # noqa: E402
from skimage import transform  # noqa: E402
from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # noqa: E402

from psrjax import metrics  # noqa: E402

TOL = 1e-4
SSIM = jax.jit(metrics.ssim, static_argnames="value_range")
PSNR = jax.jit(metrics.psnr, static_argnames="data_range")


def _sk_ssim(a, b, data_range=1.0):
  """scikit-image's SSIM with the paper's settings; a, b in [0, data_range] (float or uint8)."""
  return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                               data_range=data_range, channel_axis=-1)


def _sk_psnr(a, b, data_range=2.0):
  return peak_signal_noise_ratio(np.float64(a), np.float64(b), data_range=data_range)


def _unit(x):
  """[-1, 1] -> [0, 1] in float64, for the references."""
  return (np.float64(x) + 1) / 2


def _pairs(images, seed=0):
  rng = np.random.RandomState(seed)
  noisy = np.clip(images + rng.normal(scale=0.1, size=images.shape), -1, 1)
  return images.astype(np.float32), noisy.astype(np.float32)


def _rgb(x):
  return np.repeat(x[..., None], 3, -1) if x.ndim == 2 else x


def _photos_uint8():
  """128x128 uint8 RGB crops of photographs with mean brightness from ~0.06 to ~0.77 of white."""
  crops = [skdata.hubble_deep_field()[:128, :128], skdata.rocket()[:128, :128],
           skdata.chelsea()[50:178, 100:228], skdata.astronaut()[100:228, 180:308],
           skdata.coffee()[120:248, 200:328], skdata.camera()[0:128, 250:378]]
  return np.stack([_rgb(c) for c in crops])


def _photos():
  return _photos_uint8().astype(np.float64) / 127.5 - 1


def _resized(image):
  """A whole skimage.data photograph resized to 128x128 RGB in [0, 1]."""
  return _rgb(transform.resize(image, (128, 128), anti_aliasing=True))


def test_photographs_resized_as_a_new_user_would():
  astronaut, camera = _resized(skdata.astronaut()), _resized(skdata.camera())
  noisy = np.clip(astronaut + np.random.RandomState(0).normal(scale=0.05, size=astronaut.shape), 0, 1)
  for other in (camera, noisy):
    ours = float(metrics.ssim(np.float32(astronaut * 2 - 1), np.float32(other * 2 - 1)))
    assert abs(ours - _sk_ssim(astronaut, other)) <= TOL


def test_random_images_with_leading_batch_axes():
  a = np.random.RandomState(1).uniform(-1, 1, (2, 3, 24, 20, 3))
  a, b = _pairs(a)
  ours_ssim, ours_psnr = SSIM(a, b), PSNR(a, b)
  assert ours_ssim.shape == ours_psnr.shape == (2, 3)
  for i in np.ndindex(2, 3):
    assert abs(float(ours_ssim[i]) - _sk_ssim(_unit(a[i]), _unit(b[i]))) <= TOL
    assert abs(float(ours_psnr[i]) - _sk_psnr(a[i], b[i])) <= TOL


def test_photographs_of_different_brightness_against_float_and_uint8_references():
  u8 = _photos_uint8()
  means = u8.mean(axis=(1, 2, 3)) / 255
  assert means.min() < 0.1 and means.max() > 0.7
  rng = np.random.RandomState(2)
  others = [np.clip(u8 + rng.normal(scale=20, size=u8.shape), 0, 255).round().astype(np.uint8),
            np.roll(u8, 1, axis=0),                      # a different photograph
            (u8 // 2 + np.roll(u8, 1, axis=2) // 2).astype(np.uint8)]
  a = np.float32(u8 / 127.5 - 1)
  for other in others:
    b = np.float32(other / 127.5 - 1)
    ours_ssim, ours_psnr = SSIM(a, b), PSNR(a, b)
    for i in range(len(u8)):
      assert abs(float(ours_ssim[i]) - _sk_ssim(u8[i], other[i], 255)) <= TOL
      assert abs(float(ours_ssim[i]) - _sk_ssim(u8[i] / 255, other[i] / 255)) <= TOL
      assert abs(float(ours_psnr[i]) - _sk_psnr(u8[i], other[i], 255)) <= TOL


def test_other_value_ranges_and_single_channel():
  a, b = _pairs(_photos()[:2, :40, :48, :1])
  a255, b255 = (a + 1) * 127.5, (b + 1) * 127.5
  ours = SSIM(a255, b255, value_range=(0.0, 255.0))
  for i in range(2):
    assert abs(float(ours[i]) - _sk_ssim(np.float64(a255[i]), np.float64(b255[i]), 255.0)) <= TOL
    assert abs(float(PSNR(a255, b255, data_range=255.0)[i]) - _sk_psnr(a255[i], b255[i], 255.0)) <= TOL
  np.testing.assert_allclose(SSIM(_unit(a), _unit(b), value_range=(0.0, 1.0)), ours, atol=1e-6)
  np.testing.assert_allclose(SSIM(a, b), ours, atol=1e-6)
  # PSNR depends only on the width of the range, not on where it starts.
  np.testing.assert_allclose(PSNR(_unit(a), _unit(b), data_range=1.0), PSNR(a, b), rtol=1e-5)


def test_masked_metrics_mask_the_unit_images_so_the_background_is_black():
  a, b = _pairs(_photos()[2:4, :64, :64])
  yy, xx = np.mgrid[:64, :64]
  mask = (((yy - 32) ** 2 + (xx - 28) ** 2) < 20 ** 2).astype(np.float32)
  masks = np.stack([mask, mask.T])[..., None]
  ours_ssim, ours_psnr = SSIM(a, b, mask=masks), PSNR(a, b, mask=masks[..., 0])
  for i in range(2):
    assert abs(float(ours_ssim[i]) - _sk_ssim(_unit(a[i]) * masks[i], _unit(b[i]) * masks[i])) <= TOL
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
  with pytest.raises(ValueError, match=r"ssim: value_range must have lo < hi"):
    metrics.ssim(a, a, value_range=(1.0, -1.0))
  with pytest.raises(ValueError, match=r"ssim: value_range must be a pair \(lo, hi\)"):
    metrics.ssim(a, a, value_range=2.0)
  with pytest.raises(ValueError, match="mask shape"):
    metrics.psnr(a, a, mask=np.ones((1, 8, 8, 1)))
