"""Identities: body shape and procedurally textured clothing, skin, hair and face, from a seed.

Textures live on each primitive's (s, phi) surface grid ([P, TEX_S, TEX_PHI, 3] uint8 albedo),
so they move with the surface: the same face always shows the same colours. Patterns are laid out
in metric surface coordinates (around = phi * mean radius, along = s * profile length) so stripes
and checks have the same size on every garment piece.
"""
import dataclasses
import functools

import numpy as np

from psrjax.data.synthetic import body
from psrjax.data.synthetic import patterns as pt

TEX_S, TEX_PHI = 64, 128
SKIN_TONES = np.array([[255, 224, 196], [234, 192, 160], [198, 144, 108], [160, 110, 76],
                       [112, 72, 48], [78, 50, 34]]) / 255.0
HAIR_COLORS = np.array([[20, 16, 14], [60, 38, 24], [110, 72, 40], [190, 150, 90],
                        [150, 60, 30], [140, 140, 140]]) / 255.0
SLEEVES = ("tank", "short", "long")
LEGWEAR = ("shorts", "long")
# Head surface landmarks (s, phi) on the head primitive: phi = 0 is the front, phi > 0 the left.
HEAD_LANDMARKS = dict(nose=(0.47, 0.0), r_eye=(0.56, -0.36), l_eye=(0.56, 0.36),
                      r_ear=(0.52, -np.pi / 2), l_ear=(0.52, np.pi / 2), mouth=(0.37, 0.0))


@dataclasses.dataclass(frozen=True)
class Identity:
  """A person: shape parameters and surface textures."""
  index: int
  shape: np.ndarray     # [NUM_SHAPE] see body.SHAPE_NAMES
  textures: np.ndarray  # [P, TEX_S, TEX_PHI, 3] uint8 albedo


def _surface_coords(shape):
  """Metric coordinates (around, along) [P, TEX_S, TEX_PHI] and (s, phi) of the texel grid."""
  rest = body.rest_primitives(shape)
  s = (np.arange(TEX_S) + 0.5) / TEX_S
  phi = -np.pi + (np.arange(TEX_PHI) + 0.5) * 2 * np.pi / TEX_PHI
  ss, pp = np.meshgrid(s, phi, indexing="ij")
  r_mean = 0.5 * (rest.radii[:, 0] + rest.radii[:, 1])
  length = (np.pi + 2 * rest.h) * rest.radii[:, 2]
  return pp[None] * r_mean[:, None, None], ss[None] * length[:, None, None], ss, pp


def _garment(rng):
  kind = pt.FABRICS[rng.integers(len(pt.FABRICS))]
  colors = np.stack([pt.random_color(rng), pt.random_color(rng)])
  return kind, colors


def _paint_head(tex, ss, pp, skin, hair, hair_back):
  hairline = 0.78 + (hair_back - 0.78) * (0.5 - 0.5 * np.cos(pp))
  tex[ss > hairline] = hair
  for name in ("r_eye", "l_eye"):
    s0, p0 = HEAD_LANDMARKS[name]
    d = ((ss - s0) / 0.035) ** 2 + ((pp - p0) / 0.13) ** 2
    tex[d < 1.0] = np.array([0.95, 0.95, 0.95])
    tex[d < 0.35] = np.array([0.08, 0.06, 0.05])
    brow = ((ss - s0 - 0.07) / 0.015) ** 2 + ((pp - p0) / 0.18) ** 2 < 1.0
    tex[brow] = hair * 0.8
  s0, p0 = HEAD_LANDMARKS["mouth"]
  tex[((ss - s0) / 0.018) ** 2 + ((pp - p0) / 0.3) ** 2 < 1.0] = skin * np.array([0.75, 0.4, 0.4])
  s0, _ = HEAD_LANDMARKS["nose"]
  nose = ((ss - s0) / 0.05) ** 2 + (pp / 0.1) ** 2 < 1.0
  tex[nose] = skin * 0.85
  return tex


def _coarse_noise(rng, around, along, cell):
  """Smooth noise on every second texel, repeated: the features are several texels wide."""
  n = pt.lattice_noise(rng, around[:, ::2, ::2], along[:, ::2, ::2], cell)
  return np.repeat(np.repeat(n, 2, axis=1), 2, axis=2)


