"""The system registry: `config.system` names a module of `psrjax.systems` (or a dotted module
path, or a `.py` file) whose `make_system(config)` builds the system."""
from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import os
import sys

import cloudpickle
import ml_collections

from psrjax.systems import base


def _import_system_module(name: str):
  """Imports `psrjax.systems.<name>`, a dotted module path, or a `.py` file path."""
  if name.endswith(".py"):
    path = os.path.abspath(name)
    if not os.path.isfile(path):
      raise ValueError(f"system file {name!r} does not exist")
    digest = hashlib.sha1(path.encode()).hexdigest()[:10]
    mod_name = f"_psrjax_system_{os.path.basename(path)[:-3]}_{digest}"
    if mod_name not in sys.modules:
      spec = importlib.util.spec_from_file_location(mod_name, path)
      module = importlib.util.module_from_spec(spec)
      sys.modules[mod_name] = module
      spec.loader.exec_module(module)
      # Data-worker processes cannot import this module by name: ship its code by value.
      cloudpickle.register_pickle_by_value(module)
    return sys.modules[mod_name]
  if "." not in name and name not in known_systems():
    raise ValueError(f"unknown system {name!r} (known: {', '.join(known_systems())}; "
                     "or a dotted module path / .py file defining make_system)")
  full = name if "." in name else f"psrjax.systems.{name}"
  try:
    return importlib.import_module(full)
  except ModuleNotFoundError as e:
    if e.name is None or not (full == e.name or full.startswith(e.name + ".")):
      raise
    raise ValueError(f"unknown system {name!r} (known: {', '.join(known_systems())}; "
                     "or a dotted module path / .py file defining make_system)") from None


def known_systems() -> list[str]:
  """The names `config.system` accepts: the modules of `psrjax.systems` that define
  `make_system` (read from their source, nothing is imported)."""
  here = os.path.dirname(__file__)
  return sorted(f[:-3] for f in os.listdir(here)
                if f.endswith(".py") and not f.startswith("_")
                and _defines_make_system(os.path.join(here, f)))


def _defines_make_system(path: str) -> bool:
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), filename=path)
  return any(isinstance(node, ast.FunctionDef) and node.name == "make_system"
             for node in tree.body)


def get_system(config: ml_collections.ConfigDict) -> base.System:
  """Builds the system named by `config.system` via its module's `make_system(config)`."""
  if "system" not in config or not isinstance(config.system, str) or not config.system:
    raise ValueError("config.system must name a system "
                     f"(known: {', '.join(known_systems())})")
  module = _import_system_module(config.system)
  if not hasattr(module, "make_system"):
    raise ValueError(f"system module {module.__name__!r} does not define make_system(config)")
  return module.make_system(config)
