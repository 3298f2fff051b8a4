"""The device mesh, shardings, and global batches built from each process's local shard.

The mesh has a `data` axis (data parallelism: the global batch is split along it) and a
`model` axis (the batch is replicated along it). Parameters and optimizer state are placed by
`leaf_spec`, a rule on each leaf's shape (so an Adam moment lands where its parameter does):

- `"replicated"` (default): every leaf on every device of the `data` axis;
- `"fsdp"`: every leaf with at least `min_size` elements is split along `data` on its largest
  axis that `data` divides (ties: the last such axis); smaller leaves stay replicated;
- with `model > 1` (either strategy), kernels (>= 2 dims, >= `min_size` elements) whose output
  channels (last axis) `model` divides are split along `model` on that axis.

XLA's SPMD partitioner inserts the all-gathers / reduce-scatters these placements imply.
"""
from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA, MODEL = "data", "model"
PARAM_STRATEGIES = ("replicated", "fsdp")


def make_mesh(*, data: int = -1, model: int = 1, devices=None) -> Mesh:
  """A `(data, model)` mesh; `data=-1` uses every device not taken by `model`."""
  devices = list(jax.devices() if devices is None else devices)
  if model < 1 or len(devices) % model:
    raise ValueError(f"mesh.model={model} must be >= 1 and divide the {len(devices)} devices")
  if data == -1:
    data = len(devices) // model
  if data < 1 or data * model > len(devices):
    raise ValueError(f"mesh.data={data} x mesh.model={model} needs {data * model} devices; "
                     f"{len(devices)} are available (use mesh.data=-1 for all)")
  return jax.make_mesh((data, model), (DATA, MODEL), (AxisType.Auto, AxisType.Auto),
                       devices=devices[:data * model])


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_strategy(strategy: str) -> str:
  if strategy not in PARAM_STRATEGIES:
    raise ValueError(f"sharding.params={strategy!r} is not a strategy; use one of "
                     f"{', '.join(map(repr, PARAM_STRATEGIES))}")
  return strategy


def leaf_spec(shape, mesh: Mesh, *, strategy: str, min_size: int) -> P:
  """Partition spec of one parameter / optimizer-state leaf of `shape` (see module docstring)."""
  shape = tuple(shape)
  if not shape or int(np.prod(shape)) < min_size:
    return P()
  axes: list[Any] = [None] * len(shape)
  model, data = mesh.shape[MODEL], mesh.shape[DATA]
  if model > 1 and len(shape) >= 2 and shape[-1] % model == 0:
    axes[-1] = MODEL
  if check_strategy(strategy) == "fsdp" and data > 1:
    free = [i for i, n in enumerate(shape) if axes[i] is None and n % data == 0]
    if free:
      axes[max(free, key=lambda i: (shape[i], i))] = DATA
  return P(*axes) if any(axes) else P()


def leaf_sharding(leaf, mesh: Mesh, *, strategy: str, min_size: int) -> NamedSharding:
  return NamedSharding(mesh, leaf_spec(getattr(leaf, "shape", ()), mesh, strategy=strategy,
                                       min_size=min_size))


def put_replicated(tree: Any, mesh: Mesh) -> Any:
  """Host values, identical on every process, as arrays replicated over the whole mesh.

  (`jax.device_put` cannot target devices of other processes; every process supplies its own.)
  """
  rep = replicated(mesh)

  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, rep, lambda index: x[index])

  return jax.tree.map(put, tree)


def replicated_key(seed: int, mesh: Mesh) -> jax.Array:
  """`jax.random.key(seed)`, replicated over the whole mesh."""
  data = put_replicated(jax.random.key_data(jax.random.key(seed)), mesh)
  return jax.random.wrap_key_data(data)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split along `data`, replicated along `model`."""
  return NamedSharding(mesh, P(DATA))


def check_batch_size(global_batch: int, mesh: Mesh, *, what: str = "train.batch_size",
                     microbatches: int = 1) -> int:
  """Returns the per-process batch size, or raises if the batch cannot be split evenly.

  With `microbatches > 1` (gradient accumulation) every device's rows must split evenly too.
  """
  data = mesh.shape[DATA]
  processes = jax.process_count()
  if global_batch < 1 or global_batch % data or global_batch % processes:
    raise ValueError(f"{what}={global_batch} must be a positive multiple of the data-parallel "
                     f"size {data} (mesh.data) and of the {processes} process(es)")
  if global_batch % (data * microbatches):
    raise ValueError(f"{what}={global_batch} must be a multiple of mesh.data x "
                     f"train.grad_accum = {data} x {microbatches} = {data * microbatches}")
  return global_batch // processes


def global_batch(local: Mapping[str, Any], sharding: NamedSharding,
                 global_batch_size: int) -> dict[str, jax.Array]:
  """Global arrays from this process's rows (`jax.make_array_from_process_local_data`)."""
  out = {}
  for key, value in local.items():
    value = np.asarray(value)
    shape = (global_batch_size,) + value.shape[1:]
    out[key] = jax.make_array_from_process_local_data(sharding, value, shape)
  return out


def abstract_batch(local: Mapping[str, Any], sharding: NamedSharding,
                   global_batch_size: int) -> dict[str, jax.ShapeDtypeStruct]:
  """Shapes/dtypes/shardings of the global batch built from one local batch."""
  return {k: jax.ShapeDtypeStruct((global_batch_size,) + np.shape(v)[1:], np.asarray(v).dtype,
                                  sharding=sharding)
          for k, v in local.items()}
