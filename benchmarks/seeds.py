r"""Noise bands for the results tables: each row run over seeds, the papers' orderings judged
against them (`--seeds N` of internet_table.py, cocovid_ablation.py, d2gnet_ablation.py and
mfci_ablation.py).

Seeds: each row runs N times with `config.seed` = 0..N-1 (`--seeded-rows a,b`: only rows a and
b, the others once, e.g. a model and its baseline at 3 seeds beside one-seed ablation rows).
Seed 0 runs in the row's own workdir `<workdir>/<row>` (a table run once before is its first
seed), seed i >= 1 in
`<workdir>/<row>-seed<i>`; a finished run is read back, not trained again. A cell is the mean ±
the sample standard deviation (ddof=1) over the seeds, or the value with one seed.

Ledger: `--ledger DIR` keeps every finished run's results in DIR, one JSON file per run
(`<row>.json`, `<row>-seed<i>.json`) with the digest of its config (path-valued fields left
out: they name files on one machine), the paths, the machine, the commit and the date. A run
missing from --workdir but found there with the same config digest is read back, not trained,
so a table grows over sessions and machines whose workdirs are gone; a run trained here (or
read from a finished workdir) is added, replacing an entry of another config. The table's
header names every machine its runs came from, and a claim between rows run on different
machines says so (machines differ by more than seeds do for some systems). `--recorded-only`
trains nothing: the table of the runs recorded so far, and the runs it lacks.

Claims: a script declares its paper's orderings as data, e.g.
`Claim(better="ms_c", worse="fom", metric="lpips", higher_is_better=False, source="Table 2: ...")`.
The difference is the mean of `better` minus the mean of `worse`, negated when lower is better
(positive: the claimed direction); the band is 2 sqrt((s_better² + s_worse²) / 2), twice the
pooled seed standard deviation, or, for a `paired` claim between rows whose seed i share seed
i's runs (two layers of one model; MFCI's fused model and the frozen baseline it was trained
from), twice the standard deviation of the per-seed differences, which leaves out the noise the
two rows share; a paired claim takes the seeds both rows have (rows of 3 and 1 seeds: seed 0).
Against an `exact` row, one without seed noise (copying the source frame), the band is twice
the other row's standard deviation.
Verdict: "reproduced" when the difference exceeds the band,
"reversed" when it is below minus the band, "within noise" otherwise; with fewer than 2 seeds on
either row, "one seed: no noise band" and the plain direction. Claims on rows the table lacks are
left out; one on a metric a row lacks is "not measured".
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import math
import os
import shlex
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results_table import _format, machine  # noqa: E402  pylint: disable=g-import-not-at-top

ONE_SEED = "one seed: no noise band"


@dataclasses.dataclass(frozen=True)
class Claim:
  """A paper's ordering: row `better` ahead of row `worse` on `metric`; `source` cites it."""
  better: str
  worse: str
  metric: str
  higher_is_better: bool = True
  source: str = ""
  # Both rows are outputs of the same runs (seed i of each from one run, e.g. two layers of one
  # model): the band is 2 x the standard deviation of the per-seed differences.
  paired: bool = False


@dataclasses.dataclass
class Row:
  """A table row: `name` (its workdir, what claims call it), `label`, one result dict per seed;
  `exact`: the row has no seed noise (one result, the same for any seed, e.g. copying the
  source frame)."""
  name: str
  label: str
  seeds: list
  exact: bool = False
  # The machine of each seed's run where a Ledger knows it (`results_table.machine()`).
  machines: list = dataclasses.field(default_factory=list)


def _count(text: str) -> int:
  if not text.isdigit() or int(text) < 1:
    raise argparse.ArgumentTypeError(f"--seeds takes a count >= 1, got {text!r}")
  return int(text)


def _names(text: str) -> frozenset:
  return frozenset(n for n in text.split(",") if n)


def add_flag(parser, rows: bool = True) -> None:
  """--seeds, and with `rows` --seeded-rows (a script whose rows depend on other rows' seeds
  leaves it out)."""
  parser.add_argument("--seeds", type=_count, default=1,
                      help="runs per row, config.seed 0..N-1; from 2 on: noise bands and verdicts")
  if rows:
    parser.add_argument("--seeded-rows", type=_names, default=None, metavar="ROW,...",
                        help="only these rows (workdir names) run --seeds times, the others "
                             "once (default: every row)")


