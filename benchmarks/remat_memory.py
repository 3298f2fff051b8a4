"""Activation memory of a train step for each rematerialisation mode (`model.remat`).

For the first stage of a config, on one device, per mode:
- "saved": the bytes autodiff keeps from the generator phase's forward pass for its backward
  pass (`jax.vjp` residuals of the phase loss w.r.t. the trained groups; parameters and inputs
  included): what rematerialisation trades for recomputation, on every platform;
- the compiled step's temporaries, arguments and outputs (`memory_analysis()`) on this backend.
  XLA:CPU expands JAX's optimisation barriers before common-subexpression elimination, so on a
  CPU the recomputed blocks merge back into the forward pass and compiled memory hardly moves;
  GPU and TPU compilers keep them.
With `--time-config` it also runs that (smaller) config's step for each mode and reports the
median step time, so the recomputation's cost is measured where a step fits this machine.

The figures of docs/scaling.md (paper-width PSR-Net layer 1, 256² x 16 frames, batch 1, the accelerator
convolution path):

  python benchmarks/remat_memory.py \
      --config configs/psrnet.py:layers=1,frames=16,res=256,batch=1 \
      --set loss.perceptual=0 --set model.conv_impl=xla \
      --time-config configs/psrnet.py:runlocal,layers=1 --steps 5
"""
from __future__ import annotations

import argparse
import math
import statistics

import jax

from psrjax import config_utils
from psrjax.train import benchmark, context, partitioning


def _config(spec: str, overrides, mode: str):
  config = config_utils.load_config(spec)
  for item in overrides:
    key, value = item.split("=", 1)
    config_utils.apply_override(config, key, value)
  config_utils.apply_override(config, "model.remat", mode)
  return config


def compiled_memory(spec: str, overrides, mode: str) -> dict[str, int]:
  """memory_figures of the first stage's step compiled for one device, nothing executed."""
  config = _config(spec, overrides, mode)
  ctx = context.build_context(config, None, devices=jax.devices()[:1])
  batch = partitioning.abstract_batch(ctx.first_batch, ctx.batch_sharding, config.train.batch_size)
  traced = ctx.jit_step(ctx.stages[0]).trace(ctx.restore_target(), batch, ctx.base_key,
                                            ctx.constants)
  return benchmark.memory_figures(traced.lower().compile())


def saved_bytes(spec: str, overrides, mode: str) -> int:
  """Bytes of the residuals the first stage's last phase saves for its backward pass."""
  config = _config(spec, overrides, mode)
  ctx = context.build_context(config, None, devices=jax.devices()[:1])
  stage = ctx.stages[0]
  phase = stage.generator_phase() or stage.phases[-1]
  params = ctx.abstract_state["params"]
  trainable = {g: params[g] for g in phase.trains}
  frozen = {g: p for g, p in params.items() if g not in phase.trains}
  batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), ctx.first_batch)

  def residuals(trainable, frozen, batch, constants, rng):
    batch = ctx.system.prepare(batch)
    forward = lambda t: stage.forward({**frozen, **t, **constants}, batch, rng)
    return jax.vjp(forward, trainable)[1]

  tree = jax.eval_shape(residuals, trainable, frozen, batch, ctx.constants, jax.random.key(0))
  return sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def step_time(spec: str, overrides, mode: str, steps: int) -> float:
  """Median wall time of `steps` train steps (after one warm-up step)."""
  step = benchmark.CompiledStep(_config(spec, overrides, mode), devices=jax.devices()[:1])
  step.run()
  return statistics.median(step.run() for _ in range(steps))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", required=True, help="config file[:args] whose step is compiled")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="config override (repeatable), e.g. model.conv_impl=xla")
  parser.add_argument("--modes", default="none,blocks,full")
  parser.add_argument("--time-config", default="", help="config file[:args] whose step is timed")
  parser.add_argument("--steps", type=int, default=3)
  args = parser.parse_args()
  modes = args.modes.split(",")
  mib = lambda b: f"{b / 2**20:10.1f}"
  print(f"{'remat':8s} {'saved MiB':>10s}  vs none {'temp MiB':>10s} {'args MiB':>10s} "
        f"{'out MiB':>10s}  (compiled on {jax.default_backend()})")
  first = None
  for mode in modes:
    saved = saved_bytes(args.config, args.set, mode)
    first = first or saved
    m = compiled_memory(args.config, args.set, mode)
    print(f"{mode:8s} {mib(saved)}  {saved / first:6.1%} {mib(m['temp_bytes'])} "
          f"{mib(m['argument_bytes'])} {mib(m['output_bytes'])}", flush=True)
  if args.time_config:
    times = {mode: step_time(args.time_config, args.set, mode, args.steps) for mode in modes}
    for mode in modes:
      print(f"step time {mode:8s} {times[mode]:.3f} s  ({times[mode] / times[modes[0]]:.2f}x)")


if __name__ == "__main__":
  main()
