"""The one bilinear sampler of psrjax, and torch grid_sample's coordinate conventions.

Positions are (x, y) in pixels in the batch contract's convention: pixel centres lie at integer
coordinates, so the pixel in row i, column j is read exactly at (x, y) = (j, i), and an H x W
image spans [-0.5, W - 0.5] x [-0.5, H - 0.5]. `bilinear_sample(image, positions)` returns
image(positions), interpolating the four pixel centres around each position (the bilinear kernel
of Jaderberg et al. 2015, Eq. 5, in pixel units). Padding:

- "zeros": pixels outside the image read as 0, so a position half a pixel beyond the edge reads
  half the edge pixel (torch.nn.functional.grid_sample's padding_mode="zeros");
- "border": positions are first clamped to [0, W - 1] x [0, H - 1], i.e. the edge pixels repeat
  (padding_mode="border").

grid_sample takes normalised positions in [-1, 1]; `from_normalized` / `to_normalized` convert:
- align_corners=True: -1 and 1 are the centres of the corner pixels, x = (g + 1) (W - 1) / 2;
- align_corners=False: -1 and 1 are the outer edges of the corner pixels, x = ((g + 1) W - 1) / 2.

Gradients flow to the image and to the positions; the position gradient is the one-sided
derivative of the bilinear weights (the same as grid_sample's, also at pixel centres), and zero
where "border" clamps. Positions are float32 (`float32_geometry`); the interpolation computes in
the image's floating dtype (float32 for integer images) and returns that dtype.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from psrjax.geometry._batch import lead_shape, map_batch
from psrjax.nn.policy import compute_dtype, float32_geometry

PADDING_MODES = ("zeros", "border")
# The four taps around a position, (dx, dy) from its floor; their order fixes the summation order.
_TAPS = ((0, 0), (1, 0), (0, 1), (1, 1))


def pixel_grid(height: int, width: int) -> jax.Array:
  """Pixel centres `[H, W, 2]` in (x, y) order: grid[i, j] = (j, i)."""
  ys, xs = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                        jnp.arange(width, dtype=jnp.float32), indexing="ij")
  return jnp.stack([xs, ys], axis=-1)


@float32_geometry
def from_normalized(grid, height: int, width: int, *, align_corners: bool) -> jax.Array:
  """grid_sample's normalised (x, y) in [-1, 1] `[..., 2]` -> pixel positions `[..., 2]`."""
  g = jnp.asarray(grid, jnp.float32)
  size = jnp.array([width, height], jnp.float32)
  if align_corners:
    return (g + 1.0) * 0.5 * (size - 1.0)
  return ((g + 1.0) * size - 1.0) * 0.5


@float32_geometry
def to_normalized(positions, height: int, width: int, *, align_corners: bool) -> jax.Array:
  """Pixel positions `[..., 2]` -> grid_sample's normalised (x, y) `[..., 2]` (inverse of above)."""
  p = jnp.asarray(positions, jnp.float32)
  size = jnp.array([width, height], jnp.float32)
  if align_corners:
    return p * 2.0 / (size - 1.0) - 1.0
  return (p * 2.0 + 1.0) / size - 1.0


@float32_geometry
def positions_inside(positions, height: int, width: int) -> jax.Array:
  """bool `[...]`: the position `[..., 2]` lies within the pixel centres [0, W-1] x [0, H-1]."""
  p = jnp.asarray(positions, jnp.float32)
  x, y = p[..., 0], p[..., 1]
  return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


def check_padding(padding: str) -> str:
  if padding not in PADDING_MODES:
    raise ValueError(f"padding={padding!r} is not a padding mode; use one of "
                     f"{', '.join(map(repr, PADDING_MODES))}")
  return padding


@float32_geometry
def _taps(positions: jax.Array, height: int, width: int, padding: str):
  """(flat pixel indices [..., 4] int32, weights [..., 4] float32) of the taps around positions."""
  p = positions.astype(jnp.float32)
  x, y = p[..., 0], p[..., 1]
  if padding == "border":
    x, y = jnp.clip(x, 0.0, width - 1.0), jnp.clip(y, 0.0, height - 1.0)
  x0, y0 = jnp.floor(x), jnp.floor(y)
  indices, weights = [], []
  for dx, dy in _TAPS:
    xi, yi = x0 + dx, y0 + dy
    # 1 - |x - xi| written without abs (x0 <= x < x0 + 1), whose kink at a pixel centre would
    # give a zero derivative there instead of the one-sided one.
    wx = 1.0 - (x - xi) if dx == 0 else 1.0 - (xi - x)
    wy = 1.0 - (y - yi) if dy == 0 else 1.0 - (yi - y)
    inside = (xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1)
    weights.append(jnp.where(inside, wx * wy, 0.0))
    indices.append((jnp.clip(yi, 0, height - 1) * width + jnp.clip(xi, 0, width - 1))
                   .astype(jnp.int32))
  return jnp.stack(indices, axis=-1), jnp.stack(weights, axis=-1)


def _sample_one(image: jax.Array, positions: jax.Array, padding: str) -> jax.Array:
  h, w, c = image.shape
  indices, weights = _taps(positions, h, w, padding)
  flat = image.reshape(h * w, c)
  out = 0.0
  for k in range(len(_TAPS)):
    out = out + flat[indices[..., k]] * weights[..., k, None].astype(image.dtype)
  return out


def bilinear_sample(image, positions, *, padding: str = "zeros") -> jax.Array:
  """image(positions) by bilinear interpolation.

  Args:
    image: `[..., H, W, C]`.
    positions: `[..., H', W', 2]` (x, y) pixel positions (pixel centres at integers), with the
      same leading axes as `image`.
    padding: "zeros" or "border" (see the module docstring).
  Returns:
    `[..., H', W', C]` in the image's floating dtype.
  """
  check_padding(padding)
  image = jnp.asarray(image)
  positions = jnp.asarray(positions)
  lead = lead_shape(image, 3, "image")
  if positions.ndim < 3 or positions.shape[-1] != 2 or positions.shape[:-3] != lead:
    raise ValueError(f"positions must be [..., H', W', 2] with the leading axes of image "
                     f"{image.shape}; got {positions.shape}")
  image = image.astype(compute_dtype(None, image))
  return map_batch(lambda i, p: _sample_one(i, p, padding), (image, positions), (3, 3), lead)
