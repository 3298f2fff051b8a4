"""One jitted train step per `Stage`.

A step applies the stage's phases in order. Each phase differentiates `System.losses` only
with respect to the groups it trains (every other group enters under `stop_gradient`) and
updates them with their optimizers, so a later phase sees the earlier phases' updates (e.g.
the generator step uses the discriminator just updated). The step's key is
`fold_in(base_key, step)`, split by phase name.

Metrics (all float32 scalars): every loss term as `"<phase>/<term>"` and the phase total as
`"<phase>/total"`; per trained group `"l2_grads/<group>"` and `"l2_updates/<group>"` (suffixed
`"/<phase>"` when one stage trains a group in several phases); `"l2_params/<group>"` for every
group after the step.
"""
from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import optax

from psrjax.train import partitioning
from psrjax.train import state as state_lib


def _scalar_terms(phase: str, loss, terms: Mapping[str, Any]) -> dict[str, jax.Array]:
  out = {}
  for name, value in terms.items():
    if jnp.shape(value) != ():
      raise ValueError(f"losses(phase={phase!r}) term {name!r} has shape {jnp.shape(value)}; "
                       "loss terms must be scalars")
    out[f"{phase}/{name}"] = jnp.asarray(value, jnp.float32)
  if jnp.shape(loss) != ():
    raise ValueError(f"losses(phase={phase!r}) returned a loss of shape {jnp.shape(loss)}; "
                     "expected a scalar")
  out[f"{phase}/total"] = jnp.asarray(loss, jnp.float32)
  return out


def _apply_phase(system, optimizers, stage, phase, state, batch, rng, constants):
  """Differentiates one phase w.r.t. its groups and applies their optimizer updates."""
  params = state["params"]
  frozen = {g: jax.lax.stop_gradient(p) for g, p in {**params, **constants}.items()
            if g not in phase.trains}

  def loss_fn(trainable):
    return system.losses({**frozen, **trainable}, batch, rng, phase=phase.name, stage=stage.name)

  trainable = {g: params[g] for g in phase.trains}
  (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
  new_params, new_opt = dict(params), dict(state["opt"])
  norms = {}
  for g in phase.trains:
    updates, new_opt[g] = optimizers[g].update(grads[g], state["opt"][g], params[g])
    new_params[g] = optax.apply_updates(params[g], updates)
    norms[g] = (optax.global_norm(grads[g]), optax.global_norm(updates))
  new_state = {"params": new_params, "opt": new_opt, "step": state["step"]}
  return new_state, _scalar_terms(phase.name, loss, terms), norms


def _norm_metrics(stage, all_norms) -> dict[str, jax.Array]:
  counts: dict[str, int] = {}
  for phase in stage.phases:
    for g in phase.trains:
      counts[g] = counts.get(g, 0) + 1
  out = {}
  for phase_name, norms in all_norms:
    for g, (grad_norm, update_norm) in norms.items():
      suffix = f"/{phase_name}" if counts[g] > 1 else ""
      out[f"l2_grads/{g}{suffix}"] = grad_norm.astype(jnp.float32)
      out[f"l2_updates/{g}{suffix}"] = update_norm.astype(jnp.float32)
  return out


def make_train_step(system, optimizers, stage):
  """`step(state, batch, base_key, constants) -> (state, metrics)` for one stage (pure).

  `constants`: the system's frozen `constants()` groups, read like parameters, never updated.
  """

  def train_step(state, batch, base_key, constants):
    key = jax.random.fold_in(base_key, state["step"])
    metrics, all_norms = {}, []
    for phase in stage.phases:
      rng = state_lib.named_key(key, phase.name)
      state, terms, norms = _apply_phase(system, optimizers, stage, phase, state, batch, rng,
                                         constants)
      metrics.update(terms)
      all_norms.append((phase.name, norms))
    metrics.update(_norm_metrics(stage, all_norms))
    for g, p in state["params"].items():
      metrics[f"l2_params/{g}"] = optax.global_norm(p).astype(jnp.float32)
    state = {**state, "step": state["step"] + 1}
    return state, metrics

  return train_step


def jit_train_step(system, optimizers, stage, *, state_shardings, batch_shardings, mesh):
  """The stage's step jitted with explicit shardings and the state donated."""
  rep = partitioning.replicated(mesh)
  return jax.jit(make_train_step(system, optimizers, stage),
                 in_shardings=(state_shardings, batch_shardings, rep, rep),
                 out_shardings=(state_shardings, rep),
                 donate_argnums=0)