def count(args, name: str) -> int:
  """Seeds of row `name`: --seeds, or 1 for a row --seeded-rows leaves out."""
  chosen = getattr(args, "seeded_rows", None)
  return args.seeds if chosen is None or name in chosen else 1


def check_rows(parser, args, names) -> None:
  """Exits with a one-line error when --seeded-rows names a row the table does not run."""
  unknown = sorted((getattr(args, "seeded_rows", None) or frozenset()) - set(names))
  if unknown:
    parser.error(f"--seeded-rows names rows this table does not run: {unknown}; its rows: "
                 f"{', '.join(names)}")


def workdir_of(workdir: str, name: str, seed: int) -> str:
  """Seed 0: `<workdir>/<name>` (the row's single-seed workdir); seed i: `<name>-seed<i>`."""
  return os.path.join(workdir, name if seed == 0 else f"{name}-seed{seed}")


def run_row(workdir: str, name: str, label: str, train, seeds: int, ledger=None,
            config_of=None) -> Row:
  """`train(run_workdir, seed)` (trains, or reads back a finished run) for seeds 0..seeds-1;
  with a `ledger` (and `config_of(seed)`, the run's config) a run recorded there with the same
  config is read back instead, and each run trained is recorded. Seeds the ledger lacks under
  `ledger.recorded_only` are left out (the row may have none)."""
  if ledger is None:
    return Row(name, label, [train(workdir_of(workdir, name, s), s) for s in range(seeds)])
  found, machines = [], []
  for seed in range(seeds):
    run_dir = workdir_of(workdir, name, seed)
    results = ledger.run(run_dir, config_of(seed), lambda: train(run_dir, seed))
    if results is not None:
      found.append(results)
      machines.append(ledger.machine_of(os.path.basename(run_dir)))
  return Row(name, label, found, machines=machines)


def add_ledger_flags(parser) -> None:
  """--ledger DIR and --recorded-only (the module docstring's Ledger)."""
  parser.add_argument("--ledger", default="", metavar="DIR",
                      help="keep every finished run's results (with its config's digest, the "
                           "machine, the commit, the date) in DIR and read back the runs "
                           "recorded there instead of training them again")
  parser.add_argument("--recorded-only", action="store_true",
                      help="train nothing: the table of the runs --ledger (or --workdir) holds, "
                           "and the runs it lacks")


def open_ledger(parser, args):
  """The Ledger of --ledger, or None; a parser error for --recorded-only without one."""
  if args.recorded_only and not args.ledger:
    parser.error("--recorded-only reads the runs of a ledger: give --ledger DIR")
  return Ledger(args.ledger, args.recorded_only) if args.ledger else None


def _is_path(value) -> bool:
  return isinstance(value, str) and ("/" in value or value.startswith(("~", ".")))


def _split_paths(tree: dict, prefix: str = "") -> tuple[dict, dict]:
  """(`tree` with path-valued strings replaced by "<path>", {dotted key: path})."""
  kept, paths = {}, {}
  for key, value in tree.items():
    if isinstance(value, dict):
      kept[key], inner = _split_paths(value, f"{prefix}{key}.")
      paths.update(inner)
    elif _is_path(value):
      kept[key], paths[prefix + key] = "<path>", value
    else:
      kept[key] = value
  return kept, paths


