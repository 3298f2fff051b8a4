r"""D²G-Net's Table 2 ablation (w/o D²G, w/o HybridTex, w/o Pose cond, full) beside Everybody
Dance Now and pix2pixHD of the same data, on the per-person held-out segment.

  python benchmarks/d2gnet_ablation.py --workdir runs/d2gnet_ablation \
      --init-from runs/d2gnet_uv [--config configs/d2gnet.py:runlocal] [--steps 3000] \
      [--variants full,no_d2g,no_hybrid,no_pose] [--baselines edn,pix2pixhd,edn:12000] \
      [--reuse full=runs/d2gnet --reuse edn=runs/edn]
      [--fid-weights pt_inception-2015-12-05.pth]

Every D²G-Net variant trains the same config for the same steps from the same pre-trained UV
generator (`--init-from`, `psrjax train --config configs/d2gnet.py:runlocal,pretrain`) with one
change (VARIANTS): "w/o D²G" renders the static texture (I_syn = Ĩ_syn), "w/o HybridTex" has
an RGB texture (3 channels), "w/o Pose cond" does not feed the pose label to D²G-Net. The
baselines train their own runlocal configs on the same person (`configs/edn.py:runlocal`,
`configs/pix2pixhd.py:runlocal`) for their configs' steps, or `NAME:STEPS` for STEPS (e.g. as
many as D²G-Net's wall time buys). Every run also evaluates R-SSIM /
R-PSNR (`robust_pose`: the 10 held-out poses farthest from 3,000 training poses) and, with
`--fid-weights`, FID. Runs keep their workdirs under --workdir (an interrupted ablation
resumes, a finished run is read back; `--reuse NAME=WORKDIR` starts a row from a copy of a
finished run of the same config, e.g. the runlocal runs of docs/systems/d2gnet.md, and computes the
evaluations it lacks on its last checkpoint); the table (SSIM, PSNR, LPIPS, R-SSIM, R-PSNR, E_temp,
the synthesized person's mask IoU, steps and wall time of each run) goes to `table.md` and
`table.json` there, with the machine and the command (`cocovid_ablation.write_table`).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.cocovid_ablation import make_config, write_table  # noqa: E402
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
             "pix2pixhd": ("pix2pixHD", "configs/pix2pixhd.py:runlocal")}
METRICS = (("ssim", "SSIM"), ("psnr", "PSNR"), ("lpips", "LPIPS"), ("r_ssim", "R-SSIM"),
           ("r_psnr", "R-PSNR"), ("tempe", "E_temp"), ("mask_iou", "mask IoU"))
ROBUST = dict(type="robust_pose", every=0, m=10, train_examples=3000)


def run(workdir: str, config) -> dict:
  """The run's final `system` and `robust_pose` (and `fid`) results, its steps and, when it
  was trained here, its wall time: trained (or resumed to its end), evaluations a finished run
  lacks computed on its last checkpoint, or read back from a finished workdir's results.json."""
  os.makedirs(workdir, exist_ok=True)
  done = os.path.join(workdir, "results.json")
  if os.path.exists(done):
    with open(done) as f:
      return json.load(f)
  fresh = not os.path.isdir(os.path.join(workdir, "checkpoints"))
  start = time.time()
  result = loop.train(config, workdir)
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
  with open(done + ".tmp", "w") as f:
    json.dump(values, f)
  os.replace(done + ".tmp", done)
  return values


def table(rows: list[tuple[str, dict]]) -> str:
  columns = METRICS + (("fid", "FID"),) * any("fid" in v for _, v in rows)
  lower = ("lpips", "tempe", "fid")
  best = {k: (min if k in lower else max)(v[k] for _, v in rows if k in v) for k, _ in columns}
  lines = ["| model | " + " | ".join(label for _, label in columns) + " | steps | minutes |",
           "|---" * (len(columns) + 3) + "|"]
  for label, values in rows:
    cells = []
    for key, _ in columns:
      if key not in values:
        cells.append("-")
        continue
      text = f"{values[key]:.2f}" if abs(values[key]) >= 10 else f"{values[key]:.4f}"
      cells.append(f"**{text}**" if values[key] == best[key] else text)
    minutes = f"{values['minutes']:.1f}" if "minutes" in values else "-"
    lines.append(f"| {label} | " + " | ".join(cells) + f" | {int(values['steps'])} | {minutes} |")
  return "\n".join(lines)


def with_evals(config, fid_weights: str):
  config.evals.robust_pose = dict(ROBUST)
  if fid_weights:
    config.evals.fid = dict(type="fid", every=0, weights=fid_weights)
  return config


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--config", default="configs/d2gnet.py:runlocal")
  parser.add_argument("--init-from", required=True, help="the pre-trained UV generator's workdir")
  parser.add_argument("--steps", type=int, default=0, help="every variant's budget (0: config's)")
  parser.add_argument("--variants", default=",".join(VARIANTS))
  parser.add_argument("--baselines", default=",".join(BASELINES),
                      help="NAME[:STEPS],... of " + ", ".join(BASELINES))
  parser.add_argument("--reuse", action="append", default=[], metavar="NAME=WORKDIR",
                      help="start row NAME (a variant or baseline) from a copy of a finished "
                           "run of the same config (its missing evaluations are computed)")
  parser.add_argument("--fid-weights", default="")
  args = parser.parse_args(argv)
  for item in args.reuse:
    name, _, source = item.partition("=")
    target = os.path.join(args.workdir, name)
    if not os.path.exists(target):
      shutil.copytree(source, target)
  names = [v for v in args.variants.split(",") if v]
  bad = [v for v in names if v not in VARIANTS] + [
      b for b in args.baselines.split(",") if b and b.partition(":")[0] not in BASELINES]
  if bad:
    parser.error(f"unknown variants or baselines {bad}; known: {', '.join(VARIANTS)}; "
                 f"{', '.join(BASELINES)}")
  rows = []
  for name in names:
    label, overrides = VARIANTS[name]
    config = make_config(args.config, {**overrides, "init_from": args.init_from}, (), args.steps)
    rows.append((label, run(os.path.join(args.workdir, name), with_evals(config, args.fid_weights))))
  for item in filter(None, args.baselines.split(",")):
    name, _, steps = item.partition(":")
    label, spec = BASELINES[name]
    config = with_evals(make_config(spec, {}, (), int(steps) if steps else None),
                        args.fid_weights)
    label = f"{label}, {steps} steps" if steps else label
    rows.append((label, run(os.path.join(args.workdir, item.replace(":", "_")), config)))
  budget = args.steps or "the config's"
  header = (f"`{args.config}`, {budget} steps per D²G-Net variant from "
            f"`{args.init_from}`; baselines at their runlocal configs; held-out segment")
  write_table(args.workdir, header, "d2gnet_ablation.py", argv or sys.argv[1:], rows, table(rows))
  return 0


if __name__ == "__main__":
  sys.exit(main())
