"""Eval type "system": the means of `System.evaluate`'s per-example metrics.

The same evaluation as the `config.eval` block (per-group means when the system names
`eval_groups`), on any split / size / batch size. No fields beyond the common ones.
"""
from __future__ import annotations

from psrjax.train import evaluator as evaluator_lib


def make_evaluator(system, mesh, data, context) -> evaluator_lib.PerExampleEval:
  del context
  return evaluator_lib.PerExampleEval(system, mesh, data)
