"""Part-wise UV textures: sampling a texture through per-pixel part probabilities and (u, v)
coordinates (D²G-Net's Eq. 1), compositing over a background (Eqs. 3-4), and unwrapping frames
into a texture through their part and UV maps.

A texture is N = 24 square part textures, `[N, S, S, C]` (DensePose's parts, the batch
contract's `part` 1..24: part p is texture p - 1), indexed [part, row, column] with the row
running along v and the column along u. Coordinates come in two conventions:

- the batch contract's `uv` in [0, 1] (`part`/`uv` maps of the synthetic world, DensePose);
- the UV generator's coordinates C_i in [-1, 1] (its tanh), torch grid_sample's normalised
  coordinates with align_corners=True: -1 and 1 are the centres of the first and last texel,
  as the authors' code reads them (their util.texture2image calls grid_sample on torch 1.1,
  whose default was align_corners=True; Neural-Human-Video-Rendering at ad21d8b, util/util.py
  L154-L176). `to_grid` maps the first to the second: c = 2 uv - 1.

Sampling (`sample_parts`, φ in Eq. 1) reads each part's texture bilinearly at its coordinates
with psrjax's one sampler (`psrjax.geometry.sampler`, zero padding as grid_sample's default);
`render` weighs the N samples by the part probabilities P_1..P_N (Eq. 1,
I_fg = Σ_i P_i φ(T_i, C_i)); `composite` puts a foreground over the background through P_0
(Eq. 3: I = I_fg (1 - P_0) + I_bg P_0).

Unwrapping (`unwrap`, numpy, on the host) follows the authors' unfold_texture.py (L11-L34,
L173-L181): every foreground pixel of every frame is written to the texel its (part, u, v)
lands on and the texels average the pixels they received. Departures: the texel is the
nearest one (they truncate u (S - 1)); `fill_unobserved` gives texels no pixel reached the
colour of the same texel of the part's front / back counterpart where that was seen (a video
that never shows the person's back), else of the nearest observed texel of the same part
(they stay black in theirs).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from psrjax.geometry.sampler import bilinear_sample
from psrjax.nn.policy import float32_geometry

NUM_PARTS = 24
# DensePose's front / back part pairs (1-based: torso, upper and lower legs, upper and lower arms;
# hands, feet and the head's two halves have none).
FRONT_BACK = ((1, 2), (7, 9), (8, 10), (11, 13), (12, 14), (15, 17), (16, 18), (19, 21),
              (20, 22))


def to_grid(uv):
  """Batch-contract (u, v) in [0, 1] -> grid coordinates in [-1, 1] (module docstring)."""
  return 2.0 * jnp.asarray(uv, jnp.float32) - 1.0


def _check_texture(texture) -> jax.Array:
  texture = jnp.asarray(texture)
  if texture.ndim != 4 or texture.shape[1] != texture.shape[2]:
    raise ValueError(f"a texture is [parts, S, S, C]; got shape {texture.shape}")
  return texture


@float32_geometry
def texel_positions(coords, size: int) -> jax.Array:
  """Grid coordinates [..., 2] in [-1, 1] -> texel positions (x = column, y = row) in pixels
  of an S x S part texture, align_corners=True: x = (u + 1) (S - 1) / 2."""
  return (jnp.asarray(coords, jnp.float32) + 1.0) * (0.5 * (size - 1))


def sample_parts(texture, coords) -> jax.Array:
  """φ(T_i, C_i) for every part: texture [N, S, S, C] sampled at coords [..., H, W, N, 2]
  (grid coordinates of each pixel in each part) -> [..., H, W, N, C], in the texture's dtype.

  The parts are read as one image, stacked along rows ([N S, S, C], part i's row y at i S + y),
  by one call of the shared sampler. With align_corners=True coordinates in [-1, 1] a position
  lies within its part's pixel centres [0, S - 1], so its taps never reach a neighbouring part
  with a non-zero weight: the values are those of sampling each part alone (zero padding
  included), and one gather serves every part (a gather per part, or one batched over parts,
  is ~3x slower to differentiate on the CPU)."""
  texture = _check_texture(texture)
  coords = jnp.asarray(coords)
  n, size = texture.shape[0], texture.shape[1]
  if coords.ndim < 4 or coords.shape[-2:] != (n, 2):
    raise ValueError(f"coords must be [..., H, W, {n}, 2] for a texture of {n} parts; got "
                     f"{coords.shape}")
  lead, (h, w) = coords.shape[:-4], coords.shape[-4:-2]
  stacked = texture.reshape((n * size, size, texture.shape[-1]))
  positions = _stacked_positions(coords, size).reshape((-1, w * n, 2))
  samples = bilinear_sample(stacked, positions, padding="zeros")   # [L H, W N, C]
  return samples.reshape(lead + (h, w, n, texture.shape[-1]))


@float32_geometry
def _stacked_positions(coords, size: int) -> jax.Array:
  """Texel positions of coords [..., N, 2] in the row-stacked texture, clipped to their part's
  texel centres (positions beyond them would read a neighbouring part instead of padding)."""
  pos = jnp.clip(texel_positions(coords, size), 0.0, size - 1.0)
  offset = jnp.arange(coords.shape[-2], dtype=jnp.float32) * size
  return pos + jnp.stack([jnp.zeros_like(offset), offset], axis=-1)


def render(texture, coords, probs) -> jax.Array:
  """Eq. 1: Σ_{i=1}^{N} P_i φ(T_i, C_i), [..., H, W, C], for part probabilities probs
  [..., H, W, N] (P_1..P_N; without the background's P_0)."""
  samples = sample_parts(texture, coords)
  probs = jnp.asarray(probs)
  if probs.shape != samples.shape[:-1]:
    raise ValueError(f"probs must be [..., H, W, N] matching coords {samples.shape[:-1]}; got "
                     f"{probs.shape}")
  return jnp.sum(samples * probs[..., None].astype(samples.dtype), axis=-2)


def composite(foreground, background, p0) -> jax.Array:
  """Eq. 3: foreground (1 - P_0) + background P_0 (background [H, W, C] or like foreground;
  p0 [..., H, W, 1])."""
  p0 = jnp.asarray(p0).astype(foreground.dtype)
  return foreground * (1.0 - p0) + jnp.asarray(background).astype(foreground.dtype) * p0


def label_coords(part, uv, num_parts: int = NUM_PARTS):
  """(coords [..., H, W, N, 2], probs [..., H, W, N + 1]) of ground-truth maps part [..., H, W]
  (0 background, 1..N) and uv [..., H, W, 2] in [0, 1]: one-hot probabilities and the pixel's
  coordinates in its own part (0 elsewhere), the authors' get_parts (data/aligned_dataset.py
  L12-L21)."""
  part = jnp.asarray(part, jnp.int32)
  probs = jax.nn.one_hot(part, num_parts + 1, dtype=jnp.float32)
  coords = to_grid(uv)[..., None, :] * probs[..., 1:, None]
  return coords, probs


# ----------------------------------------------------------------------------- unwrapping
def texel_index(uv: np.ndarray, size: int) -> np.ndarray:
  """int (row, column) [..., 2] of the texel nearest (u, v) [..., 2] in [0, 1]."""
  ij = np.rint(np.clip(np.asarray(uv, np.float64), 0.0, 1.0) * (size - 1)).astype(np.int64)
  return ij[..., ::-1]


def unwrap(rgb, part, uv, size: int,
           num_parts: int = NUM_PARTS) -> tuple[np.ndarray, np.ndarray]:
  """(texture float32 [N, S, S, C], count int32 [N, S, S]) of frames rgb [F, H, W, C] with maps
  part [F, H, W] (0 background) and uv [F, H, W, 2]: the mean of the pixels landing on each
  texel (module docstring), 0 where none did (count 0)."""
  rgb, part = np.asarray(rgb, np.float64), np.asarray(part, np.int64)
  if part.shape != rgb.shape[:-1] or np.shape(uv) != part.shape + (2,):
    raise ValueError(f"rgb [F, H, W, C], part [F, H, W] and uv [F, H, W, 2] must match; got "
                     f"{rgb.shape}, {part.shape}, {np.shape(uv)}")
  if size < 2:
    raise ValueError(f"texture size must be >= 2 texels; got {size}")
  fg = (part >= 1) & (part <= num_parts)
  ij = texel_index(np.asarray(uv)[fg], size)
  flat = ((part[fg] - 1) * size + ij[:, 0]) * size + ij[:, 1]
  total = num_parts * size * size
  count = np.bincount(flat, minlength=total)
  sums = np.stack([np.bincount(flat, rgb[fg][:, c], minlength=total)
                   for c in range(rgb.shape[-1])], axis=-1)
  texture = sums / np.maximum(count, 1)[:, None]
  shape = (num_parts, size, size)
  return (texture.reshape(shape + (rgb.shape[-1],)).astype(np.float32),
          count.reshape(shape).astype(np.int32))


def fill_unobserved(texture, count, *, counterparts: bool = True) -> np.ndarray:
  """The texture with every texel of count 0 given, with `counterparts` (24 parts), the value
  of the same texel of its part's front / back counterpart (FRONT_BACK) where that was
  observed, then the value of the nearest observed (or so filled) texel of its part
  (Euclidean in texels); a part with none gets the mean of all observed texels (0 when none
  was)."""
  texture = np.array(texture, np.float32)
  seen = np.asarray(count) > 0
  overall = texture[seen].mean(axis=0) if seen.any() else np.zeros(texture.shape[-1], np.float32)
  if counterparts and texture.shape[0] == NUM_PARTS:
    known = seen.copy()
    for a, b in FRONT_BACK:
      for p, q in ((a - 1, b - 1), (b - 1, a - 1)):
        take = ~seen[p] & seen[q]
        texture[p][take] = texture[q][take]
        known[p] |= take
    seen = known
  for p in range(texture.shape[0]):
    if not seen[p].any():
      texture[p] = overall
    elif not seen[p].all():
      _, (rows, cols) = ndimage.distance_transform_edt(~seen[p], return_indices=True)
      texture[p] = texture[p][rows, cols]
  return texture


def atlas(texture) -> np.ndarray:
  """The authors' 4 x 6 atlas image [6 S, 4 S, C] of a texture [24, S, S, C]: part 6 i + j at
  column i, row j, each flipped vertically (their tex_im2tensor's inverse,
  models/pix2pixHD_Avatar.py L30-L41), for viewing."""
  texture = np.asarray(texture)
  if texture.shape[0] != 24:
    raise ValueError(f"the atlas lays out 24 parts; got {texture.shape[0]}")
  size = texture.shape[1]
  out = np.zeros((6 * size, 4 * size) + texture.shape[3:], texture.dtype)
  for i in range(4):
    for j in range(6):
      out[j * size:(j + 1) * size, i * size:(i + 1) * size] = texture[6 * i + j, ::-1]
  return out
