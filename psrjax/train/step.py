"""One jitted train step per `Stage`.

A step applies the stage's phases in order; each phase differentiates its `Phase.loss` only
with respect to the groups it trains (every other group enters under `stop_gradient`) and
updates them with their optimizers, so a later phase sees the earlier phases' updates (e.g.
the generator step uses the discriminator just updated). Before the phases, the batch's compact
transfer dtypes are converted back to the batch contract's (`data.decode_batch`: uint8 frames
and masks to float32, int16 index maps to int32) and `System.prepare` adds derived inputs once.

The stage's forward (`Stage.forward`, the generator) runs once per step: `jax.vjp` of it with
respect to the groups of the stage's generator phase (`Stage.generator_phase`), on the groups
the stage does not train and the constants. Every other phase reads its outputs under
`stop_gradient`; the generator phase differentiates its loss with respect to its groups and
the outputs, and the outputs' cotangent is pulled back through the saved VJP -- after the
earlier phases' updates, exactly as if the phase had run the forward itself. With
`grad_accum > 1` (or `forward_once=False`) each phase instead runs the forward inside its own
differentiated function, microbatch by microbatch, on the generator's parameters of the step's
start (so a phase after the generator phase reads the same outputs in both paths). The step's key is `fold_in(base_key, step)`,
split by phase name (and "forward" for the forward).

Groups the stage does not train read their EMA where one is kept, so a stage-wise system's later
stages train on the same earlier weights that evaluation and samples use.

Scale options (`options.ScaleOptions`): the batch's floating inputs and the parameters are cast
to the compute dtype at the system boundary (`precision`); with `grad_accum = N` each phase
runs its N microbatches in a `lax.scan` and applies the mean gradient once; groups with an
EMA are averaged after the last phase (`update_ema`: a debiased EMA over the group's own
training steps). Small replicated groups are updated as one vector each on the CPU
(`train.fused_update`, `psrjax.train.fused`).

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
from psrjax.train import fused
from psrjax.train import options as options_lib
from psrjax.train import partitioning
from psrjax.train import precision
from psrjax.train import state as state_lib

FORWARD_KEY = "forward"  # name of the forward's key (`state.named_key`)


def _scalar_terms(phase: str, loss, terms: Mapping[str, Any]) -> dict[str, jax.Array]:
  out = {}
  for name, value in terms.items():
    if jnp.shape(value) != ():
      raise ValueError(f"phase {phase!r} loss term {name!r} has shape {jnp.shape(value)}; "
                       "loss terms must be scalars")
    out[f"{phase}/{name}"] = jnp.asarray(value, jnp.float32)
  if jnp.shape(loss) != ():
    raise ValueError(f"phase {phase!r} loss has shape {jnp.shape(loss)}; expected a scalar")
  out[f"{phase}/total"] = jnp.asarray(loss, jnp.float32)
  return out


def _phase_loss(phase, frozen, options):
  """`f(trainable, batch, outputs, rng) -> (float32 loss, {"<phase>/<term>": float32})`.

  Parameters are cast to the compute dtype here, inside the differentiated function, so the
  gradients arrive in the parameters' own dtype (float32).
  """

  def loss_fn(trainable, batch, outputs, rng):
    params = precision.cast_floats({**frozen, **trainable}, options.compute_dtype)
    loss, terms = phase.loss(params, batch, outputs, rng)
    scalars = _scalar_terms(phase.name, loss, terms)
    return scalars[f"{phase.name}/total"], scalars

  return loss_fn


def _forward_fn(stage, frozen, options):
  """`f(generator groups, batch, rng) -> outputs`: the stage's forward on the groups it may
  read (the generator phase's, the stage's frozen groups, the constants)."""

  def forward(trainable, batch, rng):
    params = precision.cast_floats({**frozen, **trainable}, options.compute_dtype)
    return stage.forward(params, batch, rng)

  return forward


def _recomputing_loss(stage, phase, loss_fn, forward_fn, start_params):
  """`f(trainable, batch, (rng, forward rng))`: the phase's loss with the forward run inside it
  (the path without a saved forward), on the generator's parameters of the step's start: the
  generator phase differentiates through it, any other phase reads it under stop_gradient."""
  generator = stage.generator_phase()

  def fn(trainable, batch, rngs):
    rng, forward_rng = rngs
    outputs = None
    if generator is not None:
      groups = {**jax.lax.stop_gradient(start_params), **trainable}
      outputs = forward_fn({g: groups[g] for g in generator.trains}, batch, forward_rng)
      if phase is not generator:
        outputs = jax.lax.stop_gradient(outputs)
    return loss_fn(trainable, batch, outputs, rng)

  return fn


def _saved_forward(stage, params, batch, frozen, options, rng):
  """(outputs, pullback): the stage's forward run once, its VJP with respect to the generator
  phase's groups saved for that phase."""
  generator = stage.generator_phase()
  trainable = {g: params[g] for g in generator.trains}
  forward = _forward_fn(stage, frozen, options)
  return jax.vjp(lambda t: forward(t, batch, rng), trainable)


