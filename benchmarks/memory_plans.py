"""The memory plans of docs/scaling.md: every paper config on every device kind (`psrjax plan`), as one
markdown table (per-device GiB, verdict, fix). Nothing is compiled; ~1 min per config here.

  python benchmarks/memory_plans.py [--devices 1,8] [--configs pix2pixhd,psrnet] [--remat none]

`--remat MODE` plans every config under `model.remat=MODE` (default: the config's, "auto" in the
paper configs: the lightest mode that fits each device).
"""
from __future__ import annotations

import argparse
import glob
import os

from psrjax import config_utils
from psrjax.train import footprint
from psrjax.train import plan

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICES = ("h100", "a100-40", "v4", "v5e", "v5p")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--devices", default="1,8")
  parser.add_argument("--configs", default="",
                      help="names in configs/ (default: every config file)")
  parser.add_argument("--remat", default="", help="model.remat for every config ('': its own)")
  args = parser.parse_args()
  names = args.configs.split(",") if args.configs else sorted(
      os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, "configs", "*.py")))
  counts = [int(n) for n in args.devices.split(",")]
  print("| config (batch, dtype) | devices | " + " | ".join(DEVICES) + " |")
  print("|---|---|" + "---|" * len(DEVICES))
  for name in names:
    config = config_utils.load_config(os.path.join(REPO, "configs", f"{name}.py"))
    if args.remat:
      config.model.remat = args.remat
    fp = footprint.of_config(config)
    for n in counts:
      cells = []
      for kind in DEVICES:
        p = plan.plan(fp, config, kind, n)
        cells.append(f"{p.total / plan.GIB:.1f} GiB {p.verdict}" + (f" ({p.fix})" if p.fix else ""))
      print(f"| {name} ({config.train.batch_size}, {config.train.compute_dtype}) | {n} | "
            + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
  main()
