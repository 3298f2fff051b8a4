"""PSR-Net's temporal perceptual loss on the real I3D: value, gradients, precomputed targets."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrjax.losses import perceptual
from psrjax.models import pretrained


@pytest.fixture(scope="module")
def i3d():
  module, variables = pretrained.load("i3d", final_endpoint="Mixed_5c")
  return module, variables


def _videos():
  rng = np.random.RandomState(0)
  target = rng.uniform(-1, 1, (1, 8, 32, 32, 3)).astype(np.float32)
  pred = np.clip(target + 0.3 * rng.normal(size=target.shape), -1, 1).astype(np.float32)
  return pred, target


def test_value_gradients_and_precomputed_target(i3d):
  module, variables = i3d
  pred, target = _videos()

  @jax.jit
  def step(variables, pred, target):
    apply = functools.partial(module.apply, variables)
    target_features = apply(target)
    loss_fn = lambda p, t: perceptual.temporal_perceptual_loss(apply, p, t)
    value, grads = jax.value_and_grad(loss_fn, argnums=(0, 1))(pred, target)
    return value, grads, loss_fn(pred, target_features), loss_fn(target, target), apply(pred), target_features

  value, (g_pred, g_target), value_precomputed, zero, fp, ft = step(variables, pred, target)
  expected = sum(np.mean((np.asarray(fp[k], np.float64) - np.asarray(ft[k], np.float64)) ** 2)
                 for k in perceptual.TEMPORAL_ENDPOINTS)
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  np.testing.assert_allclose(value_precomputed, value, rtol=1e-6)
  assert float(zero) == 0.0 and float(value) > 0
  assert np.all(np.isfinite(g_pred)) and float(jnp.abs(g_pred).max()) > 0
  assert float(jnp.abs(g_target).max()) == 0.0   # target features are under stop_gradient


def test_rejects_images(i3d):
  module, variables = i3d
  with pytest.raises(ValueError, match=r"\[B, T, H, W, 3\]"):
    perceptual.temporal_perceptual_loss(functools.partial(module.apply, variables),
                                        np.zeros((1, 32, 32, 3), np.float32), np.zeros((1, 32, 32, 3), np.float32))
