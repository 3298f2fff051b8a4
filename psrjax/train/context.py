"""Everything a run needs before it touches the workdir, validated up front.

`build_context` resolves the system, builds the mesh (with `mesh.data=-1`, a data axis that
divides `train.batch_size`; see `partitioning.make_mesh`), checks the batch sizes, reads the first
train and eval batches and checks them against the system's declared example shapes, derives
the abstract train state and builds the declared evaluations (`config.evals`, with the `system`
entry `psrjax.evals` adds when absent). Any bad input fails here, before anything is written.

`model.remat="auto"` is resolved here: "none" on the CPU; on GPUs and TPUs the lightest mode whose
planned per-device memory fits the device (`plan.resolve_remat`: the context is built with
"none", the residuals of each mode are traced from it until one fits, and it is rebuilt with
that mode when it is not "none"), stated in one line by process 0. The context's config, and so
config.json, carries the resolved mode, also recorded as `runtime["remat"]`.

A config equal to one built before in the same process (its JSON; the last `SYSTEMS_KEPT`)
gets the same system object, and with it the same initialisation function, abstract state
and jitted train steps (`TrainContext.jit_step`; evaluations and samples are jitted once per
system too, `evals.common.cached_jit`): a resumed run, a rerun of a notebook cell, a second
`loop.train` of the config or its context on other devices reuses those traces (seconds to tens
of seconds for the paper systems) instead of tracing them again.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
from typing import Any, Iterable

import grain
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding

from psrjax import evals as evals_lib
from psrjax import paths
from psrjax.systems import base
from psrjax.systems import registry
from psrjax.train import data as data_lib
from psrjax.train import evaluator as evaluator_lib
from psrjax.train import options as options_lib
from psrjax.train import partitioning
from psrjax.train import plan as plan_lib
from psrjax.train import platform as platform_lib
from psrjax.train import state as state_lib
from psrjax.train import step as step_lib


@dataclasses.dataclass
class TrainContext:
  """The validated pieces of a run (no device state yet)."""
  config: Any
  workdir: str | None  # None: nothing is written (benchmarks)
  system: base.System
  mesh: Mesh
  stages: tuple[base.Stage, ...]
  optimizers: dict[str, Any]
  total_steps: int
  batched: grain.MapDataset  # this process's batched train split
  first_batch: dict[str, Any]  # local numpy batch 0 (shapes reference)
  batch_sharding: NamedSharding
  base_key: jax.Array
  init_fn: Any
  abstract_state: Any
  state_shardings: Any
  eval_data: evaluator_lib.EvalSplit  # config.eval's split: spec check, the samples' example
  evals: dict[str, evals_lib.DeclaredEval]  # the built config.evals entries, by name
  constants: dict[str, Any]  # System.constants() on the devices, replicated
  options: options_lib.ScaleOptions  # sharding, compute dtype, accumulation, EMA
  runtime: dict[str, Any]  # platform.describe and the remat mode: config.json's `runtime`
  # The jitted steps of this context's system, shared by every context of the same system
  # (`_Built`); keyed by `_step_key`.
  steps: dict[Any, Any] = dataclasses.field(default_factory=dict)

  def stage_at(self, step: int) -> base.Stage:
    """The stage that trains step `step` (0-based count of completed steps)."""
    end = 0
    for stage in self.stages:
      end += stage.steps
      if step < end:
        return stage
    return self.stages[-1]

  def restore_target(self) -> Any:
    return state_lib.with_shardings(self.abstract_state, self.state_shardings)

  def with_constants(self, params: dict[str, Any]) -> dict[str, Any]:
    """`params` plus the system's frozen constants: what the system's functions receive."""
    return {**params, **self.constants}

  def eval_params(self, state) -> dict[str, Any]:
    """What evaluation and samples use: EMA groups (when kept) over the parameters, constants."""
    return self.with_constants(state_lib.eval_params(state))

  def jit_step(self, stage: base.Stage):
    """The jitted train step of `stage` (see step.jit_train_step); the same function for an
    equal stage, mesh, options and shardings of this system (module docstring)."""
    key = _step_key(self, stage)
    if key not in self.steps:
      self.steps[key] = step_lib.jit_train_step(
          self.system, self.optimizers, stage, state_shardings=self.state_shardings,
          batch_shardings=self.batch_sharding, mesh=self.mesh, options=self.options,
          stages=self.stages)
    return self.steps[key]

  def global_batch(self, local) -> dict[str, jax.Array]:
    return partitioning.global_batch(local, self.batch_sharding, self.config.train.batch_size)


def _step_key(ctx: TrainContext, stage: base.Stage) -> tuple:
  """What a jitted step depends on beyond its system: the stage, the schedule's stage names,
  the mesh, the scale options and the shardings."""
  leaves, treedef = jax.tree.flatten(ctx.state_shardings)
  return (stage.name, tuple(s.name for s in ctx.stages), ctx.mesh, ctx.options, treedef,
          tuple(leaves), ctx.batch_sharding)


# Systems built in this process, by their config's JSON, most recently used last.
SYSTEMS_KEPT = 4


@dataclasses.dataclass
class _Built:
  """A system and what its contexts share: jitted steps (`TrainContext.steps`), initialisation
  functions by EMA groups, abstract states by (EMA groups, batch shapes)."""
  system: base.System
  steps: dict[Any, Any] = dataclasses.field(default_factory=dict)
  init_fns: dict[Any, Any] = dataclasses.field(default_factory=dict)
  abstract: dict[Any, Any] = dataclasses.field(default_factory=dict)


_SYSTEMS: collections.OrderedDict[str, _Built] = collections.OrderedDict()


def _system(config) -> _Built:
  """The system of `config` with what its contexts share: the ones built before for an equal
  config, else a new system built from a copy of it (a later change to `config` does not reach
  it)."""
  try:
    key = config.to_json(sort_keys=True)
  except (TypeError, ValueError):   # a value JSON cannot hold: built every time
    return _Built(registry.get_system(config))
  if key in _SYSTEMS:
    _SYSTEMS.move_to_end(key)
    return _SYSTEMS[key]
  built = _SYSTEMS[key] = _Built(registry.get_system(config.copy_and_resolve_references()))
  while len(_SYSTEMS) > SYSTEMS_KEPT:
    _SYSTEMS.popitem(last=False)
  return built


def _init_and_abstract(built: _Built, optimizers, ema_groups, base_key, spec):
  """(init function, abstract state) of the system for batches of `spec`'s shapes: the init
  function is one object per EMA groups (JAX reuses its trace when it is jitted), the abstract
  state is traced once per batch shape (shardings do not change it)."""
  ema_groups = tuple(ema_groups)
  if ema_groups not in built.init_fns:
    built.init_fns[ema_groups] = state_lib.make_init_fn(built.system, optimizers, ema_groups)
  init_fn = built.init_fns[ema_groups]
  shapes = tuple((k, v.shape, str(v.dtype)) for k, v in sorted(spec.items()))
  key = (ema_groups, shapes, base_key.shape, str(base_key.dtype))
  if key not in built.abstract:
    # The same function the initialisation compiles: one trace for both (make_init_fn), and an
    # unknown EMA group is a one-line error of the trace (state.with_ema).
    built.abstract[key] = state_lib.abstract_state(init_fn, base_key, spec)
  return init_fn, built.abstract[key]


def check_workdir(workdir: str) -> str:
  """The workdir, absolute when local (a `gs://` URL as given: `psrjax.paths`); it and its
  missing parents are created when training starts."""
  if not workdir:
    raise ValueError("a workdir is required (--workdir DIR)")
  workdir = paths.resolve(workdir)
  if paths.isfile(workdir):
    raise ValueError(f"workdir {workdir!r} exists and is not a directory")
  return workdir


def build_context(config, workdir: str | None, *, devices=None,
                  evals: Iterable[str] | None = None) -> TrainContext:
  """Validates the config/system/data and derives the abstract state (writes nothing).

  `workdir=None` for runs that write nothing (benchmarks). `evals`: the names of the
  `config.evals` entries to build (None: all of them, `system` included; (): none).
  `model.remat="auto"` is resolved for `devices` (module docstring).
  """
  workdir = None if workdir is None else check_workdir(workdir)
  options_lib.from_config(config)  # Config-only checks before the system is built.
  platform_lib.check(config.train.get("platform", "any"), devices)
  if options_lib.remat_mode(config) != options_lib.AUTO_REMAT:
    return _build(config, workdir, devices, evals)
  ctx = _build(with_remat(config, "none"), workdir, devices, evals)
  if not plan_lib.on_accelerator(list(ctx.mesh.devices.flat)):
    return ctx
  mode, line = plan_lib.resolve_remat(ctx)
  if jax.process_index() == 0:
    print(line, flush=True)
  return ctx if mode == "none" else _build(with_remat(config, mode), workdir, devices, evals)


def with_remat(config, mode: str):
  """A copy of `config` with `model.remat=mode`."""
  config = config.copy_and_resolve_references()
  config.model.remat = mode
  return config


def _build(config, workdir: str | None, devices, evals) -> TrainContext:
  """`build_context` of a config whose `model.remat` (if any) is a mode, not "auto"."""
  built = _system(config)
  system = built.system
  options = options_lib.from_config(config, system)
  mesh = partitioning.make_mesh(data=config.mesh.data, model=config.mesh.model, devices=devices,
                                batch_size=config.train.batch_size,
                                microbatches=options.grad_accum)
  local_batch = partitioning.check_batch_size(config.train.batch_size, mesh,
                                              microbatches=options.grad_accum)
  _log_mesh(mesh, config.train.batch_size)
  stages, optimizers = tuple(system.stages()), dict(system.optimizers())
  total = state_lib.check_schedule(system, stages, optimizers)
  batched = data_lib.train_dataset(system, config, local_batch=local_batch,
                                   shard=partitioning.data_shard(mesh))
  first = dict(batched[0])
  data_lib.check_example_spec(first, system.example_spec("train"), what="train")
  sharding = partitioning.batch_sharding(mesh)
  base_key = partitioning.replicated_key(config.seed, mesh)
  spec = partitioning.abstract_batch(first, sharding, config.train.batch_size)
  init_fn, abstract = _init_and_abstract(built, optimizers, options.ema_groups, base_key, spec)
  init_groups(config, abstract["params"])
  eval_data = evaluator_lib.eval_split(system, config, mesh)
  data_lib.check_example_spec(eval_data.first_batch(), system.example_spec(config.eval.split),
                              what=f"eval split {config.eval.split!r}")
  declared = evaluator_lib.build(config, system, mesh, workdir=workdir, only=evals,
                                 splits=(eval_data,))
  constants = _device_constants(system, abstract, mesh)
  return TrainContext(
      config=config, workdir=workdir, system=system, mesh=mesh, stages=stages,
      optimizers=optimizers, total_steps=total, batched=batched, first_batch=first,
      batch_sharding=sharding, base_key=base_key, init_fn=init_fn, abstract_state=abstract,
      state_shardings=state_lib.state_shardings(abstract, mesh, strategy=options.params_sharding,
                                                min_size=options.min_shard_size),
      eval_data=eval_data, evals=declared, constants=constants, options=options,
      runtime=_runtime(config, mesh, options), steps=built.steps)


def _runtime(config, mesh: Mesh, options: options_lib.ScaleOptions) -> dict[str, Any]:
  """`platform.describe` of the run, with its `model.remat` mode where the config has one."""
  runtime = platform_lib.describe(mesh, jnp.dtype(options.compute_dtype).name)
  remat = options_lib.remat_mode(config)
  return runtime if remat is None else {**runtime, "remat": remat}


def _log_mesh(mesh: Mesh, batch_size: int) -> None:
  """Process 0 logs how many devices hold distinct examples (a warning when some replicate)."""
  if jax.process_index() != 0:
    return
  replicas = mesh.shape[partitioning.REPLICA] > 1
  logging.log(logging.WARNING if replicas else logging.INFO, "%s",
              partitioning.describe(mesh, batch_size))


def init_groups(config, params) -> tuple[str, ...]:
  """The parameter groups `config.init_from` may load (`config.init_groups`, () = all)."""
  groups = tuple(config.get("init_groups", ()) or ())
  unknown = sorted(set(groups) - set(params))
  if unknown:
    raise ValueError(f"config.init_groups {unknown} are not parameter groups of the system "
                     f"(groups: {sorted(params)})")
  return groups or tuple(params)


def _device_constants(system, abstract_state, mesh) -> dict[str, Any]:
  """System.constants() replicated on the mesh; names must not shadow parameter groups."""
  constants = dict(system.constants())
  clash = sorted(set(constants) & set(abstract_state["params"]))
  if clash:
    raise ValueError(f"{type(system).__name__}.constants() groups {clash} clash with init() "
                     "parameter groups; rename them")
  return partitioning.put_replicated(constants, mesh)
