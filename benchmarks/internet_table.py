r"""INTERnet's Table 2 (self-imitation on held-out identities): FOMM and the temporal schemes of
Fig. 4 on the single- and multi-scale generators, trained under one budget.

  python benchmarks/internet_table.py --workdir /tmp/internet_table \
      [--config configs/internet.py:runlocal] [--fomm configs/fomm.py:runlocal] [--steps 2000] \
      [--rows fom,ss_a,ss_b,ss_c,ms_b,ms_c] [--set data.dataset=DIR ...] \
      [--fid-weights pt_inception-2015-12-05.pth]

Rows (ROWS): "FoM" is FOMM (`--fomm`, its own config at the same step budget); "SS4x a/b/c"
the single-scale generator (`model.deformable_skips=False`, the base motion field only) with the
unmasked flow-warp loss (a), the externally masked one (b) and the intrinsic one (c); "MS b/c"
the multi-scale generator with deformable skips with (b) and (c) ("ms_a" and "ms_none" are
extra rows). Columns: MS-SSIM, SSIM, LPIPS, Interp-PSNR (against the ground-truth frame and the
output's own), Act-Recog-L1, E_temp, and FID when `--fid-weights` names pytorch-fid's
InceptionV3 file (nothing is downloaded). Each run keeps its workdir under --workdir, so an
interrupted table resumes; a finished run is not trained again. Writes `table.md` and
`table.json` there and prints the table with the machine and the command.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.cocovid_ablation import make_config, run, write_table  # noqa: E402  pylint: disable=g-import-not-at-top

# name -> (row label, config overrides or None for FOMM's config); Table 2's rows.
ROWS = {
    "fom": ("FoM", None),
    "ss_a": ("SS4x a)", {"model.deformable_skips": False, "loss.temporal": "flow"}),
    "ss_b": ("SS4x b)", {"model.deformable_skips": False, "loss.temporal": "external"}),
    "ss_c": ("SS4x c)", {"model.deformable_skips": False, "loss.temporal": "intrinsic"}),
    "ms_a": ("MS a)", {"loss.temporal": "flow"}),
    "ms_none": ("MS, no L_reg", {"loss.temporal": "none"}),
    "ms_b": ("MS b)", {"loss.temporal": "external"}),
    "ms_c": ("Ours (MS c)", {"loss.temporal": "intrinsic"}),
}
DEFAULT_ROWS = ("fom", "ss_a", "ss_b", "ss_c", "ms_b", "ms_c")
METRICS = ("ms_ssim", "ssim", "lpips", "interp_psnr", "interp_psnr_self", "act_recog_l1",
           "tempe")
FID = "fid/fid"


def table(rows: list[tuple[str, dict]], fid: bool) -> str:
  columns = METRICS[:3] + ((FID,) if fid else ()) + METRICS[3:]
  lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
  for label, values in rows:
    cells = [f"{values[c]:.4g}" if c in values else "-" for c in columns]
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _fid_only(config, fid_weights: str):
  """`make_config` adds FID and IS; Table 2 has FID only."""
  if fid_weights:
    del config.evals["is"]
  return config


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--config", default="configs/internet.py:runlocal")
  parser.add_argument("--fomm", default="configs/fomm.py:runlocal", help="FOMM's config")
  parser.add_argument("--steps", type=int, default=0, help="every row's budget (0: config's)")
  parser.add_argument("--rows", default=",".join(DEFAULT_ROWS))
  parser.add_argument("--set", action="append", default=[],
                      help="KEY=VALUE on every row (FOMM's too: keep to shared fields)")
  parser.add_argument("--fid-weights", default="")
  args = parser.parse_args(argv)
  sets = [tuple(s.split("=", 1)) for s in args.set]
  names = args.rows.split(",")
  unknown = [n for n in names if n not in ROWS]
  if unknown:
    parser.error(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
  rows = []
  for name in names:
    label, overrides = ROWS[name]
    spec = args.fomm if overrides is None else args.config
    config = make_config(spec, overrides or {}, sets, args.steps, args.fid_weights)
    rows.append((label, run(os.path.join(args.workdir, name),
                            _fid_only(config, args.fid_weights))))
  header = (f"`{args.config}` (FoM: `{args.fomm}`), "
            f"{args.steps or 'the config' + chr(39) + 's'} steps per row; held-out identities")
  write_table(args.workdir, header, "internet_table.py", argv or sys.argv[1:], rows,
              table(rows, bool(args.fid_weights)))
  return 0


if __name__ == "__main__":
  sys.exit(main())
