"""Helpers to run single-example geometry functions over arbitrary leading batch axes."""
from __future__ import annotations

import math
from typing import Callable, Sequence

import jax


def lead_shape(x: jax.Array, core_ndim: int, name: str) -> tuple[int, ...]:
  if x.ndim < core_ndim:
    raise ValueError(f"{name} must have at least {core_ndim} axes; got shape {x.shape}")
  return tuple(x.shape[: x.ndim - core_ndim])


def map_batch(fn: Callable, args: Sequence[jax.Array], core_ndims: Sequence[int],
              lead: tuple[int, ...]):
  """Applies `fn` (written for one example) to `args` flattened over the shared leading axes `lead`.

  A single example is passed to `fn` as it is, not through `jax.vmap`: a vmapped gather over a
  batch of one differentiates several times slower on XLA's CPU backend (the bilinear sampler's
  position gradient: 1.9 s against 0.29 s for 786k positions of an 18-channel image)."""
  n = math.prod(lead)
  if n == 1:
    out = fn(*[a.reshape(a.shape[a.ndim - c:]) for a, c in zip(args, core_ndims)])
    return jax.tree.map(lambda o: o.reshape(lead + o.shape), out)
  flat = [a.reshape((n,) + a.shape[a.ndim - c:]) for a, c in zip(args, core_ndims)]
  out = jax.vmap(fn)(*flat)
  return jax.tree.map(lambda o: o.reshape(lead + o.shape[1:]), out)
