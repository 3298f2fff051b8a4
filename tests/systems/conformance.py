"""The runs every system's shared checks read (`test_conformance.py`), each computed once per
test session and shared by every check (and by a system's own test file) that needs it.

A system `name` is checked with its config `configs/<name>.py:tiny`. Per system:

- `straight`: the whole schedule on all 8 devices through `loop.train` (a checkpoint after
  every step, the final evaluation and sample), the reference of the other runs;
- `lockstep`: the whole schedule on 1 device, each step run from the same state by the trainer's
  step (the generator forward once, `forward_once=True`) and by the step that runs the forward
  inside every phase, with both steps' FLOPs;
- the traced train steps of every stage under bfloat16, on the accelerator convolution path
  (`model.conv_impl="xla"`, lowered for TPU and CUDA by the checks) and on the CPU path.

Compiled programs are shared through JAX's persistent compilation cache (tests/conftest.py):
identical programs built by different runs in one process, or by other test processes, are
compiled once.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import jax

import train_harness
from psrjax import config_utils
from psrjax.systems import base
from psrjax.systems import registry
from psrjax.train import benchmark
from psrjax.train import context as context_lib
from psrjax.train import data as data_lib
from psrjax.train import loop
from psrjax.train import partitioning
from psrjax.train import state as state_lib
from psrjax.train import step as step_lib

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
SYSTEMS = tuple(registry.known_systems())


def config_spec(name: str, arg: str = "tiny") -> str:
  """`configs/<name>.py:<arg>`: the tiny variant, unless `arg` names options ("tiny,label2d")."""
  return os.path.join(CONFIGS, f"{name}.py") + f":{arg}"


def tiny_config(name: str, arg: str = "tiny", **overrides):
  """System `name`'s config (`config_spec`) with dotted-key `overrides`."""
  return train_harness.config_with(config_spec(name, arg), **overrides)


def with_paper_losses(config, name: str):
  """`config` with every `loss` weight that the tiny variant switches off (0) but the paper
  config uses set to the paper's value: the terms that bring pretrained networks (VGG, I3D)
  into the step, which a check of the whole step must cover."""
  paper = config_utils.load_config(os.path.join(CONFIGS, f"{name}.py"))
  config = config.copy_and_resolve_references()
  for key, value in paper.get("loss", {}).items():
    current = config.loss.get(key)
    if (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        and isinstance(current, (int, float)) and current == 0):
      config.loss[key] = value
  return config


@dataclasses.dataclass
class Lockstep:
  """The 1-device runs (module docstring)."""
  history: list[dict[str, float]]  # the trainer's step, every step ("step" from 1)
  per_phase: list[dict[str, float]]  # the forward-in-every-phase step from the same states
  # stage -> FLOPs of the (forward once, forward in every phase) steps (XLA + oneDNN counts).
  flops: dict[str, tuple[float, float]]


def _step_fn(ctx, stage, *, forward_once: bool):
  """The stage's step jitted with the run's shardings, without donation (so the same state
  feeds both variants)."""
  rep = partitioning.replicated(ctx.mesh)
  fn = step_lib.make_train_step(ctx.system, ctx.optimizers, stage, ctx.options, ctx.mesh,
                                stages=ctx.stages, forward_once=forward_once)
  return jax.jit(fn, in_shardings=(ctx.state_shardings, ctx.batch_sharding, rep, rep),
                 out_shardings=(ctx.state_shardings, rep))


def initial_state(config, ctx):
  """The state the straight run starts from, on `ctx`'s devices: made by the same initialisation
  program on all devices (compiled once for both runs, the persistent cache holding it) and
  moved over, so both runs start from the same bits."""
  every = context_lib.build_context(config, None, evals=())
  state = state_lib.create_state(every.init_fn, every.base_key,
                                 every.global_batch(every.first_batch), every.state_shardings,
                                 every.mesh)
  return jax.device_put(state, ctx.state_shardings)


