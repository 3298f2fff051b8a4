r"""CoCosNet video pose transfer ablation in the shape of the paper's Table 1, beside the Table 2
baselines (pix2pixHD, pix2pix, vid2vid) and Everybody Dance Now.

  python benchmarks/cocovid_ablation.py --workdir /tmp/cocovid_ablation \
      [--config configs/cocovid.py:runlocal] [--steps 1500] [--variants full,no_ts,...] \
      [--baselines pix2pixhd,pix2pix,vid2vid,edn:3000] [--set loss.rec=0 ...] \
      [--fid-weights pt_inception-2015-12-05.pth] [--seeds 3]

Every variant trains the same config for the same number of steps (`--steps`, the budget) with
one change (VARIANTS, the table's rows: "w/o L_ts" moves the temporal stage's steps to the first
stage, "w/o L_face" the face stage's; "w/o L_D", "w/o L_rec", "w/o L_per", "w/o L_context" set
the term's weight to 0 -- L_per is the VGG feature loss against the frame, Eq. 12, here
CoCosNet's VGG feature matching and its relu4_2 MSE together; beyond the paper's rows, "w/o the
warp loss" and "w/o CoordConv" take those parts out of the correspondence and "Full at the
paper's weights" undoes runlocal's two departures from them). `--baselines` adds rows of other
systems on the same person (BASELINES: their runlocal configs for their configs' steps, or
`NAME:STEPS`). Each run evaluates on
the held-out segment at its end; the table holds SSIM, PSNR, LPIPS (the paper's Table 1 reports
SSIM, IS, FID and LPIPS), SD and E_temp, and FID and IS when `--fid-weights` names pytorch-fid's
InceptionV3 file (nothing is downloaded). Runs keep their workdirs under --workdir, so an
interrupted ablation resumes; a finished run is not trained again. `--seeds N` runs every row N
times and judges the paper's orderings (CLAIMS: Table 1's Full ahead of each ablation on SSIM and
LPIPS, Table 2's "Ours" against pix2pixHD, pix2pix and vid2vid, and vid2vid against pix2pixHD)
against the seeds' noise (benchmarks/seeds.py).
Writes `table.md` and `table.json` there and prints the table and the claims with the machine
and the command.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import seeds  # noqa: E402  pylint: disable=g-import-not-at-top
from benchmarks.results_table import completed  # noqa: E402  pylint: disable=g-import-not-at-top
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
    # Not in Table 1: the correspondence's own parts and the config's departures from the
    # paper's weights (configs/cocovid.py:runlocal), each measured the same way.
    "no_warp": ("w/o the warp loss (not in Table 1)", {"loss.warp_self": 0.0}),
    "no_coordconv": ("w/o CoordConv (not in Table 1)", {"model.coordconv": False}),
    "paper_weights": ("Full at the paper's weights (warp_self 25, rec 1; not in Table 1)",
                      {"loss.warp_self": 25.0, "loss.rec": 1.0}),
}
METRICS = ("ssim", "psnr", "lpips", "sd", "tempe")
FID_METRICS = ("fid/fid", "is/is")
# Systems of the same person's frames, each at its own runlocal config: name -> (label, config).
BASELINES = {"pix2pixhd": ("pix2pixHD", "configs/pix2pixhd.py:runlocal"),
             "pix2pix": ("pix2pix", "configs/pix2pix.py:runlocal"),
             "vid2vid": ("vid2vid", "configs/vid2vid.py:runlocal"),
             "edn": ("Everybody Dance Now", "configs/edn.py:runlocal")}
# The paper's Table 1 (the ablation) and Table 2 ("Ours", the full model, beside pix2pixHD, which
# has the higher SSIM there, vid2vid and pix2pix; EDN is not in it).
PAPER = {"full": dict(ssim=0.835, lpips=0.035, psnr=23.472, sd=21.183),
         "no_ts": dict(ssim=0.827, lpips=0.038), "no_face": dict(ssim=0.814, lpips=0.042),
         "no_domain": dict(ssim=0.796, lpips=0.053), "no_rec": dict(ssim=0.810, lpips=0.044),
         "no_per": dict(ssim=0.803, lpips=0.051), "no_context": dict(ssim=0.787, lpips=0.047),
         "pix2pixhd": dict(ssim=0.841, lpips=0.044, psnr=22.725, sd=20.650),
         "pix2pix": dict(ssim=0.748, lpips=0.073, psnr=19.643, sd=18.476),
         "vid2vid": dict(ssim=0.839, lpips=0.038, psnr=23.169, sd=20.935)}
CLAIMS = (seeds.paper_claims("Table 1", PAPER,
                             [("full", n) for n in VARIANTS if n != "full" and n in PAPER],
                             ("ssim", "lpips"), lower=("lpips",))
          + seeds.paper_claims("Table 2", PAPER,
                               [("full", b) for b in ("pix2pixhd", "vid2vid", "pix2pix")]
                               + [("vid2vid", "pix2pixhd")],
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


def parse_baselines(parser, text: str, known: dict) -> list[tuple[str, str, str, int | None]]:
  """(row name, label, config, steps) of each `NAME[:STEPS]` in comma-separated `text`, NAME a
  key of `known` (name -> (label, config)); a parser error names the unknown ones."""
  items = [item for item in text.split(",") if item]
  bad = [item for item in items if item.partition(":")[0] not in known]
  if bad:
    parser.error(f"unknown baselines {bad}; known: {', '.join(known)}")
  out = []
  for item in items:
    name, _, steps = item.partition(":")
    label, spec = known[name]
    out.append((item.replace(":", "_"), f"{label}, {steps} steps" if steps else label, spec,
                int(steps) if steps else None))
  return out


def run(workdir: str, config) -> dict:
  """The run's final evaluation: trained here, or read back from a finished workdir."""
  def train():
    result = completed(loop.train(config, workdir))
    return {k: float(v) for k, v in result.eval_results.items()}
  return seeds.read_or_run(workdir, train)


