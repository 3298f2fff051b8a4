"""The train state, an explicit pytree built from shapes:

    {"params": {group: params}, "opt": {group: optimizer state}, "step": int32 scalar}

plus `"ema": {group: params}` when `train.ema.decay > 0` (the moving averages of
`train.ema.groups`, initialised to the parameters; `step.update_ema`). `jax.eval_shape` of the init function
gives the abstract state, shardings are derived from it (`partitioning.leaf_spec` for
parameters, optimizer state and EMA; the step replicated), and the real state is created on
the devices by `jax.jit(init, out_shardings=...)` -- never on the host.
"""
from __future__ import annotations

import os
import re
import zlib
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from psrjax.systems import base
from psrjax.train import draws
from psrjax.train import partitioning

State = dict[str, Any]


def named_key(key: jax.Array, name: str) -> jax.Array:
  """A key derived from `key` by name (stable across runs and processes)."""
  return jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def check_schedule(system, stages, optimizers: Mapping[str, Any]) -> int:
  """Validates the stages against the optimizers; returns the total number of steps."""
  names = [s.name for s in stages]
  if not stages or len(set(names)) != len(names):
    raise ValueError(f"{type(system).__name__}.stages() must return uniquely named stages, "
                     f"got {names}")
  for stage in stages:
    for phase in stage.phases:
      missing = [g for g in phase.trains if g not in optimizers]
      if missing:
        raise ValueError(f"stage {stage.name!r} phase {phase.name!r} trains {missing} but "
                         f"optimizers() only has {sorted(optimizers)}")
  total = sum(s.steps for s in stages)
  if total != system.config.train.steps:
    raise ValueError(f"{type(system).__name__}.stages() sum to {total} steps but "
                     f"config.train.steps is {system.config.train.steps}")
  return total


def from_params(params, optimizers, ema_groups: Sequence[str] = ()) -> State:
  """A step-0 state around `params`: fresh optimizer states and EMAs equal to the parameters."""
  missing = sorted(set(optimizers) - set(params))
  if missing:
    raise ValueError(f"optimizers() has groups {missing} that init() does not return "
                     f"(init groups: {sorted(params)})")
  state = {"params": params, "opt": {g: optimizers[g].init(params[g]) for g in sorted(optimizers)},
           "step": jnp.zeros((), jnp.int32)}
  return with_ema(state, ema_groups)


def with_ema(state: State, ema_groups: Sequence[str]) -> State:
  """`state` plus `"ema"` copies of the `ema_groups` parameters (unchanged if there are none)."""
  if not ema_groups:
    return state
  unknown = sorted(set(ema_groups) - set(state["params"]))
  if unknown:
    raise ValueError(f"train.ema.groups {unknown} are not parameter groups of the system "
                     f"(groups: {sorted(state['params'])})")
  return {**state, "ema": {g: state["params"][g] for g in ema_groups}}


def make_init_fn(system, optimizers,
                 ema_groups: Sequence[str] = ()) -> Callable[[jax.Array, Any], State]:
  """`init(rng, batch) -> state` (pure; meant for `eval_shape` and `jit`). Trace one of these
  for the abstract state and jit the same function object: JAX then reuses the trace (tracing a
  paper system's initialisation takes seconds)."""

  def init(rng, batch):
    params = base.init(system, named_key(rng, "init"), batch)
    return from_params(params, optimizers, ema_groups)

  return init


def state_shardings(abstract_state: State, mesh: Mesh, *, strategy: str = "replicated",
                    min_size: int = 1) -> Any:
  """Shardings of every leaf: `partitioning.leaf_spec` for all but the replicated step."""
  rule = lambda leaf: partitioning.leaf_sharding(leaf, mesh, strategy=strategy, min_size=min_size)
  out = {k: jax.tree.map(rule, v) for k, v in abstract_state.items() if k != "step"}
  out["step"] = partitioning.replicated(mesh)
  return out


def eval_params(state: State) -> dict[str, Any]:
  """The parameters evaluation and samples use: EMA groups (when kept) over the raw ones."""
  return {**state["params"], **state.get("ema", {})}


def with_shardings(abstract_state: State, shardings: Any) -> Any:
  """`ShapeDtypeStruct`s carrying the shardings (the restore target for checkpoints)."""
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                      abstract_state, shardings)


def abstract_state(init_fn, rng, batch_spec) -> State:
  """Shapes and dtypes of the state for a batch of `batch_spec` shapes (the trace the
  initialisation then compiles: `draws.trace`)."""
  return draws.trace(init_fn, rng, batch_spec).out_info


# XLA:CPU spends most of an initialisation's compile time optimising the threefry kernels that
# draw every parameter, code that runs once: at optimisation level 1 PSR-Net runlocal's init
# compiles in 5.0 s instead of 16.6 s, pix2pixHD's paper config (190.7M parameters) in 3.4 s
# instead of 8.4 s, and both run as fast as before (0.03 s and 2.3 s; level 0 would run the
# latter in 11 s). Measured on a 2-core AVX-512 CPU. A lower level asked for in `XLA_FLAGS`
# (the test suite's 0, for tiny models) is kept: CoCosNet video's tiny init compiled in 50 s
# at level 0 instead of 73 s at level 1 before its draws were merged (`jit_init`; merged, 13 s
# at level 0 on a 2-core AVX2 EPYC, its runlocal config's in 22 s instead of 44 s at level 1).
_CPU_INIT_LEVEL = 1
_LEVEL_FLAG = re.compile(r"--xla_backend_optimization_level=(\d+)")


def init_compiler_options() -> dict[str, int] | None:
  """XLA options for compiling a parameter initialisation: on CPU, optimisation level
  `_CPU_INIT_LEVEL`, or the lower one `XLA_FLAGS` sets."""
  if jax.default_backend() != "cpu":
    return None
  asked = _LEVEL_FLAG.findall(os.environ.get("XLA_FLAGS", ""))
  return {"xla_backend_optimization_level": min([_CPU_INIT_LEVEL] + [int(a) for a in asked])}


def jit_init(fn, **jit_kwargs):
  """`jax.jit` of an initialisation function, compiled with `init_compiler_options()`, its
  random draws merged into few hash calls (`draws.merge_draws`: the same values)."""
  return jax.jit(draws.merge_draws(fn), compiler_options=init_compiler_options(), **jit_kwargs)


def create_state(init_fn, rng, batch, shardings, mesh: Mesh) -> State:
  """Initialises the state directly on the devices with the given shardings."""
  rep = partitioning.replicated(mesh)
  batch_shardings = jax.tree.map(lambda x: x.sharding, batch)
  jitted = jit_init(init_fn, in_shardings=(rep, batch_shardings), out_shardings=shardings)
  return jitted(rng, batch)
