r"""Trains a config (or resumes it to its end) and prints its final evaluation as a docs table
(a run that already wrote its final evaluation is read back, not evaluated again).

  python benchmarks/results_table.py --config configs/psrnet.py:runlocal --workdir runs/psrnet \
      --rows copy:"copy the input view",texture:"texture transfer x̂⁰",layer1:"layer 1",layer2:"layer 2",layer3:"layer 3 (final)" \
      --metrics ssim:SSIM,m_ssim:M-SSIM,psnr:PSNR,m_psnr:M-PSNR

The table's rows are `generate` outputs, its columns metrics of the `system` evaluation
(`<workdir>/eval/system/<step>.json`, keys `<metric>/<row>`) and of every other entry of
`config.evals` that names its `prediction` (e.g. MFCI's `vfid`, prediction "fused": key
`vfid/fused`, `--metrics vfid:VFID`) and ran at that step; the best value of each column is
bold (the highest: every metric listed here is higher-is-better unless given in `--lower`).
Above the table: the config, the step budget, the machine (CPU model, cores, vector extensions)
and the command, so the docs state where their numbers come from.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def machine() -> str:
  """'<CPU model>, <n> cores, <vector extensions>' of this host (Linux), for the table header."""
  model, flags = "unknown CPU", set()
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
          model = value.strip()
        elif key.strip() == "flags":
          flags = set(value.split())
  except OSError:
    pass
  vector = sorted(f for f in flags if f in ("avx2", "fma", "avx_vnni", "amx_bf16")
                  or f.startswith("avx512"))
  return f"{model}, {os.cpu_count()} cores, {' '.join(vector) or 'no AVX2'}"


def completed(result):
  """`result` of `loop.train` for a run that reached its last step; a run stopped before it
  (SIGTERM or `stop_after`: its checkpoint saved) exits instead, so that no table or ledger
  takes its early evaluation for the run's."""
  if result.preempted:
    raise SystemExit(f"{result.workdir}: stopped at step {result.step} before its end (its "
                     f"checkpoint is saved): run the same command again to resume it")
  return result


def _pairs(text: str) -> list[tuple[str, str]]:
  """'key:Label,key2' -> [(key, Label), (key2, key2)]."""
  out = []
  for item in filter(None, (s.strip() for s in text.split(","))):
    key, _, label = item.partition(":")
    out.append((key, label or key))
  return out


def _format(value: float) -> str:
  """4 decimals below 10 (SSIM, IoU), 2 above (PSNR, FID); 3 significant digits below 0.01."""
  if 0 < abs(value) < 0.01:
    return f"{value:.3g}"
  return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def table(results: dict, rows, columns, lower=(), corner: str = "output") -> str:
  """Markdown table of `results["<metric>/<row>"]`, the best of each column in bold; `corner`
  heads the row-label column."""
  missing = [f"{m}/{r}" for r, _ in rows for m, _ in columns if f"{m}/{r}" not in results]
  if missing:
    raise ValueError(f"the evaluation has no {', '.join(missing)}; it has "
                     f"{', '.join(sorted(k for k in results if k.count('/') == 1))}")
  best = {m: (min if m in lower else max)(results[f"{m}/{r}"] for r, _ in rows) for m, _ in columns}
  lines = [f"| {corner} | " + " | ".join(label for _, label in columns) + " |",
           "|---|" + "---|" * len(columns)]
  for row, label in rows:
    cells = []
    for metric, _ in columns:
      value = results[f"{metric}/{row}"]
      text = _format(value)
      cells.append(f"**{text}**" if value == best[metric] else text)
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def final_results(config, workdir: str, step: int) -> dict:
  """The `system` results at `step`, plus `<metric>/<prediction>` from each other eval of
  `config.evals` that declares a `prediction` and wrote results at `step`."""
  def read(name):
    path = os.path.join(workdir, "eval", name, f"{step}.json")
    if not os.path.isfile(path):
      return None
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  results = read("system")
  for name, entry in (config.get("evals") or {}).items():
    prediction = entry.get("prediction") if name != "system" else None
    found = read(name) if prediction else None
    for key, value in (found or {}).items():
      if key != "num_examples":
        results[f"{key}/{prediction}"] = value
  return results


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", required=True, help="config file[:args]")
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--rows", required=True, help="output[:label],... (generate outputs)")
  parser.add_argument("--metrics", required=True, help="metric[:label],... (system eval)")
  parser.add_argument("--lower", default="", help="metrics where lower is better, comma-separated")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="config override (repeatable)")
  args = parser.parse_args()
  from psrjax import config_utils  # pylint: disable=g-import-not-at-top
  from psrjax.train import loop  # pylint: disable=g-import-not-at-top
  overrides = [tuple(s.split("=", 1)) for s in args.set]
  config = config_utils.load_config(args.config, overrides)
  step = config.train.steps
  if not os.path.isfile(os.path.join(args.workdir, "eval", "system", f"{step}.json")):
    step = completed(loop.train(config, args.workdir)).step   # trains or resumes to its end
  results = final_results(config, args.workdir, step)   # a finished run is read back
  command = " ".join(shlex.quote(a) for a in ["python", *sys.argv])
  print(f"Config `{args.config}`{''.join(f' --config.{k}={v}' for k, v in overrides)}, "
        f"{step} steps, {int(results['num_examples'])} evaluation examples; "
        f"{machine()}; `{command}`\n")
  print(table(results, _pairs(args.rows), _pairs(args.metrics),
              lower=tuple(filter(None, args.lower.split(",")))))
  return 0


if __name__ == "__main__":
  sys.exit(main())
