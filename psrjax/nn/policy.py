"""The dtype and rematerialisation conventions every psrjax model follows.

dtype: a layer computes in its explicit `dtype` when one is given and otherwise in the dtype of
its input (`compute_dtype`). Parameters are created and stored in float32 and cast to the compute
dtype where they are used; normalisation statistics are computed in float32. Under
`train.compute_dtype = "bfloat16"` the trainer casts the batch (and the parameters) to bfloat16,
so every convolution, transposed convolution and matrix product of a model built with
`dtype=None` runs in bfloat16. Models return their outputs in the compute dtype; losses and
metrics reduce in float32. Coordinate geometry stays float32 (`float32_geometry`), and so do the
small products that are statistics of parameters or features rather than layers
(`float32_statistics`: spectral normalisation's power iteration, the contextual loss's feature
similarities).

remat (`REMAT_MODES`, a model field set from `config.model.remat`):
- "none": autodiff saves every intermediate activation for the backward pass;
- "blocks": every block (a conv + norm + activation unit, a residual block, a discriminator
  layer) is recomputed in the backward pass and only its input is saved; memory grows with the
  number of blocks rather than with every tensor inside them, for about one extra forward pass;
- "full": the whole network is recomputed in the backward pass; only its inputs are saved.
"""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

REMAT_MODES = ("none", "blocks", "full")
# Name scope of coordinate arithmetic that stays float32 under any compute dtype (pixel
# positions, pose and camera transforms: bfloat16's 8-bit mantissa cannot address a 256-pixel
# row). Checks that a step computes in bfloat16 skip the products inside it.
FLOAT32_SCOPE = "float32_geometry"
# Name scope of statistics that stay float32 under any compute dtype (module docstring); the
# same checks skip them.
FLOAT32_STATISTICS_SCOPE = "float32_statistics"
FLOAT32_SCOPES = (FLOAT32_SCOPE, FLOAT32_STATISTICS_SCOPE)


def compute_dtype(dtype: Any, x: jax.Array) -> Any:
  """`dtype` when given, else `x`'s floating dtype (float32 for integer inputs)."""
  if dtype is not None:
    return jnp.dtype(dtype)
  x_dtype = jnp.result_type(x)
  return x_dtype if jnp.issubdtype(x_dtype, jnp.floating) else jnp.dtype(jnp.float32)


def float32_geometry(fn):
  """Decorator: `fn` is coordinate geometry computed in float32, traced under FLOAT32_SCOPE."""

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with jax.named_scope(FLOAT32_SCOPE):
      return fn(*args, **kwargs)

  return wrapped


def float32_statistics(fn):
  """Decorator: `fn` computes float32 statistics (module docstring), traced under
  FLOAT32_STATISTICS_SCOPE."""

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with jax.named_scope(FLOAT32_STATISTICS_SCOPE):
      return fn(*args, **kwargs)

  return wrapped


def check_remat(mode: str) -> str:
  if mode not in REMAT_MODES:
    raise ValueError(f"remat={mode!r} is not a rematerialisation mode; use one of "
                     f"{', '.join(map(repr, REMAT_MODES))}")
  return mode


def remat_block(cls: type[nn.Module], mode: str, **kwargs) -> type[nn.Module]:
  """`cls` itself, or under "blocks" the class recomputed in the backward pass (`nn.remat`).

  Blocks save nothing inside them (`nothing_saveable`): only their inputs stay live.
  """
  if check_remat(mode) != "blocks":
    return cls
  return nn.remat(cls, policy=jax.checkpoint_policies.nothing_saveable, **kwargs)


def remat_stage(fn, mode: str):
  """`fn(module, *args)` itself, or under "blocks" recomputed in the backward pass.

  For a block that is not a module of its own (e.g. a transposed convolution and the norm after
  it): the submodules `fn` creates keep their names under `module`.
  """
  if check_remat(mode) != "blocks":
    return fn
  return nn.remat(fn, policy=jax.checkpoint_policies.nothing_saveable)


def remat_network(fn, mode: str, *, static_argnums: tuple[int, ...] = ()):
  """`fn(module, *args)` itself, or under "full" recomputed in the backward pass as a whole.

  Wrap a network's forward body with it (the submodules keep their names under `module`).
  `static_argnums`: the positions in `(module, *args)` of Python values (ints, shapes) that
  must stay concrete under "full".
  """
  if check_remat(mode) != "full":
    return fn
  return nn.remat(fn, policy=jax.checkpoint_policies.nothing_saveable,
                  static_argnums=static_argnums)
