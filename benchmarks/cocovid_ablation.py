r"""CoCosNet video pose transfer ablation in the shape of the paper's Table 1, beside pix2pixHD.

  python benchmarks/cocovid_ablation.py --workdir /tmp/cocovid_ablation \
      [--config configs/cocovid.py:runlocal] [--steps 1500] [--variants full,no_ts,...] \
      [--baseline configs/pix2pixhd.py:runlocal] [--set loss.rec=0 ...] \
      [--fid-weights pt_inception-2015-12-05.pth] [--seeds 3]

Every variant trains the same config for the same number of steps (`--steps`, the budget) with
one change (VARIANTS, the table's rows: "w/o L_ts" moves the temporal stage's steps to the first
stage, "w/o L_face" the face stage's; "w/o L_D", "w/o L_rec", "w/o L_per", "w/o L_context" set
the term's weight to 0 -- L_per is the VGG feature loss against the frame, Eq. 12, here
CoCosNet's VGG feature matching and its relu4_2 MSE together). `--baseline` adds the pix2pixHD
of the same data (its own config and step count, `--baseline-steps`). Each run evaluates on
the held-out segment at its end; the table holds SSIM, PSNR, LPIPS (the paper's Table 1 reports
SSIM, IS, FID and LPIPS), SD and E_temp, and FID and IS when `--fid-weights` names pytorch-fid's
InceptionV3 file (nothing is downloaded). Runs keep their workdirs under --workdir, so an
interrupted ablation resumes; a finished run is not trained again. `--seeds N` runs every row N
times and judges the paper's orderings (CLAIMS: Table 1's Full ahead of each ablation on SSIM and
LPIPS, Table 2's "Ours" against pix2pixHD) against the seeds' noise (benchmarks/seeds.py).
Writes `table.md` and `table.json` there and prints the table and the claims with the machine
and the command.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import seeds  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax import config_utils  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.train import loop  # noqa: E402  pylint: disable=g-import-not-at-top

# name -> (row label, config overrides); Table 1's rows.
VARIANTS = {
    "full": ("Full", {}),
    "no_ts": ("w/o L_ts", {"schedule.temporal_fraction": 0.0}),
    "no_face": ("w/o L_face", {"schedule.face_fraction": 0.0}),
    "no_domain": ("w/o L_D", {"loss.domain": 0.0}),
    "no_rec": ("w/o L_rec", {"loss.rec": 0.0}),
    "no_per": ("w/o L_per", {"loss.vgg_fm": 0.0, "loss.perceptual": 0.0}),
    "no_context": ("w/o L_context", {"loss.contextual": 0.0}),
}
METRICS = ("ssim", "psnr", "lpips", "sd", "tempe")
FID_METRICS = ("fid/fid", "is/is")
BASELINE = "pix2pixhd"
# The paper's Table 1 (the ablation) and Table 2 ("Ours", the full model, beside pix2pixHD: it
# has the higher SSIM there, the full model the better LPIPS, PSNR and SD).
PAPER = {"full": dict(ssim=0.835, lpips=0.035, psnr=23.472, sd=21.183),
         "no_ts": dict(ssim=0.827, lpips=0.038), "no_face": dict(ssim=0.814, lpips=0.042),
         "no_domain": dict(ssim=0.796, lpips=0.053), "no_rec": dict(ssim=0.810, lpips=0.044),
         "no_per": dict(ssim=0.803, lpips=0.051), "no_context": dict(ssim=0.787, lpips=0.047),
         BASELINE: dict(ssim=0.841, lpips=0.044, psnr=22.725, sd=20.650)}
CLAIMS = (seeds.paper_claims("Table 1", PAPER, [("full", n) for n in VARIANTS if n != "full"],
                             ("ssim", "lpips"), lower=("lpips",))
          + seeds.paper_claims("Table 2", PAPER, [("full", BASELINE)],
                               ("ssim", "lpips", "psnr", "sd"), lower=("lpips",)))


def make_config(spec: str, overrides: dict, sets=(), steps: int | None = None,
                fid_weights: str = ""):
  config = config_utils.load_config(spec, sets)
  for key, value in overrides.items():
    config_utils.apply_override(config, key, str(value))
  if steps:
    config.train.steps = steps
  config.train.eval_every = 0
  if fid_weights:
    config.evals.fid = dict(type="fid", every=0, weights=fid_weights)
    config.evals["is"] = dict(type="is", every=0, weights=fid_weights)
  return config


def run(workdir: str, config) -> dict:
  """The run's final evaluation: trained here, or read back from a finished workdir."""
  def train():
    return {k: float(v) for k, v in loop.train(config, workdir).eval_results.items()}
  return seeds.read_or_run(workdir, train)


def columns(fid: bool) -> list[tuple[str, str]]:
  return [(c, c) for c in METRICS + (FID_METRICS if fid else ())]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--config", default="configs/cocovid.py:runlocal")
  parser.add_argument("--steps", type=int, default=0, help="every variant's budget (0: config's)")
  parser.add_argument("--variants", default=",".join(VARIANTS))
  parser.add_argument("--baseline", default="configs/pix2pixhd.py:runlocal",
                      help="pix2pixHD config of the same data ('' for none)")
  parser.add_argument("--baseline-steps", type=int, default=0)
  parser.add_argument("--set", action="append", default=[], help="KEY=VALUE on every variant")
  parser.add_argument("--fid-weights", default="")
  seeds.add_flag(parser)
  args = parser.parse_args(argv)
  sets = [tuple(s.split("=", 1)) for s in args.set]
  unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
  if unknown:
    parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
  def row(name, label, spec, overrides, sets, steps):
    def train(workdir, seed):
      return run(workdir, make_config(spec, {**overrides, "seed": seed}, sets, steps,
                                      args.fid_weights))
    return seeds.run_row(args.workdir, name, label, train, args.seeds)
  rows = [row(name, VARIANTS[name][0], args.config, VARIANTS[name][1], sets, args.steps)
          for name in args.variants.split(",")]
  if args.baseline:
    rows.append(row(BASELINE, "pix2pixHD (baseline)", args.baseline, {}, (), args.baseline_steps))
  header = (f"`{args.config}`, {args.steps or 'the config''s'} steps per variant; "
            "held-out segment")
  seeds.write_table(args.workdir, header, "cocovid_ablation.py", argv or sys.argv[1:], rows,
                    columns(bool(args.fid_weights)), CLAIMS)
  return 0


if __name__ == "__main__":
  sys.exit(main())