def _saved_grads(stage, phase, loss_fn, trainable, batch, rng, saved):
  """(terms, grads) of one phase on the saved forward's outputs; the generator phase adds the
  outputs' cotangent pulled back through the saved VJP to its direct gradient."""
  outputs, pullback = saved
  if phase is not stage.generator_phase():
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (_, terms), grads = grad_fn(trainable, batch, jax.lax.stop_gradient(outputs), rng)
    return terms, grads
  grad_fn = jax.value_and_grad(loss_fn, argnums=(0, 2), has_aux=True)
  (_, terms), (grads, cotangent) = grad_fn(trainable, batch, outputs, rng)
  (through,) = pullback(cotangent)
  return terms, jax.tree.map(jnp.add, grads, through)


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


def _phase_grads(loss_fn, trainable, batch, rngs, options, mesh):
  """(loss terms, grads) of one phase; with `grad_accum > 1` the means over microbatches.

  Microbatch i uses every key of `rngs` folded with i. When the system's losses are means over
  the examples the result equals the whole batch's (up to summation order and random draws).
  """
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  count = options.grad_accum
  if count == 1:
    (_, terms), grads = grad_fn(trainable, batch, rngs)
    return terms, grads
  micro = microbatches(batch, count, mesh)

  def body(carry, xs):
    index, mb = xs
    keys = jax.tree.map(lambda k: jax.random.fold_in(k, index), rngs)
    (_, terms), grads = grad_fn(trainable, mb, keys)
    return jax.tree.map(jnp.add, carry, (terms, grads)), None

  first = jax.tree.map(lambda x: x[0], micro)
  shapes = jax.eval_shape(lambda: grad_fn(trainable, first, rngs))
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), (shapes[0][1], shapes[1]))
  total, _ = jax.lax.scan(body, zeros, (jnp.arange(count), micro))
  return jax.tree.map(lambda x: x / count, total)


def _apply_phase(optimizers, stage, phase, state, batch, keys, frozen, saved, options, mesh,
                 start_params):
  """Differentiates one phase w.r.t. its groups and applies their optimizer updates.

  `frozen`: the stage's frozen groups and constants; `saved`: the forward's (outputs,
  pullback), or None to run the forward inside the phase on `start_params` (the parameters
  the step started from); `keys`: (phase key, forward key).
  """
  params = state["params"]
  phase_frozen = {**{g: jax.lax.stop_gradient(params[g]) for g in stage.trained_groups()
                     if g not in phase.trains}, **frozen}
  loss_fn = _phase_loss(phase, phase_frozen, options)
  trainable = {g: params[g] for g in phase.trains}
  if saved is None:
    fn = _recomputing_loss(stage, phase, loss_fn, _forward_fn(stage, frozen, options),
                           start_params)
    terms, grads = _phase_grads(fn, trainable, batch, keys, options, mesh)
  else:
    terms, grads = _saved_grads(stage, phase, loss_fn, trainable, batch, keys[0], saved)
  new_params, new_opt = dict(params), dict(state["opt"])
  norms = {}
  for g in phase.trains:
    with jax.named_scope(f"optimizer_{g}"):  # Named in profiles (benchmarks/profile_step.py).
      if options.fuses(params[g]):
        new_params[g], new_opt[g], norms[g] = fused.fused_update(
            optimizers[g], grads[g], state["opt"][g], params[g])
        continue
      updates, new_opt[g] = optimizers[g].update(grads[g], state["opt"][g], params[g])
      new_params[g] = optax.apply_updates(params[g], updates)
      norms[g] = (optax.global_norm(grads[g]), optax.global_norm(updates))
  return {**state, "params": new_params, "opt": new_opt}, terms, norms


def ema_schedule(stages, stage) -> tuple[int, dict[str, int]]:
  """(first step of `stage`, {group: EMA updates before it}) for the groups `stage` trains."""
  start, before = 0, {g: 0 for g in stage.trained_groups()}
  for s in stages:
    if s.name == stage.name:
      return start, before
    start += s.steps
    for g in set(s.trained_groups()) & set(before):
      before[g] += s.steps
  raise ValueError(f"stage {stage.name!r} is not in the schedule {[s.name for s in stages]}")


def update_ema(ema, params, decay: float, counts: Mapping[str, jax.Array]):
  """The debiased EMA of every group in `counts` after its `counts[g]`-th update (>= 1).

  ema_n = ema_{n-1} + (p_n - ema_{n-1}) (1 - decay) / (1 - decay^n): the average of the
  group's parameters after each of its n updates, weighted by decay^(n - i) and normalised
  (Adam's bias correction), so it starts at the first trained parameters and the random
  initial ones never weigh in. Groups not in `counts` keep their EMA.
  """
  out = dict(ema)
  for g, n in counts.items():
    rate = (1.0 - decay) / (1.0 - decay ** n.astype(jnp.float32))
    out[g] = jax.tree.map(lambda e, p: (1 - rate) * e + rate * p, ema[g], params[g])
  return out


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


