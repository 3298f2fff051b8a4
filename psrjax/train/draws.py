"""Initialisations whose random draws share their threefry hash calls, bit for bit.

A parameter initialisation draws every parameter from a key of its own: flax folds each
module's path into the base key (`random_fold_in`), then draws the module's parameters
(`random_bits`, `random_split`). Each of those is a threefry2x32 hash call, which XLA compiles
as a kernel of its own (on CPU a loop of its own): CoCosNet video's tiny initialisation has 514
such loops among its 1,875 kernels, and compiling it is most of the test suite's longest
compilation, for a program that runs once.

`merge_draws(fn)` traces `fn`, keeps the equations its outputs need, and replays them with every
draw whose key is ready at the same point merged into one hash call: the keys and counters of
all those draws concatenated, hashed once, the result cut back into the draws' shapes. Threefry
hashes each (key, counter) pair on its own, so every value is the one the unmerged program
computes, bit for bit; the draws' order of readiness only decides which call a draw joins. Draws
follow `jax.random`'s threefry2x32 with `jax_threefry_partitionable` (JAX's default): a draw of
another PRNG implementation or mode, one inside a loop, a scan or a conditional, and one of a
batch of keys is replayed as it was traced, and a function with side effects (`jax.debug`
callbacks) is not replayed at all. Merged calls hold at most `MAX_MERGED` values each
(a larger draw keeps its own call), so the temporary key and counter arrays stay small next to
the parameters.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import jit
from jax import lax
from jax.extend import core as jex_core
from jax.extend.core import primitives as jex_primitives

MAX_MERGED = 1 << 22
_CALLS = ("jit", "pjit", "closed_call", "core_call")
_DRAWS = ("random_bits", "random_fold_in", "random_split")


def merge_draws(fn: Callable[..., Any]) -> Callable[..., Any]:
  """`fn` (arrays in, pytree of arrays out), staged with its draws merged (module docstring).

  Meant under `jax.jit`: `jax.jit(merge_draws(init))` compiles to the values `jax.jit(init)`
  gives. `fn` is traced by `trace`, once per shapes."""

  @functools.wraps(fn)
  def merged(*args):
    traced = trace(fn, *args)
    closed = traced.jaxpr
    if closed.effects:   # replaying out of program order could reorder them
      return fn(*args)
    flat = jax.tree.leaves(args)
    if len(flat) != len(closed.jaxpr.invars):
      raise ValueError(f"merge_draws: {fn} takes {len(closed.jaxpr.invars)} array inputs, "
                       f"got {len(flat)}")
    outs = _Replay().run(closed, flat)
    return jax.tree.unflatten(jax.tree.structure(traced.out_info), outs)

  return merged


def trace(fn: Callable[..., Any], *args) -> Any:
  """`jax.jit(fn).trace` on the shapes and dtypes of `args` (arrays, tracers or
  `ShapeDtypeStruct`s; shardings dropped): JAX traces `fn` once per shapes, so the abstract
  state of an initialisation (`.out_info`) and its merged draws share one trace."""
  shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), x.dtype), args)
  return jit(fn).trace(*shapes)


@dataclasses.dataclass
class _Frame:
  """The values of one (possibly inlined) jaxpr's variables."""
  env: dict = dataclasses.field(default_factory=dict)

  def read(self, v):
    return v.val if isinstance(v, jex_core.Literal) else self.env[v]

  def has(self, v) -> bool:
    return isinstance(v, jex_core.Literal) or v in self.env


@dataclasses.dataclass
class _Eqn:
  eqn: Any
  frame: _Frame
  used: list[bool]


@dataclasses.dataclass
class _Return:
  """Copies an inlined call's outputs to the calling frame's variables."""
  eqn: Any
  frame: _Frame
  child: _Frame
  inner_outvars: list
  used: list[bool]


def _live(jaxpr, used: list[bool]) -> list[tuple[Any, list[bool]]]:
  """The equations `jaxpr`'s `used` outputs need (and any with effects), in order, each with
  which of its outputs are needed."""
  needed = {v for v, u in zip(jaxpr.outvars, used) if u and not isinstance(v, jex_core.Literal)}
  live = []
  for eqn in reversed(jaxpr.eqns):
    outs = [o in needed for o in eqn.outvars]
    if any(outs) or eqn.effects:
      live.append((eqn, outs))
      needed.update(v for v in eqn.invars if not isinstance(v, jex_core.Literal))
  return live[::-1]


