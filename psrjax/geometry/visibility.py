"""The visibility map M_{i->j} of PSR-Net (Lakhal et al., Algorithm 1).

For every target-view pixel: background (1) if no mesh face projects there; visible (2) if the
pixel's face, or one of its k nearest faces (rest-pose centroid distance), is seen anywhere in the
input view's face maps over all T frames; occluded (3) otherwise. Algorithm 1 delegates the
"k-NN face" test to Steps I & II of the texture transfer (Lakhal et al. 2020): with the same
neighbour table, "visible" is exactly "coloured by Step II" of `texture_transfer`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from psrjax.geometry._batch import lead_shape, map_batch
from psrjax.geometry.faces import check_neighbours, faces_seen, first_seen_neighbour

BACKGROUND = 1
VISIBLE = 2
OCCLUDED = 3


def visibility_map(src_face: jax.Array, tgt_face: jax.Array, neighbours: jax.Array) -> jax.Array:
  """Algorithm 1: labels every target pixel BACKGROUND (1), VISIBLE (2) or OCCLUDED (3).

  Args:
    src_face: int32 [..., T, H, W] input-view face maps (-1 background).
    tgt_face: int32 [..., T', H', W'] target-view face maps (-1 background), same leading axes.
    neighbours: int32 [F, k] the k nearest faces of every face, the face itself first
      (negative entries are padding).
  Returns:
    int32 [..., T', H', W'].
  """
  num_faces = check_neighbours(neighbours, None)
  lead = lead_shape(src_face, 3, "src_face")
  if lead_shape(tgt_face, 3, "tgt_face") != lead:
    raise ValueError(f"src_face {src_face.shape} and tgt_face {tgt_face.shape} must share leading axes")

  def one(src, tgt):
    _, visible_face = first_seen_neighbour(faces_seen(src, num_faces), neighbours)
    visible = visible_face[jnp.clip(tgt, 0, num_faces - 1)]
    label = jnp.where(visible, VISIBLE, OCCLUDED)
    return jnp.where(tgt < 0, BACKGROUND, label).astype(jnp.int32)

  return map_batch(one, (src_face, tgt_face), (3, 3), lead)
