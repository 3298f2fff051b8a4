r"""D²G-Net's Table 2 ablation (w/o D²G, w/o HybridTex, w/o Pose cond, full) beside Everybody
Dance Now, vid2vid, pix2pixHD and Liquid Warping GAN of the same data, on the per-person held-out
segment.

  python benchmarks/d2gnet_ablation.py --workdir runs/d2gnet_ablation \
      --init-from runs/d2gnet_uv [--config configs/d2gnet.py:runlocal] [--steps 3000] \
      [--variants full,no_d2g,no_hybrid,no_pose] [--baselines edn,pix2pixhd,vid2vid,lwgan] \
      [--baselines lwgan_uv --surface-from runs/d2gnet_uv2d] \
      [--reuse full=runs/d2gnet --reuse edn=runs/edn]
      [--fid-weights pt_inception-2015-12-05.pth] [--seeds 3]

Every D²G-Net variant trains the same config for the same steps from the same pre-trained UV
generator (`--init-from`, `psrjax train --config configs/d2gnet.py:runlocal,pretrain`) with one
change (VARIANTS): "w/o D²G" renders the static texture (I_syn = Ĩ_syn), "w/o HybridTex" has
an RGB texture (3 channels), "w/o Pose cond" does not feed the pose label to D²G-Net. The
baselines train their own runlocal configs on the same person (`configs/edn.py:runlocal`,
`configs/pix2pixhd.py:runlocal`, `configs/vid2vid.py:runlocal`) for their configs' steps, or
`NAME:STEPS` for STEPS (e.g. `edn:12000`, as many as D²G-Net's wall time buys). Liquid Warping
GAN, a model of every person, learns from pairs of the same person's training frames and drives
each held-out run from the person's first frame (`configs/lwgan.py:runlocal,person`), its body
conditions from the synthetic person's exact surface maps ("lwgan") or from the maps G_uv
predicts from the keypoints and the person mask ("lwgan_uv", `--surface-from WORKDIR` of
`psrjax train --config configs/d2gnet.py:runlocal,pretrain,label2d`: an estimated body, as the
paper's LWG had from HMR); as in the paper (Table 1 lists LWG "for reference only"), no
ordering is claimed for it. Every run also evaluates R-SSIM /
R-PSNR (`robust_pose`: the 10 held-out poses farthest from 3,000 training poses) and, with
`--fid-weights`, FID. Runs keep their workdirs under --workdir (an interrupted ablation
resumes, a finished run is read back; `--reuse NAME=WORKDIR` starts a row from a copy of a
finished run of the same config, e.g. the runlocal runs of docs/systems/d2gnet.md, and computes the
evaluations it lacks on its last checkpoint); the table (SSIM, PSNR, LPIPS, R-SSIM, R-PSNR, E_temp,
the synthesized person's mask IoU, steps and wall time of each run) goes to `table.md` and
`table.json` there, with the machine and the command. `--seeds N` runs every row N times (a
`--reuse` copy is seed 0) and judges the paper's orderings (CLAIMS: Table 2's full model ahead of
each ablation on SSIM and PSNR, Table 1's orderings of D²G-Net, vid2vid and Everybody Dance Now)
against the seeds' noise
(benchmarks/seeds.py).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import seeds  # noqa: E402  pylint: disable=g-import-not-at-top
from benchmarks.results_table import completed  # noqa: E402  pylint: disable=g-import-not-at-top
from benchmarks.cocovid_ablation import make_config, parse_baselines  # noqa: E402
from psrjax.train import loop  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.train import offline_eval  # noqa: E402  pylint: disable=g-import-not-at-top

# name -> (row label, config overrides); Table 2's columns.
VARIANTS = {
    # No D²G-Net, so no moving average of its weights either.
    "no_d2g": ("w/o D²G", {"model.d2g": False,
                           "train.ema.groups": ("uv", "texture", "background")}),
    "no_hybrid": ("w/o HybridTex", {"model.texture_channels": 3}),
    "no_pose": ("w/o Pose cond", {"model.pose_condition": False}),
    "full": ("D²G-Net (full)", {}),
}
BASELINES = {"edn": ("Everybody Dance Now", "configs/edn.py:runlocal"),
             "pix2pixhd": ("pix2pixHD", "configs/pix2pixhd.py:runlocal"),
             "vid2vid": ("vid2vid", "configs/vid2vid.py:runlocal"),
             "lwgan": ("Liquid Warping GAN (reference)", "configs/lwgan.py:runlocal,person"),
             "lwgan_uv": ("Liquid Warping GAN, G_uv's maps (reference)",
                          "configs/lwgan.py:runlocal,person")}
# Baselines that read the maps a label2d UV pre-training predicts (`--surface-from`).
PREDICTED = ("lwgan_uv",)
METRICS = (("ssim", "SSIM"), ("psnr", "PSNR"), ("lpips", "LPIPS"), ("r_ssim", "R-SSIM"),
           ("r_psnr", "R-PSNR"), ("tempe", "E_temp"), ("mask_iou", "mask IoU"))
ROBUST = dict(type="robust_pose", every=0, m=10, train_examples=3000)
# The paper's Table 2 (the ablation: SSIM, PSNR) and Table 1 (beside EDN: the robust-pose scores
# and the temporal error too).
PAPER = {"full": dict(ssim=0.933, psnr=37.44, r_ssim=0.930, r_psnr=36.99, tempe=0.41),
         "no_d2g": dict(ssim=0.913, psnr=36.35), "no_hybrid": dict(ssim=0.921, psnr=36.87),
         "no_pose": dict(ssim=0.918, psnr=36.62),
         "edn": dict(ssim=0.911, psnr=37.10, r_ssim=0.906, r_psnr=36.41, tempe=0.61),
         "vid2vid": dict(ssim=0.924, psnr=36.60, r_ssim=0.915, r_psnr=35.91, tempe=0.48)}
CLAIMS = (seeds.paper_claims("Table 2", PAPER, [("full", n) for n in VARIANTS if n != "full"],
                             ("ssim", "psnr"))
          + seeds.paper_claims("Table 1", PAPER,
                               [("full", "edn"), ("full", "vid2vid"), ("vid2vid", "edn")],
                               ("ssim", "psnr", "r_ssim", "r_psnr", "tempe"), lower=("tempe",)))


def run(workdir: str, config) -> dict:
  """The run's final `system` and `robust_pose` (and `fid`) results, its steps and, when it
  was trained here, its wall time: trained (or resumed to its end), evaluations a finished run
  lacks computed on its last checkpoint, or read back from a finished workdir's results.json."""
  return seeds.read_or_run(workdir, lambda: _train(workdir, config))


