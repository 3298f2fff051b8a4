"""Benchmark one train step and the input pipeline: `psrjax bench --config configs/x.py[:arg]
[--steps N] [--json]`.

Compiles the train step of the first stage (or `--stage NAME`) ahead of time and reports
compile time, median step time over N steps, examples/s, XLA cost-analysis FLOPs per step,
achieved FLOP/s, the devices' measured peak (a matmul probe in `train.compute_dtype`), MFU and
the compiled step's memory (peak, temporaries, arguments, outputs); then the examples/s of the
real train pipeline with the configured `train.data_workers` and `train.prefetch`, and the bytes
per example that travel to the devices (see psrjax/train/benchmark.py). `--json` prints one
JSON object whose first keys are step_time_s, examples_per_s, pipeline_examples_per_s,
compile_s, flops_per_step, achieved_flops, peak_flops, mfu, memory_bytes, temp_bytes,
argument_bytes, output_bytes, transfer_bytes_per_example. Writes nothing but the compilation
cache. Example:

  psrjax bench --config configs/psrnet.py:runlocal --steps 5
"""
from __future__ import annotations

import json

from psrjax import commands
from psrjax import config_utils
from psrjax.train import distributed


def add_arguments(parser) -> None:
  parser.add_argument("--config", required=True,
                      help="config file and argument, e.g. configs/psrnet.py:runlocal")
  parser.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
  parser.add_argument("--warmup", type=int, default=1, help="untimed steps after compiling")
  parser.add_argument("--stage", default=None,
                      help="stage to benchmark (default: the first stage with steps)")
  parser.add_argument("--probe-size", type=int, default=None,
                      help="side of the peak-FLOP/s matmul probe (default by platform)")
  parser.add_argument("--pipeline-batches", type=int, default=8,
                      help="timed batches of the input pipeline (after a warm-up)")
  parser.add_argument("--json", action="store_true", help="print one JSON object")
  commands.add_cache_argument(parser)
  distributed.add_arguments(parser)


def run(args) -> int:
  group = distributed.resolve(coordinator=args.coordinator, num_processes=args.num_processes,
                              process_id=args.process_id)
  config = config_utils.load_config(args.config, args.config_overrides)
  distributed.initialize(group)
  commands.configure_compilation_cache(args.compilation_cache)
  import jax  # pylint: disable=g-import-not-at-top  # JAX after parsing.
  from psrjax.train import benchmark  # pylint: disable=g-import-not-at-top
  result = benchmark.benchmark(config, steps=args.steps, stage=args.stage, warmup=args.warmup,
                               probe_size=args.probe_size,
                               pipeline_batches=args.pipeline_batches)
  if jax.process_index() == 0:
    print(json.dumps(result.as_json()) if args.json else benchmark.format_result(result),
          flush=True)
  return 0