def columns(fid: bool) -> list[tuple[str, str]]:
  return [(c, c) for c in METRICS + (FID_METRICS if fid else ())]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--config", default="configs/cocovid.py:runlocal")
  parser.add_argument("--steps", type=int, default=0, help="every variant's budget (0: config's)")
  parser.add_argument("--variants", default=",".join(VARIANTS))
  parser.add_argument("--baselines", default="pix2pixhd",
                      help="NAME[:STEPS],... of " + ", ".join(BASELINES) + " ('' for none)")
  parser.add_argument("--set", action="append", default=[], help="KEY=VALUE on every variant")
  parser.add_argument("--fid-weights", default="")
  seeds.add_flag(parser)
  seeds.add_ledger_flags(parser)
  args = parser.parse_args(argv)
  ledger = seeds.open_ledger(parser, args)
  sets = [tuple(s.split("=", 1)) for s in args.set]
  variants = [v for v in args.variants.split(",") if v]
  unknown = [v for v in variants if v not in VARIANTS]
  if unknown:
    parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
  baselines = parse_baselines(parser, args.baselines, BASELINES)
  seeds.check_rows(parser, args, variants + [name for name, *_ in baselines])
  def row(name, label, spec, overrides, sets, steps):
    def config_of(seed):
      return make_config(spec, {**overrides, "seed": seed}, sets, steps, args.fid_weights)
    return seeds.run_row(args.workdir, name, label, lambda wd, s: run(wd, config_of(s)),
                         seeds.count(args, name), ledger, config_of)
  rows = [row(name, VARIANTS[name][0], args.config, VARIANTS[name][1], sets, args.steps)
          for name in variants]
  rows += [row(name, label, spec, {}, (), steps) for name, label, spec, steps in baselines]
  budget = args.steps or "the config's"
  header = (f"`{args.config}`, {budget} steps per variant; "
            "held-out segment")
  seeds.write_table(args.workdir, header, "cocovid_ablation.py", argv or sys.argv[1:], rows,
                    columns(bool(args.fid_weights)), CLAIMS,
                    ledger=ledger)
  return 0


if __name__ == "__main__":
  sys.exit(main())
