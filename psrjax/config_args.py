"""Parsing the typed argument string of a config file (`configs/x.py:runlocal,res=64`).

big_vision style: `get_config(arg)` receives everything after the colon; this turns it into a
ConfigDict of typed fields with defaults, rejecting unknown names with the allowed ones.
"""
from __future__ import annotations

import ast

import ml_collections


def parse_config_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses `"flag,key=value,..."`; a bare `flag` sets a bool default to True.

  Values are parsed as Python literals and must match the type of the default.
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
    try:
      value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
      value = text.strip()
    if isinstance(default, bool) or not isinstance(value, type(default)):
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


def apply_shared(c: ml_collections.ConfigDict, arg: ml_collections.ConfigDict, *,
                 runlocal=None, tiny=None) -> ml_collections.ConfigDict:
  """Applies the arguments the system configs share, where `arg` has them: `runlocal` and
  `tiny` (the config's own variant functions, called on `c`), then `label=` (pose.label),
  `res=` (data.resolution), `batch=` (train.batch_size) and `data=` (a prepared dataset,
  checked now, read at the config's resolution). Returns `c`."""
  if arg.get("runlocal") and runlocal is not None:
    runlocal(c)
  if arg.get("tiny") and tiny is not None:
    tiny(c)
  if arg.get("label"):
    c.pose.label = arg.label
  if arg.get("res"):
    c.data.resolution = arg.res
  if arg.get("batch"):
    c.train.batch_size = arg.batch
  if arg.get("data"):
    c.data.dataset = prepared_dataset(arg.data)
  return c
