"""Walking jaxprs: the sub-jaxprs of an equation (jit, remat, custom_vjp, scan, cond ...).

Backend-neutral, so that code reading traced steps (`psrjax.train.lowering`) need not import the
CPU convolutions of `psrjax.nn.cpu`, which use it to count their FLOPs.
"""
from __future__ import annotations

import math

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


def _conv_flops(eqn) -> float:
  """2 x output elements x the products per output (the kernel's elements per output feature),
  which also holds for grouped and batch-grouped (weight-gradient) convolutions."""
  out, rhs = eqn.outvars[0].aval.shape, eqn.invars[1].aval.shape
  out_features = rhs[eqn.params["dimension_numbers"].rhs_spec[0]]
  return 2.0 * math.prod(out) * math.prod(rhs) / out_features


def _dot_flops(eqn) -> float:
  (lhs_contract, _), _ = eqn.params["dimension_numbers"]
  lhs = eqn.invars[0].aval.shape
  return 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)


_MATMUL_FLOPS = {"conv_general_dilated": _conv_flops, "dot_general": _dot_flops}


def total(jaxpr, count) -> float:
  """The sum of `count(eqn)` over the equations of `jaxpr` and of its sub-jaxprs: a scan's body
  `length` times, a cond's costliest branch, other sub-computations (jit, remat, custom_vjp)
  once."""
  out = 0.0
  for eqn in jaxpr.eqns:
    out += count(eqn)
    subs = [total(sub, count) for sub in sub_jaxprs(list(eqn.params.values()))]
    if eqn.primitive.name == "cond":
      out += max(subs, default=0.0)
    else:
      out += eqn.params.get("length", 1) * sum(subs) if eqn.primitive.name == "scan" else sum(subs)
  return out


def matmul_flops(jaxpr) -> float:
  """FLOPs of the convolutions and matrix products in `jaxpr` (global shapes): the count MFU is
  taken against, independent of the backend (a GPU's cuDNN / cuBLAS calls are 0 FLOPs to XLA's
  cost analysis of the compiled program)."""
  return total(jaxpr, lambda eqn: _MATMUL_FLOPS.get(eqn.primitive.name, lambda _: 0.0)(eqn))
