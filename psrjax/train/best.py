"""The best-validation snapshot of a run: `config.train.keep_best = (metric, mode)`.

`metric` is `"<eval entry>/<metric>"` (an entry of `config.evals`, e.g. `"system/l1"`,
`"system/m_ssim/fused"`, `"fvd/fvd"`), `mode` is `"min"` or `"max"`. Each time that entry runs
in training (the final evaluation included), a value strictly better than the best so far (NaN
never is) saves the whole train state of that step:

    <workdir>/best/<step>/{state,data}   orbax checkpoint, as in checkpoints/ (train state and
                                         data-iterator state: usable as config.resume/init_from)
    <workdir>/best/best.json             {"step", "metric", "mode", "value"}

Crash safety, locally and in a bucket (`gs://...`, where directory renames are copies): a new
best is first saved completely as its own orbax checkpoint, then best.json is rewritten to name
it (the commit point: one `os.replace` locally, one object upload in a bucket, both
all-or-nothing), and only then is the previous snapshot deleted. Readers trust only what
best.json names, so a crash leaves the previous or the new best, plus at worst a leftover
directory the next training start removes. A new best at the very step best.json already names
(a resumed run that trains that step again) cannot overwrite the snapshot in use: it is written
under `best/again/<step>/` and best.json then also holds `"directory": "again"` (the next best
goes back to `best/<step>/`).
Process 0 writes best.json and deletes; the orbax save is collective (every process calls it).

A resumed run reads the best so far from best/best.json, so it replaces the snapshot only with a
strictly better value, even when it resumes from a checkpoint older than the best step.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
from typing import Any

import jax
import orbax.checkpoint as ocp

from psrjax import evals as evals_lib
from psrjax import paths
from psrjax.train import checkpoint as checkpoint_lib

BEST_DIR = "best"
BEST_JSON = "best.json"
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


AGAIN_DIR = "again"  # holds a new best at the step of the snapshot in use


def snapshot_root(best_dir: str, info: dict[str, Any]) -> str:
  """The orbax checkpoint root of the snapshot `info` (best.json's content) names: `best_dir`,
  or `best_dir/again` when it names that directory."""
  return paths.join(best_dir, info["directory"]) if info.get("directory") else best_dir


def _read_info(best_dir: str) -> dict[str, Any] | None:
  """best.json of `best_dir` if the snapshot it names is there."""
  try:
    info = json.loads(paths.read_text(paths.join(best_dir, BEST_JSON)))
  except (OSError, ValueError):
    return None
  if not isinstance(info, dict) or not {"step", "metric", "mode", "value"} <= set(info):
    return None
  if info.get("directory") not in (None, AGAIN_DIR):
    return None
  if not paths.isdir(paths.join(snapshot_root(best_dir, info), str(info["step"]), "state")):
    return None
  return info


def find(workdir: str) -> tuple[str, dict[str, Any]] | None:
  """(checkpoint root, best.json content) of the kept snapshot of `workdir` (the snapshot is
  `<root>/<step>/`), None if there is none. Read-only."""
  best_dir = paths.join(paths.resolve(workdir), BEST_DIR)
  info = _read_info(best_dir)
  return None if info is None else (snapshot_root(best_dir, info), info)


def check_existing(target: Target | None, workdir: str) -> None:
  """A kept snapshot of another metric or mode is an error (before the run writes anything)."""
  found = find(workdir) if target is not None else None
  if found is None:
    return
  directory, info = found
  if (info["metric"], info["mode"]) != (target.name, target.mode):
    raise ValueError(
        f"{directory} keeps the best {info['metric']!r} ({info['mode']}) but train.keep_best is "
        f"({target.name!r}, {target.mode!r}); keep train.keep_best=({info['metric']!r}, "
        f"{info['mode']!r}) or move {paths.join(workdir, BEST_DIR)} away to start a new best")


def _leftovers(best_dir: str, info: dict[str, Any] | None) -> list[str]:
  """What in `best_dir` the snapshot best.json names does not need."""
  keep = {BEST_JSON}
  if info is not None:
    keep.add(info.get("directory") or str(info["step"]))
  return [paths.join(best_dir, name) for name in paths.listdir(best_dir) if name not in keep]


def _write_json(path: str, info: dict[str, Any]) -> None:
  """Writes `path` all at once (`paths.write_text`: never half-written)."""
  paths.write_text(path, json.dumps(info, indent=2, sort_keys=True))


def recover(workdir: str) -> None:
  """Removes what a crash left beside the snapshot best.json names (all of best/ when best.json
  names no complete snapshot)."""
  best_dir = paths.join(workdir, BEST_DIR)
  info = _read_info(best_dir)
  if info is None and paths.isfile(paths.join(best_dir, BEST_JSON)):
    paths.remove(paths.join(best_dir, BEST_JSON))
  for path in _leftovers(best_dir, info):
    paths.remove(path)


def _barrier(what: str) -> None:
  ocp.multihost.sync_global_processes(f"psrjax_keep_best_{what}_{next(_barriers)}")


class KeepBest:
  """Keeps `<workdir>/best/` up to date with the best value of `target` seen in training."""

  def __init__(self, workdir: str, target: Target | None):
    self.workdir, self.target = paths.resolve(workdir), target
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
    return paths.join(self.workdir, BEST_DIR)

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
    best_dir = paths.join(self.workdir, BEST_DIR)
    if self.info is not None and int(self.info["step"]) == int(step):
      if not self.info.get("directory"):
        info["directory"] = AGAIN_DIR  # best/<step>/ is the snapshot in use
    root = snapshot_root(best_dir, info)
    if jax.process_index() == 0:
      paths.remove(paths.join(root, str(step)))  # an unfinished earlier try
    _barrier(f"clear_{step}")
    checkpoints = checkpoint_lib.Checkpoints(root)
    try:
      checkpoints.save(step, state, iterator)
      checkpoints.wait()
    finally:
      checkpoints.close()
    _barrier(f"saved_{step}")
    if jax.process_index() == 0:
      _write_json(paths.join(best_dir, BEST_JSON), info)  # The commit point.
      for path in _leftovers(best_dir, info):
        paths.remove(path)
    _barrier(f"committed_{step}")


def require(workdir: str) -> tuple[str, dict[str, Any]]:
  """`find`, with a one-line ValueError saying how to keep a snapshot when there is none."""
  found = find(workdir)
  if found is None:
    raise ValueError(f"no best snapshot in {paths.join(paths.resolve(workdir), BEST_DIR)}; "
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
