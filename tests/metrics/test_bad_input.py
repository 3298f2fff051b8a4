"""Bad input to the metrics: one-line ValueErrors naming the problem and the fix."""
import jax
import numpy as np
import pytest

from psrjax import metrics
from psrjax.metrics import distribution

IMAGES = np.random.RandomState(0).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)


@pytest.mark.parametrize("fn", [metrics.psnr, metrics.sharpness_difference])
def test_images_in_0_255_with_the_default_range(fn):
  with pytest.raises(ValueError, match=r"span \[.*\], more than data_range=2 allows; .*data_range=255.0"):
    fn(IMAGES * 127.5 + 127.5, IMAGES * 127.5 + 127.5)
  fn(IMAGES * 1.2, IMAGES)              # unclipped predictions slightly outside [-1, 1] are fine
  assert float(metrics.psnr(IMAGES * 127.5 + 127.5, IMAGES * 127.5 + 128, data_range=255.0)[0]) > 40
  jax.jit(fn)(IMAGES * 127.5, IMAGES)   # inside jit values are not inspected


def test_ssim_images_outside_the_value_range():
  with pytest.raises(ValueError, match=r"ssim: image values span \[.*\], outside value_range=\(-1, 1\); "
                                       r".*value_range=\(0.0, 255.0\)"):
    metrics.ssim(IMAGES * 127.5 + 127.5, IMAGES * 127.5 + 127.5)
  with pytest.raises(ValueError, match=r"outside value_range=\(0, 1\)"):
    metrics.ssim(IMAGES, IMAGES, value_range=(0.0, 1.0))   # [-1, 1] images declared as [0, 1]
  metrics.ssim(IMAGES * 1.2, IMAGES)               # unclipped predictions slightly outside [-1, 1] are fine
  metrics.ssim(IMAGES * 127.5 + 127.5, IMAGES * 127.5 + 128, value_range=(0.0, 255.0))
  jax.jit(metrics.ssim)(IMAGES * 127.5, IMAGES)    # inside jit values are not inspected
  with pytest.raises(ValueError, match="ssim: images contain NaN or Inf values"):
    metrics.ssim(np.where(IMAGES > 0.9, np.inf, IMAGES), IMAGES)


def test_non_finite_images_and_lpips_inputs():
  bad = IMAGES.copy()
  bad[0, 3, 3, 1] = np.nan
  with pytest.raises(ValueError, match="psnr: images contain NaN or Inf values"):
    metrics.psnr(bad, IMAGES)
  big = np.zeros((1, 64, 64, 3), np.float32)
  with pytest.raises(ValueError, match="lpips: image values span"):
    metrics.lpips(big + 255.0, big)
  with pytest.raises(ValueError, match="lpips: expected RGB images \\[..., H, W, 3\\], got 1 channels"):
    metrics.lpips(big[..., :1], big[..., :1])
  with pytest.raises(ValueError, match="lpips: image shapes differ"):
    metrics.lpips(big, big[:, :32])


def test_distribution_inputs():
  x = np.random.RandomState(1).normal(size=(10, 4))
  with pytest.raises(ValueError, match=r"expected features \[N, D\], got shape \(10,\)"):
    distribution.FeatureStats.of(x[:, 0])
  with pytest.raises(ValueError, match="4 validity flags for 10 feature rows"):
    distribution.FeatureStats.of(x, np.ones(4))
  with pytest.raises(ValueError, match="features contain NaN or Inf"):
    distribution.FeatureStats.of(np.where(x > 1.5, np.inf, x))
  with pytest.raises(ValueError, match="a covariance needs at least 2 samples, got 1"):
    metrics.fid(distribution.FeatureStats.of(x), distribution.FeatureStats.of(x[:1]))
  with pytest.raises(ValueError, match="contain NaN or Inf"):
    metrics.frechet_distance(np.zeros(4), np.full((4, 4), np.nan), np.zeros(4), np.eye(4))
  with pytest.raises(ValueError, match=r"kid: expected features \[N, D\] of equal D"):
    metrics.kid(x, x[:, :3])
  with pytest.raises(ValueError, match="action_feature_distance: shapes differ"):
    metrics.action_feature_distance(lambda v: v, np.zeros((1, 4, 8, 8, 3)), np.zeros((1, 5, 8, 8, 3)))
