"""Pretrained feature networks with their real weights, as Flax modules of psrjax's own.

`load(name, weights=None) -> (module, variables)`; `module.apply(variables, x)` returns a dict of
named endpoints. Networks: "i3d" (Kinetics-400 Inception-I3D, videos), "vgg16", "vgg19" and
"alexnet" (torchvision layouts, images), "inception_v3_fid" (pytorch-fid's FID InceptionV3).
Inputs follow the batch contract ([-1, 1], NHWC images / NTHWC videos); each network applies its reference input normalisation itself. Weights are read from the file a
package ships (weights=None) or from a path, never downloaded, and loaded once per process.
The variables are frozen: pass them to the loss functions, never to an optimizer.
"""
from __future__ import annotations

import importlib
import pathlib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.traverse_util import flatten_dict

from psrjax.models.pretrained import weights as weights_lib
from psrjax.models.pretrained.weights import MissingWeightsError

NETWORKS = ("i3d", "vgg16", "vgg19", "alexnet", "inception_v3_fid")

_CACHE: dict[tuple[str, str], Any] = {}


def _network(name: str):
  if name not in NETWORKS:
    raise ValueError(f"unknown pretrained network {name!r}; allowed: {', '.join(NETWORKS)}")
  return importlib.import_module(f"psrjax.models.pretrained.{name}")


def expected_shapes(name: str) -> dict[tuple[str, ...], jax.ShapeDtypeStruct]:
  """Flattened (collection, *path) -> shape of the variables of network `name`."""
  net = _network(name)
  x = jnp.zeros(net.EXAMPLE_INPUT_SHAPE, jnp.float32)
  shapes = jax.eval_shape(net.make_module().init, jax.random.key(0), x)
  return flatten_dict(dict(shapes))


def load_variables(name: str, weights: str | pathlib.Path | None = None) -> dict:
  """Variables of network `name` from `weights` (None: the packaged file), cached per process."""
  net = _network(name)
  path = weights_lib.resolve(net.WEIGHTS, weights)
  key = (name, str(path.resolve()))
  if key not in _CACHE:
    flat = weights_lib.read(net.WEIGHTS, path)
    tree = weights_lib.check_tree(flat, expected_shapes(name), network=name, path=path)
    _CACHE[key] = jax.tree.map(jnp.asarray, tree)
  return jax.tree.map(lambda v: v, _CACHE[key])   # fresh containers, shared (immutable) arrays


def make_module(name: str, **module_kwargs) -> nn.Module:
  """The (weightless) module of network `name`; keyword arguments override its fields."""
  return _network(name).make_module(**module_kwargs)


def load(name: str, weights: str | pathlib.Path | None = None, **module_kwargs) -> tuple[nn.Module, dict]:
  """(module, variables) of the pretrained network `name` in NETWORKS.

  weights: path of a weight file (the shipping package's format, or a psrjax `.msgpack`), or
    None for the file the package ships. Raises MissingWeightsError naming the file looked for.
  module_kwargs: overrides of the module's fields (e.g. final_endpoint="Mixed_5c", dtype).
  """
  return make_module(name, **module_kwargs), load_variables(name, weights)


def convert(name: str, source: str | pathlib.Path, destination: str | pathlib.Path) -> pathlib.Path:
  """Converts a weight file of network `name` (e.g. a torchvision .pth) to psrjax's .msgpack.

  The result loads with `load(name, weights=destination)` without torch or the shipping package;
  this is what `psrjax convert-weights --kind NAME --from SOURCE --to DESTINATION` does.
  """
  destination = pathlib.Path(destination)
  if destination.suffix != ".msgpack":
    raise ValueError(f"convert: the destination must end in .msgpack, got {destination}")
  weights_lib.write_msgpack(load_variables(name, source), destination)
  return destination


__all__ = ["NETWORKS", "MissingWeightsError", "convert", "expected_shapes", "load", "load_variables",
           "make_module"]
