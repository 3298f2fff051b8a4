"""Adversarial losses against their formulas, the sign convention, multi-scale sums, feature matching."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrjax.losses import adversarial

RNG = np.random.RandomState(0)
REAL = RNG.normal(size=(2, 4, 4, 1)).astype(np.float32)
FAKE = RNG.normal(size=(2, 4, 4, 1)).astype(np.float32)


def _softplus(x):
  return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


FORMULAS = {
    "bce": (lambda r, f: _softplus(-r).mean() + _softplus(f).mean(), lambda f: _softplus(-f).mean()),
    "lsgan": (lambda r, f: ((r - 1) ** 2).mean() + (f ** 2).mean(), lambda f: ((f - 1) ** 2).mean()),
    "hinge": (lambda r, f: np.maximum(1 - r, 0).mean() + np.maximum(1 + f, 0).mean(), lambda f: -f.mean()),
}


@pytest.mark.parametrize("kind", adversarial.KINDS)
def test_values_match_formulas(kind):
  d_ref, g_ref = FORMULAS[kind]
  np.testing.assert_allclose(adversarial.d_loss(REAL, FAKE, kind), d_ref(REAL, FAKE), rtol=1e-6)
  np.testing.assert_allclose(adversarial.g_loss(FAKE, kind), g_ref(FAKE), rtol=1e-6)


@pytest.mark.parametrize("kind", adversarial.KINDS)
def test_sign_convention_higher_logits_mean_real(kind):
  # Between the LSGAN targets (0 = fake, 1 = real) every kind agrees: the discriminator loss
  # falls as real logits rise and fake logits fall; the generator's falls as fake logits rise.
  real, fake = RNG.uniform(0.05, 0.95, (2, 2, 3, 4, 1)).astype(np.float32)
  d_real, d_fake = jax.grad(adversarial.d_loss, argnums=(0, 1))(real, fake, kind)
  assert np.all(np.asarray(d_real) < 0) and np.all(np.asarray(d_fake) > 0)
  assert np.all(np.asarray(jax.grad(adversarial.g_loss)(fake, kind)) < 0)
  perfect = {"bce": (8.0, -8.0), "lsgan": (1.0, 0.0), "hinge": (1.0, -1.0)}[kind]
  assert float(adversarial.d_loss(perfect[0], perfect[1], kind)) < float(adversarial.d_loss(real, fake, kind))


@pytest.mark.parametrize("kind", adversarial.KINDS)
def test_multi_scale_is_sum_over_scales(kind):
  small = REAL[:, :2, :2]
  expected = adversarial.d_loss(REAL, FAKE, kind) + adversarial.d_loss(small, FAKE[:, :2, :2], kind)
  np.testing.assert_allclose(adversarial.d_loss([REAL, small], [FAKE, FAKE[:, :2, :2]], kind), expected, rtol=1e-6)
  np.testing.assert_allclose(adversarial.g_loss((FAKE, small), kind),
                             adversarial.g_loss(FAKE, kind) + adversarial.g_loss(small, kind), rtol=1e-6)


def test_bad_arguments():
  with pytest.raises(ValueError, match="allowed: bce, lsgan, hinge"):
    adversarial.d_loss(REAL, FAKE, "wgan")
  with pytest.raises(ValueError, match="2 real scales but 1 fake"):
    adversarial.d_loss([REAL, REAL], [FAKE], "bce")


def test_feature_matching_pix2pixhd_weighting_and_stop_gradient():
  real = [[RNG.normal(size=(2, 8, 8, 4)), RNG.normal(size=(2, 4, 4, 8))], [RNG.normal(size=(2, 4, 4, 4))]]
  fake = [[RNG.normal(size=(2, 8, 8, 4)), RNG.normal(size=(2, 4, 4, 8))], [RNG.normal(size=(2, 4, 4, 4))]]
  expected = 0.5 * (4 / 2 * (np.abs(fake[0][0] - real[0][0]).mean() + np.abs(fake[0][1] - real[0][1]).mean())
                    + 4 / 1 * np.abs(fake[1][0] - real[1][0]).mean())
  np.testing.assert_allclose(adversarial.feature_matching(real, fake), expected, rtol=1e-6)
  single = adversarial.feature_matching(real[0], fake[0])
  np.testing.assert_allclose(single, 2 * (np.abs(fake[0][0] - real[0][0]).mean()
                                          + np.abs(fake[0][1] - real[0][1]).mean()), rtol=1e-6)
  g_real = jax.grad(lambda r: adversarial.feature_matching(r, fake))(jax.tree.map(jnp.asarray, real))
  assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(g_real))
  with pytest.raises(ValueError, match="layout"):
    adversarial.feature_matching(real, [fake[0]])
