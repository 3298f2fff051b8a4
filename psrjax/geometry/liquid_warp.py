"""Liquid Warping GAN's body conditions from face / UV maps: the transform T and UV-segment maps.

`psrjax.models.lwgan` takes, per example, a transform T `[H, W, 2]` and two 3-channel
"UV-segment" maps. In the authors' code (svip-lab/impersonator at b041dd4, utils/nmr.py
`SMPLRenderer`, utils/mesh.py) both come from an SMPL mesh rendered with a neural mesh renderer:

- T (`cal_bc_transform`): for a target pixel on mesh face f with barycentric weights w (the
  rasteriser's weight map), T = sum_k w_k P_k, P_k the source frame's projections of f's three
  vertices in grid_sample's normalised (x, y) (y down, -1 / 1 the corner pixels' centres): the
  source-image position of the same surface point. Every other pixel (background) holds -2 on
  both coordinates, a position far outside the image, so grid_sample's zero padding reads 0.
  With `--only_vis` (the imitator, `get_vis_f2pts`) every face absent from the source's face
  index map gets vertices at -2, so its target pixels read (-2, -2) too; the trainer
  (models/impersonator_trainer.py `forward`) does not filter, and target points hidden in the
  source read whatever covers them there.
- UV-segment map ("uv_seg", `create_mapping`): a constant code per face, (u, 1 - v, 0) of the
  face's UV-atlas vertices combined by `compute_barycenter` (v2 + (v0 - v2) / 2 + (v1 - v2) / 2,
  which is the midpoint of the first two vertices, not the centroid), u and 1 - v in [0, 1] in
  SMPL's single texture atlas (so the code tells the body part as well as the position in it);
  (0, 0, 1) on the background. The last channel is thus the background mask the networks' masks
  are eroded from.

What psrjax's maps hold. The synthetic world (`psrjax.data.synthetic`) renders per pixel the
`face` (an (axial x angular) cell of one capsule primitive's (s, phi) surface parameterisation,
-1 off the body), the `part` (1..24, DensePose's) and `uv` float32 in [0, 1]: DensePose-style
coordinates *within the part*, u across it (linear in the angle phi), v along it (linear in the
axial arc length s), evaluated exactly at the pixel centre's surface point (not a per-face
constant, not a global atlas). A part is one half (front / back or right / left) of one or more
primitives; within one (primitive, part) pair -- a "chart", e.g. the front of the right thigh --
(u, v) is a smooth one-to-one parameterisation of the surface (but for the seam of the hands'
and feet's single-part charts and the capsules' poles), and (face, u, v) identifies the surface
point exactly. The renderer computes each pixel's local surface point internally but
exposes no barycentric coordinates or canonical 3D points per pixel; its exact cross-frame
correspondence is only the flow between consecutive frames of one camera (`flow_fwd`,
`flow_bwd`), which the tests use as ground truth by rendering a two-frame motion (source,
target).

`correspondence` / `transform` therefore match surface points through the maps: for a target
pixel whose face the source frame shows, the source pixels of the same chart (`face_group`)
nearest in (u, v) (`neighbours` of them, inverse-distance weighted) give a weighted
least-squares affine map (u, v) -> source pixel position, read at the target pixel's (u, v). Maps
sampled at pixel centres make every fitted sample exact, so the error is the map's curvature
across a few pixels. Where the neighbours are (nearly) collinear in (u, v) -- a limb seen
edge-on shows a chart as a one-pixel strip -- the affine map is read at the target's (u, v)
clamped to the neighbours' extent along each principal axis widened by `margin` times that
extent, and an axis without extent keeps the weighted mean, so the fit never extrapolates far.
Without `face_group` every face is its own chart (at 64 px most faces cover one pixel, so that
is close to the centroid correspondence of benchmarks/fomm_diagnosis.py).

Accuracy (synthetic world, `face_group` = (primitive, part), 8 neighbours, margin 1; six
two-frame motions of six identities and actions, 0.3 to 0.8 s apart, camera yaws -40..60 deg;
the target pixels whose face the source shows, against the renderer's exact `flow_bwd`): the
error of T in source pixels, mean / median / 95th percentile / max, is 0.018 / 0.001 / 0.09 /
0.30 at 32 px, 0.030 / 0.010 / 0.12 / 0.95 at 64 px, 0.039 / 0.011 / 0.16 / 2.2 at 128 px and
0.044 / 0.007 / 0.19 / 3.0 at 256 px. 4 % of those pixels at 256 px are points the source hides
(its pixel at their true position shows another chart): 0.33 mean there. The largest errors are
at chart edges the source sees edge-on (u near 0 or 1 on a limb's silhouette), where the samples
lie along one line. Without `face_group` (each face alone) the error is 0.26 / 0.18 / 0.77 /
1.35 at 64 px. Warping the source frame by T (`psrjax.models.lwgan.liquid_warp`, images in
[-1, 1]) gives a mean absolute RGB error on those pixels at 64 px of 0.074, as the exact T's
0.074, against 0.22 for the identity warp (what remains is the world's shading, which changes
with the pose). About 0.06 s per 256 x 256 pair on one CPU core.

Departures from the authors' definitions:
- visibility is per face as with `--only_vis` (a face counts as shown when any source pixel
  shows it). The trainer's T, which gives every target body pixel its source projection even
  for faces the source does not show (they read whatever covers them), needs the source's 3D
  body, which maps do not give. A point of a shown face hidden in the source (the face partly
  occluded) reads the occluder, as in both of the authors' paths.
- T is fitted from the maps, not interpolated from projected mesh vertices (accuracy above).
- the UV-segment code is (U, V, 0) with (U, V) the normalised position in psrjax's part-texture
  atlas image (`psrjax.geometry.uv_texture.atlas`, the D2G-Net authors' DensePose layout: 4
  columns x 6 rows of tiles, part p = 6 i + j + 1 at column i, row j, each tile flipped
  vertically), U = (i + u) / 4, V = (j + 1 - v) / 6, as the authors' (u, 1 - v) is the position
  in SMPL's atlas image; taken per pixel (continuous within a face) unless a per-face `face_uv`
  table is given (then constant per face, as theirs, e.g. each face's uv centre). Range
  [0, 1] x [0, 1] x {0}; (0, 0, 1) off the body, as theirs.

Everything here is numpy on the host (the data pipeline, like `uv_texture.unwrap`); T and the
maps are float32.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

OUT_OF_RANGE = -2.0                   # T's value where the source does not show the point
BACKGROUND_CODE = (0.0, 0.0, 1.0)     # the UV-segment map off the body
ATLAS_COLUMNS, ATLAS_ROWS = 4, 6      # the part-texture atlas (`uv_texture.atlas`)
NUM_PARTS = ATLAS_COLUMNS * ATLAS_ROWS

_GROUP_SPACING = 4.0                  # key offset between charts: > any (u, v) distance (sqrt 2)
_DEGENERATE = 1e-6                    # a principal axis with less (u, v) extent is dropped
_DEGENERATE_RELATIVE = 1e-4           # ... or with less than this times the other axis's extent


def atlas_uv(part, uv) -> np.ndarray:
  """float32 [..., 2]: part-chart (u, v) in [0, 1] of part 1..24 -> (U, V) in [0, 1], the
  normalised (x, y) in `psrjax.geometry.uv_texture.atlas`'s image (module docstring)."""
  part = np.asarray(part)
  uv = np.asarray(uv, np.float32)
  if uv.shape != part.shape + (2,):
    raise ValueError(f"uv must be part's shape plus (2,); got part {part.shape}, uv {uv.shape}")
  if part.size and (part.min() < 1 or part.max() > NUM_PARTS):
    raise ValueError(f"parts must be in 1..{NUM_PARTS}; got {part.min()}..{part.max()}")
  tile = part.astype(np.int64) - 1
  uv = np.clip(uv, 0.0, 1.0)
  return np.stack([(tile // ATLAS_ROWS + uv[..., 0]) / ATLAS_COLUMNS,
                   (tile % ATLAS_ROWS + 1.0 - uv[..., 1]) / ATLAS_ROWS], axis=-1).astype(np.float32)


def uv_segment_map(face, uv, part, *, face_uv=None) -> np.ndarray:
  """The "uv_seg" condition: float32 [..., H, W, 3], (U, V, 0) on the body (`atlas_uv` of the
  pixel's part and uv) and (0, 0, 1) where face < 0.

  face int [..., H, W] (-1 off the body); uv float [..., H, W, 2] part-chart coordinates in
  [0, 1] (may be None when face_uv is given); part int [..., H, W] (1..24 on the body).
  face_uv: optional float [F, 2], one (u, v) per face (e.g. its cell's centre): every pixel then
  takes its face's code, the authors' per-face constant, instead of its own uv.
  """
  face = np.asarray(face)
  part = np.asarray(part)
  if part.shape != face.shape:
    raise ValueError(f"part {part.shape} must have face's shape {face.shape}")
  on = face >= 0
  if face_uv is not None:
    face_uv = np.asarray(face_uv, np.float32)
    if face_uv.ndim != 2 or face_uv.shape[1] != 2 or (on.any() and face.max() >= len(face_uv)):
      raise ValueError(f"face_uv must be [F, 2] covering every face id; got {face_uv.shape} for "
                       f"faces up to {face.max()}")
    uv = face_uv[np.where(on, face, 0)]
  elif uv is None:
    raise ValueError("uv_segment_map needs uv or face_uv")
  uv = np.asarray(uv, np.float32)
  if uv.shape != face.shape + (2,):
    raise ValueError(f"uv must be face's shape plus (2,); got face {face.shape}, uv {uv.shape}")
  code = np.zeros(face.shape + (3,), np.float32)
  code[on, :2] = atlas_uv(part[on], uv[on])
  code[~on] = BACKGROUND_CODE
  return code


# ------------------------------------------------------------------------------- transform
def _check_maps(face, uv, name):
  face = np.asarray(face)
  uv = np.asarray(uv)
  if face.ndim < 2 or uv.shape != face.shape + (2,):
    raise ValueError(f"{name}_face must be int [..., H, W] and {name}_uv [..., H, W, 2]; got "
                     f"{face.shape} and {uv.shape}")
  if not np.issubdtype(face.dtype, np.integer):
    raise ValueError(f"{name}_face must be an integer array; got dtype {face.dtype}")
  return face, uv


def _fit(key_src, pos_src, uv_q, key_q, neighbours, margin):
  """Source pixel positions [Q, 2] of queries (u, v) by local weighted affine fits (docstring)."""
  k = min(neighbours, len(key_src))
  dist, idx = cKDTree(key_src).query(key_q, k=k)
  dist, idx = dist.reshape(len(key_q), k), idx.reshape(len(key_q), k)
  ok = dist < 0.5 * _GROUP_SPACING                       # same chart (the first always is)
  reach = np.maximum(np.where(ok, dist, 0.0).max(axis=1, keepdims=True), 1e-12)
  w = np.where(ok, 1.0 / (dist / reach + 0.1) ** 2, 0.0)  # [Q, k]
  w /= w.sum(axis=1, keepdims=True)
  du = key_src[idx, :2] - uv_q[:, None]                  # (u, v) offsets from the query
  mean = np.einsum("qk,qki->qi", w, du)
  cen = du - mean[:, None]
  _, axes = np.linalg.eigh(np.einsum("qk,qki,qkj->qij", w, cen, cen))
  z = np.einsum("qki,qij->qkj", cen, axes)               # principal coordinates
  lo = np.where(ok[..., None], z, np.inf).min(axis=1)
  hi = np.where(ok[..., None], z, -np.inf).max(axis=1)
  extent = hi - lo                                       # [Q, 2]
  keep = (extent > _DEGENERATE) & (extent > _DEGENERATE_RELATIVE * extent.max(axis=1,
                                                                               keepdims=True))
  scale = np.where(keep, extent, 1.0)
  zn = np.where(keep[:, None], z / scale[:, None], 0.0)  # degenerate axes: constant model
  design = np.concatenate([np.ones_like(zn[..., :1]), zn], axis=-1)        # [Q, k, 3]
  normal = np.einsum("qk,qki,qkj->qij", w, design, design)
  rhs = np.einsum("qk,qki,qkj->qij", w, design, pos_src[idx])            # [Q, 3, 2]
  coef = np.linalg.pinv(normal, rcond=1e-10, hermitian=True) @ rhs
  query = np.einsum("qi,qij->qj", -mean, axes) / scale   # the query (du = 0), principal coords
  query = np.clip(query, lo / scale - margin, hi / scale + margin)
  query = np.where(keep, query, 0.0)
  return coef[:, 0] + np.einsum("qi,qij->qj", query, coef[:, 1:])


def _correspond_one(src_face, src_uv, tgt_face, tgt_uv, group, neighbours, margin):
  src_on = src_face >= 0
  num = int(max(src_face.max(initial=-1), tgt_face.max(initial=-1))) + 1
  seen = np.bincount(src_face[src_on], minlength=num) > 0
  visible = (tgt_face >= 0) & seen[np.maximum(tgt_face, 0)]
  positions = np.zeros(tgt_face.shape + (2,), np.float32)
  if not visible.any():
    return positions, visible
  chart = (lambda f: f) if group is None else (lambda f: group[f])
  key = lambda face, uv: np.concatenate(
      [uv.astype(np.float64), _GROUP_SPACING * chart(face).astype(np.float64)[:, None]], axis=1)
  ys, xs = np.nonzero(src_on)
  pos_src = np.stack([xs, ys], axis=-1).astype(np.float64)
  uv_q = tgt_uv[visible].astype(np.float64)
  positions[visible] = _fit(key(src_face[src_on], src_uv[src_on]), pos_src, uv_q,
                            key(tgt_face[visible], tgt_uv[visible]), neighbours, margin)
  return positions, visible


def correspondence(src_face, src_uv, tgt_face, tgt_uv, *, face_group=None, neighbours: int = 8,
                   margin: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
  """For every target pixel, the source-frame pixel position of the same surface point.

  src_face int [..., Hs, Ws], src_uv float [..., Hs, Ws, 2]: the source frame's face and
  part-chart uv maps; tgt_face, tgt_uv [..., H, W(, 2)] the target's (same leading axes).
  face_group: optional int [F]: the chart of every face (faces of one chart share one continuous
  (u, v) parameterisation); None: each face its own. For the synthetic world pass
  `FACE_PRIMITIVE * 25 + FACE_PART` (`psrjax.data.synthetic.faces`).
  neighbours: source pixels per fit; margin: extrapolation allowed beyond the neighbours' (u, v)
  extent, in units of that extent (module docstring).
  Returns (positions float32 [..., H, W, 2], (x, y) source pixels, pixel centres at integers,
  0 where not visible; visible bool [..., H, W]: on the body and its face shown by the source).
  """
  src_face, src_uv = _check_maps(src_face, src_uv, "src")
  tgt_face, tgt_uv = _check_maps(tgt_face, tgt_uv, "tgt")
  lead = src_face.shape[:-2]
  if tgt_face.shape[:-2] != lead:
    raise ValueError(f"src_face {src_face.shape} and tgt_face {tgt_face.shape} must share "
                     f"leading axes")
  if not isinstance(neighbours, (int, np.integer)) or neighbours < 1:
    raise ValueError(f"neighbours must be an int >= 1; got {neighbours!r}")
  if face_group is not None:
    face_group = np.asarray(face_group)
    top = max(src_face.max(initial=-1), tgt_face.max(initial=-1))
    if face_group.ndim != 1 or not np.issubdtype(face_group.dtype, np.integer) \
        or top >= len(face_group):
      raise ValueError(f"face_group must be int [F] covering every face id (up to {top}); got "
                       f"{face_group.dtype} {face_group.shape}")
  positions = np.zeros(tgt_face.shape + (2,), np.float32)
  visible = np.zeros(tgt_face.shape, bool)
  for i in np.ndindex(*lead):
    positions[i], visible[i] = _correspond_one(src_face[i], src_uv[i], tgt_face[i], tgt_uv[i],
                                               face_group, int(neighbours), float(margin))
  return positions, visible


def positions_to_transform(positions, visible, height: int, width: int) -> np.ndarray:
  """T float32 [..., H, W, 2]: source pixel positions (x, y) of an `height` x `width` source in
  grid_sample's corner-aligned normalised coordinates, OUT_OF_RANGE (-2) where not visible."""
  if height < 2 or width < 2:
    raise ValueError(f"the source must be at least 2 x 2 pixels; got {height} x {width}")
  size = np.array([width, height], np.float64)
  grid = np.asarray(positions, np.float64) * 2.0 / (size - 1.0) - 1.0
  return np.where(np.asarray(visible)[..., None], grid, OUT_OF_RANGE).astype(np.float32)


def transform(src_face, src_uv, tgt_face, tgt_uv, *, face_group=None, neighbours: int = 8,
              margin: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
  """Liquid Warping GAN's T from face / uv maps: (T float32 [..., H, W, 2], visible bool
  [..., H, W]).

  T holds, per target pixel, the grid_sample (x, y) (corner-aligned, the source's size) of the
  same surface point in the source frame (`correspondence`, same arguments), and (-2, -2)
  (OUT_OF_RANGE) on the background and where the source does not show the pixel's face, as the
  authors' `cal_bc_transform` with `--only_vis`. `psrjax.models.lwgan.liquid_warp(source, T)`
  moves the source image to the target pose.
  """
  positions, visible = correspondence(src_face, src_uv, tgt_face, tgt_uv, face_group=face_group,
                                      neighbours=neighbours, margin=margin)
  hs, ws = np.shape(src_face)[-2:]
  return positions_to_transform(positions, visible, hs, ws), visible
