"""Population statistics for `BatchStatNorm`: normalising with the training data's statistics
instead of the batch's ("precise BN", Wu and Johnson, "Rethinking 'Batch' in BatchNorm", 2021).

psrjax's batch norm keeps no running statistics (`psrjax.nn.norms.BatchStatNorm`), so a
forward normalises with its own batch's. At a batch of one, e.g. a single photograph animated
frame by frame, those are one image's statistics, which the network never saw in training. The
official FOMM code evaluates in `eval()` mode, with running statistics; their limit is the
population statistics measured here: each layer's channel mean and mean square over many
training batches' forwards, with the trained parameters.

  stats = population_moments(forward, batches)     # forward(batch) runs the networks
                                                   # (or forward(params, batch), params given)
  with nn.intercept_methods(fixed_moments(stats)):  # traced inside, e.g. in a jitted function
    out = forward(batch)                            # every BatchStatNorm uses `stats`

`stats` maps "<root module class>/<module path>" to (mean, mean square) float32 `[C]` arrays; a
layer called several times in one forward (a detector on the source and the driving frame)
contributes the mean of its calls.
"""
from __future__ import annotations

from typing import Callable, Iterable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from psrjax.nn.norms import BatchStatNorm
from psrjax.nn.policy import compute_dtype

Moments = dict[str, tuple[np.ndarray, np.ndarray]]


def layer_key(module: nn.Module) -> str:
  """"<root module class>/<path>": unique across the separately applied networks of a forward."""
  root = module
  while isinstance(getattr(root, "parent", None), nn.Module):
    root = root.parent
  return "/".join((type(root).__name__,) + tuple(module.scope.path))


def _is_norm_call(context) -> bool:
  return isinstance(context.module, BatchStatNorm) and context.method_name == "__call__"


def recording(store: dict) -> Callable:
  """An interceptor appending each BatchStatNorm input's float32 channel (mean, mean square)
  to `store[layer_key]`."""
  def interceptor(next_fun, args, kwargs, context):
    if _is_norm_call(context):
      x = args[0].astype(jnp.float32)
      axes = tuple(range(x.ndim - 1))
      store.setdefault(layer_key(context.module), []).append(
          (jnp.mean(x, axis=axes), jnp.mean(jnp.square(x), axis=axes)))
    return next_fun(*args, **kwargs)
  return interceptor


def batch_moments(forward: Callable, *args) -> dict:
  """{layer_key: (mean, mean square)} of one call of `forward(*args)` (traceable: jit it)."""
  store: dict = {}
  with nn.intercept_methods(recording(store)):
    forward(*args)
  return {k: tuple(jnp.mean(jnp.stack(c), axis=0) for c in zip(*calls))
          for k, calls in store.items()}


def population_moments(forward: Callable, batches: Iterable, *leading) -> Moments:
  """Every BatchStatNorm's (mean, mean square) averaged over `forward(*leading, batch)` of
  `batches` (equal batch sizes: the mean of the batch means is the population's; `leading`,
  e.g. the parameters, are arguments of the one compiled program); {} when `forward` has no
  batch norm."""
  run = jax.jit(lambda a, b: batch_moments(forward, *a, b))
  found = [jax.device_get(run(leading, b)) for b in batches]
  if not found:
    raise ValueError("population statistics need at least one batch; got none")
  return {k: tuple(np.mean(np.stack([f[k][i] for f in found]), axis=0) for i in range(2))
          for k in found[0]}


def fixed_moments(stats: Moments) -> Callable:
  """An interceptor normalising each BatchStatNorm with `stats` (`population_moments`)
  instead of its batch's; a layer missing from `stats` is an error."""
  def interceptor(next_fun, args, kwargs, context):
    if not _is_norm_call(context):
      return next_fun(*args, **kwargs)
    module, x = context.module, args[0]
    key = layer_key(module)
    if key not in stats:
      raise KeyError(f"no population statistics for batch norm {key!r}; they were measured "
                     f"for {len(stats)} other layers: measure them with the same networks")
    mean, square = (jnp.asarray(v, jnp.float32) for v in stats[key])
    var = jnp.maximum(square - jnp.square(mean), 0.0)
    y = (x.astype(jnp.float32) - mean) * jax.lax.rsqrt(var + module.epsilon)
    params = module.variables.get("params", {})
    if module.use_scale:
      y = y * params["scale"]
    if module.use_bias:
      y = y + params["bias"]
    return y.astype(compute_dtype(module.dtype, x))
  return interceptor


def with_moments(stats: Moments, fn: Callable) -> Callable:
  """`fn` with every BatchStatNorm it calls normalised by `stats` (`fn` itself when empty)."""
  if not stats:
    return fn

  def wrapped(*args, **kwargs):
    with nn.intercept_methods(fixed_moments(stats)):
      return fn(*args, **kwargs)
  return wrapped
