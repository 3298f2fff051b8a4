"""Evaluation: `System.evaluate` over an eval split, every example counted exactly once.

The split's first `eval.num_examples` examples are batched (`eval.batch_size`, global); the
last batch is padded with copies of a real example that a validity mask removes from every
sum. Results are the mean of each per-example metric, `"<metric>/<group>"` means when the
system returns an int32 `"group"` per example and names its groups in `eval_groups`, and
`"num_examples"`.
"""
from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from psrjax.train import data as data_lib
from psrjax.train import partitioning

EVAL_DIR = "eval"


def _masked_sums(system, num_groups: int, params, batch) -> dict[str, Any]:
  """Per-batch sums of every metric over the valid examples (and per group)."""
  batch = dict(batch)
  valid = batch.pop(data_lib.VALID_KEY)
  values = dict(system.evaluate(params, batch))
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


class Evaluator:
  """`Evaluator(system, config, mesh).run(params) -> {name: value}` on `config.eval.split`."""

  def __init__(self, system, config, mesh):
    self.system, self.config, self.mesh = system, config, mesh
    self.local_batch = partitioning.check_batch_size(config.eval.batch_size, mesh,
                                                     what="eval.batch_size")
    self.base = system.dataset(config.eval.split, seed=config.seed, shard_index=0,
                               shard_count=1)
    self.dataset, self.num_examples = data_lib.eval_dataset(
        self.base, split=config.eval.split, num_examples=config.eval.num_examples,
        local_batch=self.local_batch)
    self.groups = tuple(getattr(system, "eval_groups", ()))
    self._sharding = partitioning.batch_sharding(mesh)
    self._fn = None

  def first_batch(self) -> dict[str, np.ndarray]:
    """The first local eval batch (without the validity mask)."""
    batch = dict(self.dataset[0])
    batch.pop(data_lib.VALID_KEY)
    return batch

  def example(self, index: int = 0) -> dict[str, np.ndarray]:
    """Example `index` of the split with a batch axis of 1 (the same on every process)."""
    return {k: np.asarray(v)[None] for k, v in self.base[index].items()}

  def _compiled(self, params):
    if self._fn is None:
      param_shardings = jax.tree.map(lambda x: x.sharding, params)
      fn = lambda p, b: _masked_sums(self.system, len(self.groups), p, b)
      self._fn = jax.jit(fn, in_shardings=(param_shardings, self._sharding),
                         out_shardings=partitioning.replicated(self.mesh))
    return self._fn

  def run(self, params) -> dict[str, float]:
    """Means of every metric over the split's examples."""
    fn = self._compiled(params)
    totals = None
    iterator = iter(self.dataset.to_iter_dataset(data_lib.read_options(self.config)))
    for local in iterator:
      batch = partitioning.global_batch(local, self._sharding, self.config.eval.batch_size)
      sums = jax.tree.map(lambda x: np.asarray(x, np.float64), jax.device_get(fn(params, batch)))
      totals = sums if totals is None else jax.tree.map(np.add, totals, sums)
    return self._means(totals)

  def _means(self, totals) -> dict[str, float]:
    count = float(totals["count"])
    if round(count) != self.num_examples:
      raise RuntimeError(f"evaluated {count} examples, expected {self.num_examples}")
    results = {k: float(v / count) for k, v in totals["sum"].items()}
    if "group_sum" in totals:
      group_count = totals["group_count"]
      if round(float(group_count.sum())) != self.num_examples:
        raise ValueError(f"evaluate() returned 'group' ids outside 0..{len(self.groups) - 1}")
      for k, sums in totals["group_sum"].items():
        for g, name in enumerate(self.groups):
          if group_count[g] > 0:
            results[f"{k}/{name}"] = float(sums[g] / group_count[g])
    results["num_examples"] = float(count)
    return results


def write_results(workdir: str, step: int, results: dict[str, float], writer) -> str:
  """Writes `<workdir>/eval/<step>.json` (process 0) and `eval/<name>` scalars."""
  path = os.path.join(workdir, EVAL_DIR, f"{step}.json")
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
      json.dump({"step": step, **results}, f, indent=2, sort_keys=True)
  writer.write_scalars(step, {f"eval/{k}": v for k, v in results.items()})
  return path