class _Replay:
  """Replays a closed jaxpr into the current trace, merging ready draws each round."""

  def run(self, closed, args) -> list:
    frame = _Frame()
    frame.env.update(zip(closed.jaxpr.constvars, closed.consts))
    frame.env.update(zip(closed.jaxpr.invars, args))
    pending = self._items(closed.jaxpr, frame, [True] * len(closed.jaxpr.outvars))
    while pending:
      pending = self._round(pending)
    return [frame.read(v) for v in closed.jaxpr.outvars]

  def _items(self, jaxpr, frame, used):
    return [_Eqn(eqn, frame, outs) for eqn, outs in _live(jaxpr, used)]

  def _round(self, items: list) -> list:
    """Binds every item whose inputs are ready (inlining calls as they come), then the draws
    that were ready, merged; returns the items still waiting."""
    waiting, draws, i = [], [], 0
    while i < len(items):
      item = items[i]
      i += 1
      if isinstance(item, _Return):
        if all(item.child.has(v) for v, u in zip(item.inner_outvars, item.used) if u):
          for v, inner, u in zip(item.eqn.outvars, item.inner_outvars, item.used):
            if u:
              item.frame.env[v] = item.child.read(inner)
        else:
          waiting.append(item)
        continue
      eqn, frame = item.eqn, item.frame
      if not all(frame.has(v) for v in eqn.invars):
        waiting.append(item)
      elif eqn.primitive.name in _CALLS and isinstance(eqn.params.get("jaxpr"),
                                                        jex_core.ClosedJaxpr):
        items[i:i] = self._inline(item)
      elif _mergeable(eqn, frame):
        draws.append(item)
      else:
        _bind(eqn, frame)
    if draws:
      _merged(draws)
    elif waiting and len(waiting) == len(items):
      raise RuntimeError(f"merge_draws: no equation is ready among {len(waiting)}")
    return waiting

  def _inline(self, item: _Eqn) -> list:
    closed = item.eqn.params["jaxpr"]
    child = _Frame()
    child.env.update(zip(closed.jaxpr.constvars, closed.consts))
    child.env.update(zip(closed.jaxpr.invars, (item.frame.read(v) for v in item.eqn.invars)))
    return self._items(closed.jaxpr, child, item.used) + [
        _Return(item.eqn, item.frame, child, list(closed.jaxpr.outvars), item.used)]


def _bind(eqn, frame: _Frame) -> None:
  params = eqn.primitive.get_bind_params(eqn.params)
  with eqn.ctx.manager:
    out = eqn.primitive.bind(*(frame.read(v) for v in eqn.invars), **params)
  outs = out if eqn.primitive.multiple_results else [out]
  frame.env.update(zip(eqn.outvars, outs))


def _mergeable(eqn, frame: _Frame) -> bool:
  """A draw from one threefry2x32 key, in the partitionable mode."""
  if eqn.primitive.name not in _DRAWS or not jax.config.jax_threefry_partitionable:
    return False
  key = frame.read(eqn.invars[0])
  return (jnp.shape(key) == () and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
          and str(jax.random.key_impl(key)) == "threefry2x32")


def _hash_inputs(eqn, frame: _Frame):
  """(key word 0, key word 1, counter word 0, counter word 1), flat, of one draw."""
  data = jax.random.key_data(frame.read(eqn.invars[0]))
  name = eqn.primitive.name
  if name == "random_fold_in":   # threefry_2x32(key, [0, data]) over the one counter pair
    hi = jnp.zeros((1,), np.uint32)
    lo = jnp.reshape(lax.convert_element_type(frame.read(eqn.invars[1]), np.uint32), (1,))
    n = 1
  else:                          # the counters of `iota_2x32_shape(shape)`
    n = int(np.prod(eqn.params["shape"], dtype=np.int64))
    if n >= 1 << 32:
      raise ValueError("merge_draws: a draw of 2**32 or more values")
    hi, lo = jnp.zeros((n,), np.uint32), lax.iota(np.uint32, n)
  return (jnp.broadcast_to(data[0], (n,)), jnp.broadcast_to(data[1], (n,)), hi, lo)


def _size(eqn) -> int:
  return 1 if eqn.primitive.name == "random_fold_in" else int(np.prod(eqn.params["shape"]))


def _merged(draws: list[_Eqn]) -> None:
  """Binds the draws as few hash calls of at most `MAX_MERGED` values."""
  batch, total = [], 0
  for item in sorted(draws, key=lambda d: _size(d.eqn)):
    if batch and total + _size(item.eqn) > MAX_MERGED:
      _hash(batch)
      batch, total = [], 0
    batch.append(item)
    total += _size(item.eqn)
  _hash(batch)


def _hash(batch: list[_Eqn]) -> None:
  inputs = [_hash_inputs(item.eqn, item.frame) for item in batch]
  words = [jnp.concatenate(parts) if len(parts) > 1 else parts[0] for parts in zip(*inputs)]
  bits0, bits1 = jex_primitives.threefry2x32_p.bind(*words)
  start = 0
  for item, parts in zip(batch, inputs):
    n = parts[0].shape[0]
    item.frame.env[item.eqn.outvars[0]] = _result(item.eqn, bits0[start:start + n],
                                                  bits1[start:start + n])
    start += n


def _result(eqn, bits0, bits1):
  """The draw's output from its hash words (as `jax.random`'s threefry2x32 forms it)."""
  name, params = eqn.primitive.name, eqn.params
  if name == "random_fold_in":
    return jax.random.wrap_key_data(jnp.concatenate([bits0, bits1]), impl="threefry2x32")
  shape = tuple(params["shape"])
  if name == "random_split":
    data = jnp.stack([bits0.reshape(shape), bits1.reshape(shape)], axis=len(shape))
    return jax.random.wrap_key_data(data, impl="threefry2x32")
  width = params["bit_width"]
  dtype = np.dtype(f"uint{width}")
  if width == 64:
    hi, lo = (lax.convert_element_type(b, dtype) for b in (bits0, bits1))
    bits = lax.shift_left(hi, jnp.asarray(32, dtype)) | lo
  elif width == 32:
    bits = bits0 ^ bits1
  else:
    bits = lax.convert_element_type(bits0 ^ bits1, dtype)
  return bits.reshape(shape)
