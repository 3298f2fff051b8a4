"""Foreground-mask agreement: whether a synthesized person stands where the target person does."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def mask_iou(pred, target, *, threshold: float = 0.5) -> jax.Array:
  """Intersection over union (Jaccard index) of two masks, one value per mask.

  pred, target: masks [..., H, W] (or [..., H, W, 1]) with values in [0, 1], each binarised as
  `value > threshold` (a soft predicted mask such as a generator's M_fg, or a {0, 1} mask).
  Returns shape [...]: |pred ∩ target| / |pred ∪ target|, 1 where both masks are empty
  (scikit-learn's `jaccard_score(..., zero_division=1)`).
  """
  pred, target = _squeeze_channel(jnp.asarray(pred)), _squeeze_channel(jnp.asarray(target))
  if pred.shape != target.shape or pred.ndim < 2:
    raise ValueError(f"mask_iou needs masks of one shape [..., H, W]; got {pred.shape} and "
                     f"{target.shape}")
  p, t = pred > threshold, target > threshold
  inter = jnp.sum(p & t, axis=(-2, -1)).astype(jnp.float32)
  union = jnp.sum(p | t, axis=(-2, -1)).astype(jnp.float32)
  return jnp.where(union > 0, inter / jnp.maximum(union, 1.0), 1.0)


def _squeeze_channel(mask: jax.Array) -> jax.Array:
  return mask[..., 0] if mask.ndim >= 3 and mask.shape[-1] == 1 else mask
