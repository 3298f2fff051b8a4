"""Walking jaxprs: the sub-jaxprs of an equation (jit, remat, custom_vjp, scan, cond ...).

Backend-neutral, so that code reading traced steps (`psrjax.train.lowering`) need not import the
CPU convolutions of `psrjax.nn.cpu`, which use it to count their FLOPs.
"""
from __future__ import annotations

import jax


def sub_jaxprs(value):
  """The jaxprs inside an equation's parameter value (a jaxpr, closed jaxpr, or tuples of them)."""
  if isinstance(value, jax.extend.core.ClosedJaxpr):
    yield value.jaxpr
  elif isinstance(value, jax.extend.core.Jaxpr):
    yield value
  elif isinstance(value, (tuple, list)):
    for v in value:
      yield from sub_jaxprs(v)
