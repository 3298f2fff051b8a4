"""The static background: a box-shaped room (floor, four walls, ceiling) with procedural textures.

Each camera sees the inside of the box; a pixel's ray leaves the box through exactly one plane
(the nearest positive plane hit). Textures are functions of metric coordinates on that plane so
the room is consistent across views.
"""
import dataclasses

import numpy as np

from psrjax.data.synthetic import patterns as pt

FLOORS = ("tiles", "planks", "carpet", "concrete")
WALLS = ("paint", "stripes", "panel", "bricks")


@dataclasses.dataclass(frozen=True)
class Room:
  """Room geometry, texture parameters and the light direction (also used for the body)."""
  lo: np.ndarray       # [3] min corner (floor at z = 0)
  hi: np.ndarray       # [3] max corner
  seed: int            # seed of the texture noise
  floor: str           # one of FLOORS
  walls: tuple         # 4 wall styles (x-, x+, y-, y+), each one of WALLS
  colors: np.ndarray   # [8, 3] palette: floor a/b, walls 4, trim, ceiling
  light: np.ndarray    # [3] unit direction towards the light


def sample_room(rng: np.random.Generator) -> Room:
  half = rng.uniform(4.5, 7.0, 2)
  shift = rng.uniform(-0.8, 0.8, 2)
  lo = np.array([shift[0] - half[0], shift[1] - half[1], 0.0])
  hi = np.array([shift[0] + half[0], shift[1] + half[1], rng.uniform(2.7, 3.5)])
  colors = np.stack([pt.random_color(rng, (0.05, 0.6), (0.2, 0.75)) for _ in range(2)]
                    + [pt.random_color(rng, (0.05, 0.55), (0.45, 0.95)) for _ in range(4)]
                    + [pt.random_color(rng, (0.0, 0.4), (0.1, 0.9)), pt.hsv(0, 0, rng.uniform(0.8, 1))])
  az, el = rng.uniform(0, 2 * np.pi), rng.uniform(np.deg2rad(35), np.deg2rad(70))
  light = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
  return Room(lo, hi, int(rng.integers(2**31)), FLOORS[rng.integers(len(FLOORS))],
              tuple(WALLS[i] for i in rng.integers(len(WALLS), size=4)), colors, light)


def _floor(room, rng, x, y):
  a, b = room.colors[0], room.colors[1]
  grain = pt.lattice_noise(rng, x, y, 0.3)
  if room.floor == "tiles":
    w = 0.3 + 0.4 * rng.random()
    m = pt.checks(x, y, w)
    grout = (np.abs(x / w - np.round(x / w)) < 0.03) | (np.abs(y / w - np.round(y / w)) < 0.03)
    col = a * (1 - m[:, None]) + b * m[:, None]
    col = np.where(grout[:, None], 0.85 * col + 0.15, col)
  elif room.floor == "planks":
    w = rng.uniform(0.12, 0.25)
    idx = np.floor(y / w)
    tone = 0.8 + 0.4 * ((idx * 0.6180339) % 1.0)
    col = a * tone[:, None] * (0.85 + 0.3 * pt.lattice_noise(rng, x * 0.2, y * 4, 0.5))[:, None]
    col = np.where((np.abs(y / w - np.round(y / w)) < 0.04)[:, None], 0.6 * col, col)
  elif room.floor == "carpet":
    col = a * (0.7 + 0.6 * grain)[:, None]
  else:
    col = (0.5 * a + 0.5 * 0.6) * (0.8 + 0.4 * grain)[:, None]
  return col


