r"""MFCI ablation in the shape of the paper's Table 1, on the synthetic world's Same-Video subset.

  python benchmarks/mfci_ablation.py --workdir /tmp/mfci_ablation [--config configs/mfci.py:runlocal]
      [--single-steps 400] [--fused-steps 250] [--variants rb6,rb6_dv,rb6_sa2d_dv] [--vgg-baseline]
      [--single-checkpoint RUN/checkpoints/400]

1. Trains the single-frame baseline (stage "single" only) once, or takes it from
   --single-checkpoint -> row "single-frame (MSE + GAN)"; with --vgg-baseline a second one with
   L_VGG -> "single-frame (MSE + VGG + GAN)".
2. Trains each fused variant's stage "fused" from that frozen baseline (`init_from` with
   `init_groups=("single",)`), so every variant shares the same preliminary features.
3. Evaluates everything on the same held-out clips and writes `table.md` (and `table.json`):
   PSNR, SSIM, masked SSIM, masked PSNR and the temporal warping error E_temp. The paper's VFID
   column is not reproduced (I3D features of 64x64 eight-frame clips say little).

Every run keeps its own workdir under --workdir, so an interrupted ablation resumes where it
stopped. Speed: on a 2-core CPU one fused variant of the runlocal config takes ~6-10 minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax import config_utils  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax import evals  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.evals import common as evals_common  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.train import loop  # noqa: E402  pylint: disable=g-import-not-at-top

# name -> (table label, config overrides of the fused stage); the paper's Table 1 rows.
VARIANTS = {
    "rb6": ("MSE + VGG + Fusion_RB6", {"model.fusion": "rb6", "model.temporal_ranges": ()}),
    "rb6_dv3": ("MSE + VGG + Fusion_RB6 + D_V^3", {"model.fusion": "rb6",
                                                  "model.temporal_ranges": (3,)}),
    "rb6_dv": ("MSE + VGG + Fusion_RB6 + D_V", {"model.fusion": "rb6"}),
    "avg_dv": ("MSE + VGG + Fusion_Avg + D_V", {"model.fusion": "avg"}),
    "max_dv": ("MSE + VGG + Fusion_Max + D_V", {"model.fusion": "max"}),
    "sa3d_rb6_dv": ("MSE + VGG + Fusion_SA3D+RB6 + D_V", {"model.fusion": "sa3d_rb6"}),
    "rb6_sa2d_dv": ("MSE + VGG + Fusion_RB6+SA2D + D_V", {"model.fusion": "rb6_sa2d"}),
}
METRICS = ("psnr", "ssim", "m_ssim", "m_psnr", "tempe")


def make_config(base: str, overrides: dict, sets=()):
  """Config `base` with the command-line `sets` ((key, text) pairs), then `overrides` (values)."""
  config = config_utils.load_config(base, sets)
  for key, value in overrides.items():
    config_utils.apply_override(config, key, repr(value) if isinstance(value, tuple) else str(value))
  return config


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains (or resumes) one run and returns its final evaluation."""
  result = loop.train(config, workdir)
  if result.eval_results is None:     # already finished earlier: read its evaluation
    path = evals_common.results_path(workdir, evals.SYSTEM, result.step)
    if not os.path.isfile(path):      # a workdir written before eval/system/ existed
      path = os.path.join(workdir, evals_common.EVAL_DIR, f"{result.step}.json")
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  return result.eval_results


def train_single(base: str, workdir: str, steps: int, vgg: float) -> dict:
  """Stage "single" only (the fused stage gets 0 steps)."""
  config = make_config(base, {"train.steps": steps, "schedule.single_fraction": 1.0,
                              "loss.single_vgg": vgg})
  return train_and_evaluate(config, workdir)


def train_fused(base: str, workdir: str, single_dir: str, steps: int, overrides: dict) -> dict:
  """Stage "fused" only, from the frozen baseline of `single_dir` (a workdir or checkpoint)."""
  config = make_config(base, {"train.steps": steps, "schedule.single_fraction": 0.0, **overrides})
  config.init_from = single_dir
  config.init_groups = ("single",)
  return train_and_evaluate(config, workdir)


def table(rows: list[tuple[str, dict, str]]) -> str:
  """Markdown table: one row per (label, eval results, which output)."""
  head = "| variant | PSNR | SSIM | masked SSIM | masked PSNR | E_temp (x1e3) |\n|---|---|---|---|---|---|\n"
  lines = []
  for label, results, output in rows:
    values = [results[f"{m}/{output}"] for m in METRICS]
    lines.append(f"| {label} | {values[0]:.2f} | {values[1]:.4f} | {values[2]:.4f} | "
                 f"{values[3]:.2f} | {1e3 * values[4]:.3f} |")
  return head + "\n".join(lines) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--config", default="configs/mfci.py:runlocal")
  parser.add_argument("--single-steps", type=int, default=400)
  parser.add_argument("--fused-steps", type=int, default=250)
  parser.add_argument("--variants", default=",".join(VARIANTS),
                      help=f"comma-separated subset of {', '.join(VARIANTS)}")
  parser.add_argument("--single-checkpoint", default="",
                      help="use this checkpoint's baseline (e.g. RUN/checkpoints/400 of a runlocal "
                           "run at the end of its single stage) instead of training one")
  parser.add_argument("--vgg-baseline", action="store_true",
                      help="also train the single-frame baseline with L_VGG (MSE + VGG row)")
  args = parser.parse_args(argv)
  names = [v for v in args.variants.split(",") if v]
  unknown = [v for v in names if v not in VARIANTS]
  if unknown:
    parser.error(f"unknown variants {unknown}; allowed: {', '.join(VARIANTS)}")
  if not flags.FLAGS.is_parsed():   # grain's data workers read absl flags
    flags.FLAGS(["mfci_ablation"])
  os.makedirs(args.workdir, exist_ok=True)
  single_dir = args.single_checkpoint
  rows = []
  if not single_dir:
    single_dir = os.path.join(args.workdir, "single")
    rows.append(("single-frame (MSE + GAN)",
                 train_single(args.config, single_dir, args.single_steps, 0.0), "single"))
  if args.vgg_baseline:
    results = train_single(args.config, os.path.join(args.workdir, "single_vgg"),
                           args.single_steps, 0.2)
    rows.append(("single-frame (MSE + VGG + GAN)", results, "single"))
  for name in names:
    label, overrides = VARIANTS[name]
    results = train_fused(args.config, os.path.join(args.workdir, name), single_dir,
                          args.fused_steps, overrides)
    if not rows:   # the frozen baseline's own scores, as every fused run evaluates it too
      rows.append(("single-frame (MSE + GAN)", results, "single"))
    rows.append((label, results, "fused"))
  text = table(rows)
  with open(os.path.join(args.workdir, "table.md"), "w", encoding="utf-8") as f:
    f.write(text)
  with open(os.path.join(args.workdir, "table.json"), "w", encoding="utf-8") as f:
    json.dump([{"variant": label, "output": out, **res} for label, res, out in rows], f, indent=2)
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
