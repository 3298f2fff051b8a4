r"""CoCosNet video pose transfer ablation in the shape of the paper's Table 1, beside pix2pixHD.

  python benchmarks/cocovid_ablation.py --workdir /tmp/cocovid_ablation \
      [--config configs/cocovid.py:runlocal] [--steps 1500] [--variants full,no_ts,...] \
      [--baseline configs/pix2pixhd.py:runlocal] [--set loss.rec=0 ...] \
      [--fid-weights pt_inception-2015-12-05.pth]

Every variant trains the same config for the same number of steps (`--steps`, the budget) with
one change (VARIANTS, the table's rows: "w/o L_ts" moves the temporal stage's steps to the first
stage, "w/o L_face" the face stage's; "w/o L_D", "w/o L_rec", "w/o L_per", "w/o L_context" set
the term's weight to 0 -- L_per is the VGG feature loss against the frame, Eq. 12, here
CoCosNet's VGG feature matching and its relu4_2 MSE together). `--baseline` adds the pix2pixHD
of the same data (its own config and step count, `--baseline-steps`). Each run evaluates on
the held-out segment at its end; the table holds SSIM, PSNR, LPIPS (the paper's Table 1 reports
SSIM, IS, FID and LPIPS), SD and E_temp, and FID and IS when `--fid-weights` names pytorch-fid's
InceptionV3 file (nothing is downloaded). Runs keep their workdirs under --workdir, so an
interrupted ablation resumes; a finished run is not trained again. Writes `table.md` and
`table.json` there and prints the table with the machine and the command.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results_table import machine  # noqa: E402  pylint: disable=g-import-not-at-top
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
  os.makedirs(workdir, exist_ok=True)
  done = os.path.join(workdir, "results.json")
  if os.path.exists(done):
    with open(done) as f:
      return json.load(f)
  result = loop.train(config, workdir)
  values = {k: float(v) for k, v in result.eval_results.items()}
  with open(done + ".tmp", "w") as f:
    json.dump(values, f)
  os.replace(done + ".tmp", done)
  return values


def write_table(workdir: str, header: str, script: str, argv, rows, markdown: str) -> None:
  """Writes `table.md` (the header, the machine, the command, the table) and `table.json` (one
  object per row) under `workdir`, and prints the table."""
  command = f"`python benchmarks/{script} {' '.join(shlex.quote(a) for a in argv)}`"
  text = f"{header}; {machine()}; {command}\n\n{markdown}"
  with open(os.path.join(workdir, "table.md"), "w") as f:
    f.write(text + "\n")
  with open(os.path.join(workdir, "table.json"), "w") as f:
    json.dump([{"model": label, **values} for label, values in rows], f)
  print(text)


def table(rows: list[tuple[str, dict]], fid: bool) -> str:
  columns = METRICS + (FID_METRICS if fid else ())
  lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
  for label, values in rows:
    cells = [f"{values[c]:.4g}" if c in values else "-" for c in columns]
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


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
  args = parser.parse_args(argv)
  sets = [tuple(s.split("=", 1)) for s in args.set]
  unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
  if unknown:
    parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
  rows = []
  for name in args.variants.split(","):
    label, overrides = VARIANTS[name]
    config = make_config(args.config, overrides, sets, args.steps, args.fid_weights)
    rows.append((label, run(os.path.join(args.workdir, name), config)))
  if args.baseline:
    config = make_config(args.baseline, {}, (), args.baseline_steps, args.fid_weights)
    rows.append(("pix2pixHD (baseline)", run(os.path.join(args.workdir, "pix2pixhd"), config)))
  header = (f"`{args.config}`, {args.steps or 'the config''s'} steps per variant; "
            "held-out segment")
  write_table(args.workdir, header, "cocovid_ablation.py", argv or sys.argv[1:], rows,
              table(rows, bool(args.fid_weights)))
  return 0


if __name__ == "__main__":
  sys.exit(main())
