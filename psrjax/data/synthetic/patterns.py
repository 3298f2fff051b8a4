"""Procedural 2D patterns and colours used by clothing and room textures (numpy, seeded)."""
import colorsys

import numpy as np


def hsv(h: float, s: float, v: float) -> np.ndarray:
  return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v))


def random_color(rng: np.random.Generator, sat=(0.2, 0.9), val=(0.25, 0.95)) -> np.ndarray:
  return hsv(rng.random(), rng.uniform(*sat), rng.uniform(*val))


def lattice_noise(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, cell: float,
                  octaves: int = 3, size: int = 64) -> np.ndarray:
  """Smooth value noise in [0, 1] at coordinates (u, v) (metres), feature size `cell`."""
  grids = rng.random((octaves, size * size)).astype(np.float32)
  u, v = np.broadcast_arrays(np.asarray(u, np.float32), np.asarray(v, np.float32))
  out = np.zeros(u.shape, np.float32)
  norm = 0.0
  for o in range(octaves):
    x, y = u * (2 ** o / cell), v * (2 ** o / cell)
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    i0, j0 = x0.astype(np.int64) % size, y0.astype(np.int64) % size
    i1, j1 = (i0 + 1) % size, (j0 + 1) % size
    g = grids[o]
    top = np.take(g, i0 * size + j0) * (1 - fx) + np.take(g, i1 * size + j0) * fx
    bottom = np.take(g, i0 * size + j1) * (1 - fx) + np.take(g, i1 * size + j1) * fx
    out += (top * (1 - fy) + bottom * fy) * 0.5 ** o
    norm += 0.5 ** o
  return out / norm


def stripes(c: np.ndarray, width: float) -> np.ndarray:
  return (np.floor(c / width) % 2).astype(np.float64)


def checks(u: np.ndarray, v: np.ndarray, width: float) -> np.ndarray:
  return ((np.floor(u / width) + np.floor(v / width)) % 2).astype(np.float64)


def dots(u: np.ndarray, v: np.ndarray, spacing: float, radius: float) -> np.ndarray:
  du = u - spacing * np.round(u / spacing)
  dv = v - spacing * np.round(v / spacing)
  return (du * du + dv * dv < radius * radius).astype(np.float64)


SHAPES = ("circle", "square", "triangle", "diamond", "ring", "cross")


def shape_mask(kind: str, du: np.ndarray, dv: np.ndarray, size: float) -> np.ndarray:
  """1 inside a logo shape centred at the origin (du across, dv up), half-extent `size`."""
  x, y = du / size, dv / size
  if kind == "circle":
    m = x * x + y * y < 1
  elif kind == "square":
    m = (np.abs(x) < 0.85) & (np.abs(y) < 0.85)
  elif kind == "triangle":
    m = (y > -0.8) & (y < 1.0 - 2.0 * np.abs(x))
  elif kind == "diamond":
    m = np.abs(x) + np.abs(y) < 1
  elif kind == "ring":
    r2 = x * x + y * y
    m = (r2 < 1) & (r2 > 0.36)
  elif kind == "cross":
    m = ((np.abs(x) < 0.3) & (np.abs(y) < 1)) | ((np.abs(y) < 0.3) & (np.abs(x) < 1))
  else:
    raise ValueError(f"unknown shape {kind!r}; allowed: {', '.join(SHAPES)}")
  return m.astype(np.float64)


FABRICS = ("solid", "hstripes", "vstripes", "checks", "dots", "noise")


def fabric(rng: np.random.Generator, kind: str, around: np.ndarray, along: np.ndarray) -> np.ndarray:
  """Mix factor in [0, 1] between a garment's two colours at surface coordinates (metres)."""
  width = rng.uniform(0.025, 0.07)
  if kind == "solid":
    return np.zeros(np.broadcast(around, along).shape)
  if kind == "hstripes":
    return stripes(along + 0 * around, width)
  if kind == "vstripes":
    return stripes(around + 0 * along, width)
  if kind == "checks":
    return checks(around, along, width)
  if kind == "dots":
    return dots(around, along, 2.2 * width, 0.6 * width)
  if kind == "noise":
    return (lattice_noise(rng, around, along, rng.uniform(0.08, 0.2)) > 0.5).astype(np.float64)
  raise ValueError(f"unknown fabric {kind!r}; allowed: {', '.join(FABRICS)}")
