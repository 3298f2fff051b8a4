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


def _affine(mats: np.ndarray, idx: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Apply the 3x4 affine maps mats[idx] [n, 3, 4] to points v [n, 3] (gathered with np.take)."""
  m = np.take(mats, idx, axis=0)
  return m[:, :, 0] * v[:, 0:1] + m[:, :, 1] * v[:, 1:2] + m[:, :, 2] * v[:, 2:3] + m[:, :, 3]


def _transforms(posed, cameras):
  """Per (frame, primitive): world -> local metric map [T*P, 3, 4] and light direction in the
  local frame [T*P, 3]; per (view, frame, primitive): local -> homogeneous pixel [V*T*P, 3, 4]."""
  rot_t = np.swapaxes(posed.prim_rot, -1, -2)                          # [T, P, 3, 3]
  to_local = np.concatenate([rot_t, -(rot_t @ posed.prim_center[..., None])], axis=-1)
  cam_rot = np.einsum("vij,tpjk->vtpik", cameras.R, posed.prim_rot)
  cam_pos = np.einsum("vij,tpj->vtpi", cameras.R, posed.prim_center) + cameras.t[:, None, None]
  proj = np.einsum("vij,vtpjk->vtpik", cameras.K, np.concatenate([cam_rot, cam_pos[..., None]], -1))
  return (to_local.reshape(-1, 3, 4).astype(np.float32), rot_t.reshape(-1, 3, 3),
          proj.reshape(-1, 3, 4).astype(np.float32))


def _shade(q, h, radii, light_local, s, phi, p, textures):
  """Lambert-shaded texture colour of unit-space surface points q on primitives p."""
  n = q.copy()
  n[:, 2] -= np.clip(q[:, 2], -h, h)
  n = n / radii                                     # normal direction in the local metric frame
  cos = np.sum(n * light_local, axis=-1) / np.linalg.norm(n, axis=-1)
  ts, tp = textures.shape[1], textures.shape[2]
  i = np.minimum((s * ts).astype(np.int64), ts - 1)
  j = np.floor((phi + np.pi) * (tp / (2 * np.pi))).astype(np.int64) % tp
  albedo = np.take(textures.reshape(-1, 3), (p * ts + i) * tp + j, axis=0).astype(np.float32)
  if textures.dtype == np.uint8:
    albedo *= 1.0 / 255.0
  shade = AMBIENT + DIFFUSE * np.clip(cos, 0.0, 1.0)
  return np.clip(albedo * shade[:, None] * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _flow(proj, T, P, vi, ti, p, local, xy, step):
  """Exact displacement of surface points to frame t + step (0 where that frame is missing)."""
  tn = ti + step
  ok = (tn >= 0) & (tn < T)
  hom = _affine(proj, (vi * T + np.clip(tn, 0, T - 1)) * P + p, local)
  flow = hom[:, :2] / hom[:, 2:3] - xy
  return np.where(ok[:, None], flow, 0.0).astype(np.float32)


def _foreground(posed, cameras, textures, light, depth, pid, centres, dirs) -> tuple:
  """Per foreground pixel (flat index over [V, T, H*W]): every modality's value."""
  T, P = posed.prim_rot.shape[:2]
  HW, W = cameras.height * cameras.width, cameras.width
  flat = np.flatnonzero(pid >= 0)
  pix, img = flat % HW, flat // HW
  vi, ti = img // T, img % T
  p = np.take(pid.reshape(-1), flat)
  z = np.take(depth.reshape(-1), flat)
  X = np.take(centres, vi, axis=0) + z[:, None] * np.take(dirs.reshape(-1, 3), vi * HW + pix, axis=0)
  to_local, rot_t, proj = _transforms(posed, cameras)
  local = _affine(to_local, ti * P + p, X.astype(np.float32))
  radii, h = posed.rest.radii[p].astype(np.float32), posed.rest.h[p].astype(np.float32)
  q = local / radii
  s, phi = body.capsule_coords(q, h)
  face = faces.face_index(p, s, phi)
  part = faces.FACE_PART[face]
  xy = np.stack([pix % W, pix // W], axis=-1).astype(np.float32)
  light_local = np.take((rot_t @ light).astype(np.float32), ti * P + p, axis=0)
  values = dict(
      rgb=_shade(q, h, radii, light_local, s, phi, p, np.asarray(textures)), depth=z, mask=1,
      face=face, part=part, uv=faces.surface_uv(p, part, s, phi),
      flow_fwd=_flow(proj, T, P, vi, ti, p, local, xy, 1),
      flow_bwd=_flow(proj, T, P, vi, ti, p, local, xy, -1))
  return flat, values


def camera_keypoints(posed, cameras: Cameras) -> np.ndarray:
  """float32 [V, T, 18, 3]: COCO-18 keypoints of a posed body in every camera (x, y pixels;
  exact visibility), the `keypoints` of `render` without rendering the images."""
  kp3 = keypoints.keypoints_3d(posed.joint_pos, posed.prim_rot, posed.prim_center, posed.rest)
  kp_xy, _ = cameras.project(kp3)
  vis = keypoints.visibility(kp3, posed.prim_rot, posed.prim_center, posed.rest, cameras)
  return np.concatenate([kp_xy, vis[..., None]], axis=-1).astype(np.float32)


_IMAGES = dict(  # key: (fill value on background, dtype, channels)
    depth=(0, np.float32, ()), mask=(0, np.uint8, ()), face=(-1, np.int32, ()),
    part=(0, np.int32, ()), uv=(0, np.float32, (2,)), flow_fwd=(0, np.float32, (2,)),
    flow_bwd=(0, np.float32, (2,)))


def render(shape, textures, motion: Motion, cameras: Cameras, *, background=None, light=None) -> dict:
  """Render T frames of a body in V cameras.

  shape [NUM_SHAPE] body parameters; textures [P, S, PHI, 3] albedo (uint8, or float in [0, 1])
  on each primitive's (s, phi) grid; motion with T frames; cameras with image size (H, W);
  background uint8 [V, H, W, 3] (black if None); light a unit direction towards the light.
  Returns the batch-contract arrays, views first (see the package docstring).
  """
  V, H, W = cameras.num_views, cameras.height, cameras.width
  posed = pose_body(np.asarray(shape, np.float64), motion)
  T = posed.prim_rot.shape[0]
  light = DEFAULT_LIGHT if light is None else np.asarray(light, np.float64)
  centres, dirs = pixel_rays(cameras.K, cameras.R, cameras.t, H, W)
  depth, pid = zbuffer(posed.prim_rot, posed.prim_center, posed.rest.radii, posed.rest.h,
                       cameras.K, cameras.R, cameras.t, H, W, centres, dirs)
  flat, values = _foreground(posed, cameras, textures, light, depth, pid, centres, dirs)
  if background is None:
    background = np.zeros((V, H, W, 3), np.uint8)
  rgb = np.repeat(background.reshape(V, 1, H * W, 3), T, axis=1).reshape(-1, 3)
  rgb[flat] = values["rgb"]
  out = dict(rgb=rgb.reshape(V, T, H, W, 3))
  for key, (fill, dtype, channels) in _IMAGES.items():
    arr = np.full((V * T * H * W,) + channels, fill, dtype)
    arr[flat] = values[key]
    out[key] = arr.reshape((V, T, H, W) + channels)
  out["keypoints"] = camera_keypoints(posed, cameras)
  out["background"] = np.ascontiguousarray(background, np.uint8)
  out.update(K=cameras.K.astype(np.float32), R=cameras.R.astype(np.float32), t=cameras.t.astype(np.float32))
  return out
