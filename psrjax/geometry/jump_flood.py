"""Nearest-seed transform by jump flooding (Rong & Tan 2006), jittable and batched.

For every pixel, the flat index (y * W + x) of the nearest seed pixel in Euclidean image distance.
Each pass with step s lets every pixel adopt the seed of one of its 8 neighbours at offsets
{-s, 0, s}^2 when that seed is closer; steps run N/2, N/4, ..., 1 and two refinement passes with
steps 2 and 1 follow ("JFA+2"), which removes nearly all of plain JFA's rare errors. The cost is
O(H W log max(H, W)); the passes run in one `fori_loop` of shifted element-wise ops (no pixel
loops, small compiled program). The result is the exact nearest seed except in rare
configurations, where a seed slightly farther can be returned. Every pixel receives some seed if
the image has at least one. Ties keep the first candidate in the visiting order.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

# A seed is packed as (y << 16) | x (shifts and masks decode it, no division). "No seed" decodes to
# y = -2**14, x = 0: farther than any real seed, and squared distances stay inside int32 for
# images up to 8192 pixels a side.
_NO_SEED = -(1 << 30)
_DIRECTIONS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


def jfa_steps(size: int) -> tuple[int, ...]:
  """Step lengths: N/2, ..., 1 for N = next power of two >= size, then the refinement steps 2, 1."""
  n = 1
  while n < size:
    n *= 2
  steps = []
  s = n // 2
  while s >= 1:
    steps.append(s)
    s //= 2
  return tuple(steps) + (2, 1)


def nearest_seed(seeds: jax.Array) -> jax.Array:
  """seeds: bool [..., H, W]. Returns int32 [..., H, W]: flat index of the nearest seed, -1 if none."""
  if seeds.ndim < 2:
    raise ValueError(f"seeds must be a boolean image [..., H, W]; got shape {seeds.shape}")
  h, w = seeds.shape[-2:]
  if max(h, w) > 8192:
    raise ValueError(f"nearest_seed supports images up to 8192 pixels a side; got {h}x{w}")
  ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.int32), jnp.arange(w, dtype=jnp.int32), indexing="ij")
  best = jnp.where(seeds, (ys << 16) | xs, _NO_SEED).astype(jnp.int32)
  steps = jfa_steps(max(h, w))
  margin = max(steps)
  lead = best.ndim - 2
  widths = [(0, 0)] * lead + [(margin, margin), (margin, margin)]

  def sq_dist(packed):
    return jnp.square((packed >> 16) - ys) + jnp.square((packed & 0xFFFF) - xs)

  def one_pass(i, b):
    step = jnp.asarray(steps, jnp.int32)[i]
    padded = jnp.pad(b, widths, constant_values=_NO_SEED)
    dist = sq_dist(b)
    for dy, dx in _DIRECTIONS:
      start = [0] * lead + [margin + dy * step, margin + dx * step]
      cand = lax.dynamic_slice(padded, start, b.shape)      # cand[p] = b[p + (dy, dx) * step]
      cand_dist = sq_dist(cand)
      better = cand_dist < dist
      b = jnp.where(better, cand, b)
      dist = jnp.where(better, cand_dist, dist)
    return b

  best = lax.fori_loop(0, len(steps), one_pass, best)
  return jnp.where(best >= 0, (best >> 16) * w + (best & 0xFFFF), -1).astype(jnp.int32)
