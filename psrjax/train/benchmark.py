"""Speed of one train step: `benchmark(config) -> BenchResult` (what `psrjax bench` runs).

The step of one stage (the first stage with steps, or `stage=`) is compiled ahead of time
(`jit(...).lower(...).compile()`, timed) on fresh parameters and the first train batch, then
run `warmup` times untimed and `steps` times timed, each call waited for
(`block_until_ready`); the step time is the median. The same batch is fed every time: the
figures are the step's, not the input pipeline's.

- FLOPs per step: XLA's cost analysis of the compiled step. It describes one device's
  partitioned program, so it is multiplied by the number of devices; XLA counts a loop body
  once, so with `train.grad_accum > 1` the FLOPs come from the same step compiled without
  accumulation (the same arithmetic on the same global batch). The oneDNN convolutions that
  XLA sees as opaque calls are counted from the step's jaxpr (`psrjax.nn.onednn.jaxpr_flops`).
- Peak FLOP/s: a matmul probe, each device multiplying its own `probe_size`² matrices in the
  compute dtype at once (so devices that share a chip, or fake CPU devices, share the peak);
  the fastest of 5 runs. It is XLA's matmul: on CPU, oneDNN's convolutions can exceed it.
- MFU = achieved FLOP/s / peak FLOP/s.
- Memory: the compiled step's peak device memory (XLA memory analysis; arguments + outputs +
  temporaries - aliased buffers where the backend reports no peak), per device.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from psrjax.nn import onednn
from psrjax.train import context as context_lib
from psrjax.train import state as state_lib
from psrjax.train import step as step_lib

JSON_KEYS = ("step_time_s", "examples_per_s", "compile_s", "flops_per_step", "achieved_flops",
             "peak_flops", "mfu", "memory_bytes")
PROBE_SIZE = {"cpu": 1024, "gpu": 8192, "tpu": 8192}  # matmul side per platform


@dataclasses.dataclass
class BenchResult:
  """Figures of one benchmark (see the module docstring)."""
  system: str
  stage: str
  platform: str  # "cpu" | "gpu" | "tpu"
  device_kind: str
  num_devices: int
  batch_size: int  # global examples per step
  compile_s: float  # lower + compile of the step
  step_time_s: float  # median wall time of one step
  step_times_s: list[float]
  examples_per_s: float
  flops_per_step: float  # all devices
  achieved_flops: float  # flops_per_step / step_time_s
  peak_flops: float  # all devices, matmul probe
  mfu: float  # achieved / peak
  memory_bytes: int  # per device

  def as_json(self) -> dict[str, Any]:
    """The JSON keys first, then the context."""
    out = {k: getattr(self, k) for k in JSON_KEYS}
    out.update({k: v for k, v in dataclasses.asdict(self).items() if k not in out})
    return out


def select_stage(stages, name: str | None):
  """The stage named `name`, or the first stage with steps."""
  if name:
    for stage in stages:
      if stage.name == name:
        return stage
    raise ValueError(f"--stage {name!r} is not a stage of this config; stages: "
                     f"{', '.join(s.name for s in stages)}")
  return next((s for s in stages if s.steps > 0), stages[0])


def _flops(compiled) -> float:
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # Older JAX: one dict per program.
    analysis = analysis[0]
  return float((analysis or {}).get("flops", 0.0))


def _memory_bytes(compiled) -> int:
  stats = compiled.memory_analysis()
  if stats is None:
    return 0
  peak = int(getattr(stats, "peak_memory_in_bytes", 0) or 0)
  if peak > 0:
    return peak
  return int(stats.argument_size_in_bytes + stats.output_size_in_bytes
             + stats.temp_size_in_bytes - stats.alias_size_in_bytes)


def peak_flops(mesh, dtype, *, size: int, repeats: int = 5) -> float:
  """FLOP/s of every device of `mesh` multiplying its own `size`² matrices at once (the fastest
  of `repeats`: a peak, which background threads of the step just timed can only lower)."""
  devices = mesh.devices.size
  sharding = NamedSharding(jax.sharding.Mesh(mesh.devices.reshape(-1), ("all",)), P("all"))
  make = jax.jit(lambda key: jax.random.normal(key, (devices, size, size), dtype),
                 out_shardings=sharding)
  a, b = make(jax.random.key(1)), make(jax.random.key(2))
  matmul = jax.jit(lambda x, y: jnp.einsum("dij,djk->dik", x, y), out_shardings=sharding)
  matmul(a, b).block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a, b).block_until_ready()
    times.append(time.perf_counter() - start)
  return 2.0 * devices * size ** 3 / min(times)


def _compile(ctx, stage, options, args):
  """(compiled step, FLOPs of its oneDNN convolutions, which XLA's cost analysis omits)."""
  fn = step_lib.jit_train_step(ctx.system, ctx.optimizers, stage,
                               state_shardings=ctx.state_shardings,
                               batch_shardings=ctx.batch_sharding, mesh=ctx.mesh, options=options)
  traced = fn.trace(*args)
  return traced.lower().compile(), onednn.jaxpr_flops(traced.jaxpr.jaxpr)


class CompiledStep:
  """One stage's train step compiled ahead of time, with fresh state and the first batch.

  `run()` executes one step (the state is donated and replaced) and returns its wall time.
  """

  def __init__(self, config, *, stage: str | None = None, devices=None):
    self.config = config
    self.ctx = ctx = context_lib.build_context(config, None, devices=devices)
    self.stage = select_stage(ctx.stages, stage)
    self.batch = ctx.global_batch(ctx.first_batch)
    self.state = state_lib.create_state(ctx.init_fn, ctx.base_key, self.batch,
                                        ctx.state_shardings, ctx.mesh)
    args = (self.state, self.batch, ctx.base_key, ctx.constants)
    start = time.perf_counter()
    self.compiled, custom_flops = _compile(ctx, self.stage, ctx.options, args)
    self.compile_s = time.perf_counter() - start
    flops_compiled = self.compiled
    if ctx.options.grad_accum > 1:
      flops_compiled, custom_flops = _compile(
          ctx, self.stage, dataclasses.replace(ctx.options, grad_accum=1), args)
    self.num_devices = ctx.mesh.devices.size
    self.flops = _flops(flops_compiled) * self.num_devices + custom_flops
    self.memory_bytes = _memory_bytes(self.compiled)
    self.metrics = None  # metrics of the last step

  def run(self) -> float:
    """Runs one step and waits for it; returns its wall time in seconds."""
    start = time.perf_counter()
    self.state, self.metrics = self.compiled(self.state, self.batch, self.ctx.base_key,
                                             self.ctx.constants)
    jax.block_until_ready((self.state, self.metrics))
    return time.perf_counter() - start

  def check_finite(self) -> None:
    bad = [k for k, v in jax.device_get(self.metrics).items() if not np.isfinite(v)]
    if bad:
      raise RuntimeError(f"non-finite {bad[0]!r} while benchmarking; the figures would be "
                         "meaningless")


def benchmark(config, *, steps: int = 10, stage: str | None = None, warmup: int = 1,
              probe_size: int | None = None, devices=None) -> BenchResult:
  """Compiles and times one stage's train step (see the module docstring)."""
  if steps < 1 or warmup < 0 or (probe_size is not None and probe_size < 1):
    raise ValueError(f"--steps ({steps}) and --probe-size ({probe_size}) must be >= 1 and "
                     f"--warmup ({warmup}) >= 0")
  step = CompiledStep(config, stage=stage, devices=devices)
  times = [step.run() for _ in range(warmup + steps)][warmup:]
  step.check_finite()
  step_time = statistics.median(times)
  device = step.ctx.mesh.devices.flat[0]
  size = probe_size or PROBE_SIZE.get(device.platform, 4096)
  peak = peak_flops(step.ctx.mesh, step.ctx.options.compute_dtype, size=size)
  achieved = step.flops / step_time
  return BenchResult(
      system=str(config.system), stage=step.stage.name, platform=device.platform,
      device_kind=device.device_kind, num_devices=step.num_devices,
      batch_size=config.train.batch_size, compile_s=step.compile_s, step_time_s=step_time,
      step_times_s=times, examples_per_s=config.train.batch_size / step_time,
      flops_per_step=step.flops, achieved_flops=achieved, peak_flops=peak,
      mfu=achieved / peak, memory_bytes=step.memory_bytes)


def format_result(result: BenchResult) -> str:
  """A human-readable table of the figures."""
  mib = result.memory_bytes / 2**20
  rows = [
      f"{result.system}: stage {result.stage!r}, global batch {result.batch_size}, "
      f"{result.num_devices} x {result.device_kind} ({result.platform})",
      f"compile         {result.compile_s:.2f} s",
      f"step time       {result.step_time_s:.4f} s (median of {len(result.step_times_s)})",
      f"examples/s      {result.examples_per_s:.3f}",
      f"FLOPs/step      {result.flops_per_step:.4g} (XLA cost analysis + oneDNN convolutions, all devices)",
      f"achieved        {result.achieved_flops:.4g} FLOP/s",
      f"peak (matmul)   {result.peak_flops:.4g} FLOP/s",
      f"MFU             {100 * result.mfu:.1f} %",
      f"memory          {mib:.1f} MiB per device (compiled step)",
  ]
  return "\n".join(rows)
