"""The argument string of a config file (`configs/x.py:runlocal,res=64`), one way for every config.

big_vision style: `get_config(arg)` receives everything after the colon. Every config file reads
it the same way:

  def get_config(arg=None):
    arg = config_args.parse(arg, ss=False, temporal="")      # SHARED + the config's own
    c = ...                                                  # the paper settings
    config_args.apply_shared(c, arg, runlocal=runlocal, tiny=tiny)
    if arg.ss:                                               # then its own arguments
      c.model.deformable_skips = False
    ...
    return c

`parse` knows the arguments every config takes (SHARED: the `runlocal` and `tiny` variants,
`res=`, `batch=`, `data=`) and the config's own, given with their defaults (`label=""`: the pose
label of the per-person configs); it rejects unknown names with the allowed ones.
`apply_shared` applies the shared ones (and `label=`) in one order: the variants (the config's
`runlocal(c)` and `tiny(c)`, which hold its named sizes), then the values.
"""
from __future__ import annotations

import ast
from typing import Callable

import ml_collections


# The arguments every config takes, with their defaults ("" / 0: unset).
SHARED = dict(runlocal=False, tiny=False, res=0, batch=0, data="")


def parse(arg: str | None, **own) -> ml_collections.ConfigDict:
  """`arg` parsed (`parse_config_arg`) with the shared arguments (SHARED) and the config's own,
  given as `name=default`."""
  return parse_config_arg(arg, **SHARED, **own)


def parse_config_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses `"flag,key=value,..."`; a bare `flag` sets a bool default to True, `flag=False`
  (or `false`, `True`, `true`) sets it.

  Other values are parsed as Python literals and must match the type of the default.
  """
  out = ml_collections.ConfigDict(defaults)
  for item in filter(None, (s.strip() for s in (arg or "").split(","))):
    key, eq, text = item.partition("=")
    key = key.strip()
    if key not in defaults:
      raise ValueError(f"unknown config argument {key!r} (allowed: {', '.join(sorted(defaults))})")
    default = defaults[key]
    if not eq:
      if not isinstance(default, bool):
        raise ValueError(f"config argument {key!r} needs a value ({key}=...)")
      out[key] = True
      continue
    if isinstance(default, bool):
      value = {"true": True, "false": False}.get(text.strip().lower())
      if value is None:
        raise ValueError(f"config argument {key!r} expects bool, got {text!r}")
      out[key] = value
      continue
    try:
      value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
      value = text.strip()
    if not isinstance(value, type(default)):
      if not (isinstance(default, float) and isinstance(value, int)):
        raise ValueError(f"config argument {key!r} expects {type(default).__name__}, got {text!r}")
    out[key] = value
  return out


def prepared_dataset(path: str) -> str:
  """The absolute path (or `gs://` URL) of a prepared dataset given as `data=PATH`, checked now
  (a one-line error when it is not one), so a bad path fails when the config is built. Its
  frames are read at the config's resolution, whatever the dataset's."""
  from psrjax import paths  # pylint: disable=g-import-not-at-top
  from psrjax.data.sources import prepared  # pylint: disable=g-import-not-at-top  # only with data=
  path = paths.resolve(path)
  prepared.read_index(path)
  return path


def multiview_dataset(path: str) -> tuple[str, int]:
  """(the absolute path or `gs://` URL, its cameras per take) of a multi-view dataset given as
  `data=PATH` (`psrjax prepare multiview`, the NTU RGB+D builder), checked now: a one-line error
  when it is not one. Its frames are read at the config's resolution, whatever the dataset's."""
  from psrjax import paths  # pylint: disable=g-import-not-at-top
  from psrjax.data.sources import multiview  # pylint: disable=g-import-not-at-top  # only with data=
  path = paths.resolve(path)
  return path, multiview.num_views(path)


def use_prepared_dataset(c: ml_collections.ConfigDict, path: str) -> None:
  """`data=PATH` of a single-view config: `data.dataset`, a prepared dataset, checked now."""
  c.data.dataset = prepared_dataset(path)


def apply_shared(c: ml_collections.ConfigDict, arg: ml_collections.ConfigDict, *,
                 runlocal: Callable[[ml_collections.ConfigDict], None],
                 tiny: Callable[[ml_collections.ConfigDict], None],
                 data: Callable[[ml_collections.ConfigDict, str], None] = use_prepared_dataset,
                 ) -> ml_collections.ConfigDict:
  """Applies the shared arguments of `arg` to `c`, in this order: `runlocal` and `tiny` (the
  config's variant functions, called on `c`; `tiny` after `train.fused_update="auto"`),
  `label=` (pose.label, where the config takes it), `res=` (data.resolution), `batch=`
  (train.batch_size) and `data=` (`data(c, path)`; default: a prepared dataset, checked now,
  read at the config's resolution). Returns `c`."""
  if arg.runlocal:
    runlocal(c)
  if arg.tiny:
    # Test-sized runs compile far more than they compute: each group's optimizer update on
    # one raveled vector (psrjax.train.fused) compiles their steps in about a fifth less time.
    c.train.fused_update = "auto"
    tiny(c)
  if arg.get("label"):
    c.pose.label = arg.label
  if arg.res:
    c.data.resolution = arg.res
  if arg.batch:
    c.train.batch_size = arg.batch
  if arg.data:
    data(c, arg.data)
  return c
