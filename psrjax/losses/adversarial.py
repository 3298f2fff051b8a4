"""Adversarial losses (non-saturating BCE, LSGAN, hinge) and pix2pixHD feature matching.

Sign convention (all kinds): discriminator outputs are *realness* logits (higher = more real);
`d_loss` is minimised by the discriminator and `g_loss` by the generator, both >= their minimum
when the discriminator is fooled / perfect. Each term is a mean over all logit elements; a list
of logits (multi-scale discriminators, pix2pixHD) gives the sum over scales, as in pix2pixHD's
GANLoss. The discriminator loss is the sum of its real and fake terms: pix2pixHD and most
papers halve it, which a system does with its loss weight.

- "bce" (Goodfellow et al. 2014, non-saturating generator):
    d = softplus(-real) + softplus(fake),         g = softplus(-fake)
- "lsgan" (Mao et al. 2017, a=0, b=c=1):
    d = (real - 1)^2 + fake^2,                    g = (fake - 1)^2
- "hinge" (Lim & Ye 2017; Miyato et al. 2018):
    d = relu(1 - real) + relu(1 + fake),          g = -fake
"""
from __future__ import annotations

from typing import Sequence, Union

import jax
import jax.numpy as jnp

Logits = Union[jax.Array, Sequence[jax.Array]]
KINDS = ("bce", "lsgan", "hinge")


def _scales(logits: Logits) -> list[jax.Array]:
  if isinstance(logits, (list, tuple)):
    if not logits:
      raise ValueError("adversarial loss: got an empty list of logits; pass at least one scale")
    return [jnp.asarray(x, jnp.float32) for x in logits]
  return [jnp.asarray(logits, jnp.float32)]


def _check_kind(kind: str) -> None:
  if kind not in KINDS:
    raise ValueError(f"unknown adversarial loss kind {kind!r}; allowed: {', '.join(KINDS)}")


def _real_term(x: jax.Array, kind: str) -> jax.Array:
  if kind == "bce":
    return jnp.mean(jax.nn.softplus(-x))
  if kind == "lsgan":
    return jnp.mean(jnp.square(x - 1.0))
  return jnp.mean(jax.nn.relu(1.0 - x))


def _fake_term(x: jax.Array, kind: str) -> jax.Array:
  if kind == "bce":
    return jnp.mean(jax.nn.softplus(x))
  if kind == "lsgan":
    return jnp.mean(jnp.square(x))
  return jnp.mean(jax.nn.relu(1.0 + x))


def d_loss(real_logits: Logits, fake_logits: Logits, kind: str = "bce") -> jax.Array:
  """Discriminator loss (scalar): real and fake terms summed, summed over scales."""
  _check_kind(kind)
  real, fake = _scales(real_logits), _scales(fake_logits)
  if len(real) != len(fake):
    raise ValueError(f"d_loss: {len(real)} real scales but {len(fake)} fake scales; they must match")
  return sum(_real_term(r, kind) + _fake_term(f, kind) for r, f in zip(real, fake))


def g_loss(fake_logits: Logits, kind: str = "bce") -> jax.Array:
  """Generator loss (scalar) on the discriminator's logits for generated samples."""
  _check_kind(kind)
  fake = _scales(fake_logits)
  if kind == "hinge":
    return sum(-jnp.mean(f) for f in fake)
  return sum(_real_term(f, kind) for f in fake)   # the generator wants fakes judged real


def _nested(feats) -> list[list[jax.Array]]:
  if not isinstance(feats, (list, tuple)) or not feats:
    raise ValueError("feature_matching: expected a non-empty list of features (or of lists, one per scale)")
  if isinstance(feats[0], (list, tuple)):
    return [list(scale) for scale in feats]
  return [list(feats)]


def feature_matching(real_feats, fake_feats) -> jax.Array:
  """pix2pixHD feature matching (Wang et al. 2018, Eq. 4) without its lambda_FM.

  real_feats / fake_feats: the discriminator's intermediate features, a list per scale of lists
  per layer (or one list for a single scale), the final logits excluded as in pix2pixHD.
  Returns (1 / num_scales) sum_scales (4 / num_layers) sum_layers mean|fake - sg(real)|, the
  weighting of pix2pixHD's implementation (`D_weights * feat_weights`); real features are
  under stop_gradient.
  """
  real, fake = _nested(real_feats), _nested(fake_feats)
  if [len(s) for s in real] != [len(s) for s in fake]:
    raise ValueError(f"feature_matching: real features have layout {[len(s) for s in real]}, "
                     f"fake features {[len(s) for s in fake]}; they must match")
  total = 0.0
  for real_scale, fake_scale in zip(real, fake):
    layer_weight = 4.0 / len(real_scale)
    for r, f in zip(real_scale, fake_scale):
      if r.shape != f.shape:
        raise ValueError(f"feature_matching: real feature shape {r.shape} != fake feature shape {f.shape}")
      diff = f.astype(jnp.float32) - jax.lax.stop_gradient(r).astype(jnp.float32)
      total = total + layer_weight * jnp.mean(jnp.abs(diff))   # float32, whatever the features
  return total / len(real)
