"""Per-face bookkeeping shared by the visibility map and texture transfer."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def faces_seen(face: jax.Array, num_faces: int) -> jax.Array:
  """bool [F]: which faces appear anywhere in the face maps `face` (any shape, -1 = background)."""
  idx = jnp.where(face >= 0, face, num_faces).reshape(-1)
  return jnp.zeros((num_faces + 1,), bool).at[idx].set(True)[:num_faces]


def first_seen_neighbour(seen: jax.Array, neighbours: jax.Array) -> tuple[jax.Array, jax.Array]:
  """For every face, the first entry of its neighbour list that was seen.

  seen: bool [F]; neighbours: int [F, n] (entries < 0 are padding and never count as seen).
  Returns (face index int32 [F], found bool [F]); the index is meaningless where not found.
  """
  padded = jnp.concatenate([seen, jnp.zeros((1,), bool)])
  num_faces = seen.shape[0]
  safe = jnp.where(neighbours >= 0, neighbours, num_faces)
  hit = padded[safe]                                    # [F, n]
  found = jnp.any(hit, axis=-1)
  first = jnp.argmax(hit, axis=-1)                      # first True in neighbour order
  face = jnp.take_along_axis(safe, first[:, None], axis=-1)[:, 0]
  return face.astype(jnp.int32), found


def check_neighbours(neighbours: jax.Array, num_faces: int | None) -> int:
  if neighbours.ndim != 2:
    raise ValueError(f"neighbours must be int [F, k] (k nearest faces, the face itself first); "
                     f"got shape {neighbours.shape}")
  if not jnp.issubdtype(neighbours.dtype, jnp.integer):
    raise ValueError(f"neighbours must be an integer array; got dtype {neighbours.dtype}")
  if num_faces is not None and num_faces != neighbours.shape[0]:
    raise ValueError(f"num_faces={num_faces} does not match neighbours.shape[0]={neighbours.shape[0]}")
  return neighbours.shape[0]
