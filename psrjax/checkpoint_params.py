"""Reading parameters out of the trainer's checkpoints without the trainer.

`config.init_from` (the trainer) and systems that start from another run's networks (D²G-Net's
pre-trained G_uv) both read parameter groups of a checkpoint; the trainer's full checkpoint
manager (`psrjax.train.checkpoint`) builds on what is here.
"""
from __future__ import annotations

import json
import os

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp

from psrjax import paths
CHECKPOINT_DIR = "checkpoints"


def handlers() -> dict:
  """The items of a checkpoint step: the train state, the grain iterator state and the data
  layout it was saved in (`psrjax.train.checkpoint.LAYOUT`)."""
  return {"state": StateHandler(), "data": grain.checkpoint.CheckpointHandler(),
          "layout": ocp.JsonCheckpointHandler()}


class StateHandler(ocp.StandardCheckpointHandler):
  """orbax's standard handler (the same files; arguments `StateSave`/`StateRestore`, orbax's
  `StandardSave`/`StandardRestore` under names of their own) that, in a one-process run, writes each replicated array from one replica whole.

  orbax's default on CPU and TPU is "replica-parallel" writing: every replica of a replicated
  array writes a slice of it, one sliced copy per array and replica, made by a small jitted
  program of its own. Across processes that spreads the writing over hosts; within one process
  it buys nothing and costs a dispatch (and, for each new shape, a compilation) per array and
  replica: on 8 CPU devices, 4.9 s instead of 1.8 s for CoCosNet video's tiny state (1,262
  arrays), 11.8 s instead of 2.1 s for its first save. Several processes keep orbax's default.
  """

  def __init__(self):
    super().__init__()
    if jax.process_count() == 1:
      self._impl = ocp.PyTreeCheckpointHandler(type_handler_registry=_one_process_registry())


@ocp.args.register_with_handler(StateHandler, for_save=True)
class StateSave(ocp.args.StandardSave):
  """`StandardSave` for `StateHandler`."""


@ocp.args.register_with_handler(StateHandler, for_restore=True)
class StateRestore(ocp.args.StandardRestore):
  """`StandardRestore` for `StateHandler`."""


def _one_process_registry():
  """orbax's standard types' handlers, jax.Array's without replica-parallel writing."""
  default = ocp.type_handlers.get_type_handler(jax.Array)
  arrays = ocp.type_handlers.ArrayHandler(
      use_replica_parallel=False,
      array_metadata_store=getattr(default, "_array_metadata_store", None))
  others = [(t, ocp.type_handlers.get_type_handler(t))
            for t in (int, float, bytes, np.number, np.ndarray, str)]
  return ocp.type_handlers.create_type_handler_registry(*others, (jax.Array, arrays))


class IncompatibleCheckpointError(ValueError):
  """A readable checkpoint whose state does not fit the config."""


def _shapes(tree) -> dict[str, tuple]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(path): tuple(getattr(leaf, "shape", ())) for path, leaf in leaves}


def check_compatible(saved_tree: dict, target: dict, where: str) -> None:
  """Parameters must match by name and shape; optimizer leaves by their shapes; EMA groups."""
  saved, want = _shapes(saved_tree.get("params", {})), _shapes(target["params"])
  if saved != want:
    diff = sorted(set(saved.items()) ^ set(want.items()))[:4]
    raise IncompatibleCheckpointError(
        f"checkpoint {where} has parameters that do not match the config "
        f"(first differences, (name, shape): {diff})")
  saved_opt = sorted(_shapes(saved_tree.get("opt", {})).values())
  if saved_opt != sorted(_shapes(target["opt"]).values()):
    raise IncompatibleCheckpointError(
        f"checkpoint {where} has an optimizer state that does not match the config's optimizers")
  saved_ema, want_ema = sorted(saved_tree.get("ema", {})), sorted(target.get("ema", {}))
  if saved_ema != want_ema:
    raise IncompatibleCheckpointError(
        f"checkpoint {where} keeps EMAs of groups {saved_ema} but the config's train.ema "
        f"keeps {want_ema}; set train.ema to match (or start from it with config.init_from)")


def checkpoint_root(path: str) -> tuple[str, int | None]:
  """A workdir, checkpoints dir, step dir or kept best snapshot dir (`<workdir>/best`, see
  `psrjax.train.best`), local or `gs://...` -> (checkpoints dir, step or None for latest)."""
  path = paths.resolve(path)
  best_json = paths.join(path, "best.json")
  if paths.isfile(best_json):  # The snapshot best.json names, not any other step dir there.
    info = json.loads(paths.read_text(best_json))
    root = paths.join(path, info["directory"]) if info.get("directory") else path
    return root, int(info["step"])
  if paths.isdir(paths.join(path, CHECKPOINT_DIR)):
    return paths.join(path, CHECKPOINT_DIR), None
  if os.path.basename(path).isdigit() and paths.isdir(paths.join(path, "state")):
    return os.path.dirname(path), int(os.path.basename(path))
  if paths.isdir(path):
    return path, None
  raise ValueError(f"checkpoint path {path!r} does not exist")


def restore_params(path: str, target_params: dict, *, ema: bool = False) -> dict:
  """Parameters of the groups present in both the checkpoint at `path` and `target_params`.

  Used for `config.init_from`: a group is taken from the checkpoint when its name exists
  there; its shapes must then match. `ema`: a group whose moving average the checkpoint keeps
  is taken from that average (the weights its evaluation used) instead.
  """
  root, step = checkpoint_root(path)
  options = ocp.CheckpointManagerOptions(create=False, read_only=True,
                                         enable_async_checkpointing=False)
  with ocp.CheckpointManager(root, options=options,
                             item_handlers=handlers()) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise ValueError(f"no checkpoint found under {path!r}")
    saved_state = manager.item_metadata(step)["state"].tree
  saved = saved_state["params"]
  groups = {g: p for g, p in target_params.items() if g in saved}
  if not groups:
    raise ValueError(f"checkpoint {root}/{step} shares no parameter group with the config "
                     f"(checkpoint: {sorted(saved)}, config: {sorted(target_params)})")
  check_compatible({"params": {g: saved[g] for g in groups}, "opt": {}},
                   {"params": groups, "opt": {}}, f"{root}/{step}")
  averaged = set(saved_state.get("ema", {})) if ema else set()
  target = {"params": {g: p for g, p in groups.items() if g not in averaged},
            "ema": {g: p for g, p in groups.items() if g in averaged}}
  target = {k: v for k, v in target.items() if v}
  restore_args = ocp.checkpoint_utils.construct_restore_args(target)
  restored = ocp.PyTreeCheckpointer().restore(
      paths.join(root, str(step), "state"),
      args=ocp.args.PyTreeRestore(item=target, restore_args=restore_args, partial_restore=True))
  return {**restored.get("params", {}), **restored.get("ema", {})}
