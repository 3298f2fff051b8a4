"""Speed of one train step and of the input pipeline: `benchmark(config) -> BenchResult` (what
`psrjax bench` runs).

The step of one stage (the first stage with steps, or `stage=`) is compiled ahead of time
(`jit(...).lower(...).compile()`, timed) on fresh parameters and the first train batch (in its
compact transfer dtypes, as training feeds it), then run `warmup` times untimed and `steps`
times timed, each call waited for (`block_until_ready`); the step time is the median. The same
batch is fed every time: the step figures are the step's alone.

- Input pipeline: afterwards, the real train iterator of this process (`train.data_workers`
  resolved, `train.prefetch` threads, the transfer encoding) yields `pipeline_warmup` batches
  untimed, then `pipeline_batches` timed; examples/s = examples yielded / wall time. It runs
  alone (no step competes for the host), so it is the rate the host can feed at best; training
  keeps up when it is at least the step's examples/s per process.
- Transfer bytes per example: the compact batch that travels to the devices, beside the same
  batch in the batch contract's dtypes.

- FLOPs per step: XLA's cost analysis of the compiled step. It describes one device's
  partitioned program, so it is multiplied by the number of devices; XLA counts a loop body
  once, so with `train.grad_accum > 1` the FLOPs come from the same step compiled without
  accumulation (the same arithmetic on the same global batch, the forward run in every phase
  as accumulation runs it). The oneDNN convolutions that
  XLA sees as opaque calls are counted from the step's jaxpr (`psrjax.nn.cpu.onednn.jaxpr_flops`).
- Peak FLOP/s: a matmul probe, each device multiplying its own `probe_size`² matrices in the
  compute dtype at once (so devices that share a chip, or fake CPU devices, share the peak);
  the fastest of 5 runs. It is XLA's matmul: on CPU, oneDNN's convolutions can exceed it.
- MFU = achieved FLOP/s / peak FLOP/s.
- Memory, per device, from the compiled step's `memory_analysis()`: temporaries, arguments
  (state, batch, key, constants), outputs, and the peak (arguments + outputs + temporaries -
  aliased (donated) buffers where the backend reports no peak).
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

from psrjax.nn import jaxprs
from psrjax.train import context as context_lib
from psrjax.train import data as data_lib
from psrjax.train import state as state_lib
from psrjax.train import step as step_lib

JSON_KEYS = ("step_time_s", "examples_per_s", "pipeline_examples_per_s", "compile_s",
             "flops_per_step", "achieved_flops", "peak_flops", "mfu", "memory_bytes",
             "temp_bytes", "argument_bytes", "output_bytes", "transfer_bytes_per_example")
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
  peak_flops: float  # all devices, matmul probe in compute_dtype
  mfu: float  # achieved / peak
  memory_bytes: int  # per device, peak of the compiled step
  temp_bytes: int  # per device, the compiled step's temporaries
  argument_bytes: int  # per device, its arguments
  output_bytes: int  # per device, its outputs
  alias_bytes: int  # per device, outputs that reuse (donated) argument buffers
  compute_dtype: str  # "float32" | "bfloat16": the step's and the matmul probe's
  pipeline_examples_per_s: float  # this process's train iterator
  data_workers: int  # worker processes of that iterator (train.data_workers resolved)
  transfer_bytes_per_example: int  # host -> device, compact dtypes
  contract_bytes_per_example: int  # the same example in the batch contract's dtypes

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


def memory_figures(compiled) -> dict[str, int]:
  """Per-device bytes of the compiled program: "memory_bytes" (peak), "temp_bytes",
  "argument_bytes", "output_bytes", "alias_bytes" (zeros when the backend reports nothing)."""
  stats = compiled.memory_analysis()
  if stats is None:
    return dict(memory_bytes=0, temp_bytes=0, argument_bytes=0, output_bytes=0, alias_bytes=0)
  out = dict(temp_bytes=int(stats.temp_size_in_bytes),
             argument_bytes=int(stats.argument_size_in_bytes),
             output_bytes=int(stats.output_size_in_bytes),
             alias_bytes=int(stats.alias_size_in_bytes))
  peak = int(getattr(stats, "peak_memory_in_bytes", 0) or 0)
  out["memory_bytes"] = peak if peak > 0 else (out["argument_bytes"] + out["output_bytes"]
                                               + out["temp_bytes"] - out["alias_bytes"])
  return out


def pipeline_rate(batched, config, *, batches: int, warmup: int) -> float:
  """Examples/s of this process's train iterator over `batches` batches after `warmup`."""
  iterator = data_lib.train_iterator(batched, config)
  try:
    for _ in range(warmup):
      next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
      next(iterator)
    elapsed = time.perf_counter() - start
  finally:
    if hasattr(iterator, "close"):
      iterator.close()
  return batches * (config.train.batch_size // jax.process_count()) / elapsed


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


def _onednn_flops(jaxpr) -> float:
  """FLOPs of the oneDNN convolutions in `jaxpr`: 0 off the CPU backend, where convolutions
  never resolve to them (and `psrjax.nn.cpu` is not imported)."""
  if jax.default_backend() != "cpu":
    return 0.0
  from psrjax.nn.cpu import onednn  # pylint: disable=g-import-not-at-top
  return onednn.jaxpr_flops(jaxpr)


def _compile(ctx, stage, options, args, *, forward_once: bool = True):
  """(compiled step, FLOPs of its oneDNN convolutions, which XLA's cost analysis omits)."""
  fn = step_lib.jit_train_step(ctx.system, ctx.optimizers, stage,
                               state_shardings=ctx.state_shardings,
                               batch_shardings=ctx.batch_sharding, mesh=ctx.mesh, options=options,
                               stages=ctx.stages, forward_once=forward_once)
  traced = fn.trace(*args)
  compiled = traced.lower().compile()
  return compiled, (_onednn_flops(traced.jaxpr.jaxpr)
                    + library_flops(traced, compiled, devices=ctx.mesh.devices.size))


def library_flops(traced, compiled, *, devices: int = 1) -> float:
  """FLOPs of the operations a GPU compiler turns into library calls: cuDNN convolutions and
  cuBLAS matrix products are custom calls that the compiled program's cost analysis counts as 0
  FLOPs (also in the lowered module's analysis on a GPU). On a GPU or TPU: what the jaxpr's
  convolutions and matrix products (`jaxprs.matmul_flops`, global shapes) count beyond the
  compiled program on all `devices`; on the CPU 0 (XLA counts its own convolutions and
  oneDNN's are counted from the jaxpr, `_onednn_flops`)."""
  if jax.default_backend() == "cpu":
    return 0.0
  return max(jaxprs.matmul_flops(traced.jaxpr.jaxpr) - _flops(compiled) * devices, 0.0)


def function_flops(fn, *args) -> float:
  """FLOPs of one device running the jitted `fn` on `args`: XLA's cost analysis plus the
  oneDNN convolutions it cannot see."""
  traced = fn.trace(*args)
  return compiled_flops(traced, traced.lower().compile())


def compiled_flops(traced, compiled) -> float:
  """`function_flops` of a function already traced (`traced`) and compiled (`compiled`)."""
  return (_flops(compiled) + _onednn_flops(traced.jaxpr.jaxpr)
          + library_flops(traced, compiled))


def step_flops(ctx, stage, args, *, options=None, forward_once: bool = True) -> float:
  """FLOPs of one step of `stage` on all devices: XLA's cost analysis of the compiled step
  plus its oneDNN convolutions. `forward_once=False`: the step that runs the forward in every
  phase (what gradient accumulation compiles)."""
  compiled, custom = _compile(ctx, stage, options or ctx.options, args, forward_once=forward_once)
  return _flops(compiled) * ctx.mesh.devices.size + custom


class CompiledStep:
  """One stage's train step compiled ahead of time, with fresh state and the first batch.

  `run()` executes one step (the state is donated and replaced) and returns its wall time.
  """

  def __init__(self, config, *, stage: str | None = None, devices=None):
    self.config = config
    # Evaluations are not benchmarked: none of config.evals is built (feature networks).
    self.ctx = ctx = context_lib.build_context(config, None, devices=devices, evals=())
    self.stage = select_stage(ctx.stages, stage)
    self.state = state_lib.create_state(ctx.init_fn, ctx.base_key,
                                        ctx.global_batch(ctx.first_batch),
                                        ctx.state_shardings, ctx.mesh)
    compact = data_lib.encode_batch(ctx.first_batch)  # What training transfers.
    examples = len(next(iter(compact.values())))
    self.transfer_bytes = data_lib.batch_bytes(compact) // examples
    self.contract_bytes = data_lib.batch_bytes(ctx.first_batch) // examples
    self.batch = ctx.global_batch(compact)
    args = (self.state, self.batch, ctx.base_key, ctx.constants)
    start = time.perf_counter()
    self.compiled, custom_flops = _compile(ctx, self.stage, ctx.options, args)
    self.compile_s = time.perf_counter() - start
    self.num_devices = ctx.mesh.devices.size
    self.flops = _flops(self.compiled) * self.num_devices + custom_flops
    if ctx.options.grad_accum > 1:  # XLA counts the loop body once: the same step unrolled.
      self.flops = step_flops(ctx, self.stage, args, forward_once=False,
                              options=dataclasses.replace(ctx.options, grad_accum=1))
    self.memory = memory_figures(self.compiled)
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
              probe_size: int | None = None, pipeline_batches: int = 8,
              pipeline_warmup: int | None = None, devices=None) -> BenchResult:
  """Times one stage's train step, then the input pipeline (see the module docstring).

  `pipeline_warmup`: untimed batches first (default: the workers + prefetch threads, >= 2,
  so that every worker has started).
  """
  if steps < 1 or warmup < 0 or pipeline_batches < 1 or (probe_size is not None
                                                          and probe_size < 1):
    raise ValueError(f"--steps ({steps}), --pipeline-batches ({pipeline_batches}) and "
                     f"--probe-size ({probe_size}) must be >= 1 and --warmup ({warmup}) >= 0")
  workers = data_lib.resolve_workers(config.train.data_workers)
  step = CompiledStep(config, stage=stage, devices=devices)
  times = [step.run() for _ in range(warmup + steps)][warmup:]
  step.check_finite()
  step_time = statistics.median(times)
  device = step.ctx.mesh.devices.flat[0]
  size = probe_size or PROBE_SIZE.get(device.platform, 4096)
  peak = peak_flops(step.ctx.mesh, step.ctx.options.compute_dtype, size=size)
  if pipeline_warmup is None:
    pipeline_warmup = max(2, workers + config.train.prefetch)
  pipeline = pipeline_rate(step.ctx.batched, config, batches=pipeline_batches,
                           warmup=pipeline_warmup)
  achieved = step.flops / step_time
  return BenchResult(
      system=str(config.system), stage=step.stage.name, platform=device.platform,
      device_kind=device.device_kind, num_devices=step.num_devices,
      batch_size=config.train.batch_size, compile_s=step.compile_s, step_time_s=step_time,
      step_times_s=times, examples_per_s=config.train.batch_size / step_time,
      flops_per_step=step.flops, achieved_flops=achieved, peak_flops=peak,
      mfu=achieved / peak, **step.memory,
      compute_dtype=np.dtype(step.ctx.options.compute_dtype).name,
      pipeline_examples_per_s=pipeline, data_workers=workers,
      transfer_bytes_per_example=step.transfer_bytes,
      contract_bytes_per_example=step.contract_bytes)


