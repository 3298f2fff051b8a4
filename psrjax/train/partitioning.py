"""The device mesh, shardings, and global batches built from each process's local shard.

The mesh has three axes: `data` (data parallelism: the global batch is split along it),
`replica` (the batch and the parameters are replicated along it) and `model` (the batch is
replicated along it, large kernels are split along it). `replica` is larger than 1 only when
`mesh.data` is automatic (-1) and the global batch cannot give every device distinct examples
(e.g. a batch of 2 on 8 devices): `data` then takes the largest divisor of the devices over
`model` that divides the batch (and its gradient-accumulation microbatches), as big_vision and
MaxText keep a config's global batch whatever the device count, and the remaining devices
compute the same examples. An explicit `mesh.data` never adds replicas.

Each process reads the rows of the global batch that its devices hold (`data_shard`):
processes whose devices lie on the same `data` rows read the same examples.

Parameters and optimizer state are placed by `leaf_spec`, a rule on each leaf's shape (so an
Adam moment lands where its parameter does):

- `"replicated"` (default): every leaf on every device;
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

DATA, REPLICA, MODEL = "data", "replica", "model"
PARAM_STRATEGIES = ("replicated", "fsdp")


def make_mesh(*, data: int = -1, model: int = 1, devices=None, batch_size: int | None = None,
              microbatches: int = 1) -> Mesh:
  """A `(data, replica, model)` mesh over `devices` (default: all).

  Explicit `data`: `data x model` devices, no replicas. `data=-1` without `batch_size`: every
  device not taken by `model` on `data`. `data=-1` with `batch_size`: `data` is the largest
  divisor of `len(devices) / model` that divides `batch_size / microbatches` and gives every
  process a whole shard (`data_shard`); the other devices go to `replica`.
  """
  devices = list(jax.devices() if devices is None else devices)
  if model < 1 or len(devices) % model:
    raise ValueError(f"mesh.model={model} must be >= 1 and divide the {len(devices)} devices")
  per_model = len(devices) // model
  if data != -1:
    if data < 1 or data * model > len(devices):
      raise ValueError(f"mesh.data={data} x mesh.model={model} needs {data * model} devices; "
                       f"{len(devices)} are available (use mesh.data=-1 for all)")
    return _mesh(devices[:data * model], data, 1, model)
  if batch_size is not None and batch_size >= 1:
    for size in sorted((d for d in range(1, per_model + 1) if per_model % d == 0), reverse=True):
      if batch_size % (size * microbatches) == 0:
        mesh = _mesh(devices, size, per_model // size, model)
        if _row_groups(_process_rows(mesh)) is not None:
          return mesh
    return _mesh(devices, 1, per_model, model)  # check_batch_size names what cannot split
  return _mesh(devices, per_model, 1, model)


def _mesh(devices, data: int, replica: int, model: int) -> Mesh:
  return jax.make_mesh((data, replica, model), (DATA, REPLICA, MODEL),
                       axis_types=(AxisType.Auto,) * 3, devices=devices)


def _process_rows(mesh: Mesh) -> dict[int, frozenset[int]]:
  """{process index: the `data` rows (indices along `data`) its devices of `mesh` hold}."""
  rows: dict[int, set[int]] = {}
  for row, devices in enumerate(mesh.devices.reshape(mesh.shape[DATA], -1)):
    for device in devices:
      rows.setdefault(device.process_index, set()).add(row)
  return {p: frozenset(r) for p, r in rows.items()}


def _row_groups(process_rows: Mapping[int, frozenset[int]]) -> list[frozenset[int]] | None:
  """The distinct row sets, ordered, if they tile the rows as equal contiguous blocks (a data
  shard each); None otherwise."""
  groups = sorted(set(process_rows.values()), key=min)
  sizes = {len(g) for g in groups}
  rows = sorted(r for g in groups for r in g)
  if len(sizes) != 1 or rows != list(range(len(rows))):
    return None
  if any(max(g) - min(g) + 1 != len(g) for g in groups):
    return None
  return groups


def data_shard(mesh: Mesh) -> tuple[int, int]:
  """(index, count) of the data shard this process reads: the rows of the global batch that
  its devices hold, as one of `count` equal contiguous blocks (processes on the same `data`
  rows read the same shard)."""
  process_rows = _process_rows(mesh)
  missing = sorted(set(range(jax.process_count())) - set(process_rows))
  if missing:
    raise ValueError(f"processes {missing} hold no device of the {mesh.devices.size}-device "
                     f"mesh {dict(mesh.shape)}; use mesh.data=-1 (every device)")
  groups = _row_groups(process_rows)
  if groups is None:
    raise ValueError(f"the processes' devices do not split the mesh {dict(mesh.shape)} into "
                     "equal blocks of mesh.data rows; choose another mesh.data / mesh.model")
  return groups.index(process_rows[jax.process_index()]), len(groups)


def describe(mesh: Mesh, global_batch_size: int) -> str:
  """One line: how many devices hold distinct examples of the global batch."""
  data, replica, model = (mesh.shape[a] for a in (DATA, REPLICA, MODEL))
  line = (f"global batch {global_batch_size}: {data} of {mesh.devices.size} devices hold "
          f"distinct examples ({global_batch_size // data} each; mesh data={data} x "
          f"replica={replica} x model={model})")
  if replica > 1:
    line += (f"; each example is computed on {replica} devices (replica axis), a batch that is "
             f"a multiple of {mesh.devices.size // model} gives every device its own")
  return line


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
  """Returns this process's batch size (its data shard's rows), or raises if the batch cannot
  be split evenly along `data`.

  With `microbatches > 1` (gradient accumulation) every device's rows must split evenly too.
  """
  data = mesh.shape[DATA]
  _, shards = data_shard(mesh)
  if global_batch < 1 or global_batch % data:
    raise ValueError(f"{what}={global_batch} must be a positive multiple of the data-parallel "
                     f"size {data} (mesh.data; -1 picks a size that divides the batch)")
  if global_batch % (data * microbatches):
    raise ValueError(f"{what}={global_batch} must be a multiple of mesh.data x "
                     f"train.grad_accum = {data} x {microbatches} = {data * microbatches}")
  return global_batch // shards


def round_up_batch(global_batch: int, mesh: Mesh) -> int:
  """`global_batch` rounded up to a multiple of the data-parallel size (evaluation pads the
  extra rows with masked examples); values < 1 are returned unchanged."""
  data = mesh.shape[DATA]
  return global_batch if global_batch < 1 else -(-global_batch // data) * data


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
