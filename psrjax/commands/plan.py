"""Memory plans: does a config's train step fit N devices of a kind? `psrjax plan --config
configs/x.py[:arg] [--device h100,v5e] [--devices 1,8] [--json]`.

Prints, per device kind and count, the per-device memory of the parameters, optimizer state,
EMA, gradients, batch and activations at the config's global batch under its sharding, remat and
compute dtype ("auto" as on that device: bfloat16), whether it fits ("yes", "tight", "no") and
the change that would make it fit. Nothing is compiled or run; the activation figure is an
estimate (psrjax/train/plan.py says how each figure is obtained and how it compared with a GPU's
measured peak). Example:

  psrjax plan --config configs/psrnet.py --device h100,a100-40,v4,v5e --devices 1,8
"""
from __future__ import annotations

import dataclasses
import json

from psrjax import config_utils


def add_arguments(parser) -> None:
  parser.add_argument("--config", required=True,
                      help="config file and argument, e.g. configs/psrnet.py")
  parser.add_argument("--device", default="h100,a100-40,v4,v5e,v5p",
                      help="device kinds, comma-separated (h100, h200, a100-40, a100-80, v4, "
                           "v5e, v5p)")
  parser.add_argument("--devices", default="1,8",
                      help="device counts, comma-separated (the global batch is split over them)")
  parser.add_argument("--json", action="store_true", help="print one JSON object per plan")


def _counts(text: str) -> list[int]:
  try:
    counts = [int(v) for v in text.split(",")]
  except ValueError:
    counts = []
  if not counts or min(counts) < 1:
    raise ValueError(f"--devices {text!r} must be positive integers, comma-separated (e.g. 1,8)")
  return counts


def run(args) -> int:
  from psrjax.train import footprint  # pylint: disable=g-import-not-at-top  # JAX after parsing.
  from psrjax.train import plan  # pylint: disable=g-import-not-at-top
  config = config_utils.load_config(args.config, args.config_overrides)
  kinds, counts = args.device.split(","), _counts(args.devices)
  unknown = [k for k in kinds if k not in plan.DEVICES]
  if unknown:
    raise ValueError(f"unknown --device {', '.join(unknown)}; use {', '.join(plan.DEVICES)}")
  platform = "tpu" if all(k.startswith("v") for k in kinds) else "gpu"
  fp = footprint.of_config(config, platform=platform)
  plans = [plan.plan(fp, config, kind, n) for kind in kinds for n in counts]
  if args.json:
    for p in plans:
      print(json.dumps({**dataclasses.asdict(p), "total": p.total, "fits": p.verdict}))
  else:
    print(plan.format_table(args.config, plans))
  return 0