def config_digest(config) -> tuple[str, dict]:
  """(sha256 of the config's JSON without its path-valued fields, {dotted key: path})."""
  kept, paths = _split_paths(json.loads(config.to_json_best_effort(sort_keys=True)))
  text = json.dumps(kept, sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()[:16], paths


def commit() -> str:
  """The project's `git describe --always --dirty`, or "unknown" outside a git checkout."""
  try:
    return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                          text=True, check=True,
                          cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


class Ledger:
  """Finished runs' results in `folder`, one `<run>.json` each (the module docstring)."""

  def __init__(self, folder: str, recorded_only: bool = False):
    self.folder, self.recorded_only, self.missing = folder, recorded_only, []

  def _path(self, run_name: str) -> str:
    return os.path.join(self.folder, f"{run_name}.json")

  def entry(self, run_name: str) -> dict | None:
    path = self._path(run_name)
    if not os.path.exists(path):
      return None
    with open(path, encoding="utf-8") as f:
      return json.load(f)

  def machine_of(self, run_name: str) -> str:
    return (self.entry(run_name) or {}).get("machine", "")

  def run(self, run_dir: str, config, train) -> dict | None:
    """The results of the run in `run_dir`: its finished workdir's (recorded here), the
    ledger's entry of the same config, or trained by `train()` and recorded; None when
    recorded_only and neither holds it."""
    run_name, (digest, paths) = os.path.basename(run_dir), config_digest(config)
    entry = self.entry(run_name)
    finished = os.path.exists(os.path.join(run_dir, "results.json"))
    if not finished and entry is not None and entry["config_sha256"] == digest:
      return entry["results"]
    if not finished and self.recorded_only:
      self.missing.append(run_name)
      return None
    if entry is not None and entry["config_sha256"] != digest and not finished:
      print(f"ledger: {self._path(run_name)} holds another config's run "
            f"({entry['config_sha256']} vs {digest}): training it again", flush=True)
    results = train()
    if entry is None or entry["config_sha256"] != digest or entry["results"] != results:
      self._write(run_name, {"run": run_name, "config_sha256": digest, "paths": paths,
                             "results": results, "machine": machine(), "commit": commit(),
                             "date": datetime.date.today().isoformat()})
    return results

  def population(self, run_name: str) -> dict | None:
    return (self.entry(run_name) or {}).get("population")

  def add_population(self, run_name: str, results: dict) -> None:
    """Records the run's population-statistics scores beside its results."""
    entry = self.entry(run_name)
    if entry is not None:
      self._write(run_name, {**entry, "population": results})

  def _write(self, run_name: str, entry: dict) -> None:
    os.makedirs(self.folder, exist_ok=True)
    path = self._path(run_name)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      json.dump(entry, f, indent=1, sort_keys=True)
      f.write("\n")
    os.replace(path + ".tmp", path)


def add_batch_norm_flag(parser) -> None:
  """--batch-norm: score the finished runs with their batch norms' population statistics."""
  parser.add_argument("--batch-norm", choices=("batch", "population"), default="batch",
                      help="population: every run's checkpoint re-scored with its batch norms "
                           "normalised by the training split's statistics, not each evaluation "
                           "batch's (psrjax eval --batch-norm population); table-population.md")


def rescored(rows: list[Row], workdir: str, batch_norm: str, ledger=None) -> list[Row]:
  """`rows`, or with batch_norm="population" each run's `population_results` (recorded in
  and read back from the `ledger`, when one is given)."""
  if batch_norm == "batch":
    return rows
  def one(run_dir, results):
    name = os.path.basename(run_dir)
    found = ledger.population(name) if ledger is not None else None
    if found is None:
      if ledger is not None and not os.path.isdir(os.path.join(run_dir, "eval", "system")):
        raise SystemExit(f"{name}: its results come from the ledger without its checkpoint, "
                         f"which population statistics need: train it here (a --workdir that "
                         f"holds it) or leave out --batch-norm population")
      found = population_results(run_dir, results)
      if ledger is not None:
        ledger.add_population(name, found)
    return found
  return [dataclasses.replace(row, seeds=[one(workdir_of(workdir, row.name, s), r)
                                          for s, r in enumerate(row.seeds)]) for row in rows]


def population_results(workdir: str, results: dict) -> dict:
  """The system metrics of the run's last checkpoint with population batch-norm statistics,
  evaluated once (`<workdir>/eval/system-population/<step>.json`) and read back after;
  `results` for a system without batch norms."""
  from psrjax import config_utils  # pylint: disable=g-import-not-at-top  # JAX-heavy
  from psrjax.systems import base  # pylint: disable=g-import-not-at-top
  from psrjax.train import offline_eval  # pylint: disable=g-import-not-at-top
  name = "system" + offline_eval.POPULATION_SUFFIX
  folder = os.path.join(workdir, "eval", "system")
  steps = sorted(int(f[:-5]) for f in os.listdir(folder) if f.endswith(".json"))
  done = os.path.join(workdir, "eval", name, f"{steps[-1]}.json") if steps else ""
  if done and os.path.exists(done):
    with open(done) as f:
      return {k: v for k, v in json.load(f).items() if k != "step"}
  try:
    _, found = offline_eval.evaluate_checkpoint(config_utils.load_workdir_config(workdir),
                                                workdir, only=("system",),
                                                batch_norm="population")
  except base.NoBatchNorm:
    return results
  return {k[len(name) + 1:]: v for k, v in found.items()}


def read_or_run(workdir: str, compute) -> dict:
  """`<workdir>/results.json` of a finished run, or `compute()` (a dict of floats) written there."""
  os.makedirs(workdir, exist_ok=True)
  done = os.path.join(workdir, "results.json")
  if os.path.exists(done):
    with open(done) as f:
      return json.load(f)
  values = compute()
  with open(done + ".tmp", "w") as f:
    json.dump(values, f)
  os.replace(done + ".tmp", done)
  return values


def values(row: Row, metric: str) -> list[float] | None:
  """The metric of every seed of `row`; None when a seed lacks it."""
  found = [results.get(metric) for results in row.seeds]
  return None if any(v is None for v in found) else [float(v) for v in found]


def mean_std(numbers: list[float]) -> tuple[float, float | None]:
  """Mean and sample standard deviation (ddof=1; None for one number)."""
  return statistics.fmean(numbers), statistics.stdev(numbers) if len(numbers) > 1 else None


def cell(numbers: list[float] | None) -> str:
  """'mean ± std' (results_table's number format), the value with one seed, '-' when missing."""
  if not numbers:
    return "-"
  mean, std = mean_std(numbers)
  return _format(mean) if std is None else f"{_format(mean)} ± {_format(std)}"


def verdict(difference: float, band: float | None) -> str:
  """The module docstring's rule; `difference` > 0 is the claimed direction, band None: one seed."""
  if band is None:
    side = "as claimed" if difference > 0 else "the other way" if difference < 0 else "tied"
    return f"{ONE_SEED} ({side})"
  return "reproduced" if difference > band else "reversed" if difference < -band else "within noise"


def judge(claim: Claim, rows: list[Row]) -> dict | None:
  """The claim, its rows' labels and means, the difference, the band and the verdict; None when
  the table lacks one of its rows."""
  named = {row.name: row for row in rows}
  if claim.better not in named or claim.worse not in named:
    return None
  out = {**dataclasses.asdict(claim), "better_label": named[claim.better].label,
         "worse_label": named[claim.worse].label}
  a, b = values(named[claim.better], claim.metric), values(named[claim.worse], claim.metric)
  if a is None or b is None:
    return {**out, "verdict": "not measured"}
  if claim.paired:   # the seeds both rows have: seed i of one is paired with seed i of the other
    a, b = a[:len(b)], b[:len(a)]
  (mean_a, std_a), (mean_b, std_b) = mean_std(a), mean_std(b)
  difference = (mean_a - mean_b) * (1 if claim.higher_is_better else -1)
  if claim.paired:
    band = mean_std([x - y for x, y in zip(a, b)])[1]
    band = None if band is None else 2 * band
  elif named[claim.better].exact or named[claim.worse].exact:   # only the other row varies
    other = std_b if named[claim.better].exact else std_a
    band = None if other is None else 2 * other
  else:
    band = None if std_a is None or std_b is None else 2 * math.sqrt((std_a ** 2 + std_b ** 2) / 2)
  return {**out, "better_mean": mean_a, "worse_mean": mean_b, "difference": difference,
          "band": band, "verdict": verdict(difference, band)}


def paper_claims(source: str, numbers: dict, pairs, metrics, lower=(),
                 paired: bool = False) -> list[Claim]:
  """The orderings a paper's table (`numbers`: row -> metric -> value) states between each pair
  of rows on each metric (`lower`: lower is better); `source` names the table; `paired`: the
  rows' seed i share their seed's runs (Claim.paired)."""
  claims = []
  for a, b in pairs:
    for metric in metrics:
      x, y = numbers[a][metric], numbers[b][metric]
      if x != y:
        higher = metric not in lower
        better, worse = (a, b) if (x > y) == higher else (b, a)
        claims.append(Claim(better, worse, metric, higher, f"{source}: {metric} "
                            f"{numbers[better][metric]:g} vs {numbers[worse][metric]:g}",
                            paired))
  return claims


def table(rows: list[Row], columns, corner: str = "model") -> str:
  """Markdown table: a line per row, a cell per (key, label) of `columns`."""
  lines = [f"| {corner} | " + " | ".join(label for _, label in columns) + " |",
           "|---|" + "---|" * len(columns)]
  for row in rows:
    lines.append(f"| {row.label} | " + " | ".join(cell(values(row, k)) for k, _ in columns) + " |")
  return "\n".join(lines)


def claims_text(judged: list[dict]) -> str:
  """One line per judged claim: the claim, the two means, the difference, the band, the verdict."""
  number = lambda j, k: "-" if j.get(k) is None else _format(j[k])
  lines = ["Claims (reproduced: the difference of the means, in the claimed direction, exceeds "
           "2 pooled seed standard deviations; paired: 2 standard deviations of the per-seed "
           "differences, for rows whose seed i share seed i's runs; against a row without "
           "seed noise: 2 of the other row's):"]
  for j in judged:
    order = "higher" if j["higher_is_better"] else "lower"
    band = "paired band" if j.get("paired") else "band"
    lines.append(f"- {j['better_label']} ahead of {j['worse_label']} on {j['metric']} ({order} is "
                 f"better; {j['source']}): {number(j, 'better_mean')} vs "
                 f"{number(j, 'worse_mean')}, difference {number(j, 'difference')}, {band} "
                 f"{number(j, 'band')}: {j['verdict']}"
                 + (f" (runs on {j['machines']} machines)" if j.get("machines") else ""))
  return "\n".join(lines)


def _summary(row: Row) -> dict:
  keys = [k for k in row.seeds[0] if values(row, k) is not None]
  stats = {k: mean_std(values(row, k)) for k in keys}
  return {"name": row.name, "model": row.label, "seeds": row.seeds, "exact": row.exact,
          **({"machines": row.machines} if any(row.machines) else {}),
          "mean": {k: s[0] for k, s in stats.items()}, "std": {k: s[1] for k, s in stats.items()}}


def _machines(rows: list[Row]) -> dict:
  """{machine: runs} of the rows' runs whose machine is known."""
  counts = {}
  for row in rows:
    for m in row.machines:
      if m:
        counts[m] = counts.get(m, 0) + 1
  return counts


def where(rows: list[Row]) -> str:
  """The machine the rows' runs came from: this one, the one the ledger names, or each machine
  with its number of runs."""
  counts = _machines(rows)
  if not counts:
    return machine()
  if len(counts) == 1:
    return next(iter(counts))
  return "runs on " + "; ".join(f"{m} ({n} runs)" for m, n in counts.items())


def write_table(workdir: str, header: str, script: str, argv, rows: list[Row], columns,
                claims=(), corner: str = "model", name: str = "table", ledger=None) -> str:
  """Writes `<name>.md` (the header, the seeds, the machine(s), the command, the table, the
  claims, the runs a --recorded-only `ledger` lacks) and `<name>.json` (per row its seeds' results, mean and std; per claim its verdict)
  under `workdir`, prints the text and returns it."""
  rows = [row for row in rows if row.seeds]   # a --recorded-only row may have no run yet
  judged = [j for j in (judge(c, rows) for c in claims) if j is not None]
  for j in judged:
    spread = _machines([r for r in rows if r.name in (j["better"], j["worse"])])
    if len(spread) > 1:
      j["machines"] = len(spread)
  command = f"`python benchmarks/{script} {' '.join(shlex.quote(a) for a in argv)}`"
  count = max(len(row.seeds) for row in rows) if rows else 1
  seeds = f"; seeds 0..{count - 1} per row" if count > 1 else ""
  text = f"{header}{seeds}; {where(rows)}; {command}\n\n{table(rows, columns, corner)}"
  if judged:
    text += "\n\n" + claims_text(judged)
  if ledger is not None and ledger.missing:
    text += "\n\nNot yet run: " + ", ".join(ledger.missing)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, f"{name}.md"), "w", encoding="utf-8") as f:
    f.write(text + "\n")
  with open(os.path.join(workdir, f"{name}.json"), "w", encoding="utf-8") as f:
    json.dump({"rows": [_summary(row) for row in rows], "claims": judged}, f, indent=2)
  print(text)
  return text
