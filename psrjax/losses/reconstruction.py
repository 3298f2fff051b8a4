"""Pixel reconstruction losses: Huber (PSR-Net's L_r), L1 and MSE, optionally masked.

Each is the mean over all elements; with `mask` (broadcastable to the inputs, e.g. `[..., 1]`
for RGB) it is the mean over the masked elements only: sum(mask * err) / sum(mask broadcast to
the inputs' shape), and 0 when the mask is empty.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _reduce(err: jax.Array, mask, name: str) -> jax.Array:
  if mask is None:
    return jnp.mean(err)
  mask = jnp.asarray(mask, err.dtype)
  try:
    mask = jnp.broadcast_to(mask, err.shape)
  except ValueError:
    raise ValueError(f"{name}: mask shape {mask.shape} does not broadcast to inputs {err.shape}") from None
  return jnp.sum(err * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def _diff(pred, target, name: str) -> jax.Array:
  pred, target = jnp.asarray(pred), jnp.asarray(target)
  if pred.shape != target.shape:
    raise ValueError(f"{name}: prediction shape {pred.shape} != target shape {target.shape}")
  return (pred - target).astype(jnp.float32)


def huber(pred, target, *, delta: float = 1.0, mask=None) -> jax.Array:
  """Huber (1964): 0.5 d^2 if |d| <= delta else delta (|d| - 0.5 delta); mean (as torch HuberLoss)."""
  if delta <= 0:
    raise ValueError(f"huber: delta must be > 0, got {delta}")
  d = jnp.abs(_diff(pred, target, "huber"))
  quadratic = jnp.minimum(d, delta)
  err = 0.5 * jnp.square(quadratic) + delta * (d - quadratic)
  return _reduce(err, mask, "huber")


def l1(pred, target, *, mask=None) -> jax.Array:
  """Mean absolute error."""
  return _reduce(jnp.abs(_diff(pred, target, "l1")), mask, "l1")


def mse(pred, target, *, mask=None) -> jax.Array:
  """Mean squared error."""
  return _reduce(jnp.square(_diff(pred, target, "mse")), mask, "mse")
