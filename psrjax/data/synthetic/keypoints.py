"""COCO-18 / OpenPose keypoints of the body and their exact visibility in each camera.

Body joints come from the skeleton; nose, eyes and ears are fixed points on the head surface
(`appearance.HEAD_LANDMARKS`, where the face texture paints them). A keypoint is visible when it
projects inside the image and the first surface its camera ray meets belongs to it: for joints,
one of the primitives that contain the joint (e.g. upper arm or forearm for the elbow); for the
surface landmarks, the landmark itself (nothing in front of it, within 3 mm).
"""
import numpy as np

from psrjax.data.synthetic import body
from psrjax.data.synthetic.appearance import HEAD_LANDMARKS
from psrjax.data.synthetic.raycast import capsule_entry, unit_space
from psrjax.geometry.skeleton import COCO_NAMES, LIMBS, NUM_KEYPOINTS  # noqa: F401  # re-exported

_P = body.P
_OWN = {
    "neck": ("chest", "neck"), "r_shoulder": ("chest", "r_upper_arm"),
    "l_shoulder": ("chest", "l_upper_arm"), "r_elbow": ("r_upper_arm", "r_forearm"),
    "l_elbow": ("l_upper_arm", "l_forearm"), "r_wrist": ("r_forearm", "r_hand"),
    "l_wrist": ("l_forearm", "l_hand"), "r_hip": ("pelvis", "r_thigh"), "l_hip": ("pelvis", "l_thigh"),
    "r_knee": ("r_thigh", "r_shin"), "l_knee": ("l_thigh", "l_shin"), "r_ankle": ("r_shin", "r_foot"),
    "l_ankle": ("l_shin", "l_foot")}
# [18, P] which primitives a joint keypoint belongs to (all False for surface landmarks).
OWN_PRIMITIVES = np.array([[n in _OWN and p.name in _OWN[n] for p in body.PRIMITIVES] for n in COCO_NAMES])
IS_SURFACE = np.array([n not in _OWN for n in COCO_NAMES])
_JOINT_OF = np.array([body.J.get(n, 0) for n in COCO_NAMES])
_LANDMARK_SPHI = np.array([HEAD_LANDMARKS.get(n, (0.0, 0.0)) for n in COCO_NAMES])


def keypoints_3d(joint_pos, prim_rot, prim_center, rest: body.RestPrimitives, xp=np):
  """World positions [..., 18, 3] of the COCO-18 keypoints (works with numpy or jax.numpy)."""
  head = _P["head"]
  q = body.capsule_point(xp.asarray(_LANDMARK_SPHI[:, 0]), xp.asarray(_LANDMARK_SPHI[:, 1]),
                         rest.h[head], xp)
  local = q * rest.radii[head]
  surf = prim_center[..., head, None, :] + (prim_rot[..., head, None, :, :] @ local[..., None])[..., 0]
  joints = joint_pos[..., _JOINT_OF, :]
  return xp.where(xp.asarray(IS_SURFACE)[:, None], surf, joints)


def visibility(points, prim_rot, prim_center, rest, cameras) -> np.ndarray:
  """float32 [V, T, 18]: 1 where a keypoint (points [T, 18, 3]) is seen by the camera."""
  pix, z = cameras.project(points)
  inside = ((pix[..., 0] >= -0.5) & (pix[..., 0] < cameras.width - 0.5)
            & (pix[..., 1] >= -0.5) & (pix[..., 1] < cameras.height - 0.5) & (z > 0))
  A = unit_space(prim_rot, rest.radii)                                 # [T, P, 3, 3]
  C = cameras.centres                                                 # [V, 3]
  o = np.einsum("tpij,vtpj->vtpi", A, C[:, None, None, :] - prim_center[None])
  d = points[None] - C[:, None, None, :]                              # [V, T, 18, 3]
  dl = np.einsum("tpij,vtkj->vtkpi", A, d)
  entry = capsule_entry(o[:, :, None], dl, rest.h)                    # [V, T, 18, P]
  first = np.argmin(entry, axis=-1)
  nearest = np.min(entry, axis=-1)
  own_first = np.take_along_axis(np.broadcast_to(OWN_PRIMITIVES, entry.shape), first[..., None], -1)[..., 0]
  tol = 0.003 / np.linalg.norm(d, axis=-1)
  surface_ok = nearest >= 1.0 - tol
  vis = np.where(IS_SURFACE, surface_ok, own_first & np.isfinite(nearest))
  return (vis & inside).astype(np.float32)
