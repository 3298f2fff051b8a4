"""One optimizer update over all of a group's parameters at once.

A generator of a few hundred small arrays (every convolution's kernel, bias and normalisation
scale) gets, from a per-array optax update, about thirty operations per array: Adam's moments,
bias correction, the update, its application and the norms the step reports. Those thousands
of small operations are what an accelerator launches one by one (or fuses only partly) and
what XLA compiles op by op: in CoCosNet video's train step they are a third of all equations.

`fused_update` runs the same optax transformation on each group's parameters raveled into one
vector per dtype: the parameters, gradients and every parameter-shaped part of the optimizer
state (Adam's `mu` and `nu`) are concatenated, updated together and split back. The optimizer
state keeps its per-array structure (checkpoints are unchanged); an elementwise optimizer
(Adam, SGD, their schedules) gives the same values, up to the summation order of the norms.
Only for replicated parameters: concatenating sharded ones (`sharding.params=fsdp`) would
gather them, so those keep the per-array update. The raveled copies cost memory traffic (XLA's
cost analysis: 13.7 -> 17.0 MB accessed by pix2pixHD's tiny step), so `train.fused_update`
"auto" uses it where the per-array operations cost more: on the CPU, for groups of up to 4 M
parameters (`options.AUTO_FUSED_MAX`); GPU and TPU compilers fuse small updates themselves.
It is off by default (`train.fused_update=False`); the configs' `tiny` variants (tests) use
"auto", whose steps compile in about a fifth less time. vid2vid's keeps it off (its checks
compare two programs' steps at 1e-5, and its near-zero initial flows turn the last-bit
differences of two compiled updates into 2.5e-5); D²G-Net's too: compiled with
the test suite's XLA flags together (LLVM level 0 and the classic loop emitters), its raveled
update's forward-once step gives a first texture gradient norm of 286.04 where the
forward-in-every-phase step gives 287.37; with either flag alone or with XLA's default flags the
two steps agree (287.28, 287.37, 287.28), so the difference is XLA:CPU's code for that
combination, not the update's arithmetic.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import optax


def fused_update(optimizer: optax.GradientTransformation, grads, opt_state, params):
  """(new params, new optimizer state, (gradient norm, update norm)) of one optax update of
  `params` by `grads`, computed on the raveled group (module docstring)."""
  leaves, treedef = jax.tree.flatten(params)
  if not leaves:
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, (jnp.zeros(()), jnp.zeros(()))
  layout = _Layout(leaves)
  is_param_tree = _param_tree_test(params)
  ravel = lambda tree: layout.ravel(treedef.flatten_up_to(tree))
  flat_params, flat_grads = ravel(params), ravel(grads)
  flat_state = jax.tree.map(lambda x: ravel(x) if is_param_tree(x) else x, opt_state,
                            is_leaf=is_param_tree)
  flat_updates, new_flat_state = optimizer.update(flat_grads, flat_state, flat_params)
  new_flat_params = optax.apply_updates(flat_params, flat_updates)
  # Back to the state's own structure: its parameter trees where `opt_state` had them.
  parts, state_def = jax.tree.flatten(opt_state, is_leaf=is_param_tree)
  new_parts = [treedef.unflatten(layout.unravel(new)) if is_param_tree(old) else new
               for old, new in zip(parts, state_def.flatten_up_to(new_flat_state))]
  norms = (_norm(flat_grads), _norm(flat_updates))
  return (treedef.unflatten(layout.unravel(new_flat_params)), state_def.unflatten(new_parts),
          norms)


class _Layout:
  """Leaves raveled into one vector per dtype (a tuple, in dtype order) and back."""

  def __init__(self, leaves):
    self.shapes = [leaf.shape for leaf in leaves]
    self.dtypes = [jnp.dtype(leaf.dtype) for leaf in leaves]
    self.groups: dict[Any, list[int]] = {}
    for i, dtype in enumerate(self.dtypes):
      self.groups.setdefault(dtype, []).append(i)

  def ravel(self, leaves) -> tuple[jax.Array, ...]:
    return tuple(jnp.concatenate([jnp.ravel(leaves[i]) for i in index])
                 for index in self.groups.values())

  def unravel(self, vectors) -> list[jax.Array]:
    out: list[Any] = [None] * len(self.shapes)
    for vector, index in zip(vectors, self.groups.values()):
      start = 0
      for i in index:
        stop = start + math.prod(self.shapes[i])
        out[i] = jax.lax.slice_in_dim(vector, start, stop).reshape(self.shapes[i])
        start = stop
    return out


def _param_tree_test(params):
  """`test(x)`: whether `x` is a tree of the parameters' structure and shapes (Adam's moments),
  not a scalar such as its step count."""
  treedef = jax.tree.structure(params)
  shapes = [jnp.shape(p) for p in jax.tree.leaves(params)]

  def test(x) -> bool:
    try:
      if jax.tree.structure(x) != treedef:
        return False
    except (TypeError, ValueError):
      return False
    return [jnp.shape(leaf) for leaf in jax.tree.leaves(x)] == shapes

  return test


def _norm(vectors) -> jax.Array:
  return jnp.sqrt(sum(jnp.sum(jnp.square(v.astype(jnp.float32))) for v in vectors))


def global_norm(tree) -> jax.Array:
  """`optax.global_norm` of replicated arrays as one reduction over their concatenation (one
  operation instead of three per array)."""
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.zeros((), jnp.float32)
  return _norm([jnp.concatenate([jnp.ravel(x).astype(jnp.float32) for x in leaves])])
