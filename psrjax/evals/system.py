"""Eval type "system": the means of `System.evaluate`'s per-example metrics.

`PerExampleEval(system, mesh, data).run(params)` returns the mean of each `System.evaluate`
metric over the split's examples (every example counted once: padded rows are masked out),
`"<metric>/<group>"` means when the system returns an int32 `"group"` per example and names its
groups in `eval_groups`, and `"num_examples"`. The trainer's `system` entry of `config.evals`
(added when absent, see `psrjax.evals`) is this type. No fields beyond the common ones.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from psrjax.evals import common
from psrjax.systems import base


def _masked_sums(system, num_groups: int, params, batch) -> dict[str, Any]:
  """Per-batch sums of every metric over the valid examples (and per group)."""
  batch, valid = common.split_valid(batch)
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
  """Means of `System.evaluate`'s per-example metrics over `data` (and per group)."""

  def __init__(self, system, mesh, data):
    self.system, self.mesh, self.data = system, mesh, data
    self.groups = tuple(getattr(system, "eval_groups", ()))

  def run(self, params) -> dict[str, float]:
    """Means of every metric over the split's examples."""
    n = len(self.groups)
    fn = common.cached_jit("per_example", self.system, self.mesh,
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


def make_evaluator(system, mesh, data, context) -> PerExampleEval:
  del context
  return PerExampleEval(system, mesh, data)