def _wall(room, rng, k, along, z):
  base = room.colors[2 + k]
  style = room.walls[k]
  col = np.broadcast_to(base, along.shape + (3,)) * (0.92 + 0.16 * pt.lattice_noise(rng, along, z, 0.8))[:, None]
  if style == "stripes":
    w = rng.uniform(0.08, 0.3)
    col = col * (0.85 + 0.15 * pt.stripes(along, w))[:, None]
  elif style == "panel":
    lower = z < rng.uniform(0.8, 1.2)
    col = np.where(lower[:, None], room.colors[6] * 0.7 + 0.2, col)
  elif style == "bricks":
    bh, bw = 0.075, 0.22
    row = np.floor(z / bh)
    off = np.where(row % 2 == 0, 0.0, bw / 2)
    mortar = (np.abs(z / bh - np.round(z / bh)) < 0.08) | (np.abs((along + off) / bw - np.round((along + off) / bw)) < 0.03)
    col = np.where(mortar[:, None], 0.8 * col + 0.15, col)
  # posters / windows: one or two rectangles per wall at eye level
  for _ in range(rng.integers(0, 3)):
    c0, z0 = rng.uniform(-3, 3), rng.uniform(1.0, 1.8)
    hw, hh = rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.5)
    inside = (np.abs(along - c0) < hw) & (np.abs(z - z0) < hh)
    pc = pt.random_color(rng)
    pat = pt.fabric(rng, pt.FABRICS[rng.integers(len(pt.FABRICS))], along, z)
    poster = pc * (0.6 + 0.4 * pat)[:, None]
    col = np.where(inside[:, None], poster, col)
  base_board = z < 0.1
  return np.where(base_board[:, None], room.colors[6] * 0.5, col)


def _exits(room: Room, centres: np.ndarray, dirs: np.ndarray):
  """Where each ray leaves the box: (axis [V, N] of the plane, ray parameter [V, N], whether the
  ray runs towards that axis' max plane [V, N])."""
  with np.errstate(divide="ignore", invalid="ignore"):
    t_lo = (room.lo[None, None] - centres[:, None]) / dirs
    t_hi = (room.hi[None, None] - centres[:, None]) / dirs
  t_exit = np.where(dirs > 0, t_hi, t_lo)
  t_exit = np.where(np.isfinite(t_exit) & (t_exit > 0), t_exit, np.inf)
  axis = np.argmin(t_exit, axis=-1)
  positive = np.take_along_axis(dirs, axis[..., None], -1)[..., 0] > 0
  return axis, np.min(t_exit, axis=-1), positive


def room_depth(room: Room, centres: np.ndarray, dirs: np.ndarray) -> np.ndarray:
  """float32 [V, N] depth of the room's surface along rays (centres [V, 3], dirs [V, N, 3]): the
  ray parameter, which is the camera-space z for `raycast.pixel_rays`' rays."""
  return _exits(room, centres, dirs)[1].astype(np.float32)


def render_room(room: Room, centres: np.ndarray, dirs: np.ndarray) -> np.ndarray:
  """uint8 background [V, N, 3] for rays (centres [V, 3], dirs [V, N, 3])."""
  rng = np.random.default_rng(room.seed)
  out = np.zeros(dirs.shape, np.float64)
  axis, tt, positive = _exits(room, centres, dirs)
  pts = centres[:, None] + tt[..., None] * dirs
  normals = np.zeros_like(dirs)
  np.put_along_axis(normals, axis[..., None], np.where(positive, -1.0, 1.0)[..., None], -1)
  sel = (axis == 2) & ~positive
  out[sel] = _floor(room, rng, pts[sel][:, 0], pts[sel][:, 1])
  for k, (ax, pos) in enumerate(((0, False), (0, True), (1, False), (1, True))):
    sel = (axis == ax) & (positive == pos)
    along = pts[sel][:, 1 - ax]
    out[sel] = _wall(room, rng, k, along, pts[sel][:, 2])
  sel = (axis == 2) & positive
  out[sel] = room.colors[7]
  shade = 0.6 + 0.4 * np.clip(normals @ room.light, 0.0, 1.0)
  return np.clip(out * shade[..., None] * 255.0 + 0.5, 0, 255).astype(np.uint8)
