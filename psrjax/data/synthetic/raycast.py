"""Analytic ray casting of scaled capsules with a z-buffer, vectorised over views and frames.

A camera ray through pixel centre (x, y) (x = column, y = row) is `X(t) = C + t d` with
`d = R^T K^-1 [x, y, 1]`, so the ray parameter t *is* the camera-space depth z. A capsule maps
to the unit capsule (radius 1, axis segment z in [-h, h]) by the affine map `q = A (X - c)`,
`A = diag(1/r) R_p^T`; affine maps preserve the ray parameter, so entries found in unit space
are depths in the world. The entry of a ray into the capsule (a union of a finite cylinder and
two balls) is the smallest of the three entries; a cylinder entry beyond the segment is
replaced by the ball entries, which come first.
"""
import numpy as np


def pixel_rays(K: np.ndarray, R: np.ndarray, t: np.ndarray, height: int, width: int):
  """Camera centres [V, 3] and world ray directions [V, H*W, 3] (camera-z component 1)."""
  ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
  pix = np.stack([xs.ravel(), ys.ravel(), np.ones(height * width)], axis=-1)
  cam = np.einsum("vij,nj->vni", np.linalg.inv(K), pix)
  dirs = np.einsum("vji,vnj->vni", R, cam)  # R^T d_cam
  centres = -np.einsum("vji,vj->vi", R, t)
  return centres, dirs


def capsule_entry(o: np.ndarray, d: np.ndarray, h) -> np.ndarray:
  """Ray parameter of the first intersection with the unit capsule of half-length h (inf: miss).

  o, d: [..., 3] unit-space ray origins and directions (broadcastable).
  """
  ox, oy, oz = o[..., 0], o[..., 1], o[..., 2]
  dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
  a = dx * dx + dy * dy
  b = ox * dx + oy * dy
  c = ox * ox + oy * oy - 1.0
  with np.errstate(invalid="ignore", divide="ignore"):
    disc = b * b - a * c
    t_cyl = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    z = oz + t_cyl * dz
    best = np.where((disc >= 0.0) & (a > 1e-12) & (np.abs(z) <= h), t_cyl, np.inf)
    dd = a + dz * dz
    for sign in (1.0, -1.0):
      oz_s = oz - sign * h
      b_s = b + oz_s * dz
      disc_s = b_s * b_s - dd * (c + oz_s * oz_s)
      t_s = (-b_s - np.sqrt(np.maximum(disc_s, 0.0))) / dd
      best = np.minimum(best, np.where(disc_s >= 0.0, t_s, np.inf))
  return np.where(best > 0.0, best, np.inf)


def unit_space(prim_rot: np.ndarray, radii: np.ndarray) -> np.ndarray:
  """A = diag(1/r) R_p^T for primitives [..., P, 3, 3] with radii [P, 3]."""
  return np.swapaxes(prim_rot, -1, -2) / radii[:, :, None]


def _boxes(prim_rot, prim_center, radii, h, K, R, t, height, width):
  """Integer pixel bounding boxes [V, T, P, 4] (x_lo, x_hi, y_lo, y_hi) of every primitive."""
  corners = np.stack(np.meshgrid([-1, 1], [-1, 1], [-1, 1], indexing="ij"), -1).reshape(8, 3)
  local = corners[None, :, :] * np.stack([np.ones_like(h), np.ones_like(h), h + 1.0], -1)[:, None]
  local = local * radii[:, None, :]                                         # [P, 8, 3]
  world = prim_center[:, :, None, :] + np.einsum("tpij,pkj->tpki", prim_rot, local)
  cam = np.einsum("vij,tpkj->vtpki", R, world) + t[:, None, None, None, :]
  z = cam[..., 2]
  behind = np.any(z < 1e-3, axis=-1)
  pix = np.einsum("vij,vtpkj->vtpki", K, cam)
  with np.errstate(invalid="ignore", divide="ignore"):
    xy = pix[..., :2] / np.maximum(z, 1e-3)[..., None]
  lo = np.ceil(np.min(xy, axis=-2))
  hi = np.floor(np.max(xy, axis=-2))
  lo = np.where(behind[..., None], 0, lo)
  hi = np.where(behind[..., None], [width - 1, height - 1], hi)
  lo = np.clip(lo, 0, [width, height]).astype(np.int64)
  hi = np.clip(hi, -1, [width - 1, height - 1]).astype(np.int64)
  return np.stack([lo[..., 0], hi[..., 0], lo[..., 1], hi[..., 1]], axis=-1)


def zbuffer(prim_rot, prim_center, radii, h, K, R, t, height, width, centres, dirs):
  """Depth [V, T, H*W] (inf on background) and primitive id [V, T, H*W] (-1 on background).

  prim_rot [T, P, 3, 3], prim_center [T, P, 3]: posed primitives; centres, dirs from
  `pixel_rays`. Each primitive is tested only inside a window that holds its bounding box in
  every image (one window size per primitive, so all images are processed at once).
  """
  V, T, P = K.shape[0], prim_rot.shape[0], prim_rot.shape[1]
  depth = np.full((V * T, height * width), np.inf)
  pid = np.full((V * T, height * width), -1, np.int32)
  boxes = _boxes(prim_rot, prim_center, radii, h, K, R, t, height, width).reshape(V * T, P, 4)
  A = unit_space(prim_rot, radii)                                   # [T, P, 3, 3]
  view = np.repeat(np.arange(V), T)
  frame = np.tile(np.arange(T), V)
  for p in range(P):
    bx = boxes[:, p]
    ww = int(np.max(bx[:, 1] - bx[:, 0] + 1))
    hh = int(np.max(bx[:, 3] - bx[:, 2] + 1))
    if ww <= 0 or hh <= 0:
      continue
    x0 = np.clip(bx[:, 0], 0, width - ww)
    y0 = np.clip(bx[:, 2], 0, height - hh)
    idx = ((y0[:, None, None] + np.arange(hh)[None, :, None]) * width
           + x0[:, None, None] + np.arange(ww)[None, None, :]).reshape(V * T, hh * ww)
    a = A[frame, p]                                                 # [N, 3, 3]
    o = np.einsum("nij,nj->ni", a, centres[view] - prim_center[frame, p])
    d = dirs[view[:, None], idx] @ np.swapaxes(a, -1, -2)           # [N, M, 3]
    hit = capsule_entry(o[:, None, :], d, h[p])
    old = np.take_along_axis(depth, idx, axis=1)
    closer = hit < old
    np.put_along_axis(depth, idx, np.where(closer, hit, old), axis=1)
    old_id = np.take_along_axis(pid, idx, axis=1)
    np.put_along_axis(pid, idx, np.where(closer, p, old_id).astype(np.int32), axis=1)
  return depth.reshape(V, T, -1), pid.reshape(V, T, -1)
