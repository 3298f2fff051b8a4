"""Texture transfer x̂⁰_j from the input view to the target view (GTNet, Lakhal et al. 2020).

PSR-Net (Lakhal et al.) feeds this initial target estimate to its reconstruction layer. Given the
input-view video and face maps (mesh face index per pixel, -1 background) and the target-view face
and body-part maps:

- Step I: every face gets the per-channel median colour of all input-view pixels showing it, over
  all T frames (for an even count the mean of the two middle values, like `np.median`).
- Step II: each target pixel takes the colour of its own face if that face was seen, else of the
  first face of its neighbour list (nearest faces by rest-pose centroid distance) that was seen.
  The authors' code scans n = 50 neighbours after the face itself: pass a table of the 51 nearest
  faces (the face itself first) to match it.
- Step III: every foreground pixel still uncoloured takes the colour of the nearest (image space,
  same frame) Step-II-coloured pixel of the same body part; if that part has no coloured pixel in
  the frame, of the symmetric part; else `unknown_color`. The authors search exhaustively; here the
  nearest pixel comes from jump flooding (`psrjax.geometry.jump_flood`), exact except in rare
  configurations where a pixel a few per cent farther is used.

Departures: colours stay in the batch contract's [-1, 1] range; background target pixels
(tgt_face == -1) get `background_value` (default 0, mid-grey) where the authors' uint8 canvas is 0
(black); the default unknown colour is the authors' RGB (102, 163, 255) mapped to [-1, 1].
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from psrjax.geometry._batch import lead_shape, map_batch
from psrjax.geometry.faces import check_neighbours, first_seen_neighbour
from psrjax.geometry.jump_flood import nearest_seed

GTNET_UNKNOWN_COLOR = (102 / 127.5 - 1.0, 163 / 127.5 - 1.0, 255 / 127.5 - 1.0)

# Which step coloured a target pixel (second output of `texture_transfer_with_steps`).
STEP_BACKGROUND = 0       # tgt_face == -1
STEP_OWN_FACE = 1         # Step II, the pixel's own face was seen
STEP_NEIGHBOUR_FACE = 2   # Step II, a neighbouring face was seen
STEP_SAME_PART = 3        # Step III, nearest coloured pixel of the same part
STEP_SYMMETRIC_PART = 4   # Step III, nearest coloured pixel of the symmetric part
STEP_UNKNOWN = 5          # Step III, the unknown colour


def face_median_colors(rgb: jax.Array, face: jax.Array, num_faces: int) -> tuple[jax.Array, jax.Array]:
  """Step I for one video: rgb [T, H, W, C], face int [T, H, W] -> (median [F, C], counts int32 [F]).

  Vectorised with one lexicographic (face, value) sort per channel and segment offsets; faces
  never seen get colour 0 and count 0.
  """
  key = jnp.where(face >= 0, face, num_faces).reshape(-1).astype(jnp.int32)
  values = rgb.reshape(key.shape[0], -1).astype(jnp.float32)
  sort_channel = lambda v: lax.sort((key, v), num_keys=2)[1]
  ordered = jax.vmap(sort_channel, in_axes=1, out_axes=1)(values)            # [N, C]
  counts = jnp.zeros((num_faces + 1,), jnp.int32).at[key].add(1)[:num_faces]
  start = jnp.cumsum(counts) - counts             # background (key F) sorts last
  last = ordered.shape[0] - 1
  lo = jnp.clip(start + (counts - 1) // 2, 0, last)
  hi = jnp.clip(start + counts // 2, 0, last)
  median = 0.5 * (ordered[lo] + ordered[hi])
  return jnp.where(counts[:, None] > 0, median, 0.0), counts


def _step_two(colors, seen, neighbours, tgt_face):
  """Step II for one video: (colour [T, H, W, C], own face seen, neighbour seen)."""
  num_faces = seen.shape[0]
  best, found = first_seen_neighbour(seen, neighbours)
  best = jnp.where(seen, jnp.arange(num_faces, dtype=jnp.int32), best)
  safe = jnp.clip(tgt_face, 0, num_faces - 1)
  fg = tgt_face >= 0
  own = fg & seen[safe]
  neighbour = fg & ~own & found[safe]
  return colors[best[safe]], own, neighbour


def _step_three(colour, coloured, tgt_part, symmetric_part):
  """Step III for one video: nearest coloured pixel of the same / symmetric part, same frame.

  Returns (colour [T, H, W, C], from same part, from symmetric part) for every pixel (callers
  select the pixels that need them).
  """
  t, h, w = tgt_part.shape
  num_parts = symmetric_part.shape[0]
  part = jnp.clip(tgt_part, 0, num_parts - 1)
  labels = jnp.arange(num_parts, dtype=part.dtype)[None, :, None, None]
  seeds = coloured[:, None] & (part[:, None] == labels)                   # [T, P, H, W]
  field = nearest_seed(seeds)                                              # [T, P, H, W]
  same = jnp.take_along_axis(field, part[:, None], axis=1)[:, 0]
  sym = jnp.take_along_axis(field, symmetric_part[part][:, None], axis=1)[:, 0]
  use_same = same >= 0
  index = jnp.where(use_same, same, jnp.maximum(sym, 0)).reshape(t, h * w, 1)
  flat = colour.reshape(t, h * w, -1)
  picked = jnp.take_along_axis(flat, index, axis=1).reshape(colour.shape)
  return picked, use_same, ~use_same & (sym >= 0)


def _transfer_one(src_rgb, src_face, tgt_face, tgt_part, neighbours, symmetric_part,
                  unknown_color, background_value):
  num_faces = neighbours.shape[0]
  colors, counts = face_median_colors(src_rgb, src_face, num_faces)
  colour2, own, neighbour = _step_two(colors, counts > 0, neighbours, tgt_face)
  coloured = own | neighbour
  colour2 = jnp.where(coloured[..., None], colour2, 0.0)
  colour3, same, sym = _step_three(colour2, coloured, tgt_part, symmetric_part)
  fg = tgt_face >= 0
  need = fg & ~coloured
  step = jnp.select(
      [~fg, own, neighbour, need & same, need & sym],
      [STEP_BACKGROUND, STEP_OWN_FACE, STEP_NEIGHBOUR_FACE, STEP_SAME_PART, STEP_SYMMETRIC_PART],
      STEP_UNKNOWN).astype(jnp.int32)
  rgb = jnp.where((step == STEP_SAME_PART)[..., None] | (step == STEP_SYMMETRIC_PART)[..., None],
                  colour3, colour2)
  rgb = jnp.where((step == STEP_UNKNOWN)[..., None], unknown_color, rgb)
  rgb = jnp.where(fg[..., None], rgb, background_value)
  return rgb, step


def _check(src_rgb, src_face, tgt_face, tgt_part, symmetric_part):
  lead = lead_shape(src_face, 3, "src_face")
  if src_rgb.shape[:-1] != src_face.shape:
    raise ValueError(f"src_rgb {src_rgb.shape} must be src_face {src_face.shape} plus a channel axis")
  if tgt_part.shape != tgt_face.shape:
    raise ValueError(f"tgt_part {tgt_part.shape} must have the shape of tgt_face {tgt_face.shape}")
  if lead_shape(tgt_face, 3, "tgt_face") != lead:
    raise ValueError(f"src_face {src_face.shape} and tgt_face {tgt_face.shape} must share leading axes")
  if symmetric_part.ndim != 1:
    raise ValueError(f"symmetric_part must be int [P] (part -> mirrored part); got {symmetric_part.shape}")
  return lead


@functools.partial(jax.jit, static_argnames=("num_faces",))
def texture_transfer_with_steps(src_rgb, src_face, tgt_face, tgt_part, neighbours, symmetric_part, *,
                                num_faces: int | None = None, unknown_color=GTNET_UNKNOWN_COLOR,
                                background_value: float = 0.0) -> tuple[jax.Array, jax.Array]:
  """`texture_transfer` that also returns which step coloured each pixel (int32 STEP_* codes)."""
  check_neighbours(neighbours, num_faces)
  lead = _check(src_rgb, src_face, tgt_face, tgt_part, symmetric_part)
  unknown = jnp.asarray(unknown_color, jnp.float32)
  if unknown.shape != (src_rgb.shape[-1],):
    raise ValueError(f"unknown_color must have {src_rgb.shape[-1]} channels; got shape {unknown.shape}")
  fn = functools.partial(_transfer_one, neighbours=neighbours, symmetric_part=symmetric_part,
                         unknown_color=unknown, background_value=background_value)
  return map_batch(fn, (src_rgb, src_face, tgt_face, tgt_part), (4, 3, 3, 3), lead)


def texture_transfer(src_rgb, src_face, tgt_face, tgt_part, neighbours, symmetric_part, *,
                     num_faces: int | None = None, unknown_color=GTNET_UNKNOWN_COLOR,
                     background_value: float = 0.0) -> jax.Array:
  """Initial target-view estimate x̂⁰_j by GTNet's three-step texture transfer (module docstring).

  Args:
    src_rgb: float [..., T, H, W, C] input-view video (the batch contract's [-1, 1]).
    src_face: int32 [..., T, H, W] input-view face maps, -1 background.
    tgt_face: int32 [..., T', H', W'] target-view face maps, -1 background (same leading axes).
    tgt_part: int32 [..., T', H', W'] target-view body parts (0 background, 1..P-1).
    neighbours: int32 [F, n] nearest faces of every face, itself first (negative = padding).
    symmetric_part: int32 [P] part -> left/right mirrored part.
    num_faces: F (optional; checked against neighbours.shape[0]).
    unknown_color: C floats for pixels no step can colour.
    background_value: value of background target pixels.
  Returns:
    float32 [..., T', H', W', C].
  """
  return texture_transfer_with_steps(
      src_rgb, src_face, tgt_face, tgt_part, neighbours, symmetric_part, num_faces=num_faces,
      unknown_color=unknown_color, background_value=background_value)[0]
