r"""INTERnet's Table 2 (self-imitation on held-out identities): FOMM and the temporal schemes of
Fig. 4 on the single- and multi-scale generators, trained under one budget.

  python benchmarks/internet_table.py --workdir /tmp/internet_table \
      [--config configs/internet.py:runlocal] [--fomm configs/fomm.py:runlocal] \
      [--lwgan configs/lwgan.py:runlocal] [--steps 2000] \
      [--rows lwgan,fom,ss_a,ss_b,ss_c,ms_b,ms_c] [--set data.dataset=DIR ...] \
      [--fid-weights pt_inception-2015-12-05.pth] [--seeds 3]

Rows (ROWS): "LWGAN" is Liquid Warping GAN (`--lwgan`, its own config, given the world's
exact body geometry where the paper's LWGAN regresses a mesh); "FoM" is FOMM (`--fomm`, its own
config at the same step budget); "SS4x a/b/c"
the single-scale generator (`model.deformable_skips=False`, the base motion field only) with the
unmasked flow-warp loss (a), the externally masked one (b) and the intrinsic one (c); "MS b/c"
the multi-scale generator with deformable skips with (b) and (c) ("ms_a" and "ms_none" are
extra rows). Columns: MS-SSIM, SSIM, LPIPS, Interp-PSNR (against the ground-truth frame and the
output's own), Act-Recog-L1, E_temp, and FID when `--fid-weights` names pytorch-fid's
InceptionV3 file (nothing is downloaded). When the evaluations carry the copied source frame's
scores (`<metric>/copy`), a row "copy of the source frame" shows them (without noise when they
agree in every run: the claims against it take the other row's seed deviation). FoM's and
LWGAN's rows read the same world as INTERnet's (the `--config`'s `data.travel`). Each run keeps
its workdir under --workdir, so an interrupted table resumes; a finished run is not trained
again.
`--seeds N` runs every row N times and judges Table 2's orderings (CLAIMS) against the seeds'
noise (benchmarks/seeds.py). Writes `table.md` and `table.json` there and prints the table and
the claims with the machine and the command. `--batch-norm population` scores every finished
run again with its batch norms (FOMM's, INTERnet's) normalised by the training split's
population statistics, not each evaluation batch's (`table-population.md` / `.json`).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import seeds  # noqa: E402  pylint: disable=g-import-not-at-top
from benchmarks.cocovid_ablation import make_config, run  # noqa: E402  pylint: disable=g-import-not-at-top

# name -> (row label, config overrides, or "fomm" / "lwgan": that system's own config); Table
# 2's rows.
ROWS = {
    "lwgan": ("LWGAN", "lwgan"),
    "fom": ("FoM", "fomm"),
    "ss_a": ("SS4x a)", {"model.deformable_skips": False, "loss.temporal": "flow"}),
    "ss_b": ("SS4x b)", {"model.deformable_skips": False, "loss.temporal": "external"}),
    "ss_c": ("SS4x c)", {"model.deformable_skips": False, "loss.temporal": "intrinsic"}),
    "ms_a": ("MS a)", {"loss.temporal": "flow"}),
    "ms_none": ("MS, no L_reg", {"loss.temporal": "none"}),
    "ms_b": ("MS b)", {"loss.temporal": "external"}),
    "ms_c": ("Ours (MS c)", {"loss.temporal": "intrinsic"}),
}
DEFAULT_ROWS = ("lwgan", "fom", "ss_a", "ss_b", "ss_c", "ms_b", "ms_c")
METRICS = ("ms_ssim", "ssim", "lpips", "interp_psnr", "interp_psnr_self", "act_recog_l1",
           "tempe")
FID = "fid/fid"
COPY = "copy"   # the animation task's `<metric>/copy`: the copied source frame's scores
# Table 2's MS-SSIM, LPIPS and Interp-PSNR of the rows it shares with ROWS.
PAPER = {name: dict(zip(("ms_ssim", "lpips", "interp_psnr"), scores)) for name, scores in {
    "lwgan": (0.677, 0.189, 16.977), "fom": (0.895, 0.121, 23.048), "ss_a": (0.879, 0.098, 23.298),
    "ss_b": (0.911, 0.079, 23.056), "ss_c": (0.919, 0.075, 23.025),
    "ms_b": (0.951, 0.041, 23.412), "ms_c": (0.960, 0.035, 24.245)}.items()}
# MS c ahead of FoM, MS b, SS4x c and LWGAN on all three, FoM ahead of LWGAN; the single-scale
# schemes ordered on MS-SSIM and LPIPS (the paper reads their Interp-PSNR, within 0.3 dB, as no
# gain); a model that animates ahead of copying its source frame.
CLAIMS = (
    seeds.paper_claims("Table 2", PAPER, [("ms_c", "fom"), ("ms_c", "ms_b"), ("ms_c", "ss_c"),
                                          ("ms_c", "lwgan"), ("fom", "lwgan")],
                       ("ms_ssim", "lpips", "interp_psnr"), lower=("lpips",))
    + seeds.paper_claims("Table 2", PAPER, [("ss_b", "ss_a"), ("ss_c", "ss_b")],
                         ("ms_ssim", "lpips"), lower=("lpips",))
    + [seeds.Claim(name, COPY, metric, metric != "lpips", "beats copying the source frame")
       for name in ("lwgan", "fom", "ms_c") for metric in ("ssim", "lpips")])


def columns(fid: bool) -> list[tuple[str, str]]:
  return [(c, c) for c in METRICS[:3] + ((FID,) if fid else ()) + METRICS[3:]]


def copy_row(rows: list[seeds.Row]) -> list[seeds.Row]:
  """[the "copy of the source frame" row] from the `<metric>/copy` scores of the evaluations
  that carry them (the same held-out clips), or []. When every run's copy scores agree (they do
  not depend on the model or its seed), the row is exact: one result, no seed noise; otherwise
  the first row's seeds, each with its own."""
  suffix = "/" + COPY
  copies = [[{k[:-len(suffix)]: v for k, v in results.items() if k.endswith(suffix)}
             for results in row.seeds] for row in rows]
  copies = [c for c in copies if c and c[0]]
  if not copies:
    return []
  first = copies[0][0]
  exact = all(set(c) == set(first) and all(abs(c[k] - first[k]) <= 1e-6 for k in first)
              for seeds_ in copies for c in seeds_)
  return [seeds.Row(COPY, "copy of the source frame", [first] if exact else copies[0], exact)]


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
  parser.add_argument("--lwgan", default="configs/lwgan.py:runlocal",
                      help="Liquid Warping GAN's config")
  parser.add_argument("--steps", type=int, default=0, help="every row's budget (0: config's)")
  parser.add_argument("--rows", default=",".join(DEFAULT_ROWS))
  parser.add_argument("--set", action="append", default=[],
                      help="KEY=VALUE on every row (FOMM's too: keep to shared fields)")
  parser.add_argument("--fid-weights", default="")
  seeds.add_flag(parser)
  seeds.add_batch_norm_flag(parser)
  seeds.add_ledger_flags(parser)
  args = parser.parse_args(argv)
  ledger = seeds.open_ledger(parser, args)
  sets = [tuple(s.split("=", 1)) for s in args.set]
  names = args.rows.split(",")
  unknown = [n for n in names if n not in ROWS]
  if unknown:
    parser.error(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
  seeds.check_rows(parser, args, names)
  rows = []
  world = {"data.travel": make_config(args.config, {}, sets).data.get("travel", 0.0)}
  for name in names:
    label, overrides = ROWS[name]
    own = {"fomm": args.fomm, "lwgan": args.lwgan}
    spec = args.config if isinstance(overrides, dict) else own[overrides]
    overrides = overrides if isinstance(overrides, dict) else world
    def config_of(seed, spec=spec, overrides=overrides):
      config = make_config(spec, {**overrides, "seed": seed}, sets, args.steps, args.fid_weights)
      return _fid_only(config, args.fid_weights)
    rows.append(seeds.run_row(args.workdir, name, label,
                              lambda wd, s, c=config_of: run(wd, c(s)),
                              seeds.count(args, name), ledger, config_of))
  rows = seeds.rescored(rows, args.workdir, args.batch_norm, ledger)
  header = (f"`{args.config}` (FoM: `{args.fomm}`, LWGAN: `{args.lwgan}`), "
            f"{args.steps or 'the config' + chr(39) + 's'} steps per row; held-out identities"
            + ("; batch norms with population statistics" if args.batch_norm == "population"
               else ""))
  seeds.write_table(args.workdir, header, "internet_table.py", argv or sys.argv[1:],
                    copy_row(rows) + rows, columns(bool(args.fid_weights)), CLAIMS,
                    name="table" if args.batch_norm == "batch" else "table-population",
                    ledger=ledger)
  return 0


if __name__ == "__main__":
  sys.exit(main())
