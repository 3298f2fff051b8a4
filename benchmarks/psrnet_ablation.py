r"""PSR-Net model ablations in the shape of the paper's Tables 1 and 2 and Fig. 7 (Sec. 4.2-4.3).

  python benchmarks/psrnet_ablation.py --workdir /tmp/psrnet_ablation \
      [--config configs/psrnet.py:runlocal] [--set data.rooms=17 ...] \
      [--layer1-steps 320] [--layer2-steps 80] [--decoders separate,common,context] \
      [--encoders concat_videos,separate,concat_all] [--alpha 0.1,0.3,0.5,0.7,0.9]

1. Table 1 (decoders of G¹): trains layer 1 alone (`model.layers=1`) once per `model.decoders`
   option under one budget (--layer1-steps) and evaluates x̂¹.
2. Table 2 (encoders of G²): trains layer 2 once per `model.encoders` option under one budget
   (--layer2-steps), every run from ONE frozen layer 1, Table 1's "separate" run (`init_from`
   with `init_groups=("g1",)`; layer 1's stage gets 0 steps through a vanishing
   `schedule.layer_weights` share), and evaluates x̂².
3. Fig. 7 (with --alpha): the same for "concat_videos" at each Eq. 1 weight α, plus α = 1 ("no
   weighting": x̂² = G²(xⁱ, x̂¹, d_j), the conventional synthesis the paper compares to).

Columns: SSIM, masked SSIM, PSNR, masked PSNR of the system evaluation (`<metric>/layer<k>`).
Step budgets default to the config's layer-1 and layer-2 shares of `train.steps` (runlocal: 320
and 80). `--set key=value` overrides go to every run. Writes `table.md` and `table.json` under
--workdir, each table under header lines naming the config, budget, machine and command. Every
run keeps its own workdir, named by its options (`layer1-<decoders>`,
`layer2-<encoders>-alpha<α>`), so an interrupted ablation resumes where it stopped, and Table 2's
"concat_videos" run is Fig. 7's row at the config's α.

With an EMA of the generators (runlocal), layer-2 runs load layer 1's EMA (`init_from_ema`), the
weights Table 1 evaluates, as a full stage-wise run trains layer 2 on them; Table 2's header
reports that frozen layer 1's scores.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402  pylint: disable=g-import-not-at-top
import mfci_ablation  # noqa: E402  pylint: disable=g-import-not-at-top
import results_table  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.models import psrnet as psrnet_models  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.systems import registry  # noqa: E402  pylint: disable=g-import-not-at-top

# Row labels in the paper's order.
DECODER_LABELS = {"context": "Context-based", "common": "Common head", "separate": "Separate heads"}
ENCODER_LABELS = {"separate": "Separate encoders", "concat_all": "Concat all",
                  "concat_videos": "Concat videos"}
COLUMNS = (("ssim", "SSIM"), ("m_ssim", "M-SSIM"), ("psnr", "PSNR"), ("m_psnr", "M-PSNR"))
NO_WEIGHTING = 1.0   # Fig. 7's conventional synthesis: x̂ᵏ = Gᵏ(...)
LAYER1_OFF = 1e-9    # layer 1's schedule.layer_weights share in layer-2 runs: round(steps * it) = 0


def _layers_config(args, layers: int, steps: int, overrides: dict):
  """The base config (+ --set) with `layers` layers trained stage-wise for `steps` steps, then
  `overrides`; an EMA keeps only the groups of those layers."""
  config = mfci_ablation.make_config(
      args.config, {"model.layers": layers, "train.steps": steps, "schedule.mode": "stagewise",
                    **overrides}, args.sets)
  keep = {f"{p}{k}" for p in "gd" for k in range(1, layers + 1)}
  config.train.ema.groups = tuple(g for g in config.train.ema.groups if g in keep)
  return config


def default_steps(args) -> tuple[int, int]:
  """The config's (layer 1, layer 2) shares of `train.steps` (its stage-wise schedule)."""
  config = mfci_ablation.make_config(args.config, {"schedule.mode": "stagewise"}, args.sets)
  config.model.layers = max(2, config.model.layers)
  stages = registry.get_system(config).stages()
  return stages[0].steps, stages[1].steps


