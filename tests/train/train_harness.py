"""Reusable trainer checks, parameterised by a config (any system can be plugged in)."""
from __future__ import annotations

import os
import re

import jax
import numpy as np

from psrjax import config_utils
from psrjax.systems import base
from psrjax.train import loop
from psrjax.train import state as state_lib

LOSS_PREFIXES = ("l2_",)


def config_with(spec: str, **overrides):
  """A config file (`path:arg`) with dotted-key overrides applied as command-line text."""
  config = config_utils.load_config(spec)
  for key, value in overrides.items():
    config_utils.apply_override(config, key, str(value))
  return config


def eval_batch(system, size: int = 2) -> dict:
  """The first `size` validation examples of a system, stacked into a host batch."""
  ds = system.dataset("validation", seed=0, shard_index=0, shard_count=1)
  examples = [ds[i] for i in range(size)]
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def assert_close(actual, desired, *, rtol: float, err_msg: str = "") -> None:
  """`actual` equals `desired` to `rtol`, with an absolute floor of `rtol` times the largest
  |desired|: a near-zero element carries the rounding of the array's scale, and FMA
  contraction and vector width (AVX2 vs AVX-512) move its last bits by that much."""
  desired = np.asarray(desired)
  floor = rtol * float(np.max(np.abs(desired))) if desired.size else 0.0
  np.testing.assert_allclose(actual, desired, rtol=rtol, atol=floor, err_msg=err_msg)


def init_params(system, batch, seed: int = 0):
  """The system's parameters for a (host) batch, compiled as the trainer compiles its
  initialisation (`state.jit_init`)."""
  init = state_lib.jit_init(lambda key, b: base.init(system, key, b))
  return init(jax.random.key(seed), batch)


def host_params(result: loop.TrainResult):
  return jax.tree.map(np.asarray, jax.device_get(result.state["params"]))


def losses(record: dict) -> dict[str, float]:
  """The loss terms of one metrics record (everything but step and l2_* statistics)."""
  return {k: v for k, v in record.items() if k != "step" and not k.startswith(LOSS_PREFIXES)}


def assert_same_losses(history_a, history_b, *, rtol: float, steps) -> None:
  by_step_a = {r["step"]: r for r in history_a}
  by_step_b = {r["step"]: r for r in history_b}
  for step in steps:
    a, b = losses(by_step_a[step]), losses(by_step_b[step])
    assert a.keys() == b.keys(), (step, a.keys(), b.keys())
    for key in a:
      np.testing.assert_allclose(a[key], b[key], rtol=rtol, atol=0, err_msg=f"{key} step {step}")


def run_on_devices(config, workdir, num_devices: int, *, stop_after=None) -> loop.TrainResult:
  """Trains with a (num_devices x 1) mesh over the first devices."""
  config = config.copy_and_resolve_references()
  config.mesh.data, config.mesh.model = num_devices, 1
  return loop.train(config, str(workdir), stop_after=stop_after)


def check_sharding_invariance(config, straight: loop.TrainResult, workdir, steps: int) -> None:
  """The first `steps` steps on one device give the losses of the all-device run `straight`."""
  single = run_on_devices(config, workdir, 1, stop_after=steps)
  assert single.step == steps
  assert_same_losses(single.history, straight.history, rtol=1e-5, steps=range(1, steps + 1))


def check_exact_resume(config, straight: loop.TrainResult, workdir, half: int) -> None:
  """`half` steps, stop, resume to the end == the straight run: same losses and parameters."""
  config = config.copy_and_resolve_references()
  first = loop.train(config, str(workdir), stop_after=half)
  assert first.preempted and first.step == half
  second = loop.train(config, str(workdir))
  assert second.step == straight.step and not second.preempted
  history = first.history + second.history
  assert_same_losses(history, straight.history, rtol=0, steps=range(1, straight.step + 1))
  jax.tree.map(np.testing.assert_array_equal, host_params(second), host_params(straight))


def check_bfloat16_close(config, straight: loop.TrainResult, workdir, *, rtol: float) -> None:
  """The run in bfloat16 keeps float32 parameters and every loss term within `rtol` of the
  float32 run `straight` at every step (bfloat16 has an 8-bit mantissa: ~0.4 % per rounding)."""
  config = config.copy_and_resolve_references()
  config.train.compute_dtype = "bfloat16"
  low = loop.train(config, str(workdir))
  leaves = jax.tree.leaves(low.state["params"])
  assert {x.dtype for x in leaves if np.issubdtype(x.dtype, np.floating)} == {np.dtype("float32")}
  assert_same_losses(low.history, straight.history, rtol=rtol, steps=range(1, straight.step + 1))
  first = losses(low.history[0])
  assert first != losses(straight.history[0])   # computed in bfloat16, not float32


def xla_flags(devices: int) -> str:
  """This session's XLA flags (tests/conftest.py: fast compilation) for a subprocess with
  `devices` CPU devices."""
  return re.sub(r"--xla_force_host_platform_device_count=\d+",
                f"--xla_force_host_platform_device_count={devices}", os.environ["XLA_FLAGS"])
