"""Evaluations declared in the config (big_vision's evaluator protocol): the only evaluations.

    config.evals.fvd = dict(type="fvd", every=5000, split="validation", num_examples=256,
                            batch_size=8, resolution=224)

Every entry is built by `psrjax.evals.<type>.make_evaluator(system, mesh, data, context,
**fields)` and run by the trainer every `every` steps (0: only at the end of training; -1:
never during training, only by `psrjax eval`) and by `psrjax eval`. Results go to
`<workdir>/eval/<name>/<step>.json` and to the metric writers as `eval/<name>/<metric>`.

The system's own metrics are the entry named `system`. When `config.evals` has no entry of that
name, the trainer, `psrjax eval` and everything else that reads `config.evals` add

    config.evals.system = dict(type="system", every=config.train.eval_every,
                               split=config.eval.split, num_examples=config.eval.num_examples,
                               batch_size=config.eval.batch_size)

so `train.eval_every` is the cadence of the system metrics (0: at the end only) and
`TrainResult.eval_results` holds the last results of this entry. An entry named `system` must
have type "system"; declare it to change its fields (`--config.evals.system.every=100` adds it
first on the command line), or set its `every=-1` to run it only in `psrjax eval`.

Common fields (`COMMON`): `type`, `every` (default 0; the `system` entry's default is
`config.train.eval_every`), and `split`, `num_examples` (first N examples, 0 = all),
`batch_size` (global, rounded up to a multiple of mesh.data and padded: every example counts
once), whose defaults are the `config.eval` block's fields: `config.eval` is the block of
defaults every entry inherits (systems also size their eval sets from it). Types and their own
fields:
  system       System.evaluate means (and per-group means); no further fields.
  fid, kid     InceptionV3 pool3 features of generated vs real frames (FID / KID).
  inception_score  the Inception Score of the generated frames (InceptionV3 logits).
  fvd, vfid    I3D features of generated vs real clips (FVD: logits at 224x224; VFID: Mixed_5c).
  robust_pose  D²G-Net's R-SSIM / R-PSNR on the validation poses farthest from training poses.
See each module's docstring for the fields of its type, and `psrjax.evals.common` for the
`data` an evaluator receives. `psrjax.train.evaluator.build` builds the entries (one eval split
each); this package never imports `psrjax.train`.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any, Iterable

from psrjax.evals import common

TYPES = ("system", "fid", "kid", "inception_score", "fvd", "vfid", "robust_pose")
SYSTEM = "system"  # the entry holding System.evaluate's metrics (TrainResult.eval_results)
COMMON = ("type", "every", "split", "num_examples", "batch_size")


@dataclasses.dataclass(frozen=True)
class Spec:
  """One `config.evals` entry with its common fields resolved (defaults from the config)."""
  name: str  # key in config.evals; results go to eval/<name>/
  type: str  # one of TYPES
  every: int  # steps between runs in training; 0 = at the end only; -1 = never in training
  split: str
  num_examples: int  # 0 = all
  batch_size: int  # global, before rounding up to a multiple of mesh.data
  options: dict[str, Any]  # the type's own fields, passed to make_evaluator


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


def system_alias(config) -> dict[str, Any]:
  """The `system` entry added when `config.evals` declares none (module docstring)."""
  return dict(type=SYSTEM, every=config.train.get("eval_every", 0), split=config.eval.split,
              num_examples=config.eval.num_examples, batch_size=config.eval.batch_size)


def entries(config) -> dict[str, dict[str, Any]]:
  """`config.evals` as {name: fields}, in name order, with the `system` alias when absent."""
  declared = {name: dict(entry.to_dict() if hasattr(entry, "to_dict") else entry)
              for name, entry in (config.get("evals") or {}).items()}
  declared.setdefault(SYSTEM, system_alias(config))
  return dict(sorted(declared.items()))


def _module(kind: str):
  return importlib.import_module(f"psrjax.evals.{kind}")


def spec(name: str, entry, config) -> Spec:
  """Validates `config.evals.<name>` and resolves its common fields; one-line ValueErrors."""
  entry = dict(entry.to_dict() if hasattr(entry, "to_dict") else entry)
  kind = entry.pop("type", None)
  if kind not in TYPES:
    raise ValueError(f"config.evals.{name}.type={kind!r} is not an eval type; use one of "
                     f"{', '.join(TYPES)}")
  if name == SYSTEM and kind != SYSTEM:
    raise ValueError(f"config.evals.{SYSTEM}.type={kind!r}: the entry named {SYSTEM!r} holds the "
                     f"system's own metrics and must have type {SYSTEM!r}; give this eval "
                     "another name")
  defaults = {"every": config.train.get("eval_every", 0) if name == SYSTEM else 0,
              "split": config.eval.split, "num_examples": config.eval.num_examples,
              "batch_size": config.eval.batch_size}
  fields = {k: v if (v := entry.pop(k, None)) is not None else d for k, d in defaults.items()}
  every = fields["every"]
  if isinstance(every, bool) or not isinstance(every, int) or every < -1:
    raise ValueError(f"config.evals.{name}.every must be an int >= -1 (0 = at the end only, "
                     f"-1 = only psrjax eval), got {every!r}")
  allowed = [p for p in inspect.signature(_module(kind).make_evaluator).parameters
             if p not in ("system", "mesh", "data", "context")]
  unknown = sorted(set(entry) - set(allowed))
  if unknown:
    raise ValueError(f"config.evals.{name}: unknown field(s) {', '.join(unknown)} for type "
                     f"{kind!r}; allowed: {', '.join(sorted(allowed + list(COMMON)))}")
  return Spec(name, kind, every, options=entry, **{k: fields[k] for k in
                                                   ("split", "num_examples", "batch_size")})


def specs(config, only: Iterable[str] | None = None) -> list[Spec]:
  """The validated entries (with the `system` alias), in name order; `only`: just these names."""
  declared = entries(config)
  only = None if only is None else tuple(only)
  missing = sorted(set(only or ()) - set(declared))
  if missing:
    raise ValueError(f"no eval named {', '.join(missing)} in config.evals "
                     f"(declared: {', '.join(declared)})")
  names = list(declared) if only is None else sorted(set(only))
  return [spec(n, declared[n], config) for n in names]


def make(spec_: Spec, *, system, mesh, data, context: dict[str, Any]) -> DeclaredEval:
  """Builds the evaluator of `spec_` on `data` (see `psrjax.evals.common` for its interface).

  `context`: {"name", "config", "workdir" (None: nothing is written)}.
  """
  evaluator = _module(spec_.type).make_evaluator(system, mesh, data, context, **spec_.options)
  return DeclaredEval(spec_.name, spec_.every, evaluator)


def run_and_write(evals: Iterable[DeclaredEval], params, *, workdir: str, step: int, writer,
                  final: bool, everything: bool = False,
                  suffix: str = "") -> dict[str, dict[str, float]]:
  """Runs the evals due at `step` (all of them if `everything`, as `psrjax eval` does) and
  writes each one's results (`common.write_results`) under its name + `suffix`; returns
  {name + suffix: results}."""
  results = {}
  for declared in evals:
    if everything or declared.due(step, final=final):
      name = declared.name + suffix
      results[name] = declared.evaluator.run(params)
      common.write_results(workdir, step, results[name], writer, name=name)
  return results
