"""Spectral normalisation (Miyato et al. 2018): a layer's kernel W divided by its largest
singular value sigma(W), estimated by power iteration, as PyTorch's `spectral_norm`.

The power-iteration vector u `[out]` is a parameter of the layer (`SN_PARAM`, beside its
"kernel"), so a spectrally normalised network is an ordinary parameter tree that the generic
trainer shards, checkpoints and casts like any other:

- forward (`normalize_kernel`): with W the kernel as a matrix `[out, in * kh * kw]` (PyTorch's
  `weight_mat`), one power-iteration step from the stored u, v = W^T u / |W^T u|,
  u' = W v / |W v|, sigma = u'^T W v, all in float32 with u and v under stop_gradient (the
  gradient reaches W through sigma, as in PyTorch), and the layer convolves with W / sigma;
- the state update (`with_power_iteration`): u is never trained (its gradient is exactly zero);
  the optimizer of a group holding spectrally normalised layers is wrapped so that each step
  replaces every u by the u' of that step, computed from the same kernel and u the forward used.
  PyTorch writes u' back during the forward; here the optimizer writes it, once per step.

Departures from PyTorch: a network read by several phases of a step (a discriminator) advances
its u once per step, not once per forward; evaluation also takes the one power-iteration step
from the stored u (PyTorch's eval mode reuses the stored u and v), which with a converged u
changes sigma by float rounding.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from psrjax.nn.policy import float32_statistics

SN_PARAM = "sn_u"   # the power-iteration vector's parameter name, beside "kernel"
_EPS = 1e-12        # PyTorch's spectral_norm eps


def _normalize(v: jax.Array) -> jax.Array:
  return v / jnp.maximum(jnp.linalg.norm(v), _EPS)   # torch.nn.functional.normalize


def init_u(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
  """u's initial value: a normalised standard normal vector (PyTorch's)."""
  return _normalize(jax.random.normal(key, shape, jnp.float32)).astype(dtype)


@float32_statistics
def power_iteration(kernel: jax.Array, u: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(u', v, sigma) of one power-iteration step from u for kernel `[..., out]` (float32, under
  stop_gradient but for sigma's dependence on the kernel)."""
  w = kernel.astype(jnp.float32).reshape(-1, kernel.shape[-1])   # [in * kh * kw, out] = W^T
  # u and v from the kernel under stop_gradient: no derivative of the normalisations is traced.
  frozen = jax.lax.stop_gradient(w)
  u = jax.lax.stop_gradient(u.astype(jnp.float32))
  v = _normalize(frozen @ u)
  u_new = _normalize(frozen.T @ v)
  return u_new, v, u_new @ (w.T @ v)


def normalize_kernel(kernel: jax.Array, u: jax.Array) -> jax.Array:
  """kernel / sigma(kernel) (module docstring), in the kernel's dtype."""
  _, _, sigma = power_iteration(kernel, u)
  return (kernel.astype(jnp.float32) / sigma).astype(kernel.dtype)


def _advance(tree: Any, updates: Any) -> Any:
  """`updates` with every SN_PARAM entry replaced by (u' - u) of the kernel beside it."""
  if not isinstance(tree, dict):
    return updates
  out = {k: _advance(tree[k], updates[k]) for k in updates}
  if SN_PARAM in tree and "kernel" in tree:
    u = tree[SN_PARAM]
    u_new = power_iteration(tree["kernel"], u)[0]
    out[SN_PARAM] = (u_new - u.astype(jnp.float32)).astype(updates[SN_PARAM].dtype)
  return out


def with_power_iteration(inner: optax.GradientTransformation) -> optax.GradientTransformation:
  """`inner` for a parameter group with spectrally normalised layers: every other parameter is
  updated by `inner`, every u by its power-iteration step (module docstring)."""

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("with_power_iteration needs the parameters (optax's update(grads, state, "
                       "params))")
    updates, state = inner.update(updates, state, params)
    return _advance(_plain(params), _plain(updates)), state

  return optax.GradientTransformation(inner.init, update)


def _plain(tree: Any) -> Any:
  """Nested mappings (Flax FrozenDicts included) as dicts."""
  if hasattr(tree, "items"):
    return {k: _plain(v) for k, v in tree.items()}
  return tree