def format_result(result: BenchResult) -> str:
  """A human-readable table of the figures."""
  mib = lambda n: f"{n / 2**20:.1f} MiB"
  per_process = result.examples_per_s / jax.process_count()
  rows = [
      f"{result.system}: stage {result.stage!r}, global batch {result.batch_size}, "
      f"{result.num_devices} x {result.device_kind} ({result.platform}), "
      f"compute {result.compute_dtype}",
      f"compile         {result.compile_s:.2f} s",
      f"step time       {result.step_time_s:.4f} s (median of {len(result.step_times_s)})",
      f"examples/s      {result.examples_per_s:.3f} (step; {per_process:.3f} per process)",
      f"input pipeline  {result.pipeline_examples_per_s:.3f} examples/s (this process, "
      f"{result.data_workers} workers)",
      f"transfer        {result.transfer_bytes_per_example} bytes/example "
      f"({result.contract_bytes_per_example} in the batch contract's dtypes)",
      f"FLOPs/step      {result.flops_per_step:.4g} (XLA cost analysis + oneDNN convolutions, all devices)",
      f"achieved        {result.achieved_flops:.4g} FLOP/s",
      f"peak (matmul)   {result.peak_flops:.4g} FLOP/s ({result.compute_dtype})",
      f"MFU             {100 * result.mfu:.1f} %",
      f"memory          {mib(result.memory_bytes)} peak per device (compiled step): "
      f"temp {mib(result.temp_bytes)}, arguments {mib(result.argument_bytes)}, "
      f"outputs {mib(result.output_bytes)}, aliased {mib(result.alias_bytes)}",
  ]
  return "\n".join(rows)
