"""Evaluation over an eval split, every example counted exactly once.

`EvalSplit` yields the split's first `num_examples` examples as global batches of
`batch_size` rounded up to a multiple of the data-parallel size (`mesh.data`); the last batch
and the rounding's extra rows are padded with copies of a real example that the validity flag
(`data.VALID_KEY`) removes from every sum. Every evaluation (the `config.eval` block here, the
`config.evals` declared in `psrjax.evals`) reads its data through it.

`Evaluator(system, config, mesh).run(params)` is the per-example evaluation of the
`config.eval` block: the mean of each `System.evaluate` metric, `"<metric>/<group>"` means
when the system returns an int32 `"group"` per example and names its groups in `eval_groups`,
and `"num_examples"`. Jitted evaluation functions are cached at module level (`cached_jit`).
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from psrjax.systems import base
from psrjax.train import data as data_lib
from psrjax.train import partitioning

EVAL_DIR = "eval"
_JITTED: dict[tuple, tuple[Any, Callable]] = {}
_DECODE = jax.jit(data_lib.decode_batch)  # compact transfer dtypes -> the batch contract's


def cached_jit(kind: str, system, mesh, build: Callable[[], Callable], *options) -> Callable:
  """`jax.jit(build())` with replicated outputs, one per (kind, system, mesh, options).

  Evaluators built again for the same system (every run of `psrjax eval`, each training
  evaluation) reuse the compiled function instead of tracing it again.
  """
  key = (kind, id(system), mesh, options)
  hit = _JITTED.get(key)
  if hit is None or hit[0] is not system:
    hit = (system, jax.jit(build(), out_shardings=partitioning.replicated(mesh)))
    _JITTED[key] = hit
  return hit[1]


class EvalSplit:
  """Padded, masked global batches of the first `num_examples` (0 = all) examples of `split`.

  `batch_size` is rounded up to a multiple of the data-parallel size (`self.batch_size`).
  """

  def __init__(self, system, mesh, *, split: str, batch_size: int, num_examples: int, seed: int,
               read_options=None, what: str = "eval.batch_size"):
    self.split, self.batch_size = split, partitioning.round_up_batch(batch_size, mesh)
    if self.batch_size != batch_size and jax.process_index() == 0:
      logging.info("%s=%d rounded up to %d (a multiple of mesh.data=%d; padding is masked)",
                   what, batch_size, self.batch_size, mesh.shape[partitioning.DATA])
    local = partitioning.check_batch_size(self.batch_size, mesh, what=what)
    self.base = system.dataset(split, seed=seed, shard_index=0, shard_count=1)
    self.dataset, self.num_examples = data_lib.eval_dataset(
        self.base, split=split, num_examples=num_examples, local_batch=local,
        shard=partitioning.data_shard(mesh))
    self.sharding = partitioning.batch_sharding(mesh)
    self.read_options = read_options

  def first_batch(self) -> dict[str, np.ndarray]:
    """The first local batch (without the validity flag)."""
    batch = dict(self.dataset[0])
    batch.pop(data_lib.VALID_KEY)
    return batch

  def example(self, index: int = 0) -> dict[str, np.ndarray]:
    """Example `index` of the split with a batch axis of 1 (the same on every process)."""
    return {k: np.asarray(v)[None] for k, v in self.base[index].items()}

  def batches(self) -> Iterator[dict[str, jax.Array]]:
    """Global batches (sharded along `data`) with the boolean validity flag; they travel in
    compact dtypes and are decoded on the devices (`data.encode_batch` / `decode_batch`)."""
    ds = self.dataset.map(data_lib.encode_batch)
    ds = ds if self.read_options is None else ds.to_iter_dataset(self.read_options)
    for local in ds:
      yield _DECODE(partitioning.global_batch(local, self.sharding, self.batch_size))


def split_valid(batch) -> tuple[dict[str, jax.Array], jax.Array]:
  """(batch without the validity flag, the flag [B])."""
  batch = dict(batch)
  return batch, batch.pop(data_lib.VALID_KEY)


def _masked_sums(system, num_groups: int, params, batch) -> dict[str, Any]:
  """Per-batch sums of every metric over the valid examples (and per group)."""
  batch, valid = split_valid(batch)
  values = dict(base.evaluate(system, params, batch))
  group = values.pop("group", None)
  size = valid.shape[0]
  for name, value in values.items():
    if value.shape != (size,):
      raise ValueError(f"evaluate() metric {name!r} has shape {value.shape}; expected [{size}]")
  values = {k: jnp.where(valid, v.astype(jnp.float32), 0.0) for k, v in values.items()}
  out = {"sum": {k: v.sum() for k, v in values.items()},
         "count": valid.astype(jnp.float32).sum()}
  if group is not None:
    if num_groups == 0:
      raise ValueError(f"{type(system).__name__}.evaluate() returns 'group' but the system "
                       "defines no eval_groups names")
    onehot = jax.nn.one_hot(group, num_groups) * valid[:, None].astype(jnp.float32)
    out["group_sum"] = {k: v @ onehot for k, v in values.items()}
    out["group_count"] = onehot.sum(0)
  return out


class PerExampleEval:
  """Means of `System.evaluate`'s per-example metrics over an `EvalSplit` (and per group)."""

  def __init__(self, system, mesh, data: EvalSplit):
    self.system, self.mesh, self.data = system, mesh, data
    self.groups = tuple(getattr(system, "eval_groups", ()))

  def run(self, params) -> dict[str, float]:
    """Means of every metric over the split's examples."""
    n = len(self.groups)
    fn = cached_jit("per_example", self.system, self.mesh,
                    lambda: lambda p, b: _masked_sums(self.system, n, p, b), n)
    totals = None
    for batch in self.data.batches():
      sums = jax.tree.map(lambda x: np.asarray(x, np.float64), jax.device_get(fn(params, batch)))
      totals = sums if totals is None else jax.tree.map(np.add, totals, sums)
    return self._means(totals)

  def _means(self, totals) -> dict[str, float]:
    count = float(totals["count"])
    if round(count) != self.data.num_examples:
      raise RuntimeError(f"evaluated {count} examples, expected {self.data.num_examples}")
    results = {k: float(v / count) for k, v in totals["sum"].items()}
    if "group_sum" in totals:
      group_count = totals["group_count"]
      if round(float(group_count.sum())) != self.data.num_examples:
        raise ValueError(f"evaluate() returned 'group' ids outside 0..{len(self.groups) - 1}")
      for k, sums in totals["group_sum"].items():
        for g, name in enumerate(self.groups):
          if group_count[g] > 0:
            results[f"{k}/{name}"] = float(sums[g] / group_count[g])
    results["num_examples"] = float(count)
    return results


