"""Loading ml_collections config files and applying command-line overrides.

A config is named `path/to/file.py` or `path/to/file.py:arg`; the file defines `get_config(arg)`
(big_vision style; `get_config()` when no arg is given). The file is loaded as a module of a
package that stands for its folder, so a config builds on another beside it with
`from . import other` (configs/edn.py: `from . import pix2pixhd`), whatever the working
directory; the folder's modules are pickled by value (cloudpickle), so data-worker processes,
which cannot import them by name, still unpickle anything that refers to them. Overrides are `--config.a.b=value`
(or `--config.a.b value`); the value is parsed with the type of the existing field, and an
unknown key is a one-line `ValueError` listing the known keys at that level.

`config.evals` (psrjax/evals/__init__.py) is open: `--config.evals.NAME=VALUE` adds an entry
when NAME is new, VALUE being a dict literal, `dict(type='fid', every=0, num_examples=64)` or
`{"type": "fid", "every": 0}` (literals only: parsed with `ast`, never evaluated);
`--config.evals.NAME.FIELD=VALUE` sets a field of an entry (a new field's value is parsed as a
Python literal, else kept as text; the eval's builder rejects fields its type lacks), and on a
config without an entry named `system` first adds `dict(type="system")`, the entry that
otherwise stands implicitly for the system's own metrics.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import importlib.util
import inspect
import json
import os
import sys
import types
from typing import Any, Sequence

import cloudpickle
import ml_collections

from psrjax import paths

OVERRIDE_PREFIX = "--config."
EVALS = "evals"  # the open group of declared evaluations
_EVAL_FORM = "dict(type='<type>', every=..., ...) or {'type': '<type>', ...} (Python literals)"
WORKDIR_CONFIG = "config.json"  # the config `psrjax train` saves in its workdir.


def _folder_package(folder: str) -> str:
  """The name of the package that stands for `folder` (made and registered on first use): its
  modules are the folder's `.py` files, pickled by value."""
  name = "_psrjax_configs_" + hashlib.sha1(folder.encode()).hexdigest()[:10]
  if name not in sys.modules:
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [folder]
    sys.modules[name] = importlib.util.module_from_spec(spec)
    cloudpickle.register_pickle_by_value(sys.modules[name])
  return name


def load_config_module(path: str) -> types.ModuleType:
  """Executes the config file `path` (anew on every call) as the module `<package>.<name>` of
  its folder's package (module docstring) and returns it."""
  path = os.path.abspath(path)
  folder, filename = os.path.split(path)
  package = _folder_package(folder)
  name = f"{package}.{filename[:-3]}"
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  previous = sys.modules.get(name)
  sys.modules[name] = module
  try:
    spec.loader.exec_module(module)
  except BaseException:
    if previous is None:
      del sys.modules[name]
    else:
      sys.modules[name] = previous
    raise
  setattr(sys.modules[package], filename[:-3], module)
  return module


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """Loads `file.py[:arg]` and returns `get_config(arg)`."""
  path, _, arg = spec.partition(":")
  if not path.endswith(".py") or not os.path.isfile(path):
    raise ValueError(f"config file {path!r} does not exist (expected path/to/config.py[:arg])")
  module = load_config_module(path)
  if not hasattr(module, "get_config"):
    raise ValueError(f"config file {path!r} does not define get_config(arg)")
  takes_arg = bool(inspect.signature(module.get_config).parameters)
  if arg and not takes_arg:
    raise ValueError(f"config file {path!r}: get_config() takes no argument, got {arg!r}")
  config = module.get_config(arg) if takes_arg else module.get_config()
  if not isinstance(config, ml_collections.ConfigDict):
    raise ValueError(f"config file {path!r}: get_config must return an ml_collections.ConfigDict")
  return config


