"""Face tables of the body surface: stable face ids, parts, (u, v) and rest-pose centroids.

Each primitive's surface is cut into an (axial x angular) grid of faces in its (s, phi)
parameterisation (`body.capsule_coords`); face ids are numbered primitive by primitive, axial
row by row. Angular counts are multiples of 4 so front/back (phi = +-pi/2) and right/left
(phi = 0, pi) part boundaries fall on face boundaries: every face lies in exactly one part.
"""
import functools

import numpy as np
from scipy.spatial import cKDTree

from psrjax.data.synthetic import body

_GRIDS = np.array([p.grid for p in body.PRIMITIVES], np.int64)
FACE_OFFSET = np.concatenate([[0], np.cumsum(_GRIDS[:, 0] * _GRIDS[:, 1])]).astype(np.int64)
NUM_FACES = int(FACE_OFFSET[-1])
_N_AX = _GRIDS[:, 0]
_N_ANG = _GRIDS[:, 1]
_FRONT = np.array([p.parts[0] for p in body.PRIMITIVES], np.int32)
_SECOND = np.array([p.parts[-1] for p in body.PRIMITIVES], np.int32)
_SPLIT = np.array([{"none": 0, "fb": 1, "lr": 2}[p.split] for p in body.PRIMITIVES], np.int32)
_V0 = np.array([p.v_range[0] for p in body.PRIMITIVES])
_V1 = np.array([p.v_range[1] for p in body.PRIMITIVES])


def part_of(prim: np.ndarray, phi: np.ndarray) -> np.ndarray:
  """Part id (1..24) of surface points of primitive `prim` at angle `phi` (cell centres)."""
  split = _SPLIT[prim]
  first = np.where(split == 1, np.cos(phi) >= 0.0, np.sin(phi) < 0.0)
  return np.where((split == 0) | first, _FRONT[prim], _SECOND[prim]).astype(np.int32)


def face_index(prim: np.ndarray, s: np.ndarray, phi: np.ndarray) -> np.ndarray:
  """Face id of surface points given primitive id and (s, phi) coordinates."""
  n_ax, n_ang = _N_AX[prim], _N_ANG[prim]
  ia = np.minimum((s * n_ax).astype(np.int64), n_ax - 1)
  ip = np.floor((phi + np.pi) * (n_ang / (2 * np.pi))).astype(np.int64) % n_ang
  return (FACE_OFFSET[prim] + ia * n_ang + ip).astype(np.int32)


def _face_cells():
  prim = np.repeat(np.arange(body.NUM_PRIMITIVES), _N_AX * _N_ANG)
  local = np.arange(NUM_FACES) - FACE_OFFSET[prim]
  ia, ip = local // _N_ANG[prim], local % _N_ANG[prim]
  s = (ia + 0.5) / _N_AX[prim]
  phi = -np.pi + (ip + 0.5) * 2 * np.pi / _N_ANG[prim]
  return prim.astype(np.int32), s, phi


FACE_PRIMITIVE, _FACE_S, _FACE_PHI = _face_cells()
FACE_PART = part_of(FACE_PRIMITIVE, _FACE_PHI)


def surface_uv(prim: np.ndarray, part: np.ndarray, s: np.ndarray, phi: np.ndarray) -> np.ndarray:
  """(u, v) in [0, 1] within the part: u across the part (angle), v along it (axial)."""
  split = _SPLIT[prim]
  second = part != _FRONT[prim]
  fb_phi = np.where(second, np.angle(-np.exp(1j * phi)), phi)  # back half rotated to the front
  u_fb = (fb_phi + np.pi / 2) / np.pi
  u_lr = np.where(second, phi / np.pi, (phi + np.pi) / np.pi)
  u_one = (phi + np.pi) / (2 * np.pi)
  u = np.where(split == 1, u_fb, np.where(split == 2, u_lr, u_one))
  v = _V0[prim] + (_V1[prim] - _V0[prim]) * s
  return np.stack([np.clip(u, 0.0, 1.0), np.clip(v, 0.0, 1.0)], axis=-1).astype(np.float32)


def face_points(shape, local_rot=None, root_pos=None, xp=np):
  """Centre point of every face on a posed body ([..., F, 3]); rest T-pose by default."""
  rest = body.rest_primitives(shape, xp)
  if local_rot is None:
    local_rot, root_pos = body.rest_pose(shape)
  jrot, jpos = body.forward_kinematics(local_rot, root_pos, body.joint_offsets(shape, xp), xp)
  rot, center = body.posed_primitives(jrot, jpos, rest, xp)
  prim = FACE_PRIMITIVE
  q = body.capsule_point(xp.asarray(_FACE_S), xp.asarray(_FACE_PHI), rest.h[prim], xp)
  local = q * rest.radii[prim]
  return center[..., prim, :] + (rot[..., prim, :, :] @ local[..., None])[..., 0]


FACE_CENTROIDS = face_points(body.DEFAULT_SHAPE).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _nearest(k: int) -> np.ndarray:
  _, idx = cKDTree(FACE_CENTROIDS.astype(np.float64)).query(FACE_CENTROIDS.astype(np.float64), k=k)
  idx = np.asarray(idx, np.int32).reshape(NUM_FACES, k)
  # Ties at distance 0 cannot occur (centroids are distinct) so column 0 is the face itself.
  idx[:, 0] = np.arange(NUM_FACES, dtype=np.int32)
  idx.flags.writeable = False
  return idx


def nearest_faces(k: int) -> np.ndarray:
  """int32 [F, k]: the k faces nearest to each face by rest-pose centroid distance, itself first."""
  if not isinstance(k, (int, np.integer)) or not 1 <= k <= NUM_FACES:
    raise ValueError(f"nearest_faces: k must be an int in [1, {NUM_FACES}], got {k!r}")
  return _nearest(int(k))
