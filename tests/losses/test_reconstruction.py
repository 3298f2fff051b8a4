"""Pixel losses against NumPy formulas, with and without masks."""
import jax
import numpy as np
import pytest

from psrjax.losses import reconstruction

RNG = np.random.RandomState(0)
PRED = RNG.uniform(-1, 1, (2, 3, 5, 5, 3)).astype(np.float32) * 2
TARGET = RNG.uniform(-1, 1, (2, 3, 5, 5, 3)).astype(np.float32)
MASK = (RNG.uniform(size=(2, 3, 5, 5, 1)) > 0.5).astype(np.float32)


def _huber(d, delta):
  a = np.abs(d)
  return np.where(a <= delta, 0.5 * a ** 2, delta * (a - 0.5 * delta))


@pytest.mark.parametrize("delta", [0.1, 1.0])
def test_huber(delta):
  d = PRED - TARGET
  np.testing.assert_allclose(reconstruction.huber(PRED, TARGET, delta=delta), _huber(d, delta).mean(), rtol=1e-6)
  full = np.broadcast_to(MASK, d.shape)
  np.testing.assert_allclose(reconstruction.huber(PRED, TARGET, delta=delta, mask=MASK),
                             (_huber(d, delta) * full).sum() / full.sum(), rtol=1e-6)
  assert np.all(np.isfinite(jax.grad(reconstruction.huber)(PRED, TARGET, delta=delta)))


def test_l1_and_mse_masked_and_unmasked():
  d = PRED - TARGET
  full = np.broadcast_to(MASK, d.shape)
  np.testing.assert_allclose(reconstruction.l1(PRED, TARGET), np.abs(d).mean(), rtol=1e-6)
  np.testing.assert_allclose(reconstruction.mse(PRED, TARGET), (d ** 2).mean(), rtol=1e-6)
  np.testing.assert_allclose(reconstruction.l1(PRED, TARGET, mask=MASK), (np.abs(d) * full).sum() / full.sum(),
                             rtol=1e-6)
  np.testing.assert_allclose(reconstruction.mse(PRED, TARGET, mask=MASK), (d ** 2 * full).sum() / full.sum(),
                             rtol=1e-6)
  assert float(reconstruction.l1(PRED, TARGET, mask=np.zeros_like(MASK))) == 0.0


def test_bad_inputs():
  with pytest.raises(ValueError, match="prediction shape"):
    reconstruction.l1(PRED, TARGET[:1])
  with pytest.raises(ValueError, match="does not broadcast"):
    reconstruction.mse(PRED, TARGET, mask=MASK[..., :2, :])
  with pytest.raises(ValueError, match="delta must be > 0"):
    reconstruction.huber(PRED, TARGET, delta=0.0)
