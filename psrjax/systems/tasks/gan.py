"""GAN components systems compose: the generator/discriminator stage in an update order, the
decayed learning rate, and the adversarial terms of a conditional GAN (pix2pixHD, Eqs. 2-4).

A discriminator is passed as a function `d(image) -> (logits, features)`: the per-scale logits
and the per-scale intermediate feature maps of a multi-scale discriminator, with its condition
(pose label, previous frames) already bound in.
"""
from __future__ import annotations

from typing import Callable

import jax
import optax

from psrjax import losses
from psrjax.systems import base

UPDATE_ORDERS = ("gd", "dg")   # `gan_stage`
# d(image) -> (per-scale logits, per-scale feature maps)
Discriminator = Callable[[jax.Array], tuple[list, list]]


def check_kind(kind: str) -> str:
  """`loss.gan`, checked against the adversarial losses psrjax has."""
  if kind not in losses.adversarial.KINDS:
    raise ValueError(f"loss.gan must be one of {', '.join(losses.adversarial.KINDS)}; got "
                     f"{kind!r}")
  return kind


def update_order(optim) -> str:
  """`optim.update_order`, checked; configs saved before the field existed trained "dg"."""
  order = optim.get("update_order", "dg")
  if order not in UPDATE_ORDERS:
    raise ValueError(f"optim.update_order must be one of {', '.join(UPDATE_ORDERS)}; got "
                     f"{order!r}")
  return order


def gan_stage(name: str, steps: int, order: str, g: base.Phase, d: base.Phase, **kw) -> base.Stage:
  """A stage of generator phase `g` (the forward's) and discriminator phase `d` in `order`.

  "gd", pix2pixHD's and Everybody Dance Now's train scripts: both networks step on the losses of
  one forward with the weights the step starts from (G's loss reads D before D's update), G
  first. The discriminator's passes over the real and the generated frames are then the same
  computation in both phases, which XLA computes once. "dg", pix2pix's `optimize_parameters`:
  D steps first and G's loss reads the updated D.
  """
  phases = (g, d) if order == "gd" else (d, g)
  return base.Stage(name, steps, phases, forward_phase=g.name, **kw)


def decayed_lr(lr: float, steps: int, decay_fraction: float) -> optax.Schedule:
  """pix2pixHD's schedule: `lr` for the first (1 - decay_fraction) of `steps` updates, then
  linearly to 0 at the last (`decay_fraction` = 0: constant)."""
  if not 0.0 <= decay_fraction <= 1.0:
    raise ValueError(f"optim.decay_fraction must lie in [0, 1]; got {decay_fraction}")
  decay = int(round(steps * decay_fraction))
  if decay == 0:
    return optax.constant_schedule(lr)
  return optax.join_schedules([optax.constant_schedule(lr), optax.linear_schedule(lr, 0.0, decay)],
                              [steps - decay])


def generator_terms(d: Discriminator, real: jax.Array, fake: jax.Array, *, kind: str,
                    fm: float = 0.0, mean_over_scales: bool = False,
                    gan_weight: float = 1.0) -> tuple[jax.Array, dict[str, jax.Array]]:
  """(G's adversarial loss x `gan_weight` + `fm` x D's feature matching (pix2pixHD Eq. 4, the
  authors' per-layer weighting), {"adv", "fm"}) for generated `fake` and the matching `real`.

  `mean_over_scales`: the adversarial term is the mean over D's scales (SPADE's and CoCosNet's
  GANLoss) instead of their sum (pix2pixHD's)."""
  fake_logits, fake_features = d(fake)
  adv = losses.g_loss(fake_logits, kind=kind)
  terms = {"adv": adv / len(fake_logits) if mean_over_scales else adv}
  total = terms["adv"] if gan_weight == 1.0 else gan_weight * terms["adv"]
  if fm > 0:
    terms["fm"] = losses.feature_matching(d(real)[1], fake_features)
    total = total + fm * terms["fm"]
  return total, terms


def discriminator_terms(d: Discriminator, real: jax.Array, fake: jax.Array, *, kind: str,
                        weight: float = 0.5,
                        mean_over_scales: bool = False) -> tuple[jax.Array, dict[str, jax.Array]]:
  """(`weight` x D's loss on real vs generated images, {"adv": the unweighted loss}); 0.5 is
  pix2pixHD's halving of D's objective."""
  real_logits, fake_logits = d(real)[0], d(fake)[0]
  adv = losses.d_loss(real_logits, fake_logits, kind=kind)
  if mean_over_scales:
    adv = adv / len(real_logits)
  return weight * adv, {"adv": adv}