def layer1_config(args, decoders: str):
  """Layer 1 alone with `decoders`, --layer1-steps steps."""
  return _layers_config(args, 1, args.layer1_steps, {"model.decoders": decoders})


def layer2_config(args, layer1_dir: str, encoders: str, alpha: float):
  """Layer 2 with `encoders` and Eq. 1 weight `alpha` from the frozen layer 1 of `layer1_dir`."""
  config = _layers_config(args, 2, args.layer2_steps, {
      "model.decoders": "separate", "model.encoders": encoders, "model.alpha": alpha,
      "schedule.layer_weights": (LAYER1_OFF, 1.0)})
  config.init_from = layer1_dir
  config.init_groups = ("g1",)
  config.init_from_ema = True
  first = registry.get_system(config).stages()[0]
  if first.steps:
    raise ValueError(f"layer-2 runs must not train layer 1, but stage {first.name} has "
                     f"{first.steps} steps")
  return config


def _run(args, name: str, config) -> dict:
  """Trains (or resumes) the run `name` in its own workdir and returns its evaluation (once per
  invocation: a run shared by two tables is evaluated once)."""
  if name not in args.done:
    workdir = os.path.join(args.workdir, name)
    print(f"== {name}: {config.train.steps} steps -> {workdir}", flush=True)
    args.done[name] = mfci_ablation.train_and_evaluate(config, workdir)
  return args.done[name]


def _section(title: str, corner: str, rows, layer: int, budget: str, args, extra: str = "") -> dict:
  """One table: `rows` are (label, run name, results); reports x̂^layer's metrics."""
  merged = {f"{m}/{name}": res[f"{m}/layer{layer}"] for _, name, res in rows for m, _ in COLUMNS}
  text = results_table.table(merged, [(name, label) for label, name, _ in rows], COLUMNS,
                             corner=corner)
  sets = "".join(f" --set {k}={v}" for k, v in args.sets)
  examples = int(rows[0][2]["num_examples"])
  header = (f"### {title}\n\nConfig `{args.config}`{sets}; {budget}; {examples} evaluation "
            f"examples{extra}\n\nMachine: {results_table.machine()}\n\nCommand: `{args.command}`\n")
  return {"title": title, "markdown": f"{header}\n{text}\n",
          "rows": [{"label": label, "run": name, "results": res} for label, name, res in rows]}


def _scores(results: dict, layer: int) -> str:
  return ", ".join(f"{label} {results[f'{m}/layer{layer}']:.4f}" for m, label in COLUMNS)


def table1(args) -> tuple[dict | None, str]:
  """Trains layer 1 for each decoder option (always "separate", Table 2's base); returns Table 1
  (None if no decoders were asked for) and the "separate" run's workdir."""
  names = list(dict.fromkeys(args.decoders + ["separate"]))
  results = {d: _run(args, f"layer1-{d}", layer1_config(args, d)) for d in names}
  rows = [(DECODER_LABELS[d], f"layer1-{d}", results[d]) for d in DECODER_LABELS
          if d in args.decoders]
  budget = f"model.layers=1, {args.layer1_steps} steps per decoder option"
  section = (_section("Table 1: decoders of layer 1 (x̂¹)", "Decoders", rows, 1, budget, args)
             if rows else None)
  return section, os.path.join(args.workdir, "layer1-separate")


def _layer2_runs(args, layer1_dir: str, pairs) -> list[tuple[str, dict]]:
  """(run name, results) for each (encoders, alpha) in `pairs`, all from `layer1_dir`."""
  out = []
  for encoders, alpha in pairs:
    name = f"layer2-{encoders}-alpha{alpha:g}"
    out.append((name, _run(args, name, layer2_config(args, layer1_dir, encoders, alpha))))
  return out


def table2(args, layer1_dir: str) -> dict:
  """Layer 2 for each encoder option at the config's α, from the frozen layer 1."""
  alpha = mfci_ablation.make_config(args.config, {}, args.sets).model.alpha
  order = [e for e in ENCODER_LABELS if e in args.encoders]
  runs = _layer2_runs(args, layer1_dir, [(e, alpha) for e in order])
  rows = [(ENCODER_LABELS[e], name, res) for e, (name, res) in zip(order, runs)]
  budget = (f"model.layers=2, {args.layer2_steps} layer-2 steps per encoder option, alpha "
            f"{alpha:g}, from the frozen layer 1 of `{layer1_dir}`")
  extra = f"; that frozen layer 1 scores {_scores(runs[0][1], 1)}"
  return _section("Table 2: encoders of layer 2 (x̂²)", "Encoders", rows, 2, budget, args, extra)


