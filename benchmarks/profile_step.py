r"""Where one psrjax train step spends its time: a `jax.profiler` trace of the compiled step,
its thunks attributed to the parts of the step by the HLO's source metadata.

  python benchmarks/profile_step.py --config configs/pix2pixhd.py \
      --config.loss.vgg_net=vgg19 --config.loss.vgg_weights=vgg19.pth --steps 3

The step is `psrjax bench`'s (`psrjax.train.benchmark.CompiledStep`: the first stage, fresh
parameters, the first train batch in its transfer dtypes), run once untimed, then traced for
`--steps` steps (`jax.profiler.trace`, a Perfetto trace). Every executed thunk of XLA:CPU (on
a GPU, every kernel of the device's trace, by its `hlo_op`) is an instruction of the compiled
HLO; its `op_name` metadata says which module and which
transformation produced it, and the parts are:

- `data`: the trainer's named scopes `decode` (uint8/int16 batch -> floats) and `prepare` (the
  system's derived inputs, e.g. the pose label drawn from keypoints);
- `optimizer`: the trainer's `optimizer_<group>` scopes (Adam's moments and the update);
- `<Network> forward` / `<Network> backward`: the flax module at the head of the op_name (the
  generator, the discriminator, a pretrained feature network), `transpose(jvp(...))` marking
  the backward pass;
- `other`: losses, norms and whatever else carries no module name.

The same time is also split by what ran it (`by_kind`): each of psrjax's CPU convolution calls
(forward, backward data, backward weights) or XLA's own instructions by kind.

The per-part time is the wall time per step its thunks ran; where XLA:CPU runs thunks
concurrently (or one oneDNN call waits for another's cores), the overlapping time is shared
evenly among them, so the parts add up to the time some thunk ran, printed beside the step's
wall time (the rest is the executor between thunks).
The trace itself is kept in `--trace-dir` (TensorBoard's profile tab reads it).
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=.*?metadata=\{([^}]*)\}", re.M)
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_MODULE = re.compile(r"(transpose\()?jvp\(([A-Za-z_]\w*)\)")
# Host-side and executor events that enclose the thunks (not thunks themselves).
_HOST_EVENT = re.compile(r"^(\$|ThunkExecutor|PjitFunction|CommonPjRt|SlinkyThreadPool|Pjrt)")
_TARGET = re.compile(r'^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=.*?custom_call_target="([^"]+)"', re.M)


def op_names(hlo_text: str) -> dict[str, str]:
  """{instruction name: op_name metadata} of a compiled HLO module's text."""
  out = {}
  for name, meta in _INSTRUCTION.findall(hlo_text):
    m = _OP_NAME.search(meta)
    if m:
      out[name] = m.group(1)
  return out


def traced_names(hlo_text: str) -> dict[str, str]:
  """`op_names`, each instruction also under its kernel's name (`loop_add_fusion.3` ->
  `loop_add_fusion_3`), as a GPU trace names a kernel whose event carries no `hlo_op`."""
  names = op_names(hlo_text)
  kernels = {re.sub(r"[.\-]", "_", name): op for name, op in names.items()}
  return {**kernels, **names}


def part_of(op_name: str) -> str:
  """The part of the step an instruction belongs to (module docstring)."""
  scopes = op_name.split("/")
  if "decode" in scopes or "prepare" in scopes:   # not e.g. an hourglass's ".../decoder/.."
    return "data (decode + prepare)"
  if "/optimizer_" in op_name:
    return "optimizer"
  m = _MODULE.search(op_name)
  if m:
    return f"{m.group(2)} {'backward' if m.group(1) else 'forward'}"
  return "other (losses, norms)"


def thunk_times(trace_dir: str) -> dict[str, float]:
  """{thunk name: seconds} of the newest Perfetto trace under `trace_dir`, each instant of wall
  time shared equally among the thunks running in it, so that the figures add up to the time
  some thunk ran (XLA:CPU runs independent thunks concurrently, and a oneDNN call waiting for
  another to finish would otherwise count its wait)."""
  files = sorted(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True),
                 key=os.path.getmtime)
  if not files:
    raise FileNotFoundError(f"no Perfetto trace under {trace_dir}")
  with gzip.open(files[-1]) as f:
    data = json.load(f)
  events = data["traceEvents"] if isinstance(data, dict) else data
  return _shared_times(_thunk_spans(events))


def _meta_names(events, kind: str) -> dict:
  """{pid (process_name) or (pid, tid) (thread_name): name} of a trace's metadata events."""
  out = {}
  for e in events:
    if e.get("ph") == "M" and e.get("name") == kind:
      key = e["pid"] if kind == "process_name" else (e["pid"], e.get("tid"))
      out[key] = str((e.get("args") or {}).get("name", ""))
  return out


def _device_lines(events) -> set:
  """The (pid, tid) lines of the devices' own processes (`/device:GPU:0`, ...) whose events are
  the executed kernels: a GPU's streams (`Stream #...`), else a TPU's `XLA Ops` line; not the
  derived lines that span them again (`XLA Modules`, `Steps`, name scopes)."""
  devices = {pid for pid, name in _meta_names(events, "process_name").items()
             if name.startswith("/device:")}
  lines = {key: name for key, name in _meta_names(events, "thread_name").items()
           if key[0] in devices}
  for prefix in ("Stream", "XLA Ops"):
    chosen = {key for key, name in lines.items() if name.startswith(prefix)}
    if chosen:
      return chosen
  return {(e["pid"], e.get("tid")) for e in events if e.get("pid") in devices}