class Evaluator(PerExampleEval):
  """`Evaluator(system, config, mesh).run(params) -> {name: value}` on `config.eval.split`."""

  def __init__(self, system, config, mesh):
    data = EvalSplit(system, mesh, split=config.eval.split, batch_size=config.eval.batch_size,
                     num_examples=config.eval.num_examples, seed=config.seed,
                     read_options=data_lib.read_options(config))
    super().__init__(system, mesh, data)
    self.config = config
    self.num_examples = data.num_examples

  def first_batch(self) -> dict[str, np.ndarray]:
    return self.data.first_batch()

  def example(self, index: int = 0) -> dict[str, np.ndarray]:
    return self.data.example(index)


def write_results(workdir: str, step: int, results: dict[str, float], writer, *,
                  name: str | None = None) -> str:
  """Writes `<workdir>/eval/[<name>/]<step>.json` (process 0) and `eval/[<name>/]<key>` scalars."""
  folder = os.path.join(workdir, EVAL_DIR, *([name] if name else []))
  path = os.path.join(folder, f"{step}.json")
  if jax.process_index() == 0:
    os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
      json.dump({"step": step, **results}, f, indent=2, sort_keys=True)
  prefix = f"{EVAL_DIR}/{name}/" if name else f"{EVAL_DIR}/"
  writer.write_scalars(step, {f"{prefix}{k}": v for k, v in results.items()})
  return path