def fig7(args, layer1_dir: str) -> dict:
  """Layer 2 ("concat_videos") for each α of --alpha and α = 1 (no weighting)."""
  alphas = list(dict.fromkeys(args.alpha + [NO_WEIGHTING]))
  runs = _layer2_runs(args, layer1_dir, [("concat_videos", a) for a in alphas])
  rows = [(f"{a:g}" if a != NO_WEIGHTING else "1 (no weighting)", name, res)
          for a, (name, res) in zip(alphas, runs)]
  budget = (f"model.layers=2, encoders concat_videos, {args.layer2_steps} layer-2 steps per "
            f"alpha, from the frozen layer 1 of `{layer1_dir}`")
  return _section("Fig. 7: Eq. 1 weight alpha of layer 2 (x̂²)", "alpha", rows, 2, budget, args)


def _names(text: str, allowed, what: str, parser) -> list[str]:
  names = [n for n in text.split(",") if n]
  unknown = [n for n in names if n not in allowed]
  if unknown:
    parser.error(f"unknown {what} {unknown}; allowed: {', '.join(allowed)}")
  return names


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--config", default="configs/psrnet.py:runlocal")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set",
                      help="config override for every run (repeatable), e.g. data.rooms=17")
  parser.add_argument("--layer1-steps", type=int, default=0,
                      help="Table 1 budget per run; 0 = the config's layer-1 share")
  parser.add_argument("--layer2-steps", type=int, default=0,
                      help="Table 2 / Fig. 7 budget per run; 0 = the config's layer-2 share")
  parser.add_argument("--decoders", default=",".join(psrnet_models.DECODERS),
                      help="Table 1 rows (comma-separated; '' = no Table 1)")
  parser.add_argument("--encoders", default=",".join(psrnet_models.ENCODERS),
                      help="Table 2 rows (comma-separated; '' = no Table 2)")
  parser.add_argument("--alpha", default="",
                      help="Fig. 7 alphas, e.g. 0.1,0.3,0.5,0.7,0.9 ('' = no Fig. 7)")
  args = parser.parse_args(argv)
  args.decoders = _names(args.decoders, psrnet_models.DECODERS, "decoders", parser)
  args.encoders = _names(args.encoders, psrnet_models.ENCODERS, "encoders", parser)
  args.alpha = [float(a) for a in args.alpha.split(",") if a]
  if any(not 0.0 < a <= 1.0 for a in args.alpha):
    parser.error(f"--alpha values must be in (0, 1]; got {args.alpha}")
  if any("=" not in s for s in args.set):
    parser.error(f"--set takes KEY=VALUE; got {args.set}")
  args.sets = [tuple(s.split("=", 1)) for s in args.set]
  args.done = {}   # run name -> its evaluation
  args.command = " ".join(shlex.quote(a) for a in
                          ["python", "benchmarks/psrnet_ablation.py", *(sys.argv[1:] if argv is None
                                                                        else argv)])
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  if not flags.FLAGS.is_parsed():   # grain's data workers read absl flags
    flags.FLAGS(["psrnet_ablation"])
  os.makedirs(args.workdir, exist_ok=True)
  layer1, layer2 = default_steps(args)
  args.layer1_steps, args.layer2_steps = args.layer1_steps or layer1, args.layer2_steps or layer2
  first, layer1_dir = table1(args)
  sections = [first] if first else []
  if args.encoders:
    sections.append(table2(args, layer1_dir))
  if args.alpha:
    sections.append(fig7(args, layer1_dir))
  text = "\n".join(s["markdown"] for s in sections)
  with open(os.path.join(args.workdir, "table.md"), "w", encoding="utf-8") as f:
    f.write(text)
  with open(os.path.join(args.workdir, "table.json"), "w", encoding="utf-8") as f:
    json.dump(sections, f, indent=2)
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