def split_overrides(argv: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
  """Separates `--config.key=value` / `--config.key value` items from the rest of argv."""
  overrides, rest = [], []
  i = 0
  while i < len(argv):
    item = argv[i]
    if item.startswith(OVERRIDE_PREFIX):
      key, eq, value = item[len(OVERRIDE_PREFIX):].partition("=")
      if not eq:
        if i + 1 >= len(argv):
          raise ValueError(f"config override {item!r} has no value (use {item}=VALUE)")
        value = argv[i + 1]
        i += 1
      overrides.append((key, value))
    else:
      rest.append(item)
    i += 1
  return overrides, rest


def _parse_value(key: str, text: str, current: Any) -> Any:
  """Parses `text` as the type of `current` (the field's existing value)."""
  if isinstance(current, bool):
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
      return True
    if lowered in ("false", "0", "no"):
      return False
    raise ValueError(f"config key {key!r} is a bool; got {text!r} (use true/false)")
  if isinstance(current, str):
    return text
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    if current is None:
      return text
    raise ValueError(f"config key {key!r} expects {type(current).__name__}, got {text!r}") from None
  if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
    return float(value)
  if isinstance(current, (tuple, list)) and isinstance(value, (tuple, list)):
    return type(current)(value)
  if current is not None and not isinstance(value, type(current)):
    raise ValueError(f"config key {key!r} expects {type(current).__name__}, got {text!r}")
  return value


def _known_keys(node: ml_collections.ConfigDict, prefix: str) -> str:
  return ", ".join(prefix + k for k in sorted(node.keys()))


def apply_override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
  """Sets `config.<key>` (dotted) from its command-line text, in place."""
  parts = key.split(".")
  if parts[0] == EVALS and len(parts) > 1 and _override_eval(config, parts, key, text):
    return
  node, prefix = config, ""
  for i, part in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      known = _known_keys(node, prefix) if isinstance(node, ml_collections.ConfigDict) else ""
      raise ValueError(f"unknown config key {key!r} (known: {known})")
    if i == len(parts) - 1:
      current = node[part]
      if isinstance(current, ml_collections.ConfigDict):
        raise ValueError(f"config key {key!r} is a group; set one of: "
                         f"{_known_keys(current, key + '.')}")
      untyped = node.get_ref(part).get_type() is object  # e.g. an int or a word ("auto")
      node[part] = _parse_value(key, text, None if untyped else current)
    else:
      node, prefix = node[part], prefix + part + "."


def parse_eval_entry(key: str, text: str) -> dict[str, Any]:
  """The fields of a new `config.evals` entry from `dict(k=literal, ...)` or `{'k': literal}`."""
  value = None
  try:
    node = ast.parse(text.strip(), mode="eval").body
    if isinstance(node, ast.Dict):
      value = ast.literal_eval(node)
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
          and node.func.id == "dict" and not node.args
          and all(k.arg is not None for k in node.keywords)):
      names = [k.arg for k in node.keywords]
      if len(set(names)) == len(names):
        value = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
  except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
    value = None
  if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
    raise ValueError(f"config key {key!r} adds an eval: expected {_EVAL_FORM}, got {text!r}")
  return value


def _override_eval(config: ml_collections.ConfigDict, parts: list[str], key: str,
                   text: str) -> bool:
  """Applies an override under `config.evals` that adds something; False: not such a case
  (the generic path then sets an existing field or reports the unknown key)."""
  from psrjax import evals as evals_lib  # pylint: disable=g-import-not-at-top
  if EVALS not in config:
    config[EVALS] = ml_collections.ConfigDict()
  evals, name = config[EVALS], parts[1]
  if not isinstance(evals, ml_collections.ConfigDict):
    return False
  if len(parts) == 2:
    if name in evals:
      return False
    evals[name] = parse_eval_entry(key, text)
    return True
  if name not in evals:
    if name != evals_lib.SYSTEM:
      raise ValueError(f"unknown config key {key!r}: config.evals has no entry {name!r} "
                       f"(declared: {', '.join(sorted(evals.keys())) or 'none'}); add one with "
                       f"--config.evals.{name}=\"dict(type=..., ...)\"")
    evals[name] = {"type": evals_lib.SYSTEM}  # the implicit entry, made explicit
  entry = evals[name]
  if len(parts) == 3 and isinstance(entry, ml_collections.ConfigDict) and parts[2] not in entry:
    entry[parts[2]] = _parse_value(key, text, None)
    return True
  return False


def load_config(spec: str, overrides: Sequence[tuple[str, str]] = ()) -> ml_collections.ConfigDict:
  """Loads a config file and applies `(dotted key, text)` overrides in order."""
  config = load_config_file(spec)
  for key, text in overrides:
    apply_override(config, key, text)
  return config


def _to_tuples(value: Any) -> Any:
  if isinstance(value, list):
    return tuple(_to_tuples(v) for v in value)
  if isinstance(value, dict):
    return {k: _to_tuples(v) for k, v in value.items()}
  return value


def save_config(config: ml_collections.ConfigDict, path: str) -> None:
  """Writes the config as JSON (read back with `load_saved_config`); `path` may be local or a
  `gs://` URL (`psrjax.paths`), and is never seen half-written."""
  paths.write_text(path, config.to_json_best_effort(indent=2, sort_keys=True))


def load_saved_config(path: str) -> ml_collections.ConfigDict:
  """Reads a config written by `save_config` (JSON lists come back as tuples)."""
  if not paths.isfile(path):
    raise ValueError(f"no saved config at {path!r} (was this workdir written by `psrjax train`?)")
  return ml_collections.ConfigDict(_to_tuples(json.loads(paths.read_text(path))))


def load_workdir_config(workdir: str) -> ml_collections.ConfigDict:
  """The config saved by `psrjax train` in `workdir` (local or `gs://...`)."""
  return load_saved_config(os.path.join(workdir, WORKDIR_CONFIG))