def _stage_frozen(stage, state, constants) -> dict[str, Any]:
  """The groups no phase of `stage` trains (their EMA where one is kept) and the constants,
  under stop_gradient."""
  trained = set(stage.trained_groups())
  groups = {**state["params"], **state.get("ema", {}), **constants}
  return {g: jax.lax.stop_gradient(p) for g, p in groups.items() if g not in trained}


def make_train_step(system, optimizers, stage, options=None, mesh=None, *, stages=None,
                    forward_once: bool = True):
  """`step(state, batch, base_key, constants) -> (state, metrics)` for one stage (pure).

  `constants`: the system's frozen `constants()` groups, read like parameters, never updated.
  `options`: `options.ScaleOptions` (None: float32, no accumulation, no EMA); `mesh` places
  the microbatches of gradient accumulation; `stages`: the whole schedule (where the EMA's
  update count comes from; None: `stage` alone); `forward_once=False` runs the forward inside
  every phase (what `grad_accum > 1` does).
  """
  options = options or options_lib.ScaleOptions(
      params_sharding="replicated", min_shard_size=1, compute_dtype=jnp.float32, grad_accum=1,
      ema_decay=0.0, ema_groups=())
  save_forward = forward_once and stage.forward is not None and options.grad_accum == 1
  stage_start, ema_before = ema_schedule(stages or (stage,), stage)

  def train_step(state, batch, base_key, constants):
    key = jax.random.fold_in(base_key, state["step"])
    with jax.named_scope("decode"):  # Compact transfer dtypes -> the batch contract's.
      batch = data_lib.decode_batch(batch)
    with jax.named_scope("prepare"):  # Derived inputs, once per step (not once per phase).
      batch = system.prepare(batch)
    batch = precision.cast_batch(batch, options.compute_dtype, keep=options.float32_inputs)
    frozen = _stage_frozen(stage, state, constants)
    forward_key = state_lib.named_key(key, FORWARD_KEY)
    saved = (_saved_forward(stage, state["params"], batch, frozen, options, forward_key)
             if save_forward else None)
    metrics, all_norms, start_params = {}, [], state["params"]
    for phase in stage.phases:
      keys = (state_lib.named_key(key, phase.name), forward_key)
      state, terms, norms = _apply_phase(optimizers, stage, phase, state, batch, keys, frozen,
                                         saved, options, mesh, start_params)
      metrics.update(terms)
      all_norms.append((phase.name, norms))
    if options.ema:
      done = state["step"] - stage_start + 1
      counts = {g: done + n for g, n in ema_before.items() if g in state["ema"]}
      state = {**state, "ema": update_ema(state["ema"], state["params"], options.ema_decay,
                                          counts)}
    metrics.update(_norm_metrics(stage, all_norms))
    for g, p in state["params"].items():
      norm = fused.global_norm if options.fuses(p) else optax.global_norm
      metrics[f"l2_params/{g}"] = norm(p).astype(jnp.float32)
    state = {**state, "step": state["step"] + 1}
    return state, metrics

  return train_step


# XLA:CPU's copy insertion, without region analysis, copies every optimizer moment it updates in
# place (the donated state): the fused parameter update recomputes the new moment from the old
# one after another fusion has overwritten it, so the old one is copied first. For pix2pixHD's
# 182M-parameter generator that is 1.4 GB copied per step; with the analysis XLA orders the
# reads before the in-place writes and copies nothing (an Adam update of those parameters: 329
# -> 161 ms; pix2pixHD's paper-config step: -0.15 s; 2-core AVX-512 CPU). GPU and TPU compilers
# have their own copy insertion.
_CPU_STEP_OPTIONS = {"xla_cpu_copy_insertion_use_region_analysis": True}


def step_compiler_options() -> dict[str, bool] | None:
  """XLA options for compiling a train step (on CPU: `_CPU_STEP_OPTIONS`)."""
  return dict(_CPU_STEP_OPTIONS) if jax.default_backend() == "cpu" else None


def jit_train_step(system, optimizers, stage, *, state_shardings, batch_shardings, mesh,
                   options=None, stages=None, forward_once: bool = True):
  """The stage's step jitted with explicit shardings and the state donated."""
  rep = partitioning.replicated(mesh)
  return jax.jit(make_train_step(system, optimizers, stage, options, mesh, stages=stages,
                                 forward_once=forward_once),
                 in_shardings=(state_shardings, batch_shardings, rep, rep),
                 out_shardings=(state_shardings, rep),
                 donate_argnums=0, compiler_options=step_compiler_options())