def _thunk_spans(events) -> list[tuple[float, float, str]]:
  """(start us, end us, instruction name) of the executed instructions among trace events.
  On a GPU or TPU these are the events of the device's kernel lines (`_device_lines`), named
  by their `hlo_op` argument; on the CPU the host's thunk events."""
  lines = _device_lines(events)
  spans = []
  for e in events:
    if e.get("ph") != "X" or "dur" not in e:
      continue
    if lines:
      if (e["pid"], e.get("tid")) in lines:
        spans.append((e["ts"], e["ts"] + e["dur"], (e.get("args") or {}).get("hlo_op")
                      or e["name"]))
    elif not _HOST_EVENT.match(e["name"]):
      spans.append((e["ts"], e["ts"] + e["dur"], e["name"]))
  return spans


def _shared_times(spans) -> dict[str, float]:
  """{name: seconds} of (start us, end us, name) spans, overlapping time split evenly."""
  edges = sorted([(start, 1, i) for i, (start, _, _) in enumerate(spans)]
                 + [(end, -1, i) for i, (_, end, _) in enumerate(spans)])
  times: dict[str, float] = collections.defaultdict(float)
  active: set[int] = set()
  last = None
  for t, kind, i in edges:
    if active and last is not None and t > last:
      share = (t - last) * 1e-6 / len(active)
      for j in active:
        times[spans[j][2]] += share
    last = t
    if kind > 0:
      active.add(i)
    else:
      active.discard(i)
  return times


def breakdown(hlo_text: str, times: dict[str, float], steps: int) -> dict[str, float]:
  """{part: seconds per step} of the thunks that are instructions of `hlo_text`."""
  names = traced_names(hlo_text)
  parts: dict[str, float] = collections.defaultdict(float)
  for thunk, seconds in times.items():
    if thunk in names:
      parts[part_of(names[thunk])] += seconds / steps
  return dict(sorted(parts.items(), key=lambda kv: -kv[1]))


def kind_of(thunk: str, targets: dict[str, str]) -> str:
  """What ran a thunk: its custom-call target (psrjax's CPU convolutions: psrjax_conv_forward,
  ..._backward_data, ..._backward_weights), else the XLA instruction's kind (`add_fusion.3`
  -> "XLA add_fusion")."""
  return targets.get(thunk) or "XLA " + re.sub(r"[.\d]+$", "", thunk)


def by_kind(hlo_text: str, times: dict[str, float], steps: int) -> dict[str, float]:
  """{kind_of: seconds per step} of the thunks that are instructions of `hlo_text`: whether
  the step's time is in the convolution calls or in XLA's own code."""
  names, targets = traced_names(hlo_text), dict(_TARGET.findall(hlo_text))
  kinds: dict[str, float] = collections.defaultdict(float)
  for thunk, seconds in times.items():
    if thunk in names:
      kinds[kind_of(thunk, targets)] += seconds / steps
  return dict(sorted(kinds.items(), key=lambda kv: -kv[1]))


def top_thunks(hlo_text: str, times: dict[str, float], steps: int, count: int):
  """The `count` slowest instructions: (seconds per step, name, part, custom-call target or
  fusion kind, op_name)."""
  names, targets = traced_names(hlo_text), dict(_TARGET.findall(hlo_text))
  rows = [(seconds / steps, thunk, part_of(names[thunk]), kind_of(thunk, targets), names[thunk])
          for thunk, seconds in times.items() if thunk in names]
  return sorted(rows, reverse=True)[:count]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", required=True)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--trace-dir", default="/tmp/psrjax_profile_step")
  parser.add_argument("--top", type=int, default=0, help="also list the N slowest thunks")
  parser.add_argument("--json", action="store_true")
  args, overrides = parser.parse_known_args(argv)
  from psrjax import commands, config_utils  # pylint: disable=g-import-not-at-top
  config = config_utils.load_config(args.config, [tuple(o[len("--config."):].split("=", 1))
                                                  for o in overrides])
  commands.configure_compilation_cache("off")  # the HLO metadata of this very program
  import jax  # pylint: disable=g-import-not-at-top
  from psrjax.train import benchmark  # pylint: disable=g-import-not-at-top
  step = benchmark.CompiledStep(config)
  step.run()
  walls = []
  with jax.profiler.trace(args.trace_dir, create_perfetto_trace=True):
    for _ in range(args.steps):
      walls.append(step.run())
  step.check_finite()
  time.sleep(0.5)
  hlo, times = step.compiled.as_text(), thunk_times(args.trace_dir)
  parts, kinds = breakdown(hlo, times, args.steps), by_kind(hlo, times, args.steps)
  wall = sorted(walls)[len(walls) // 2]
  if args.json:
    print(json.dumps({"step_time_s": wall, "parts_s": parts, "kinds_s": kinds}))
    return 0
  total = sum(parts.values())
  print(f"{config.system}: step {wall:.3f} s (median of {args.steps}, traced); thunks "
        f"{total:.3f} s per step")
  for part, seconds in parts.items():
    print(f"  {part:34s} {seconds:8.3f} s  {100 * seconds / total:5.1f} %")
  print("by what ran it (the 8 largest):")
  for kind, seconds in list(kinds.items())[:8]:
    print(f"  {kind:34s} {seconds:8.3f} s  {100 * seconds / total:5.1f} %")
  for seconds, thunk, part, kind, op_name in top_thunks(hlo, times, args.steps, args.top):
    print(f"  {1e3 * seconds:8.1f} ms  {thunk:20s} {kind:30s} {op_name[-90:]}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
