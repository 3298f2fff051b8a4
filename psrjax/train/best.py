"""The best-validation snapshot of a run: `config.train.keep_best = (metric, mode)`.

`metric` is `"<eval entry>/<metric>"` (an entry of `config.evals`, e.g. `"system/l1"`,
`"system/m_ssim/fused"`, `"fvd/fvd"`), `mode` is `"min"` or `"max"`. Each time that entry runs
in training (the final evaluation included), a value strictly better than the best so far (NaN
never is) saves the whole train state of that step:

    <workdir>/best/<step>/{state,data}   orbax checkpoint, as in checkpoints/ (train state and
                                         data-iterator state: usable as config.resume/init_from)
    <workdir>/best/best.json             {"step", "metric", "mode", "value"}

Crash safety: a new best is written into the sibling `best.tmp/` (orbax checkpoint first, then
best.json through a temporary file and `os.replace`), and only then swapped in
(`best/ -> best.old/`, `best.tmp/ -> best/`, `best.old/` removed). A directory counts as a
snapshot only once its best.json exists, so a crash leaves at worst an incomplete `best.tmp/`
(ignored and removed) or, between the two renames, no `best/` but complete `best.old/` and
`best.tmp/`: readers take the complete sibling, the next training start finishes the swap.
Process 0 writes best.json and renames; the orbax save is collective (every process calls it).

A resumed run reads the best so far from best/best.json, so it replaces the snapshot only with a
strictly better value, even when it resumes from a checkpoint older than the best step.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp

from psrjax import evals as evals_lib
from psrjax.train import checkpoint as checkpoint_lib

BEST_DIR = "best"
BEST_JSON = "best.json"
TMP_DIR = "best.tmp"  # the next best while it is written
OLD_DIR = "best.old"  # the previous best during the swap
MODES = ("min", "max")
USAGE = ("train.keep_best must be () (off) or (metric, mode) with metric '<eval entry>/<metric>' "
         "and mode 'min' or 'max', e.g. ('system/l1', 'min')")
HOW_TO_KEEP = ("train with --config.train.keep_best=\"('<eval entry>/<metric>', 'min' or 'max')\""
               " (e.g. \"('system/l1', 'min')\") to keep one")

_barriers = itertools.count()


@dataclasses.dataclass(frozen=True)
class Target:
  """What `train.keep_best` keeps: the best `metric` of eval entry `entry` by `mode`."""
  entry: str  # config.evals entry name
  metric: str  # key of the entry's results (may contain "/", e.g. "l1/even")
  mode: str  # "min" | "max"

  @property
  def name(self) -> str:
    return f"{self.entry}/{self.metric}"

  def better(self, value: float, best: float | None) -> bool:
    """`value` strictly beats `best` (None: nothing yet); NaN never does."""
    if math.isnan(value):
      return False
    if best is None:
      return True
    return value < best if self.mode == "min" else value > best


def parse(config) -> Target | None:
  """`config.train.keep_best` validated (None: off); one-line ValueErrors naming the fix.

  The entry must be one of `config.evals` (with the `system` alias) that runs in training; the
  metric inside it is checked when the entry's first results arrive (`KeepBest.update`).
  """
  value = config.train.get("keep_best", ())
  if value is None or (isinstance(value, (tuple, list)) and len(value) == 0):
    return None
  if (not isinstance(value, (tuple, list)) or len(value) != 2
      or not all(isinstance(v, str) for v in value)):
    raise ValueError(f"{USAGE}; got {value!r}")
  name, mode = value
  if mode not in MODES:
    raise ValueError(f"train.keep_best mode {mode!r} must be 'min' or 'max' (e.g. "
                     f"('{name}', 'min'))")
  entry, slash, metric = name.partition("/")
  if not (slash and entry and metric):
    raise ValueError(f"train.keep_best metric {name!r} must be '<eval entry>/<metric>', e.g. "
                     "'system/l1' (the system's own metrics) or 'fvd/fvd'")
  declared = evals_lib.entries(config)
  if entry not in declared:
    raise ValueError(f"train.keep_best metric {name!r}: no eval entry {entry!r} in config.evals "
                     f"(entries: {', '.join(declared)})")
  if evals_lib.spec(entry, declared[entry], config).every < 0:
    raise ValueError(f"train.keep_best metric {name!r}: config.evals.{entry}.every=-1 never runs "
                     "in training; give it every >= 0 (0 = at the end)")
  return Target(entry, metric, mode)


def _read_info(directory: str) -> dict[str, Any] | None:
  """best.json of `directory` if it is a complete snapshot (json + its step's checkpoint)."""
  try:
    with open(os.path.join(directory, BEST_JSON), encoding="utf-8") as f:
      info = json.load(f)
  except (OSError, ValueError):
    return None
  if not isinstance(info, dict) or not {"step", "metric", "mode", "value"} <= set(info):
    return None
  if not os.path.isdir(os.path.join(directory, str(info["step"]), "state")):
    return None
  return info


def find(workdir: str) -> tuple[str, dict[str, Any]] | None:
  """(directory, best.json content) of the kept snapshot of `workdir`, None if there is none.

  Read-only: after a swap interrupted between its renames (no complete `best/`), the complete
  sibling (`best.tmp/`, the newer, else `best.old/`).
  """
  workdir = os.path.abspath(workdir)
  for name in (BEST_DIR, TMP_DIR, OLD_DIR):
    directory = os.path.join(workdir, name)
    info = _read_info(directory)
    if info is not None:
      return directory, info
  return None


def check_existing(target: Target | None, workdir: str) -> None:
  """A kept snapshot of another metric or mode is an error (before the run writes anything)."""
  found = find(workdir) if target is not None and os.path.isdir(workdir) else None
  if found is None:
    return
  directory, info = found
  if (info["metric"], info["mode"]) != (target.name, target.mode):
    raise ValueError(
        f"{directory} keeps the best {info['metric']!r} ({info['mode']}) but train.keep_best is "
        f"({target.name!r}, {target.mode!r}); keep train.keep_best=({info['metric']!r}, "
        f"{info['mode']!r}) or move {directory} away to start a new best")


def _remove(path: str) -> None:
  if os.path.isdir(path):
    shutil.rmtree(path)
  elif os.path.lexists(path):
    os.remove(path)


def _write_json(path: str, info: dict[str, Any]) -> None:
  """Writes `path` through a temporary file and `os.replace` (never half-written)."""
  tmp = f"{path}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(info, f, indent=2, sort_keys=True)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def _fsync_dir(path: str) -> None:
  try:
    fd = os.open(path, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def _swap(workdir: str) -> None:
  """best.tmp/ (complete) becomes best/; the previous best/ is removed once replaced."""
  best, tmp, old = (os.path.join(workdir, n) for n in (BEST_DIR, TMP_DIR, OLD_DIR))
  _remove(old)
  if os.path.lexists(best):
    os.rename(best, old)
  os.rename(tmp, best)
  _fsync_dir(workdir)
  _remove(old)


def recover(workdir: str) -> None:
  """Finishes or rolls back a swap a crash interrupted and removes incomplete leftovers."""
  best, tmp, old = (os.path.join(workdir, n) for n in (BEST_DIR, TMP_DIR, OLD_DIR))
  if _read_info(tmp) is not None:  # Complete and better than best/ (if any): finish the swap.
    _swap(workdir)
  _remove(tmp)
  if _read_info(best) is None and _read_info(old) is not None:
    _remove(best)
    os.rename(old, best)
  _remove(old)


def _barrier(what: str) -> None:
  ocp.multihost.sync_global_processes(f"psrjax_keep_best_{what}_{next(_barriers)}")


class KeepBest:
  """Keeps `<workdir>/best/` up to date with the best value of `target` seen in training."""

  def __init__(self, workdir: str, target: Target | None):
    self.workdir, self.target = os.path.abspath(workdir), target
    self.info: dict[str, Any] | None = None  # the best.json content of the kept snapshot
    if target is None:
      return
    if jax.process_index() == 0:
      recover(self.workdir)
    _barrier("recover")
    check_existing(target, self.workdir)
    found = find(self.workdir)
    if found is not None:
      self.info = found[1]

  @property
  def directory(self) -> str:
    return os.path.join(self.workdir, BEST_DIR)

  def update(self, step: int, results: dict[str, dict[str, float]], state,
             iterator=None) -> bool:
    """Saves `state` (and `iterator`) as the best when `results` (one evaluation's results by
    entry name) hold a better value of the target; returns whether it did."""
    if self.target is None or self.target.entry not in results:
      return False
    values = results[self.target.entry]
    if self.target.metric not in values:
      raise ValueError(
          f"train.keep_best metric {self.target.name!r}: eval entry {self.target.entry!r} "
          f"returned no {self.target.metric!r} (its metrics: {', '.join(sorted(values))})")
    value = float(values[self.target.metric])
    if not self.target.better(value, None if self.info is None else self.info["value"]):
      return False
    info = {"step": int(step), "metric": self.target.name, "mode": self.target.mode,
            "value": value}
    self._save(step, state, iterator, info)
    self.info = info
    return True

  def _save(self, step: int, state, iterator, info: dict[str, Any]) -> None:
    tmp = os.path.join(self.workdir, TMP_DIR)
    if jax.process_index() == 0:
      _remove(tmp)
    _barrier(f"clear_{step}")
    checkpoints = checkpoint_lib.Checkpoints(tmp)
    try:
      checkpoints.save(step, state, iterator)
      checkpoints.wait()
    finally:
      checkpoints.close()
    _barrier(f"saved_{step}")
    if jax.process_index() == 0:
      _write_json(os.path.join(tmp, BEST_JSON), info)
      _swap(self.workdir)
    _barrier(f"swapped_{step}")


def require(workdir: str) -> tuple[str, dict[str, Any]]:
  """`find`, with a one-line ValueError saying how to keep a snapshot when there is none."""
  found = find(workdir)
  if found is None:
    raise ValueError(f"no best snapshot in {os.path.join(os.path.abspath(workdir), BEST_DIR)}; "
                     f"{HOW_TO_KEEP}")
  return found


def restore(workdir: str, target: Any) -> tuple[int, Any, dict[str, Any]]:
  """(step, state, best.json content) of the kept snapshot of `workdir` (read-only)."""
  directory, info = require(workdir)
  checkpoints = checkpoint_lib.Checkpoints(directory, read_only=True)
  try:
    state = checkpoints.restore(int(info["step"]), target)
  finally:
    checkpoints.close()
  return int(info["step"]), state, info