def _textures(rng, shape) -> np.ndarray:
  around, along, ss, pp = _surface_coords(shape)
  k = rng.uniform(0, len(SKIN_TONES) - 1)
  i = int(k)
  skin = SKIN_TONES[i] * (1 - (k - i)) + SKIN_TONES[min(i + 1, len(SKIN_TONES) - 1)] * (k - i)
  hair = HAIR_COLORS[rng.integers(len(HAIR_COLORS))] * rng.uniform(0.8, 1.2)
  hair_back = rng.choice([0.45, 0.3, 0.12, 1.01], p=[0.45, 0.25, 0.2, 0.1])
  sleeves = SLEEVES[rng.integers(len(SLEEVES))]
  legs = LEGWEAR[rng.integers(len(LEGWEAR))]
  shirt, pants = _garment(rng), _garment(rng)
  shoe = pt.random_color(rng, (0.0, 0.6), (0.05, 0.9))
  logo = (pt.SHAPES[rng.integers(len(pt.SHAPES))], pt.random_color(rng), rng.uniform(0.04, 0.07),
          rng.random() < 0.6)
  sole = rng.uniform(0.2, 1.0)
  shift = 3.7 * np.arange(body.NUM_PRIMITIVES)[:, None, None]  # decorrelate noise between pieces
  tex = skin * (0.94 + 0.12 * _coarse_noise(rng, around, along + shift, 0.05))[..., None]
  weave = (0.9 + 0.2 * _coarse_noise(rng, around, along + shift, 0.04))[..., None]
  cloth = {}
  for name, (kind, colors) in (("shirt", shirt), ("pants", pants)):
    mix = pt.fabric(rng, kind, around, along)[..., None]
    cloth[name] = (colors[0] * (1 - mix) + colors[1] * mix) * weave
  for p, prim in enumerate(body.PRIMITIVES):
    garment = {"shirt": "shirt", "sleeve": "shirt", "pants": "pants", "legwear": "pants"}.get(prim.garment)
    if garment is not None:
      covered = _coverage(prim, ss, sleeves, legs)
      tex[p] = np.where(covered[..., None], cloth[garment][p], tex[p])
    if prim.name == "chest" and logo[3]:
      m = pt.shape_mask(logo[0], around[p], along[p] - 0.62 * along[p].max(), logo[2]) > 0
      tex[p][m] = logo[1]
    if prim.garment == "shoe":
      tex[p] = shoe * (0.9 + 0.1 * pt.stripes(along[p], 0.03))[..., None]
      tex[p][np.cos(pp) < -0.5] = np.array([0.9, 0.9, 0.88]) * sole
    if prim.garment == "head":
      tex[p] = _paint_head(tex[p], ss, pp, skin, hair, hair_back)
  return (np.clip(tex, 0, 1) * 255 + 0.5).astype(np.uint8)


def _coverage(prim, ss, sleeves, legs):
  if prim.garment == "shirt" and prim.name.endswith("upper_arm"):
    return ss < {"tank": 0.0, "short": 0.55, "long": 1.1}[sleeves]
  if prim.garment == "sleeve":
    return ss < (0.9 if sleeves == "long" else -1.0)
  if prim.garment == "pants" and prim.name.endswith("thigh"):
    return ss < (0.6 if legs == "shorts" else 1.1)
  if prim.garment == "legwear":
    return ss < (0.97 if legs == "long" else -1.0)
  return np.ones_like(ss, bool)


def sample_shape(rng: np.random.Generator) -> np.ndarray:
  lo, hi = body.SHAPE_RANGES[:, 0], body.SHAPE_RANGES[:, 1]
  return lo + (hi - lo) * rng.random(body.NUM_SHAPE)


@functools.lru_cache(maxsize=128)
def make_identity(index: int) -> Identity:
  """The person with this identity index (deterministic; textures cached per process)."""
  rng = np.random.default_rng([0x1D, int(index)])
  shape = sample_shape(rng)
  tex = _textures(rng, shape)
  tex.flags.writeable = False
  return Identity(int(index), shape, tex)
