"""Multi-process (multi-host) start-up: `jax.distributed.initialize` from flags or environment.

`psrjax train` calls `initialize` before JAX touches a device. Where the process group comes
from, in this order:

- explicit flags, all three together: `--coordinator HOST:PORT --num-processes N
  --process-id I` (process I of N; process 0 runs the coordinator service on HOST:PORT);
- SLURM: a job step with more than one task (`srun`, `SLURM_NTASKS > 1`); JAX reads the SLURM
  variables (coordinator on the step's first node, on GPUs one device per task);
- Cloud TPU VMs (libtpu installed and TPU chips present): JAX reads the worker list from the
  TPU metadata, so every worker of a pod runs the same command (a TPU VM that JAX finds no
  worker list for, e.g. a Colab runtime, runs as one process);
- otherwise one process: nothing to initialise.

After start-up every process sees all devices of the job (`jax.devices()`) and its own
(`jax.local_devices()`); the trainer builds one mesh over all of them, each process reads the
data shard of the batch rows its devices hold (`partitioning.data_shard`), process 0 writes
logs, samples and evaluation results, and every process takes part in the (collective) orbax
checkpoints.
"""
from __future__ import annotations

import dataclasses
import glob
import importlib.util
import logging
import os
from typing import Mapping

import jax


@dataclasses.dataclass(frozen=True)
class ProcessGroup:
  """How this process joins the job (None fields: JAX detects them from the environment)."""
  source: str  # "flags" | "slurm" | "tpu"
  coordinator: str | None = None  # "HOST:PORT" of process 0's coordinator service.
  num_processes: int | None = None  # processes in the job.
  process_id: int | None = None  # this process, 0..num_processes-1.


def add_arguments(parser) -> None:
  """The `--coordinator/--num-processes/--process-id` flags."""
  parser.add_argument("--coordinator", default=None,
                      help="HOST:PORT of process 0's coordinator (multi-process runs without "
                           "SLURM or Cloud TPU; with --num-processes and --process-id)")
  parser.add_argument("--num-processes", type=int, default=None,
                      help="number of processes in the job (with --coordinator)")
  parser.add_argument("--process-id", type=int, default=None,
                      help="index of this process, 0..num-processes-1 (with --coordinator)")


def _check_coordinator(coordinator: str) -> None:
  host, _, port = coordinator.rpartition(":")
  if not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise ValueError(f"--coordinator {coordinator!r} must be HOST:PORT (e.g. 10.0.0.2:8476)")


def _slurm_tasks(env: Mapping[str, str]) -> int | None:
  keys = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID",
          "SLURM_LOCALID")
  if not all(k in env for k in keys):
    return None
  return int(env["SLURM_NTASKS"])


def on_cloud_tpu_vm() -> bool:
  """libtpu is installed and the machine has TPU chips (accel or vfio devices)."""
  if importlib.util.find_spec("libtpu") is None:
    return False
  return bool(glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"))


def resolve(*, coordinator: str | None = None, num_processes: int | None = None,
            process_id: int | None = None, env: Mapping[str, str] | None = None,
            tpu: bool | None = None) -> ProcessGroup | None:
  """The process group to join, or None for a single process (one-line errors, no JAX calls)."""
  env = os.environ if env is None else env
  given = {"--coordinator": coordinator, "--num-processes": num_processes,
           "--process-id": process_id}
  slurm = _slurm_tasks(env)
  if any(v is not None for v in given.values()):
    missing = [k for k, v in given.items() if v is None]
    if missing:
      raise ValueError(f"--coordinator, --num-processes and --process-id go together; missing "
                       f"{', '.join(missing)}")
    _check_coordinator(coordinator)
    if num_processes < 1 or not 0 <= process_id < num_processes:
      raise ValueError(f"--process-id {process_id} must be in 0..{num_processes - 1} "
                       f"(--num-processes {num_processes})")
    if slurm is not None and slurm != num_processes:
      raise ValueError(f"--num-processes {num_processes} disagrees with SLURM_NTASKS={slurm}; "
                       "drop the flags inside srun or make them agree")
    return ProcessGroup("flags", coordinator, num_processes, process_id)
  if slurm is not None and slurm > 1:
    return ProcessGroup("slurm")
  if on_cloud_tpu_vm() if tpu is None else tpu:
    return ProcessGroup("tpu")
  return None


def initialize(group: ProcessGroup | None, *, timeout_s: int = 300) -> None:
  """Joins `group` (None: single process) and checks the process count JAX reports."""
  if group is None:
    return
  try:
    jax.distributed.initialize(coordinator_address=group.coordinator,
                               num_processes=group.num_processes, process_id=group.process_id,
                               initialization_timeout=timeout_s)
  except ValueError as e:
    if group.source != "tpu":
      raise
    # JAX found no TPU worker list: a single TPU VM, which needs no process group.
    logging.info("single TPU VM (%s); running as one process", e)
    return
  if group.num_processes is not None and jax.process_count() != group.num_processes:
    raise ValueError(f"JAX reports {jax.process_count()} processes but --num-processes is "
                     f"{group.num_processes}")
