"""One jitted train step per `Stage`.

A step applies the stage's phases in order. Each phase differentiates `System.losses` only
with respect to the groups it trains (every other group enters under `stop_gradient`) and
updates them with their optimizers, so a later phase sees the earlier phases' updates (e.g.
the generator step uses the discriminator just updated). The step's key is
`fold_in(base_key, step)`, split by phase name. Before the phases, the batch's compact transfer
dtypes are converted back to the batch contract's (`data.decode_batch`: uint8 frames and masks
to float32, int16 index maps to int32), then `System.prepare` and `System.prepare_frozen` (with
the groups the stage never trains, already in the compute dtype) add derived inputs once.

Scale options (`options.ScaleOptions`): the batch's floating inputs and the parameters are cast
to the compute dtype at the system boundary (`precision`); with `grad_accum = N` each phase
runs its N microbatches in a `lax.scan` and applies the mean gradient once; groups with an
EMA are averaged after the last phase.

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

from psrjax.train import data as data_lib
from psrjax.train import options as options_lib
from psrjax.train import partitioning
from psrjax.train import precision
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


def _phase_loss_fn(system, stage, phase, frozen, options):
  """`f(trainable, batch, rng) -> (float32 loss, {"<phase>/<term>": float32})`.

  Parameters are cast to the compute dtype here, inside the differentiated function, so the
  gradients arrive in the parameters' own dtype (float32).
  """

  def loss_fn(trainable, batch, rng):
    params = precision.cast_floats({**frozen, **trainable}, options.compute_dtype)
    loss, terms = system.losses(params, batch, rng, phase=phase.name, stage=stage.name)
    scalars = _scalar_terms(phase.name, loss, terms)
    return scalars[f"{phase.name}/total"], scalars

  return loss_fn


def microbatches(batch, count: int, mesh=None):
  """`[B, ...]` leaves -> `[count, B / count, ...]`; microbatch i holds rows i, i+count, ...

  With the batch split along `data` in contiguous blocks, every device then holds an equal
  part of every microbatch (no data moves).
  """

  def split(x):
    x = x.reshape((x.shape[0] // count, count) + x.shape[1:]).swapaxes(0, 1)
    if mesh is not None:
      spec = partitioning.P(None, partitioning.DATA)
      x = jax.lax.with_sharding_constraint(x, partitioning.NamedSharding(mesh, spec))
    return x

  return jax.tree.map(split, batch)


def _phase_grads(loss_fn, trainable, batch, rng, options, mesh):
  """(loss terms, grads) of one phase; with `grad_accum > 1` the means over microbatches.

  Microbatch i uses `fold_in(rng, i)`. When the system's losses are means over the examples
  the result equals the whole batch's (up to summation order and random draws).
  """
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  count = options.grad_accum
  if count == 1:
    (_, terms), grads = grad_fn(trainable, batch, rng)
    return terms, grads
  micro = microbatches(batch, count, mesh)

  def body(carry, xs):
    index, mb = xs
    (_, terms), grads = grad_fn(trainable, mb, jax.random.fold_in(rng, index))
    return jax.tree.map(jnp.add, carry, (terms, grads)), None

  first = jax.tree.map(lambda x: x[0], micro)
  shapes = jax.eval_shape(lambda: grad_fn(trainable, first, rng))
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), (shapes[0][1], shapes[1]))
  total, _ = jax.lax.scan(body, zeros, (jnp.arange(count), micro))
  return jax.tree.map(lambda x: x / count, total)


def _apply_phase(system, optimizers, stage, phase, state, batch, rng, constants, options, mesh):
  """Differentiates one phase w.r.t. its groups and applies their optimizer updates."""
  params = state["params"]
  frozen = {g: jax.lax.stop_gradient(p) for g, p in {**params, **constants}.items()
            if g not in phase.trains}
  loss_fn = _phase_loss_fn(system, stage, phase, frozen, options)
  trainable = {g: params[g] for g in phase.trains}
  terms, grads = _phase_grads(loss_fn, trainable, batch, rng, options, mesh)
  new_params, new_opt = dict(params), dict(state["opt"])
  norms = {}
  for g in phase.trains:
    updates, new_opt[g] = optimizers[g].update(grads[g], state["opt"][g], params[g])
    new_params[g] = optax.apply_updates(params[g], updates)
    norms[g] = (optax.global_norm(grads[g]), optax.global_norm(updates))
  return {**state, "params": new_params, "opt": new_opt}, terms, norms


def _update_ema(state, decay: float, trained):
  """ema <- decay * ema + (1 - decay) * params, for every group with an EMA that `trained` holds.

  A group the stage does not train keeps its EMA: frozen after its own stage, a generator's
  average is the one over its training, not one that decays into its final raw weights.
  """
  ema = {g: (jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, avg, state["params"][g])
             if g in trained else avg)
         for g, avg in state["ema"].items()}
  return {**state, "ema": ema}


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


def _stage_frozen(stage, params, constants) -> dict[str, Any]:
  """The groups no phase of `stage` trains, and the constants, under stop_gradient."""
  trained = {g for phase in stage.phases for g in phase.trains}
  return {g: jax.lax.stop_gradient(p) for g, p in {**params, **constants}.items()
          if g not in trained}


def make_train_step(system, optimizers, stage, options=None, mesh=None):
  """`step(state, batch, base_key, constants) -> (state, metrics)` for one stage (pure).

  `constants`: the system's frozen `constants()` groups, read like parameters, never updated.
  `options`: `options.ScaleOptions` (None: float32, no accumulation, no EMA); `mesh` places
  the microbatches of gradient accumulation.
  """
  options = options or options_lib.ScaleOptions(
      params_sharding="replicated", min_shard_size=1, compute_dtype=jnp.float32, grad_accum=1,
      ema_decay=0.0, ema_groups=())

  def train_step(state, batch, base_key, constants):
    key = jax.random.fold_in(base_key, state["step"])
    batch = data_lib.decode_batch(batch)  # Compact transfer dtypes -> the batch contract's.
    batch = system.prepare(batch)  # Derived inputs, once per step (not once per phase).
    batch = precision.cast_batch(batch, options.compute_dtype, keep=options.float32_inputs)
    frozen = precision.cast_floats(_stage_frozen(stage, state["params"], constants),
                                   options.compute_dtype)
    batch = system.prepare_frozen(frozen, batch, stage=stage.name)
    metrics, all_norms = {}, []
    for phase in stage.phases:
      rng = state_lib.named_key(key, phase.name)
      state, terms, norms = _apply_phase(system, optimizers, stage, phase, state, batch, rng,
                                         constants, options, mesh)
      metrics.update(terms)
      all_norms.append((phase.name, norms))
    if options.ema:
      state = _update_ema(state, options.ema_decay, {g for ph in stage.phases for g in ph.trains})
    metrics.update(_norm_metrics(stage, all_norms))
    for g, p in state["params"].items():
      metrics[f"l2_params/{g}"] = optax.global_norm(p).astype(jnp.float32)
    state = {**state, "step": state["step"] + 1}
    return state, metrics

  return train_step


def jit_train_step(system, optimizers, stage, *, state_shardings, batch_shardings, mesh,
                   options=None):
  """The stage's step jitted with explicit shardings and the state donated."""
  rep = partitioning.replicated(mesh)
  return jax.jit(make_train_step(system, optimizers, stage, options, mesh),
                 in_shardings=(state_shardings, batch_shardings, rep, rep),
                 out_shardings=(state_shardings, rep),
                 donate_argnums=0)
