"""Orbax checkpoints of the train state together with the grain iterator state.

Layout: `<workdir>/checkpoints/<step>/{state,data}`. Saves are asynchronous (the device ->
host copy happens before `save` returns, so the state may be donated right after), at most
`max_to_keep` are kept. Restoring tries the latest step first; a checkpoint that fails to
restore is reported with a warning, moved to `<workdir>/checkpoints_corrupt/<step>` and the
previous step is tried. A checkpoint whose parameters do not match the config is an error.
The directory may be a bucket URL (`gs://...`, see `psrjax.paths`): orbax then finishes each
save with commit files instead of a directory rename.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

from psrjax import paths
from psrjax.checkpoint_params import (  # pylint: disable=unused-import  # re-exported
    CHECKPOINT_DIR, IncompatibleCheckpointError, StateRestore, StateSave, check_compatible,
    checkpoint_root, handlers, restore_params)
from psrjax.train import data as data_lib

CORRUPT_DIR = "checkpoints_corrupt"
LAYOUT = "layout"  # the checkpoint item {"processes", "shards", "offset"} of the data streams
# `config.resume_data`: "restore" = the data streams continue exactly where they were saved,
# which needs the same data layout (processes and data shards); "reshard" = in another layout,
# each new shard's stream starts at the checkpoint's step (same epoch and position, another
# split of the examples between shards), the parameters and optimizer state restored either way.
RESUME_DATA = ("restore", "reshard")
_HOW_TO_RESHARD = ("rerun with --config.resume_data=reshard to start each data shard's stream at "
                   "batch {step} (the parameters and optimizer state restore onto the new mesh "
                   "either way)")


class Checkpoints:
  """State + iterator checkpoints in one directory (`<workdir>/checkpoints`)."""

  def __init__(self, directory: str, *, max_to_keep: int | None = None, read_only: bool = False):
    self.directory, self.read_only = paths.resolve(directory), read_only
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=not read_only, read_only=read_only,
        enable_async_checkpointing=not read_only, cleanup_tmp_directories=not read_only)
    self.manager = ocp.CheckpointManager(self.directory, options=options,
                                         item_handlers=handlers())

  def steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, stream: data_lib.TrainStream | None) -> None:
    items = {"state": StateSave(state)}
    if stream is not None:
      items["data"] = grain.checkpoint.CheckpointSave(stream.iterator)
      items[LAYOUT] = ocp.args.JsonSave(stream.layout())
    self.manager.save(step, args=ocp.args.Composite(**items), force=True)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()

  def restore(self, step: int, target: Any, stream=None, *, resume_data: str = "restore") -> Any:
    """Restores step `step` into `target` (ShapeDtypeStructs with shardings, on any mesh) and,
    when given, sets `stream` (a `data.TrainStream`) to the saved position (`RESUME_DATA`)."""
    metadata = self.manager.item_metadata(step)["state"]
    if metadata is None:
      raise ValueError(f"checkpoint step {step} in {self.directory} has no readable state")
    check_compatible(metadata.tree, target, f"{self.directory}/{step}")
    restored = self.manager.restore(
        step, args=ocp.args.Composite(state=StateRestore(target)))
    if stream is not None:
      self._restore_stream(step, stream, resume_data)
    return restored["state"]

  def _saved_layout(self, step: int) -> dict[str, int] | None:
    """The data layout saved with `step` (None in checkpoints written before it was saved)."""
    if LAYOUT not in (self.manager.item_metadata(step) or {}):
      return None
    try:
      return dict(self.manager.restore(
          step, args=ocp.args.Composite(**{LAYOUT: ocp.args.JsonRestore()}))[LAYOUT])
    except FileNotFoundError:
      return None

  def _restore_stream(self, step: int, stream, resume_data: str) -> None:
    """The saved stream position in the same data layout; in another one, an error unless
    `resume_data="reshard"`, which starts every new shard's stream at batch `step`."""
    saved, here = self._saved_layout(step), stream.layout()
    if saved is None or _same_layout(saved, here):
      try:
        offset = 0 if saved is None else saved["offset"]
        if offset != stream.offset:
          stream.restart_at(offset)
        self._restore_iterator(step, stream.iterator)
        return
      except _NoProcessState as e:
        if resume_data != "reshard":
          raise IncompatibleCheckpointError(f"{e}; {_HOW_TO_RESHARD.format(step=step)}") from e
    elif resume_data != "reshard":
      raise IncompatibleCheckpointError(
          f"checkpoint {self.directory}/{step} holds the data streams of {_count(saved)}; this "
          f"run has {_count(here)}: {_HOW_TO_RESHARD.format(step=step)}")
    logging.warning("checkpoint %s/%d: data layout changed (%s); resume_data=reshard starts "
                    "each data shard's stream at batch %d", self.directory, step,
                    "unknown" if saved is None else f"{_count(saved)} -> {_count(here)}", step)
    stream.restart_at(step)

  def _restore_iterator(self, step: int, iterator) -> None:
    """Sets the iterator to the saved position; a readable but unusable state is an error."""
    name = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
    path = paths.join(self.directory, str(step), "data", name)
    if not paths.isfile(path):
      raise _NoProcessState(
          f"checkpoint {self.directory}/{step} has no data-iterator state for {name} (was it "
          "written with another number of processes?)")
    json.loads(paths.read_text(path))  # An unparsable file is corruption, reported by the caller.
    try:
      self.manager.restore(
          step, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(iterator)))
    except (KeyError, ValueError, TypeError) as e:
      raise IncompatibleCheckpointError(
          f"checkpoint {self.directory}/{step} has a data-iterator state this pipeline cannot "
          f"use ({_one_line(e)}); train.data_workers and the dataset must stay the same to "
          "resume") from e

  def restore_latest(self, target: Any, stream=None, *,
                     resume_data: str = "restore") -> tuple[int, Any] | None:
    """(step, state) of the newest restorable checkpoint; None if there is none."""
    steps = self.steps()
    failed = []
    for step in reversed(steps):
      try:
        state = self.restore(step, target, stream, resume_data=resume_data)
      except IncompatibleCheckpointError:
        raise
      except Exception as e:  # pylint: disable=broad-except  # Any read error = corrupt.
        failed.append((step, e))
      else:
        self._set_aside(failed)
        return step, state
    if failed:
      raise ValueError(f"no restorable checkpoint in {self.directory} (tried steps "
                       f"{[s for s, _ in failed]}; newest error: {_one_line(failed[0][1])})")
    return None

  def _set_aside(self, failed) -> None:
    """Warns about unreadable checkpoints and (unless read-only) moves them out of the way."""
    for step, error in failed:
      dest = paths.join(os.path.dirname(self.directory), CORRUPT_DIR, str(step))
      logging.warning("checkpoint step %d in %s is unreadable (%s); %s and used the previous "
                      "checkpoint", step, self.directory, _one_line(error),
                      "left it in place" if self.read_only else f"moved it to {dest}")
      if self.read_only:
        continue
      paths.remove(dest)
      paths.move(paths.join(self.directory, str(step)), dest)
    if failed and not self.read_only:
      self.manager.reload()


