"""Does a compiled train step fit the devices? Checked before the first step, from XLA's own
memory analysis of the compiled program, so a run that cannot fit stops with one line naming
the figure and the fixes instead of an allocator traceback minutes into compilation or training.

Per device the step needs its arguments (parameters, optimizer state, the batch shard,
constants), its outputs and its temporaries (activations kept for the backward pass, workspace),
less the outputs that reuse donated arguments (the train state). That is compared with:

  GPU / TPU   the device's allocator limit (`Device.memory_stats()["bytes_limit"]`);
  CPU         the host's available memory (/proc/meminfo's MemAvailable) shared by all local
              CPU devices, so the need is counted once per local device.

The analysis is XLA's estimate of peak use; it ignores the allocator's fragmentation and, on the
CPU, the Python process itself, so a step close to the limit may still fail: the check catches
the runs that cannot succeed (a 256x256 MFCI step asking for 56 GB on a 24-GB machine), not
every out-of-memory.
"""
from __future__ import annotations

import os

import jax

GIB = 2.0 ** 30
FIXES = ("lower data.resolution (config argument res=R), train.batch_size (batch=B), turn on "
         "rematerialisation (model.remat='full'), or compute in bfloat16 "
         "(--config.train.compute_dtype=bfloat16)")


def step_bytes(compiled) -> int | None:
  """Peak bytes per device of a compiled program (XLA's analysis; None where unavailable)."""
  try:
    stats = compiled.memory_analysis()
  except (NotImplementedError, jax.errors.JaxRuntimeError, AttributeError):
    return None
  if stats is None:
    return None
  return int(stats.argument_size_in_bytes + stats.output_size_in_bytes
             + stats.temp_size_in_bytes - stats.alias_size_in_bytes)


def _host_available() -> int | None:
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  try:
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (ValueError, OSError, AttributeError):
    return None


def capacity(devices) -> tuple[int | None, int, str]:
  """(bytes available to the program, how many copies of the per-device need it holds, where)."""
  device = devices[0]
  if device.platform == "cpu":
    return _host_available(), len(devices), "the host's available memory"
  try:
    limit = (device.memory_stats() or {}).get("bytes_limit")
  except (NotImplementedError, jax.errors.JaxRuntimeError):
    limit = None
  return limit, 1, f"{device.device_kind}'s memory"


def check_fits(compiled, devices, *, what: str) -> int | None:
  """Raises a one-line ValueError when `compiled` needs more than the devices hold; returns
  the bytes per device it needs (None when the backend gives no analysis)."""
  need = step_bytes(compiled)
  have, copies, where = capacity(devices)
  if need is None or have is None:
    return need
  if need * copies > have:
    per = f" ({copies} devices x {need / GIB:.1f} GiB)" if copies > 1 else ""
    raise ValueError(f"{what} needs {need * copies / GIB:.1f} GiB{per} but {where} is "
                     f"{have / GIB:.1f} GiB; {FIXES}")
  return need
