"""FVD: the reference resize, ~0 on identical sets, growing with added noise."""
import functools

import jax
import numpy as np
import pytest

from psrjax import metrics
from psrjax.metrics import video
from psrjax.models import pretrained


def test_resize_matches_tf1_resize_bilinear():
  tf = pytest.importorskip("tensorflow")
  frames = np.random.RandomState(0).uniform(-1, 1, (3, 37, 50, 3)).astype(np.float32)
  for size in ((224, 224), (16, 20)):
    ref = tf.compat.v1.image.resize_bilinear(frames, size, align_corners=False).numpy()
    np.testing.assert_allclose(video.resize_bilinear_legacy(frames, size), ref, atol=1e-5)


def test_identical_sets_are_near_zero_and_noise_increases_fvd():
  module, variables = pretrained.load("i3d")
  features = jax.jit(lambda v, x: metrics.fvd_features(functools.partial(module.apply, v), x, resolution=32))
  rng = np.random.RandomState(0)
  t, y, x = np.meshgrid(np.arange(8), np.arange(32), np.arange(32), indexing="ij")
  clips = []
  for k in range(8):   # moving stripes of varied speed, direction and colour
    phase = (np.cos(k) * x + np.sin(k) * y + (k % 4 + 1) * t) / (3 + k % 3)
    clips.append(np.sin(phase)[..., None] * rng.uniform(0.3, 1, 3))
  clips = np.stack(clips).astype(np.float32)
  real = metrics.FeatureStats.of(features(variables, clips))
  assert abs(metrics.fvd(real, real)) < 1e-6 * np.trace(real.covariance)
  scores = []
  for sigma in (0.1, 0.3, 0.6):
    noisy = np.clip(clips + sigma * rng.normal(size=clips.shape), -1, 1).astype(np.float32)
    scores.append(metrics.fvd(real, metrics.FeatureStats.of(features(variables, noisy))))
  assert 0 < scores[0] < scores[1] < scores[2]


def test_rejects_images():
  with pytest.raises(ValueError, match=r"\[B, T, H, W, 3\]"):
    metrics.fvd_features(lambda v: v, np.zeros((2, 64, 64, 3), np.float32))


def test_pooled_features_and_action_feature_distance():
  module, variables = pretrained.load("i3d", final_endpoint="Mixed_5c")
  apply = functools.partial(module.apply, variables)
  clips = np.random.RandomState(3).uniform(-1, 1, (2, 8, 32, 32, 3)).astype(np.float32)
  feats, mixed_5c, dist, same = jax.jit(lambda x: (
      metrics.pooled_i3d_features(apply, x), apply(x)["Mixed_5c"],
      metrics.action_feature_distance(apply, x, x[::-1]), metrics.action_feature_distance(apply, x, x)))(clips)
  np.testing.assert_allclose(feats, np.asarray(mixed_5c).mean(axis=(1, 2, 3)), rtol=1e-5)
  np.testing.assert_allclose(dist, np.abs(feats - feats[::-1]).mean(-1), rtol=1e-5)
  assert float(np.abs(same).max()) == 0.0