class _NoProcessState(IncompatibleCheckpointError):
  """The checkpoint has no data-iterator state for this process."""


def check_resume_data(value: str) -> str:
  if value not in RESUME_DATA:
    raise ValueError(f"resume_data={value!r} is not an option; use one of "
                     f"{', '.join(map(repr, RESUME_DATA))}")
  return value


def _same_layout(a: dict[str, int], b: dict[str, int]) -> bool:
  return (a["processes"], a["shards"]) == (b["processes"], b["shards"])


def _count(layout: dict[str, int]) -> str:
  p, s = layout["processes"], layout["shards"]
  return f"{p} process{'es' if p > 1 else ''} reading {s} data shard{'s' if s > 1 else ''}"


def _one_line(error: BaseException) -> str:
  text = " ".join(str(error).split())
  return f"{type(error).__name__}: {text[:200]}"


def restore_from_path(path: str, target: Any, stream=None, *,
                      resume_data: str = "restore") -> tuple[int, Any]:
  """Restores `config.resume`-style paths (workdir, checkpoints dir or step dir)."""
  root, step = checkpoint_root(path)
  checkpoints = Checkpoints(root, read_only=True)
  if step is not None:
    return step, checkpoints.restore(step, target, stream, resume_data=resume_data)
  found = checkpoints.restore_latest(target, stream, resume_data=resume_data)
  if found is None:
    raise ValueError(f"no checkpoint found under {path!r}")
  return found