def _train(workdir: str, config) -> dict:
  """Trains (or resumes) the run: its steps, its wall time when trained from scratch here, and
  its evaluations (those it lacks computed on its last checkpoint)."""
  fresh = not os.path.isdir(os.path.join(workdir, "checkpoints"))
  start = time.time()
  result = completed(loop.train(config, workdir))
  minutes = (time.time() - start) / 60.0
  values = {"steps": float(result.step)}
  if fresh:   # trained from scratch in this call
    values["minutes"] = minutes
  for name in ("system",) + tuple(n for n in config.evals if n != "system"):
    path = os.path.join(workdir, "eval", name, f"{result.step}.json")
    if not os.path.exists(path):
      offline_eval.evaluate_checkpoint(config, workdir, only=(name,))
    with open(path) as f:
      found = json.load(f)
    keep = (lambda k: True) if name == "system" else (lambda k: k.startswith("r_") or k == "fid")
    values.update({k: float(v) for k, v in found.items() if keep(k)})
  return values


def columns(rows: list[seeds.Row]) -> list[tuple[str, str]]:
  """METRICS, FID when a run has it, steps and minutes."""
  fid = (("fid", "FID"),) * any("fid" in r for row in rows for r in row.seeds)
  return list(METRICS + fid + (("steps", "steps"), ("minutes", "minutes")))


def with_evals(config, fid_weights: str):
  config.evals.robust_pose = dict(ROBUST)
  if fid_weights:
    config.evals.fid = dict(type="fid", every=0, weights=fid_weights)
  return config


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--config", default="configs/d2gnet.py:runlocal")
  parser.add_argument("--init-from", default="",
                      help="the pre-trained UV generator's workdir (the D²G-Net variants')")
  parser.add_argument("--steps", type=int, default=0, help="every variant's budget (0: config's)")
  parser.add_argument("--variants", default=",".join(VARIANTS))
  parser.add_argument("--baselines", default=",".join(BASELINES),
                      help="NAME[:STEPS],... of " + ", ".join(BASELINES))
  parser.add_argument("--reuse", action="append", default=[], metavar="NAME=WORKDIR",
                      help="start row NAME (a variant or baseline) from a copy of a finished "
                           "run of the same config (its missing evaluations are computed)")
  parser.add_argument("--fid-weights", default="")
  parser.add_argument("--surface-from", default="",
                      help="a label2d UV pre-training's workdir (the lwgan_uv row's maps)")
  seeds.add_flag(parser)
  seeds.add_ledger_flags(parser)
  args = parser.parse_args(argv)
  ledger = seeds.open_ledger(parser, args)
  for item in args.reuse:
    name, _, source = item.partition("=")
    target = os.path.join(args.workdir, name)
    if not os.path.exists(target):
      shutil.copytree(source, target)
  names = [v for v in args.variants.split(",") if v]
  bad = [v for v in names if v not in VARIANTS]
  if bad:
    parser.error(f"unknown variants {bad}; known: {', '.join(VARIANTS)}")
  if names and not args.init_from:
    parser.error("the D²G-Net variants start from a pre-trained UV generator: give --init-from "
                 "WORKDIR of `psrjax train --config configs/d2gnet.py:runlocal,pretrain` (or "
                 "--variants '' for baselines alone)")
  baselines = parse_baselines(parser, args.baselines, BASELINES)
  seeds.check_rows(parser, args, names + [name for name, *_ in baselines])
  def row(name, label, spec, overrides, steps):
    def config_of(seed):
      return with_evals(make_config(spec, {**overrides, "seed": seed}, (), steps),
                        args.fid_weights)
    return seeds.run_row(args.workdir, name, label, lambda wd, s: run(wd, config_of(s)),
                         seeds.count(args, name), ledger, config_of)
  rows = [row(name, VARIANTS[name][0], args.config,
              {**VARIANTS[name][1], "init_from": args.init_from}, args.steps) for name in names]
  predicted = {"data.surface_from": args.surface_from}
  if any(name.startswith(PREDICTED) for name, *_ in baselines) and not args.surface_from:
    parser.error("lwgan_uv reads the maps a UV pre-training predicts: give --surface-from "
                 "WORKDIR of `psrjax train --config configs/d2gnet.py:runlocal,pretrain,label2d`")
  rows += [row(name, label, spec, predicted if name.startswith(PREDICTED) else {}, steps)
           for name, label, spec, steps in baselines]
  budget = args.steps or "the config's"
  variants = (f"`{args.config}`, {budget} steps per D²G-Net variant from `{args.init_from}`; "
              if names else "")
  header = f"{variants}baselines at their runlocal configs; held-out segment"
  seeds.write_table(args.workdir, header, "d2gnet_ablation.py", argv or sys.argv[1:], rows,
                    columns(rows), CLAIMS, ledger=ledger)
  return 0


if __name__ == "__main__":
  sys.exit(main())
