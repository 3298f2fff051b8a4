"""FOMM's self-supervised training of a first-order keypoint motion model (Siarohin et al.,
NeurIPS 2019; the official modules/model.py and train.py), the component FOMM and INTERnet (whose
L_frame keeps FOMM's terms and weights) compose. `KeypointMotion` holds a model's three networks
(`psrjax.models.fomm.networks` or a model built on FOMM's, e.g. `psrjax.models.internet`) and
gives:

- the groups (`init`): "kp" the keypoint detector, "g" the generator, "d" one discriminator per
  scale of the image pyramid (`model.d_scales`, the official MultiScaleDiscriminator);
- the forward (`forward`): the driving frame (the last target frame) reconstructed from the
  source with its keypoints (with `loss.background_dropout` p > 0, a share p of the examples,
  drawn at random, reconstructed without the dense motion's background motion, so that the
  keypoints' motions must explain them; 0, the official training, keeps it), and the
  keypoints of a randomly thin-plate-spline-warped driving frame T(D) (`psrjax.geometry.
  motion`) for the equivariance losses;
- the generator's terms (`generator_terms`), in this order: the pyramid perceptual loss (VGG L1
  on relu1_1..relu5_1 of the anti-aliased images at `loss.scales`, x `loss.perceptual`), LSGAN's
  generator term x `loss.gan` with the discriminator's feature matching x
  `loss.feature_matching`, the equivariance losses (p(D) = T(p(T(D))) and J(D)^-1 J_T J(T(D)) =
  1, `equivariance`) x `loss.equivariance_value` / `loss.equivariance_jacobian`; the
  discriminator's LSGAN loss (`discriminator_loss`);
- the stage (`stage`): G then D on one forward, as the official train.py steps them, and the
  learning rate x 0.1 at each of `optim.milestones` (`schedule`).
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from psrjax.geometry import motion
from psrjax.losses import perceptual as perceptual_losses
from psrjax.models import fomm as fomm_models
from psrjax.models import pretrained
from psrjax.systems import base
from psrjax.systems.tasks import animation
from psrjax.systems.tasks import gan

VGG_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# extra(prediction's, target's full-scale VGG features) -> {term: (weight, value)}
VggTerms = Callable[[dict, dict], dict]


def check_loss(loss, resolution: int) -> None:
  """One-line errors for `loss` fields the perceptual pyramid cannot read."""
  if len(loss.perceptual_layers) != len(VGG_LAYERS):
    raise ValueError(f"loss.perceptual_layers needs one weight per layer of {VGG_LAYERS}; got "
                     f"{tuple(loss.perceptual_layers)}")
  smallest = resolution * min(loss.scales)
  if loss.perceptual > 0 and smallest < 16:
    raise ValueError(f"loss.scales {tuple(loss.scales)} at {resolution} px read a "
                     f"{smallest:g}-pixel image, too small for VGG's relu5_1 (>= 16 px); drop "
                     "the smallest scales")


def schedule(optim, steps: int) -> optax.Schedule:
  """`optim.lr`, x 0.1 at each fraction `optim.milestones` of `steps` (the official epochs 60
  and 90 of 100)."""
  return optax.piecewise_constant_schedule(
      optim.lr, {int(round(f * steps)): 0.1 for f in optim.milestones})


def driving_frame(batch):
  """The driving frame of a training batch in [0, 1]: the last target frame."""
  return animation.unit(batch["tgt_rgb"][:, -1])


def equivariance(tps, kp_driving, kp_warped):
  """FOMM's equivariance losses for driving keypoints p(D) and those of the warped frame T(D):
  mean |p(D) - T(p(T(D)))| and mean |1 - J(D)^-1 (J_T(p(T(D))) J(T(D)))| (the official
  GeneratorFullModel; the second is 0 without Jacobians)."""
  moved = motion.tps_warp_coordinates(tps, kp_warped["value"])
  value = jnp.mean(jnp.abs(kp_driving["value"] - moved))
  if "jacobian" not in kp_driving:
    return value, jnp.zeros((), jnp.float32)
  composed = motion.matmul2(motion.tps_jacobian(tps, kp_warped["value"]), kp_warped["jacobian"])
  product = motion.matmul2(motion.inverse2(kp_driving["jacobian"]), composed)
  return value, jnp.mean(jnp.abs(jnp.eye(2) - product))


def check_background_dropout(p) -> None:
  """One-line error unless 0 <= `loss.background_dropout` < 1."""
  if not 0.0 <= float(p) < 1.0:
    raise ValueError(f"loss.background_dropout is the share of training examples reconstructed "
                     f"without the background motion: it must be in [0, 1), got {p!r}")


def keep_background(rng, batch: int, dropout: float):
  """`[N]` bool, False for a random share `dropout` of the examples; None when `dropout` is 0.
  Drawn from a key folded off `rng`, so the thin-plate splines stay those of the official
  training."""
  if dropout == 0:
    return None
  return jax.random.bernoulli(jax.random.fold_in(rng, 0xB6), 1.0 - dropout, (batch,))


class KeypointMotion:
  """A keypoint detector, generator and discriminator trained by FOMM's objective (module
  docstring), bound to one config."""

  def __init__(self, config, networks):
    check_background_dropout(config.loss.background_dropout)
    self.config = config
    self.kp_detector, self.generator, self.discriminator = networks
    c = config.loss
    self.pyramid = {s: fomm_models.AntiAliasInterpolation2d(scale=s) for s in c.scales}
    self.d_scales = tuple(config.model.d_scales)
    for s in self.d_scales:
      self.pyramid.setdefault(s, fomm_models.AntiAliasInterpolation2d(scale=s))

  def stage(self, g_loss: base.LossFn) -> base.Stage:
    """The one stage: phase "g" (groups "kp" and "g", `g_loss`) then "d" on one forward."""
    g = base.Phase("g", ("kp", "g"), g_loss)
    d = base.Phase("d", ("d",), self.discriminator_loss)
    return gan.gan_stage("main", self.config.train.steps, "gd", g, d, forward=self.forward)

  def init(self, rng, batch):
    k_kp, k_g, k_d = jax.random.split(rng, 3)
    source, driving = animation.unit(batch["src_rgb"][:, 0]), driving_frame(batch)
    kp_params = self.kp_detector.init(k_kp, source)["params"]
    kp = self.kp_detector.apply({"params": kp_params}, source)
    return {"kp": kp_params,
            "g": self.generator.init(k_g, source, kp, kp)["params"],
            "d": {fomm_models.scale_name(s): self.discriminator.init(k, self.pyramid[s](
                driving))["params"] for s, k in zip(self.d_scales, jax.random.split(
                    k_d, len(self.d_scales)))}}

  def constants(self):
    """The VGG of the perceptual loss (none without it)."""
    c = self.config.loss
    return {"vgg": pretrained.load_variables(c.vgg_net, c.vgg_weights or None)} \
        if c.perceptual > 0 else {}

  # ----------------------------------------------------------------------------- forward
  def keypoints(self, params, frames):
    return self.kp_detector.apply({"params": params["kp"]}, frames)

  def animate(self, params, source, kp_source, kp_driving, keep_background=None):
    return self.generator.apply({"params": params["g"]}, source, kp_source, kp_driving,
                                keep_background)

  def forward(self, params, b, rng):
    """The driving frame reconstructed from the source with its keypoints; the keypoints of a
    randomly warped driving frame for the equivariance losses."""
    source, driving = animation.unit(b["src_rgb"][:, 0]), driving_frame(b)
    kp_source, kp_driving = self.keypoints(params, source), self.keypoints(params, driving)
    c = self.config.loss
    generated = self.animate(params, source, kp_source, kp_driving,
                             keep_background(rng, source.shape[0], c.background_dropout))
    out = {**generated, "kp_driving": kp_driving}
    if c.equivariance_value + c.equivariance_jacobian > 0:
      tps = motion.random_tps(rng, driving.shape[0], sigma_affine=c.sigma_affine,
                              sigma_tps=c.sigma_tps, points=c.points_tps)
      warped = motion.tps_warp_image(tps, driving)
      out.update(tps=tps, kp_warped=self.keypoints(params, warped))
    return out

  # ----------------------------------------------------------------------------- losses
  def discriminate(self, params, image):
    """(feature maps, prediction map) of each scale's discriminator (the official
    MultiScaleDiscriminator: one network per scale)."""
    return [self.discriminator.apply({"params": params["d"][fomm_models.scale_name(s)]},
                                     self.pyramid[s](image)) for s in self.d_scales]

  def discriminator_loss(self, params, b, outputs, rng):
    """LSGAN: (1 - D(real))^2 + D(fake)^2, at each scale."""
    del rng
    real = self.discriminate(params, driving_frame(b))
    fake = self.discriminate(params, outputs["prediction"])
    adv = sum(jnp.mean((1.0 - r[1].astype(jnp.float32)) ** 2 + f[1].astype(jnp.float32) ** 2)
              for r, f in zip(real, fake))
    return self.config.loss.gan * adv, {"adv": adv}

  def generator_terms(self, params, b, outputs, extra_vgg_terms: VggTerms | None = None):
    """(the weighted sum, {term: value}) of the generator's terms (module docstring);
    `extra_vgg_terms` adds terms on the full-size frame's VGG features (with 1.0 in
    `loss.scales`) after "perceptual"."""
    c = self.config.loss
    driving, prediction = driving_frame(b), outputs["prediction"]
    terms, total = {}, 0.0
    if c.perceptual > 0:
      perceptual, full = self.vgg_pyramid(params, prediction, driving)
      weighted = {"perceptual": (c.perceptual, perceptual)}
      if extra_vgg_terms is not None and full is not None:
        weighted.update(extra_vgg_terms(*full))
      for name, (weight, value) in weighted.items():
        terms[name] = value
        total = total + weight * value
    if c.gan > 0:
      adv, fm = self.adversarial(params, prediction, driving)
      terms.update(adv=adv, fm=fm)
      total = total + c.gan * adv + c.feature_matching * fm
    if "tps" in outputs:
      value, jac = equivariance(outputs["tps"], outputs["kp_driving"], outputs["kp_warped"])
      terms.update(equivariance_value=value, equivariance_jacobian=jac)
      total = total + c.equivariance_value * value + c.equivariance_jacobian * jac
    return total, terms

  def vgg_pyramid(self, params, prediction, target):
    """(Σ over the pyramid's scales and VGG layers of w_l mean |VGG_l(pred) - VGG_l(target)|
    (the official GeneratorFullModel, without `loss.perceptual`), (prediction, target) VGG
    features at full scale or None)."""
    vgg = self._vgg(params)
    total, full = 0.0, None
    for s in self.config.loss.scales:
      down = self.pyramid[s]
      # psrjax's VGG reads [-1, 1] images and applies ImageNet's normalisation as FOMM's does.
      pred_features = vgg(2.0 * down(prediction) - 1.0)
      target_features = vgg(jax.lax.stop_gradient(2.0 * down(target) - 1.0))
      if s == 1.0:
        full = (pred_features, target_features)
      total = total + perceptual_losses.perceptual_loss(
          pred_features, target_features, VGG_LAYERS,
          tuple(self.config.loss.perceptual_layers), kind="l1")
    return total, full

  def _vgg(self, params):
    module = pretrained.make_module(self.config.loss.vgg_net, final_endpoint=VGG_LAYERS[-1],
                                    conv_impl=self.config.model.conv_impl)
    return functools.partial(module.apply, params["vgg"])

  def adversarial(self, params, prediction, target):
    """LSGAN's generator term (1 - D(fake))^2 and the feature matching Σ_layers mean |D_l(real)
    - D_l(fake)| (the official weights: 10 per layer, `loss.feature_matching`)."""
    fake, real = self.discriminate(params, prediction), self.discriminate(params, target)
    adv = sum(jnp.mean((1.0 - f[1].astype(jnp.float32)) ** 2) for f in fake)
    fm = 0.0
    for (real_maps, _), (fake_maps, _) in zip(real, fake):
      for r, f in zip(real_maps, fake_maps):
        fm = fm + jnp.mean(jnp.abs(jax.lax.stop_gradient(r).astype(jnp.float32)
                                   - f.astype(jnp.float32)))
    return adv, fm
