"""Render a posed, textured body in calibrated cameras: every modality of the batch contract.

`render(shape, textures, motion, cameras)` is the explicit entry point (body parameters and
real cameras in, arrays out); `render_clip` samples all of these from a seed. Per pixel the
first surface along the camera ray is found analytically (`raycast`); its point is expressed in
the local frame of the primitive it lies on, which gives the face, part, (u, v), texture and
normal, and moving that local point with the primitive's pose at t +- 1 and projecting it gives
the exact flow: `flow_fwd[t](p) = proj_{t+1}(x) - p`, `flow_bwd[t](p) = proj_{t-1}(x) - p`.
"""
import numpy as np

from psrjax.data.synthetic import body, faces, keypoints
from psrjax.data.synthetic.cameras import Cameras
from psrjax.data.synthetic.motion import Motion, pose_body
from psrjax.data.synthetic.raycast import pixel_rays, zbuffer

DEFAULT_LIGHT = np.array([0.3, 0.6, 0.74]) / np.linalg.norm([0.3, 0.6, 0.74])
AMBIENT, DIFFUSE = 0.42, 0.62


def _surface(posed, p, ti, X):
  """Local metric point, unit-space point and (s, phi) of world points X on primitives p."""
  rot = posed.prim_rot[ti, p]
  local = np.einsum("nji,nj->ni", rot, X - posed.prim_center[ti, p])
  q = local / posed.rest.radii[p]
  s, phi = body.capsule_coords(q, posed.rest.h[p])
  return local, q, s, phi


def _shade(posed, p, ti, q, s, phi, textures, light):
  h = posed.rest.h[p]
  n = q.copy()
  n[:, 2] -= np.clip(q[:, 2], -h, h)
  n = n / posed.rest.radii[p]
  n = np.einsum("nij,nj->ni", posed.prim_rot[ti, p], n)
  n /= np.linalg.norm(n, axis=-1, keepdims=True)
  ts, tp = textures.shape[1], textures.shape[2]
  i = np.minimum((s * ts).astype(np.int64), ts - 1)
  j = np.floor((phi + np.pi) * (tp / (2 * np.pi))).astype(np.int64) % tp
  albedo = textures[p, i, j]
  shade = AMBIENT + DIFFUSE * np.clip(n @ light, 0.0, 1.0)
  return np.clip(albedo * shade[:, None] * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _flow(posed, cameras, vi, ti, p, local, xy, step):
  """Exact displacement of surface points to frame t + step (0 where that frame is missing)."""
  T = posed.prim_rot.shape[0]
  tn = ti + step
  ok = (tn >= 0) & (tn < T)
  tn = np.clip(tn, 0, T - 1)
  X = posed.prim_center[tn, p] + np.einsum("nij,nj->ni", posed.prim_rot[tn, p], local)
  cam = np.einsum("nij,nj->ni", cameras.R[vi], X) + cameras.t[vi]
  pix = np.einsum("nij,nj->ni", cameras.K[vi], cam)
  flow = pix[:, :2] / pix[:, 2:3] - xy
  return np.where(ok[:, None], flow, 0.0).astype(np.float32)


def render(shape, textures, motion: Motion, cameras: Cameras, *, background=None, light=None) -> dict:
  """Render T frames of a body in V cameras.

  shape [NUM_SHAPE] body parameters, textures [P, S, PHI, 3] albedo in [0, 1], motion with T
  frames, cameras with image size (H, W); background uint8 [V, H, W, 3] (black if None); light
  a unit direction towards the light. Returns the batch-contract arrays, views first.
  """
  V, H, W = cameras.num_views, cameras.height, cameras.width
  posed = pose_body(np.asarray(shape, np.float64), motion)
  T = posed.prim_rot.shape[0]
  light = DEFAULT_LIGHT if light is None else np.asarray(light, np.float64)
  centres, dirs = pixel_rays(cameras.K, cameras.R, cameras.t, H, W)
  depth, pid = zbuffer(posed.prim_rot, posed.prim_center, posed.rest.radii, posed.rest.h,
                       cameras.K, cameras.R, cameras.t, H, W, centres, dirs)
  vi, ti, pix = np.nonzero(pid >= 0)
  p = pid[vi, ti, pix]
  z = depth[vi, ti, pix]
  X = centres[vi] + z[:, None] * dirs[vi, pix]
  local, q, s, phi = _surface(posed, p, ti, X)
  face = faces.face_index(p, s, phi)
  part = faces.FACE_PART[face]
  xy = np.stack([pix % W, pix // W], axis=-1).astype(np.float64)

  if background is None:
    background = np.zeros((V, H, W, 3), np.uint8)
  out = dict(
      rgb=np.repeat(background.reshape(V, 1, H * W, 3), T, axis=1),
      depth=np.zeros((V, T, H * W), np.float32), mask=np.zeros((V, T, H * W), np.uint8),
      face=np.full((V, T, H * W), -1, np.int32), part=np.zeros((V, T, H * W), np.int32),
      uv=np.zeros((V, T, H * W, 2), np.float32),
      flow_fwd=np.zeros((V, T, H * W, 2), np.float32), flow_bwd=np.zeros((V, T, H * W, 2), np.float32))
  at = (vi, ti, pix)
  out["rgb"][at] = _shade(posed, p, ti, q, s, phi, np.asarray(textures), light)
  out["depth"][at] = z
  out["mask"][at] = 1
  out["face"][at] = face
  out["part"][at] = part
  out["uv"][at] = faces.surface_uv(p, part, s, phi)
  out["flow_fwd"][at] = _flow(posed, cameras, vi, ti, p, local, xy, 1)
  out["flow_bwd"][at] = _flow(posed, cameras, vi, ti, p, local, xy, -1)
  out = {k: v.reshape((V, T, H, W) + v.shape[3:]) for k, v in out.items()}

  kp3 = keypoints.keypoints_3d(posed.joint_pos, posed.prim_rot, posed.prim_center, posed.rest)
  kp_xy, _ = cameras.project(kp3)
  vis = keypoints.visibility(kp3, posed.prim_rot, posed.prim_center, posed.rest, cameras)
  out["keypoints"] = np.concatenate([kp_xy, vis[..., None]], axis=-1).astype(np.float32)
  out["background"] = np.ascontiguousarray(background, np.uint8)
  out["K"] = cameras.K.astype(np.float32)
  out["R"] = cameras.R.astype(np.float32)
  out["t"] = cameras.t.astype(np.float32)
  return out
