r"""PSR-Net ablations in the shape of the paper's Tables 1, 2 and 3 and Fig. 7 (Sec. 4.2-4.4).

  python benchmarks/psrnet_ablation.py --workdir /tmp/psrnet_ablation \
      [--config configs/psrnet.py:runlocal] [--set data.rooms=17 ...] \
      [--layer1-steps 320] [--layer2-steps 80] [--decoders separate,common,context] \
      [--encoders concat_videos,separate,concat_all] [--alpha 0.1,0.3,0.5,0.7,0.9] \
      [--no-table3] [--table3-steps 480] [--seeds 3] [--control-seeds 1] \
      [--ledger benchmarks/results/psrnet_ablation] [--recorded-only]

1. Table 1 (decoders of G¹): trains layer 1 alone (`model.layers=1`) once per `model.decoders`
   option under one budget (--layer1-steps) and evaluates x̂¹.
2. Table 2 (encoders of G²): trains layer 2 once per `model.encoders` option under one budget
   (--layer2-steps), every run from ONE frozen layer 1, Table 1's "separate" run (`init_from`
   with `init_groups=("g1",)`; layer 1's stage gets 0 steps through a vanishing
   `schedule.layer_weights` share), and evaluates x̂² (beside that frozen x̂¹).
3. Fig. 7 (with --alpha): the same for "concat_videos" at each Eq. 1 weight α, plus α = 1 ("no
   weighting": x̂² = G²(xⁱ, x̂¹, d_j), the conventional synthesis the paper compares to).
4. Table 3 (unless --no-table3): one K = 3 run trained stage-wise as the config schedules it
   (--table3-steps in all, default the config's `train.steps`), scored per layer x̂ᵏ and per
   generator before Eq. 1 (Gᵏ alone, k >= 2: the blend's share of layer k's gain), beside the
   baselines (copy the input view, texture transfer x̂⁰) and a K = 1 control: layer 1 alone
   trained for the same total steps (is the gain the layers' or the steps'?).

Columns: SSIM, masked SSIM, PSNR, masked PSNR of the system evaluation (`<metric>/<output>`),
and B-SSIM, B-PSNR, the background alone (outside the target mask; not the paper's columns).
Table 3 adds two background oracles on the synthetic world's fixed rooms
(benchmarks/psrnet_background.py): the mean empty room of all setups and of the true setup, as
the target camera sees them.
Step budgets default to the config's layer-1 and layer-2 shares of `train.steps` (runlocal: 320
and 80). `--set key=value` overrides go to every run; `--config configs/psrnet.py:runlocal,blend`
takes the paper's full-frame refiners (configs/psrnet.py). Every run keeps its own workdir,
named by its options (`layer1-<decoders>`, `layer2-<encoders>-alpha<α>`, `layers3`,
`layers1-control`), so an interrupted ablation resumes where it stopped, and Table 2's
"concat_videos" run is Fig. 7's row at the config's α.

`--seeds N` (benchmarks/seeds.py) runs every row N times (config.seed 0..N-1; seed i's layer-2
runs start from seed i's layer 1), reports mean ± std and judges the paper's orderings (CLAIMS)
against the seeds' noise: Tables 1 and 2 as printed, α = .5 ahead of no weighting (Sec. 4.3:
.835 against .811 SSIM) and of every other α (Fig. 7), x̂³ ahead of x̂² ahead of x̂¹ in SSIM and
PSNR (Table 3) and on the background (Sec. 4.4), and, not the paper's, x̂³ ahead of the K = 1
control. Table 3's layer orderings are paired claims (benchmarks/seeds.py): the layers of one
run share its seed's noise, so their band is twice the standard deviation of the per-seed
differences. Each table is written by
benchmarks/seeds.py to `<workdir>/<table1|table2|fig7|table3>/table.{md,json}` (under a header
naming the config, budget, seeds, machine and command); `<workdir>/table.md` and `table.json`
gather them.

`--ledger DIR` (benchmarks/seeds.py's Ledger) keeps each finished run's evaluation there and
reads it back where the run's workdir is gone and its config is the same; a layer-2 run that
must train while its frozen layer 1 exists only in the ledger trains that layer 1 first.
`--recorded-only` trains nothing and names, per table, the runs the ledger lacks.

With an EMA of the generators (runlocal), layer-2 runs load layer 1's EMA (`init_from_ema`), the
weights Table 1 evaluates, as a full stage-wise run trains layer 2 on them.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402  pylint: disable=g-import-not-at-top
import mfci_ablation  # noqa: E402  pylint: disable=g-import-not-at-top
import psrnet_background  # noqa: E402  pylint: disable=g-import-not-at-top
from benchmarks import seeds  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.models import psrnet as psrnet_models  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.systems import registry  # noqa: E402  pylint: disable=g-import-not-at-top

# Row labels in the paper's order.
DECODER_LABELS = {"context": "Context-based", "common": "Common head", "separate": "Separate heads"}
ENCODER_LABELS = {"separate": "Separate encoders", "concat_all": "Concat all",
                  "concat_videos": "Concat videos"}
# Table 3's rows: the outputs of the K = 3 run (`<metric>/<output>`), then the K = 1 control.
LAYER_LABELS = {"copy": "copy the input view", "texture": "texture transfer x̂⁰",
                "layer1": "layer 1 (x̂¹)", "raw2": "G² alone (before Eq. 1)",
                "layer2": "layer 2 (x̂²)", "raw3": "G³ alone (before Eq. 1)",
                "layer3": "layer 3 (x̂³, final)"}
CONTROL = "k1"
COLUMNS = (("ssim", "SSIM"), ("m_ssim", "M-SSIM"), ("psnr", "PSNR"), ("m_psnr", "M-PSNR"),
           ("b_ssim", "B-SSIM"), ("b_psnr", "B-PSNR"))
METRICS = tuple(m for m, _ in COLUMNS)
PAPER_METRICS = METRICS[:4]   # the paper's columns (B-: the background alone, not in the paper)
NO_WEIGHTING = 1.0   # Fig. 7's conventional synthesis: x̂ᵏ = Gᵏ(...)
LAYER1_OFF = 1e-9    # layer 1's schedule.layer_weights share in layer-2 runs: round(steps * it) = 0
FROZEN = "layer1"    # Table 2's and Fig. 7's row of the frozen layer 1

# The paper's numbers (SSIM, M-SSIM, PSNR, M-PSNR), keyed by the rows' names.
_PAPER = lambda **rows: {k: dict(zip(PAPER_METRICS, v)) for k, v in rows.items()}
TABLE1 = _PAPER(context=(.811, .981, 23.32, 32.31), common=(.795, .980, 23.16, 32.21),
                separate=(.801, .981, 23.13, 32.38))
TABLE2 = _PAPER(separate=(.801, .978, 23.12, 31.57), concat_all=(.791, .978, 22.97, 31.64),
                concat_videos=(.811, .978, 23.25, 31.41))
TABLE3 = _PAPER(layer1=(.801, .981, 23.13, 32.38), layer2=(.835, .979, 23.89, 31.81),
                layer3=(.841, .979, 24.01, 31.81))
FIG7_BEST = "Fig. 7: alpha = .5 obtains the best value"
CLAIMS = {
    "table1": seeds.paper_claims("Table 1", TABLE1, itertools.combinations(TABLE1, 2),
                                 PAPER_METRICS),
    "table2": seeds.paper_claims("Table 2", TABLE2, itertools.combinations(TABLE2, 2),
                                 PAPER_METRICS),
    "fig7": [seeds.Claim("alpha0.5", "alpha1", "ssim", source="Sec. 4.3: concat videos with "
                         "Eq. 1 at alpha .5 .835, without weighting .811")]
            + [seeds.Claim("alpha0.5", f"alpha{a:g}", "ssim", source=FIG7_BEST)
               for a in (0.1, 0.3, 0.7, 0.9)],
    "table3": [dataclasses.replace(c, paired=True) for c in seeds.paper_claims(
                   "Table 3", TABLE3, [("layer3", "layer2"), ("layer2", "layer1"),
                                       ("layer3", "layer1")], ("ssim", "psnr"))]
              + [seeds.Claim("layer3", "layer1", m, paired=True, source="Sec. 4.4: the layers' "
                             "gain is the background's (\"correcting the lighting of the room\")")
                 for m in ("b_ssim", "b_psnr")]
              + [seeds.Claim("layer3", CONTROL, m, source="not in the paper: K = 3 against K = 1 "
                             "for the same total steps") for m in ("ssim", "psnr")],
}


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


def layer1_config(args, decoders: str, seed: int = 0):
  """Layer 1 alone with `decoders`, --layer1-steps steps."""
  return _layers_config(args, 1, args.layer1_steps, {"model.decoders": decoders, "seed": seed})


def layer2_config(args, layer1_dir: str, encoders: str, alpha: float, seed: int = 0):
  """Layer 2 with `encoders` and Eq. 1 weight `alpha` from the frozen layer 1 of `layer1_dir`."""
  config = _layers_config(args, 2, args.layer2_steps, {
      "model.decoders": "separate", "model.encoders": encoders, "model.alpha": alpha,
      "schedule.layer_weights": (LAYER1_OFF, 1.0), "seed": seed})
  config.init_from = layer1_dir
  config.init_groups = ("g1",)
  config.init_from_ema = True
  first = registry.get_system(config).stages()[0]
  if first.steps:
    raise ValueError(f"layer-2 runs must not train layer 1, but stage {first.name} has "
                     f"{first.steps} steps")
  return config


def run(workdir: str, config) -> dict:
  """Trains (or resumes) one run and returns its final system evaluation (read back from the
  finished workdir's results.json)."""
  return seeds.read_or_run(workdir, lambda: mfci_ablation.train_and_evaluate(config, workdir))


def _runs(args, name: str, make_config, count: int | None = None, needs=None) -> seeds.Row:
  """Run `name` over `count` seeds (default --seeds; `make_config(seed)` in benchmarks/seeds.py's
  workdirs): a Row of full evaluations, each evaluated once per invocation (a run shared by two
  tables too), read back from --ledger when it holds the run. `needs(seed)` is called before a
  run trains (layer 2's frozen layer 1)."""
  def train(workdir, seed):
    if workdir not in args.done:
      if needs is not None:
        needs(seed)
      config = make_config(seed)
      print(f"== {os.path.basename(workdir)}: {config.train.steps} steps -> {workdir}", flush=True)
      args.done[workdir] = run(workdir, config)
    return args.done[workdir]
  return seeds.run_row(args.workdir, name, name, train, count or args.seeds, args.record,
                       make_config)


def _output_row(name: str, label: str, runs: seeds.Row, output: str) -> seeds.Row:
  """`runs`' seeds' scores of one output (`<metric>/<output>` -> `<metric>`)."""
  return seeds.Row(name, label, [{m: r[f"{m}/{output}"] for m in METRICS if f"{m}/{output}" in r}
                                 for r in runs.seeds], machines=runs.machines)


def _section(args, key: str, title: str, corner: str, entries, budget: str) -> dict:
  """Table `key` of `entries` (row name, label, runs Row, output), its CLAIMS judged: written by
  benchmarks/seeds.py under <workdir>/<key>/ and returned for the gathered files."""
  sets = "".join(f" --set {k}={v}" for k, v in args.sets)
  examples = next((int(e[2].seeds[0]["num_examples"]) for e in entries if e[2].seeds), 0)
  header = f"### {title}\n\nConfig `{args.config}`{sets}; {budget}; {examples} evaluation examples"
  folder = os.path.join(args.workdir, key)
  text = seeds.write_table(folder, header, "psrnet_ablation.py", args.argv,
                           [_output_row(*e) for e in entries], COLUMNS, CLAIMS[key], corner,
                           ledger=args.record)
  if args.record is not None:
    args.record.missing.clear()   # each section names the runs it lacks
  with open(os.path.join(folder, "table.json"), encoding="utf-8") as f:
    saved = json.load(f)
  runs = [{"label": label, "name": name, "run": rows.name, "output": output,
           "results": rows.seeds[0] if rows.seeds else None, "seeds": rows.seeds}
          for name, label, rows, output in entries]
  return {"title": title, "markdown": text + "\n", "runs": runs, **saved}


def _layer1_dir(args, seed: int) -> str:
  """Seed `seed`'s Table 1 "separate" run: the frozen layer 1 of its layer-2 runs."""
  return seeds.workdir_of(args.workdir, "layer1-separate", seed)


def table1(args) -> dict | None:
  """Trains layer 1 for each decoder option (and "separate", Table 2's and Fig. 7's base, when
  they are asked for); returns Table 1 (None if no decoders were asked for)."""
  names = list(dict.fromkeys(args.decoders + ["separate"] * bool(args.encoders or args.alpha)))
  runs = {d: _runs(args, f"layer1-{d}", lambda seed, d=d: layer1_config(args, d, seed))
          for d in names}
  entries = [(d, DECODER_LABELS[d], runs[d], "layer1") for d in DECODER_LABELS
             if d in args.decoders]
  budget = f"model.layers=1, {args.layer1_steps} steps per decoder option"
  return (_section(args, "table1", "Table 1: decoders of layer 1 (x̂¹)", "Decoders", entries,
                   budget) if entries else None)


def _layer2_runs(args, pairs) -> list[seeds.Row]:
  """The runs of each (encoders, alpha) in `pairs`, seed i's from seed i's frozen layer 1."""
  return [_runs(args, f"layer2-{e}-alpha{a:g}", lambda seed, e=e, a=a: layer2_config(
      args, _layer1_dir(args, seed), e, a, seed), needs=lambda seed: _train_layer1(args, seed))
          for e, a in pairs]


def _train_layer1(args, seed: int) -> None:
  """Trains seed `seed`'s frozen layer 1 where its workdir lacks the finished run (Table 1 read
  it from the ledger): a layer-2 run starts from its checkpoint."""
  workdir = _layer1_dir(args, seed)
  if workdir not in args.done and not os.path.exists(os.path.join(workdir, "results.json")):
    print(f"== {os.path.basename(workdir)}: layer 2 starts from its checkpoint -> {workdir}",
          flush=True)
    args.done[workdir] = run(workdir, layer1_config(args, "separate", seed))


def _frozen(args) -> str:
  seeded = " (seed i: of its -seed<i> run)" if args.seeds > 1 else ""
  return f"from the frozen layer 1 of `{_layer1_dir(args, 0)}`{seeded}"


def table2(args) -> dict:
  """Layer 2 for each encoder option at the config's α, from the frozen layer 1."""
  alpha = mfci_ablation.make_config(args.config, {}, args.sets).model.alpha
  order = [e for e in ENCODER_LABELS if e in args.encoders]
  runs = _layer2_runs(args, [(e, alpha) for e in order])
  entries = ([(FROZEN, "frozen layer 1 (x̂¹)", runs[0], "layer1")]
             + [(e, ENCODER_LABELS[e], rows, "layer2") for e, rows in zip(order, runs)])
  budget = (f"model.layers=2, {args.layer2_steps} layer-2 steps per encoder option, alpha "
            f"{alpha:g}, {_frozen(args)}")
  return _section(args, "table2", "Table 2: encoders of layer 2 (x̂²)", "Encoders", entries,
                  budget)


def fig7(args) -> dict:
  """Layer 2 ("concat_videos") for each α of --alpha and α = 1 (no weighting)."""
  alphas = list(dict.fromkeys(args.alpha + [NO_WEIGHTING]))
  runs = _layer2_runs(args, [("concat_videos", a) for a in alphas])
  entries = ([(FROZEN, "frozen layer 1 (x̂¹)", runs[0], "layer1")]
             + [(f"alpha{a:g}", f"{a:g}" if a != NO_WEIGHTING else "1 (no weighting)", rows,
                 "layer2") for a, rows in zip(alphas, runs)])
  budget = (f"model.layers=2, encoders concat_videos, {args.layer2_steps} layer-2 steps per "
            f"alpha, {_frozen(args)}")
  return _section(args, "fig7", "Fig. 7: Eq. 1 weight alpha of layer 2 (x̂²)", "alpha", entries,
                  budget)


def table3(args) -> dict:
  """One K = 3 run per seed, per layer and per generator before Eq. 1, and the K = 1 control
  trained for the same total steps."""
  steps = args.table3_steps
  of_layers = lambda layers: lambda seed: _layers_config(args, layers, steps, {"seed": seed})
  full = _runs(args, "layers3", of_layers(3))
  control = _runs(args, "layers1-control", of_layers(1), args.control_seeds)
  entries = ([(name, label, full, name) for name, label in LAYER_LABELS.items()]
             + [(CONTROL, f"K = 1: layer 1 alone, {steps} steps", control, "layer1")]
             + _oracle_entries(args))
  split = "/".join(str(s.steps) for s in registry.get_system(of_layers(3)(0)).stages())
  budget = (f"model.layers=3, {steps} steps stage-wise ({split} per layer); the K = 1 control "
            f"model.layers=1, {steps} steps")
  return _section(args, "table3", "Table 3: the layers of PSR-Net (x̂ᵏ, and Gᵏ before Eq. 1)",
                  "output", entries, budget)


def _oracle_entries(args) -> list:
  """Table 3's background oracles (benchmarks/psrnet_background.py; B- columns only, one
  deterministic value), none for a dataset or per-clip rooms."""
  config = mfci_ablation.make_config(args.config, {}, args.sets)
  try:
    psrnet_background.check_data(config.data)
  except ValueError:
    return []
  scores = psrnet_background.oracle_scores(config)
  return [(name, f"oracle: {label}", seeds.Row(name, label, [
      {f"{m}/{name}": v for m, v in scores[name].items()}]), name)
          for name, label in psrnet_background.ORACLES.items()]


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
  parser.add_argument("--table3", action=argparse.BooleanOptionalAction, default=True,
                      help="Table 3: a K = 3 run per layer and a K = 1 control")
  parser.add_argument("--table3-steps", type=int, default=0,
                      help="Table 3 budget of each run; 0 = the config's train.steps")
  seeds.add_flag(parser, rows=False)   # layer-2 rows start from layer 1's seeds
  seeds.add_ledger_flags(parser)
  parser.add_argument("--control-seeds", type=int, default=0,
                      help="seeds of Table 3's K = 1 control (0 = --seeds): one control seed "
                           "beside N of the K = 3 run costs about as much as one more K = 3 seed")
  args = parser.parse_args(argv)
  args.decoders = _names(args.decoders, psrnet_models.DECODERS, "decoders", parser)
  args.encoders = _names(args.encoders, psrnet_models.ENCODERS, "encoders", parser)
  args.alpha = [float(a) for a in args.alpha.split(",") if a]
  if any(not 0.0 < a <= 1.0 for a in args.alpha):
    parser.error(f"--alpha values must be in (0, 1]; got {args.alpha}")
  if any("=" not in s for s in args.set):
    parser.error(f"--set takes KEY=VALUE; got {args.set}")
  args.sets = [tuple(s.split("=", 1)) for s in args.set]
  if not 0 <= args.control_seeds:
    parser.error(f"--control-seeds takes a count >= 0; got {args.control_seeds}")
  args.control_seeds = args.control_seeds or args.seeds
  args.done = {}   # run workdir -> its evaluation
  args.record = seeds.open_ledger(parser, args)
  args.argv = sys.argv[1:] if argv is None else list(argv)
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  if not flags.FLAGS.is_parsed():   # grain's data workers read absl flags
    flags.FLAGS(["psrnet_ablation"])
  os.makedirs(args.workdir, exist_ok=True)
  layer1, layer2 = default_steps(args)
  args.layer1_steps, args.layer2_steps = args.layer1_steps or layer1, args.layer2_steps or layer2
  args.table3_steps = (args.table3_steps
                       or mfci_ablation.make_config(args.config, {}, args.sets).train.steps)
  sections = [table1(args), table2(args) if args.encoders else None,
              fig7(args) if args.alpha else None, table3(args) if args.table3 else None]
  sections = [s for s in sections if s]
  with open(os.path.join(args.workdir, "table.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(s["markdown"] for s in sections))
  with open(os.path.join(args.workdir, "table.json"), "w", encoding="utf-8") as f:
    json.dump(sections, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
