"""What every eval type shares: the validity flag, replicated jitted functions, result files.

An eval type receives its data as an object (the trainer's `psrjax.train.evaluator.EvalSplit`)
with `batches()` (global batches, sharded along the mesh's `data` axis, carrying the boolean
per-example flag `VALID_KEY`: padded rows are False and must count nowhere), `num_examples`,
`split`, `first_batch()` (the first local numpy batch without the flag) and `example(i)`.

Nothing here imports `psrjax.train`: the trainer imports the evals, never the reverse.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from psrjax import paths

# Key of the per-example validity flag of padded evaluation batches (False: padding).
VALID_KEY = "_valid"
EVAL_DIR = "eval"  # <workdir>/eval/<name>/<step>.json
_JITTED: dict[tuple, tuple[Any, Callable]] = {}


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device of `mesh` holds the whole array."""
  return NamedSharding(mesh, PartitionSpec())


def put_replicated(tree: Any, mesh: Mesh) -> Any:
  """Host values, identical on every process, as arrays replicated over the whole mesh.

  Built from a callback rather than `jax.device_put`, which cannot target the devices of other
  processes: every process supplies its own devices' copies.
  """
  sharding = replicated(mesh)

  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

  return jax.tree.map(put, tree)


def cached_jit(kind: str, system, mesh: Mesh, build: Callable[[], Callable], *options) -> Callable:
  """`jax.jit(build())` with replicated outputs, one per (kind, system, mesh, options).

  Evaluators built again for the same system (every run of `psrjax eval`, each training
  evaluation) reuse the compiled function instead of tracing it again. Replicated outputs are
  whole on every process, so each process can reduce them on the host.
  """
  key = (kind, id(system), mesh, options)
  hit = _JITTED.get(key)
  if hit is None or hit[0] is not system:
    hit = (system, jax.jit(build(), out_shardings=replicated(mesh)))
    _JITTED[key] = hit
  return hit[1]


def split_valid(batch) -> tuple[dict[str, jax.Array], jax.Array]:
  """(batch without the validity flag, the flag [B])."""
  batch = dict(batch)
  return batch, batch.pop(VALID_KEY)


def results_path(workdir: str, name: str, step: int) -> str:
  """`<workdir>/eval/<name>/<step>.json`: the results of eval `name` at `step`."""
  return paths.join(workdir, EVAL_DIR, name, f"{step}.json")


def write_results(workdir: str, step: int, results: dict[str, float], writer, *,
                  name: str) -> str:
  """Writes `<workdir>/eval/<name>/<step>.json` (process 0) and `eval/<name>/<key>` scalars;
  returns the file's path. The workdir may be local or `gs://...` (`psrjax.paths`)."""
  path = results_path(workdir, name, step)
  if jax.process_index() == 0:
    paths.write_text(path, json.dumps({"step": step, **results}, indent=2, sort_keys=True))
  writer.write_scalars(step, {f"{EVAL_DIR}/{name}/{k}": v for k, v in results.items()})
  return path


def read_results(workdir: str, name: str, step: int) -> dict[str, float]:
  """The results `write_results` wrote (with their "step")."""
  return json.loads(paths.read_text(results_path(workdir, name, step)))
