"""Evaluations declared in the config (big_vision's evaluator protocol).

    config.evals.fvd = dict(type="fvd", every=5000, split="validation", num_examples=256,
                            batch_size=8, resolution=224)

Every entry is built by `psrjax.evals.<type>.make_evaluator` and run by the trainer every
`every` steps (0: only at the end of training; -1: never during training, only by
`psrjax eval`) and by `psrjax eval`. Results go to `<workdir>/eval/<name>/<step>.json` and to
the metric writers as `eval/<name>/<metric>`. Common fields: `type`, `every`, `split`
("validation"), `num_examples` (first N examples, 0 = all), `batch_size` (global, padded: every
example counts once; default `config.eval.batch_size`). Types and their own fields:
  system       System.evaluate means (and per-group means), like the `config.eval` block.
  fid, kid     InceptionV3 pool3 features of generated vs real frames (FID / KID).
  fvd, vfid    I3D features of generated vs real clips (FVD: logits at 224x224; VFID: Mixed_5c).
  robust_pose  D²G-Net's R-SSIM / R-PSNR on the validation poses farthest from training poses.
See each module's docstring for the fields of its type.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any

from psrjax.train import data as data_lib
from psrjax.train import evaluator as evaluator_lib

TYPES = ("system", "fid", "kid", "fvd", "vfid", "robust_pose")
COMMON = {"type": None, "every": 0, "split": "validation", "num_examples": 0, "batch_size": None}


@dataclasses.dataclass
class DeclaredEval:
  """One `config.evals` entry, ready to run."""
  name: str  # key in config.evals; results go to eval/<name>/
  every: int  # steps between runs in training; 0 = at the end only; -1 = never in training
  evaluator: Any  # has `run(params) -> {metric: float}`

  def due(self, step: int, *, final: bool) -> bool:
    if final:
      return self.every >= 0
    return self.every > 0 and step % self.every == 0


def _fields(name: str, entry) -> tuple[dict[str, Any], dict[str, Any]]:
  entry = dict(entry.to_dict() if hasattr(entry, "to_dict") else entry)
  kind = entry.get("type")
  if kind not in TYPES:
    raise ValueError(f"config.evals.{name}.type={kind!r} is not an eval type; use one of "
                     f"{', '.join(TYPES)}")
  common = {k: entry.pop(k, v) for k, v in COMMON.items()}
  if not isinstance(common["every"], int) or common["every"] < -1:
    raise ValueError(f"config.evals.{name}.every must be an int >= -1 (0 = at the end only, "
                     f"-1 = only psrjax eval), got {common['every']!r}")
  return common, entry


def build_one(name: str, entry, *, config, system, mesh, workdir: str | None) -> DeclaredEval:
  """Builds `config.evals.<name>`; raises a one-line ValueError on bad fields."""
  common, options = _fields(name, entry)
  module = importlib.import_module(f"psrjax.evals.{common['type']}")
  allowed = [p for p in inspect.signature(module.make_evaluator).parameters
             if p not in ("system", "mesh", "data", "context")]
  unknown = sorted(set(options) - set(allowed))
  if unknown:
    raise ValueError(f"config.evals.{name}: unknown field(s) {', '.join(unknown)} for type "
                     f"{common['type']!r}; allowed: {', '.join(sorted(allowed + list(COMMON)))}")
  batch_size = common["batch_size"] or config.eval.batch_size
  data = evaluator_lib.EvalSplit(system, mesh, split=common["split"], batch_size=batch_size,
                                 num_examples=common["num_examples"], seed=config.seed,
                                 read_options=data_lib.read_options(config),
                                 what=f"evals.{name}.batch_size")
  context = {"name": name, "config": config, "workdir": workdir}
  evaluator = module.make_evaluator(system, mesh, data, context, **options)
  return DeclaredEval(name, common["every"], evaluator)


def build(config, system, mesh, *, workdir: str | None = None,
          only: tuple[str, ...] = ()) -> list[DeclaredEval]:
  """Every `config.evals` entry (or the names in `only`), in name order."""
  declared = dict(config.get("evals") or {})
  missing = sorted(set(only) - set(declared))
  if missing:
    raise ValueError(f"no eval named {', '.join(missing)} in config.evals "
                     f"(declared: {', '.join(sorted(declared)) or 'none'})")
  names = sorted(only or declared)
  return [build_one(n, declared[n], config=config, system=system, mesh=mesh, workdir=workdir)
          for n in names]


def run_and_write(evals: list[DeclaredEval], params, *, workdir: str, step: int, writer,
                  final: bool, everything: bool = False) -> dict[str, dict[str, float]]:
  """Runs the evals due at `step` (all of them if `everything`, as `psrjax eval` does) and
  writes each one's results; returns {name: results}."""
  results = {}
  for declared in evals:
    if everything or declared.due(step, final=final):
      results[declared.name] = declared.evaluator.run(params)
      evaluator_lib.write_results(workdir, step, results[declared.name], writer,
                                  name=declared.name)
  return results
