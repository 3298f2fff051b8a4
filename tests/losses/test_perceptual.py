"""Perceptual, style (Gram) and contextual losses against NumPy implementations of the papers' equations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrjax.losses import perceptual

RNG = np.random.RandomState(0)
LAYERS = ("relu1_1", "relu2_1")
PRED = {"relu1_1": RNG.normal(size=(2, 8, 8, 4)).astype(np.float32),
        "relu2_1": RNG.normal(size=(2, 4, 4, 6)).astype(np.float32)}
TARGET = {k: RNG.normal(size=v.shape).astype(np.float32) for k, v in PRED.items()}


def test_perceptual_l1_and_mse_with_weights():
  w = (0.5, 2.0)
  l1 = sum(wi * np.abs(PRED[k] - TARGET[k]).mean() for wi, k in zip(w, LAYERS))
  l2 = sum(np.square(PRED[k] - TARGET[k]).mean() for k in LAYERS)
  np.testing.assert_allclose(perceptual.perceptual_loss(PRED, TARGET, LAYERS, w), l1, rtol=1e-6)
  np.testing.assert_allclose(perceptual.perceptual_loss(PRED, TARGET, LAYERS, kind="mse"), l2, rtol=1e-6)
  grads = jax.grad(perceptual.perceptual_loss, argnums=1)(PRED, TARGET, LAYERS)
  assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(grads))


def _gram(f):  # INTERnet Eq. 11, written per entry
  b, h, w, c = f.shape
  g = np.zeros((b, c, c))
  for i in range(c):
    for j in range(c):
      g[:, i, j] = (f[..., i] * f[..., j]).sum(axis=(1, 2)) / (c * h * w)
  return g


def test_gram_and_style_loss_follow_internet_eqs_10_11():
  np.testing.assert_allclose(perceptual.gram_matrix(PRED["relu2_1"]), _gram(PRED["relu2_1"]), rtol=1e-5)
  expected = 0.0
  for wi, k in zip((1.0, 3.0), LAYERS):
    frob = np.square(_gram(PRED[k].astype(np.float64)) - _gram(TARGET[k].astype(np.float64))).sum(axis=(1, 2))
    expected += wi * frob.mean() / np.prod(PRED[k].shape[1:])
  np.testing.assert_allclose(perceptual.style_loss(PRED, TARGET, LAYERS, (1.0, 3.0)), expected, rtol=1e-5)


def _contextual(x, y, h=0.1, eps=1e-5):  # Mechrez et al. 2018, Eqs. 1-4, one example at a time
  losses = []
  for xb, yb in zip(x.reshape(len(x), -1, x.shape[-1]), y.reshape(len(y), -1, y.shape[-1])):
    mu = yb.mean(axis=0)
    xn = (xb - mu) / np.linalg.norm(xb - mu, axis=1, keepdims=True)
    yn = (yb - mu) / np.linalg.norm(yb - mu, axis=1, keepdims=True)
    d = 1 - xn @ yn.T
    d_rel = d / (d.min(axis=1, keepdims=True) + eps)
    w = np.exp((1 - d_rel) / h)
    cx = w / w.sum(axis=1, keepdims=True)
    losses.append(-np.log(cx.max(axis=0).mean()))
  return np.mean(losses)


@pytest.mark.parametrize("bandwidth", [0.1, 0.5])
def test_contextual_loss_matches_equations(bandwidth):
  x, y = PRED["relu2_1"] + 0.5, TARGET["relu2_1"]
  expected = _contextual(x.astype(np.float64), y.astype(np.float64), h=bandwidth)
  np.testing.assert_allclose(perceptual.contextual_loss(x, y, bandwidth=bandwidth), expected, rtol=1e-4)
  # Identical feature sets are the most similar: CX = 1 up to the softmax's spread, smaller loss.
  assert float(perceptual.contextual_loss(y, y)) < float(perceptual.contextual_loss(x, y))
  # The loss ignores where features are: a spatial permutation of the prediction changes nothing.
  perm = x[:, ::-1, ::-1]
  np.testing.assert_allclose(perceptual.contextual_loss(perm, y), perceptual.contextual_loss(x, y), rtol=1e-5)


def _cocosnet_contextual(x, y, h=0.1, eps=1e-3):
  """CoCosNet's ContextualLoss_forward with PONO (models/networks/ContextualLoss.py), in NumPy:
  both sets minus the target's channel mean at each position, max over target positions."""
  losses = []
  for xb, yb in zip(x.reshape(len(x), -1, x.shape[-1]), y.reshape(len(y), -1, y.shape[-1])):
    mu = yb.mean(axis=1, keepdims=True)
    xn = (xb - mu) / np.linalg.norm(xb - mu, axis=1, keepdims=True)
    yn = (yb - mu) / np.linalg.norm(yb - mu, axis=1, keepdims=True)
    d = 1 - xn @ yn.T
    d_rel = d / (d.min(axis=1, keepdims=True) + eps)
    w = np.exp((1 - d_rel) / h)
    cx = w / w.sum(axis=1, keepdims=True)
    losses.append(-np.log(cx.max(axis=1).mean()))
  return np.mean(losses)


def test_cocosnet_contextual_loss_matches_its_formula():
  x, y = PRED["relu2_1"] + 0.5, TARGET["relu2_1"]
  expected = _cocosnet_contextual(x.astype(np.float64), y.astype(np.float64))
  got = perceptual.contextual_loss(x, y, epsilon=1e-3, variant="cocosnet")
  np.testing.assert_allclose(got, expected, rtol=1e-4)
  assert abs(float(got) - float(perceptual.contextual_loss(x, y, epsilon=1e-3))) > 1e-3
  with pytest.raises(ValueError, match="variant"):
    perceptual.contextual_loss(x, y, variant="cx2")


def test_bad_layers_weights_and_kinds():
  with pytest.raises(ValueError, match="'relu9_9' not among the features; available: relu1_1, relu2_1"):
    perceptual.perceptual_loss(PRED, TARGET, ("relu9_9",))
  with pytest.raises(ValueError, match="1 weights for 2 layers"):
    perceptual.style_loss(PRED, TARGET, LAYERS, (1.0,))
  with pytest.raises(ValueError, match="allowed: l1, mse"):
    perceptual.perceptual_loss(PRED, TARGET, LAYERS, kind="l2")
  with pytest.raises(ValueError, match="contextual_loss"):
    perceptual.contextual_loss(PRED["relu1_1"], TARGET["relu2_1"])
