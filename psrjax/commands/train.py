"""Train a system: `psrjax train --config configs/x.py[:arg] --workdir DIR [--config.a.b=v]`.

Re-running with the same workdir resumes from its latest checkpoint. Exit codes: 0 done (or
stopped by SIGTERM after saving), 1 stopped on a non-finite loss, 2 bad input.

Compiled steps are kept in JAX's persistent compilation cache (`--compilation-cache DIR`,
default $PSRJAX_CACHE_DIR or ~/.cache/psrjax/jax; `--compilation-cache off` disables it), so
a rerun or a resume skips most compilation. `--config.train.profile_steps="(10, 5)"` writes a
jax.profiler trace of steps 11..15 into DIR/profile (TensorBoard: `--logdir DIR`, Profile tab).

Multi-process runs start the same command in every process: inside SLURM `srun` and on Cloud
TPU pod workers the process group is read from the environment; elsewhere give
`--coordinator HOST:PORT --num-processes N --process-id I` (see psrjax/train/distributed.py).
"""
from __future__ import annotations

import sys

from psrjax import commands
from psrjax import config_utils
from psrjax.train import distributed


def add_arguments(parser) -> None:
  parser.add_argument("--config", required=True,
                      help="config file and argument, e.g. configs/psrnet.py:runlocal")
  parser.add_argument("--workdir", required=True,
                      help="output directory (checkpoints, metrics, samples, eval), created with "
                           "its missing parents; local or a bucket URL such as gs://bucket/run")
  commands.add_cache_argument(parser)
  distributed.add_arguments(parser)


def run(args) -> int:
  group = distributed.resolve(coordinator=args.coordinator, num_processes=args.num_processes,
                              process_id=args.process_id)
  config = config_utils.load_config(args.config, args.config_overrides)
  distributed.initialize(group)
  commands.configure_compilation_cache(args.compilation_cache)  # Before any JAX computation.
  from psrjax.train import loop  # pylint: disable=g-import-not-at-top  # JAX after parsing.
  try:
    result = loop.train(config, args.workdir)
  except loop.NonFiniteLossError as e:
    print(f"psrjax train: {e}", file=sys.stderr)
    return 1
  if result.preempted:
    print(f"psrjax train: stopped at step {result.step}; checkpoint saved in {args.workdir}")
  return 0