@functools.cache
def initial_params(name: str):
  """The parameters every run of system `name`'s tiny config starts from (`initial_state`), on
  one device: tests of a system's functions read these instead of compiling an initialisation
  of their own."""
  config = tiny_config(name)
  ctx = context_lib.build_context(config, None, devices=jax.devices()[:1], evals=())
  return initial_state(config, ctx)["params"]


def run_lockstep(config) -> Lockstep:
  """Every step of the schedule on one device from the states the trainer's step reaches, the
  batches in the trainer's order (`data.train_iterator`)."""
  ctx = context_lib.build_context(config, None, devices=jax.devices()[:1])
  state = initial_state(config, ctx)
  iterator = data_lib.train_iterator(ctx.batched, config)
  history, per_phase, flops = [], [], {}
  for stage in ctx.stages:
    once = recompute = None
    for i in range(stage.steps):
      batch = ctx.global_batch(next(iterator))
      args = (batch, ctx.base_key, ctx.constants)
      if i == 0:   # the programs every step of the stage runs, and their FLOPs
        traced = [_step_fn(ctx, stage, forward_once=f).trace(state, *args) for f in (True, False)]
        once, recompute = (t.lower().compile() for t in traced)
        flops[stage.name] = tuple(benchmark.compiled_flops(t, c)
                                  for t, c in zip(traced, (once, recompute)))
      metrics_pp = recompute(state, *args)[1]
      state, metrics = once(state, *args)
      step = int(state["step"])
      history.append({"step": step, **_floats(metrics)})
      per_phase.append({"step": step, **_floats(metrics_pp)})
  if hasattr(iterator, "close"):
    iterator.close()
  return Lockstep(history, per_phase, flops)


def _floats(metrics) -> dict[str, float]:
  return {k: float(v) for k, v in jax.device_get(metrics).items()}


@functools.cache
def traced_steps(name: str, conv_impl: str | None) -> tuple[tuple[str, Any], ...]:
  """(stage name, traced step) of every stage under bfloat16 on one device, with the paper's
  loss terms (`with_paper_losses`); `conv_impl` None keeps the config's."""
  overrides = {"train.compute_dtype": "bfloat16"}
  if conv_impl is not None:
    overrides["model.conv_impl"] = conv_impl
  config = with_paper_losses(tiny_config(name, **overrides), name)
  ctx = context_lib.build_context(config, None, devices=jax.devices()[:1], evals=())
  batch = partitioning.abstract_batch(ctx.first_batch, ctx.batch_sharding,
                                      config.train.batch_size)
  args = (ctx.restore_target(), batch, ctx.base_key, ctx.constants)
  return tuple((stage.name, ctx.jit_step(stage).trace(*args)) for stage in ctx.stages)


class Runs:
  """The session's runs of one system, each computed on first use."""

  def __init__(self, name: str, tmp_path_factory):
    self.name, self._tmp = name, tmp_path_factory
    self._cache: dict[str, Any] = {}

  def config(self, **overrides):
    """The tiny config, checkpointing at `resume_step` (and at the end)."""
    return tiny_config(self.name, **{"train.checkpoint_every": self.resume_step, **overrides})

  @property
  def resume_step(self) -> int:
    """A step inside the last stage, where the resume check restarts the straight run."""
    stages = registry.get_system(tiny_config(self.name)).stages()
    return sum(s.steps for s in stages) - stages[-1].steps // 2

  def workdir(self, label: str) -> str:
    return str(self._tmp.mktemp(f"{self.name}-{label}"))

  def _get(self, key, make):
    if key not in self._cache:
      self._cache[key] = make()
    return self._cache[key]

  @property
  def system(self) -> base.System:
    return self._get("system", lambda: registry.get_system(self.config()))

  @property
  def straight(self) -> loop.TrainResult:
    return self._get("straight", lambda: loop.train(self.config(), self.workdir("straight")))

  @property
  def lockstep(self) -> Lockstep:
    return self._get("lockstep", lambda: run_lockstep(self.config()))
