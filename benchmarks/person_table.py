r"""The per-person table: the learned systems (pix2pixHD, Everybody Dance Now, ...) beside the
nearest-pose retrieval baseline, on the same held-out segment of the same person's video.

  python benchmarks/person_table.py \
      --runs "pix2pixhd:configs/pix2pixhd.py:runlocal:runs/pix2pixhd,edn:configs/edn.py:runlocal:runs/edn"

Each run is `label:config file[:args]:workdir` (args may hold commas: `runlocal,data=DATASET`);
it is trained (or resumed) to its end unless its final `system` evaluation already exists,
which is then read back. The retrieval baseline (`psrjax.baselines.retrieval`, no learning:
each held-out pose gets the training frame with the nearest torso-normalised pose) is
evaluated on the first run's data config. Columns: SSIM, PSNR, LPIPS (AlexNet), masked SSIM,
the synthesized person's mask IoU and E_temp, the best in bold (LPIPS and E_temp
lower-is-better), over all held-out runs, then over the runs of actions the
training segment shows and of those it never shows. Above: the configs, step budgets, the
machine and the command.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results_table import completed, final_results, machine, table  # noqa: E402

COLUMNS = [("ssim", "SSIM"), ("psnr", "PSNR"), ("lpips", "LPIPS"), ("m_ssim", "M-SSIM"),
           ("mask_iou", "mask IoU"), ("tempe", "E_temp")]
LOWER = ("lpips", "tempe")


def parse_runs(text: str) -> list[tuple[str, str, str]]:
  """'label:file.py[:args]:workdir,...' -> [(label, config spec, workdir)]. A comma starts a new
  run only where a `label:file.py` follows, so args may hold commas ("runlocal,data=DS")."""
  runs = []
  for item in filter(None, (s.strip() for s in re.split(r",(?=[^,:]+:[^,:]+\.py\b)", text))):
    label, _, rest = item.partition(":")
    spec, _, workdir = rest.rpartition(":")
    if not (label and spec.partition(":")[0].endswith(".py") and workdir):
      raise ValueError(f"--runs items are label:config.py[:args]:workdir; got {item!r}")
    runs.append((label, spec, workdir))
  return runs


def run_results(spec: str, workdir: str) -> tuple[dict, int]:
  """The final `system` evaluation of a run (trained or resumed to its end if missing)."""
  from psrjax import config_utils  # pylint: disable=g-import-not-at-top
  from psrjax.train import loop  # pylint: disable=g-import-not-at-top
  config = config_utils.load_config(spec)
  step = config.train.steps
  if not os.path.isfile(os.path.join(workdir, "eval", "system", f"{step}.json")):
    step = completed(loop.train(config, workdir)).step
  return final_results(config, workdir, step), step


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--runs", required=True, help="label:config.py[:args]:workdir,...")
  args = parser.parse_args()
  from psrjax import config_utils  # pylint: disable=g-import-not-at-top
  from psrjax.baselines import retrieval  # pylint: disable=g-import-not-at-top
  runs = parse_runs(args.runs)
  results, rows, budgets = {}, [], []
  data = config_utils.load_config(runs[0][1]).data
  for key, value in retrieval.evaluate(data).items():
    results[f"{key}/retrieval"] = value
  rows.append(("retrieval", "nearest-pose retrieval (no learning)"))
  for label, spec, workdir in runs:
    found, step = run_results(spec, workdir)
    results.update({f"{k}/{label}": v for k, v in found.items()})
    rows.append((label, label))
    budgets.append(f"`{spec}` {step} steps")
  examples = int(results[f"num_examples/{runs[0][0]}"])
  command = " ".join(shlex.quote(a) for a in ["python", *sys.argv])
  person = f"dataset {data.dataset}" if data.get("dataset") else f"identity {data.identity}"
  print(f"{'; '.join(budgets)}; {examples} held-out runs of {data.eval_run_frames} frames "
        f"({person}, {data.resolution}x{data.resolution}); {machine()}; `{command}`\n")
  print(table(results, rows, COLUMNS, lower=LOWER, corner="system"))
  for group in ("seen", "novel"):   # psrjax.data.samplers.per_person.RUN_GROUPS
    if not all(f"{m}/{group}/{label}" in results for m, _ in COLUMNS for label, _ in rows):
      continue   # a group the evaluation lacks (a prepared video's runs are all "seen")
    print(f"\nHeld-out runs of {group} actions only:\n")
    columns = [(f"{m}/{group}", label) for m, label in COLUMNS]
    print(table(results, rows, columns, lower=tuple(f"{m}/{group}" for m in LOWER),
                corner="system"))
  return 0


if __name__ == "__main__":
  sys.exit(main())
