"""The parametric body: an articulated skeleton covered by scaled capsules.

Coordinates: world and body frames are right-handed with x = the person's right, y = forward
(the direction the person faces at rest), z = up; metres. The rest pose is a T-pose standing on
the floor (z = 0). Every joint's local frame is aligned with the world at rest, so a pose is a
set of local rotations applied in the joint's own frame (SMPL-style, parent to child).

Each body segment is one *primitive*: a capsule of unit radius and cylinder half-length `h`
(in its own unit space) mapped to the world by `x = c + R diag(r) q`. Scaling a capsule gives
elliptical cross-sections (torso, head, hands, feet) and an ellipsoid when h -> 0. Primitives
are rigidly attached to one joint, so every surface point moves rigidly with that joint: the
flow and the face index of a surface point are exact.

All geometry functions take an array module `xp` (numpy or jax.numpy): the renderer runs the
numpy path, `psrjax.data.synthetic.jax_body` wraps the same code for differentiable fitting.
"""
import dataclasses

import numpy as np

JOINT_NAMES = (
    "pelvis", "spine", "neck", "head",
    "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle")
PARENTS = (-1, 0, 1, 2, 1, 4, 5, 1, 7, 8, 0, 10, 11, 0, 13, 14)
NUM_JOINTS = len(JOINT_NAMES)
J = {name: i for i, name in enumerate(JOINT_NAMES)}

# Shape parameters: `height` in metres, every other entry a multiplier around 1.
SHAPE_NAMES = (
    "height", "leg_length", "arm_length", "torso_length", "shoulder_width", "hip_width",
    "torso_girth", "torso_depth", "belly", "arm_girth", "leg_girth", "head_size",
    "head_width", "head_depth", "neck_length", "hand_size", "foot_size")
NUM_SHAPE = len(SHAPE_NAMES)
DEFAULT_SHAPE = np.array([1.75] + [1.0] * (NUM_SHAPE - 1), np.float64)
# Sampling ranges for identities (uniform), same order as SHAPE_NAMES.
SHAPE_RANGES = np.array([
    (1.50, 1.95), (0.92, 1.08), (0.92, 1.08), (0.92, 1.08), (0.88, 1.12), (0.88, 1.15),
    (0.85, 1.20), (0.85, 1.20), (0.90, 1.25), (0.85, 1.25), (0.85, 1.25), (0.92, 1.08),
    (0.90, 1.10), (0.92, 1.10), (0.80, 1.20), (0.90, 1.10), (0.90, 1.10)], np.float64)
_REF_HEIGHT = 1.75


@dataclasses.dataclass(frozen=True)
class Primitive:
  """One capsule: attached to `joint`, surface cut into `grid` = (axial, angular) faces."""
  name: str
  joint: int
  grid: tuple[int, int]
  parts: tuple[int, ...]  # (front, back) for split "fb"; (right, left) for "lr"; (part,) otherwise
  split: str              # "fb", "lr" or "none"
  v_range: tuple[float, float]  # where this primitive's axial coordinate lands in its part's v
  garment: str            # "shirt", "pants", "skin", "head", "hand", "shoe"
  x_hint: tuple[float, float, float] = (0.0, 1.0, 0.0)  # local x axis (before orthogonalising)


# DensePose-style parts (1..24). Front/back and right/left choices inside each pair are ours.
PART_NAMES = (
    "background", "torso_back", "torso_front", "r_hand", "l_hand", "l_foot", "r_foot",
    "r_upper_leg_front", "l_upper_leg_front", "r_upper_leg_back", "l_upper_leg_back",
    "r_lower_leg_front", "l_lower_leg_front", "r_lower_leg_back", "l_lower_leg_back",
    "l_upper_arm_front", "r_upper_arm_front", "l_upper_arm_back", "r_upper_arm_back",
    "l_lower_arm_front", "r_lower_arm_front", "l_lower_arm_back", "r_lower_arm_back",
    "head_right", "head_left")
NUM_PARTS = 24
SYMMETRIC_PART = np.array(
    [0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23],
    np.int32)

_UP = (0.0, 0.0, 1.0)
PRIMITIVES = (
    Primitive("pelvis", J["pelvis"], (8, 24), (2, 1), "fb", (0.0, 0.3), "pants"),
    Primitive("abdomen", J["pelvis"], (8, 24), (2, 1), "fb", (0.3, 0.55), "shirt"),
    Primitive("chest", J["spine"], (16, 24), (2, 1), "fb", (0.55, 1.0), "shirt"),
    Primitive("neck", J["neck"], (4, 12), (23, 24), "lr", (0.0, 0.2), "skin"),
    Primitive("head", J["head"], (16, 24), (23, 24), "lr", (0.2, 1.0), "head"),
    Primitive("r_upper_arm", J["r_shoulder"], (12, 12), (16, 18), "fb", (0.0, 1.0), "shirt"),
    Primitive("r_forearm", J["r_elbow"], (12, 12), (20, 22), "fb", (0.0, 1.0), "sleeve"),
    Primitive("r_hand", J["r_wrist"], (6, 8), (3,), "none", (0.0, 1.0), "skin"),
    Primitive("l_upper_arm", J["l_shoulder"], (12, 12), (15, 17), "fb", (0.0, 1.0), "shirt"),
    Primitive("l_forearm", J["l_elbow"], (12, 12), (19, 21), "fb", (0.0, 1.0), "sleeve"),
    Primitive("l_hand", J["l_wrist"], (6, 8), (4,), "none", (0.0, 1.0), "skin"),
    Primitive("r_thigh", J["r_hip"], (14, 12), (7, 9), "fb", (0.0, 1.0), "pants"),
    Primitive("r_shin", J["r_knee"], (14, 12), (11, 13), "fb", (0.0, 1.0), "legwear"),
    Primitive("r_foot", J["r_ankle"], (6, 12), (6,), "none", (0.0, 1.0), "shoe", _UP),
    Primitive("l_thigh", J["l_hip"], (14, 12), (8, 10), "fb", (0.0, 1.0), "pants"),
    Primitive("l_shin", J["l_knee"], (14, 12), (12, 14), "fb", (0.0, 1.0), "legwear"),
    Primitive("l_foot", J["l_ankle"], (6, 12), (5,), "none", (0.0, 1.0), "shoe", _UP),
)
NUM_PRIMITIVES = len(PRIMITIVES)
P = {p.name: i for i, p in enumerate(PRIMITIVES)}
PRIM_JOINT = np.array([p.joint for p in PRIMITIVES], np.int32)


def _shape_dict(shape, xp):
  shape = xp.asarray(shape)
  d = {name: shape[..., i] for i, name in enumerate(SHAPE_NAMES)}
  d["k"] = d["height"] / _REF_HEIGHT
  return d


def _vec(x, y, z, xp):
  x, y, z = xp.broadcast_arrays(xp.asarray(x, dtype=float), xp.asarray(y, dtype=float),
                                xp.asarray(z, dtype=float))
  return xp.stack([x, y, z], axis=-1)


def joint_offsets(shape, xp=np):
  """Rest offsets of each joint from its parent, in the parent frame: [J, 3] metres."""
  s = _shape_dict(shape, xp)
  k, tl, sw, arm, leg = s["k"], s["torso_length"], s["shoulder_width"], s["arm_length"], s["leg_length"]
  rows = [
      _vec(0.0, 0.0, 0.0, xp),
      _vec(0.0, 0.0, 0.20 * tl, xp),
      _vec(0.0, 0.0, 0.28 * tl, xp),
      _vec(0.0, 0.0, 0.08 * s["neck_length"], xp),
  ]
  for side in (1.0, -1.0):
    rows += [_vec(side * 0.18 * sw, 0.0, 0.23 * tl, xp), _vec(side * 0.28 * arm, 0.0, 0.0, xp),
             _vec(side * 0.25 * arm, 0.0, 0.0, xp)]
  for side in (1.0, -1.0):
    rows += [_vec(side * 0.09 * s["hip_width"], 0.0, -0.06, xp), _vec(0.0, 0.0, -0.43 * leg, xp),
             _vec(0.0, 0.0, -0.41 * leg, xp)]
  return xp.stack(rows, axis=0) * k


def primitive_geometry(shape, xp=np):
  """Rest geometry of every primitive in its joint's frame.

  Returns (a, b, radii): segment end points a, b [P, 3] and radii [P, 3] = (r_x, r_y, r_z) of the
  capsule in its local frame (x = forward hint, z = a -> b). Metres.
  """
  s = _shape_dict(shape, xp)
  off = joint_offsets(shape, xp) / s["k"]
  tl, td, tg, hs = s["torso_length"], s["torso_depth"], s["torso_girth"], s["head_size"]
  head_c = _vec(0.0, 0.012, 0.115, xp) * hs
  head_dz = _vec(0.0, 0.0, 0.02, xp) * hs
  seg = {
      "pelvis": (_vec(0, 0, -0.07, xp), _vec(0, 0, 0.0, xp),
                 _vec(0.105 * td, 0.150 * s["hip_width"], 0.09, xp)),
      "abdomen": (_vec(0, 0, 0.0, xp), _vec(0, 0, 0.17 * tl, xp),
                  _vec(0.098 * td * s["belly"], 0.132 * tg * s["belly"], 0.09, xp)),
      "chest": (_vec(0, 0, 0.03, xp), _vec(0, 0, 0.22 * tl, xp),
                _vec(0.105 * td, 0.150 * tg * s["shoulder_width"] ** 0.5, 0.10, xp)),
      "neck": (_vec(0, 0, -0.04, xp), _vec(0, 0, 0.10 * s["neck_length"], xp),
               _vec(0.05, 0.05, 0.05, xp) * s["torso_girth"] ** 0.3),
      "head": (head_c - head_dz, head_c + head_dz,
               _vec(0.098 * s["head_depth"], 0.080 * s["head_width"], 0.092, xp) * hs),
  }
  ag, lg, hand, foot = s["arm_girth"], s["leg_girth"], s["hand_size"], s["foot_size"]
  for side, c in ((1.0, "r"), (-1.0, "l")):
    jo = J[f"{c}_shoulder"]
    seg[f"{c}_upper_arm"] = (_vec(0, 0, 0, xp), off[jo + 1], _vec(0.047, 0.047, 0.047, xp) * ag)
    seg[f"{c}_forearm"] = (_vec(0, 0, 0, xp), off[jo + 2], _vec(0.037, 0.037, 0.037, xp) * ag)
    seg[f"{c}_hand"] = (_vec(side * 0.035, 0, 0, xp) * hand, _vec(side * 0.115, 0, 0, xp) * hand,
                        _vec(0.042, 0.02, 0.035, xp) * hand)
    jh = J[f"{c}_hip"]
    seg[f"{c}_thigh"] = (_vec(0, 0, 0, xp), off[jh + 1], _vec(0.072, 0.072, 0.072, xp) * lg)
    seg[f"{c}_shin"] = (_vec(0, 0, 0, xp), off[jh + 2], _vec(0.05, 0.05, 0.05, xp) * lg)
    seg[f"{c}_foot"] = (_vec(0, -0.02, -0.045, xp), _vec(0, 0.125 * foot, -0.05, xp),
                        _vec(0.038, 0.045 * foot, 0.04, xp))
  a = xp.stack([seg[p.name][0] for p in PRIMITIVES], axis=0) * s["k"]
  b = xp.stack([seg[p.name][1] for p in PRIMITIVES], axis=0) * s["k"]
  radii = xp.stack([seg[p.name][2] for p in PRIMITIVES], axis=0) * s["k"]
  return a, b, radii


@dataclasses.dataclass(frozen=True)
class RestPrimitives:
  """Rest-pose primitive frames in their joint's frame (all arrays over P primitives)."""
  rot: object     # [P, 3, 3] columns = local x, y, z axes
  center: object  # [P, 3]
  radii: object   # [P, 3]
  h: object       # [P] cylinder half-length in unit (radius-1) space


def rest_primitives(shape, xp=np) -> RestPrimitives:
  """Local frames of the primitives: z along a -> b, x = forward hint made orthogonal."""
  a, b, radii = primitive_geometry(shape, xp)
  axis = b - a
  length = xp.sqrt(xp.sum(axis * axis, axis=-1))
  z = axis / length[:, None]
  hint = xp.asarray(np.array([p.x_hint for p in PRIMITIVES]))
  x = hint - xp.sum(hint * z, axis=-1, keepdims=True) * z
  x = x / xp.sqrt(xp.sum(x * x, axis=-1, keepdims=True))
  y = xp.cross(z, x)
  rot = xp.stack([x, y, z], axis=-1)
  return RestPrimitives(rot=rot, center=0.5 * (a + b), radii=radii, h=0.5 * length / radii[:, 2])


def forward_kinematics(local_rot, root_pos, offsets, xp=np):
  """Global joint rotations [..., J, 3, 3] and positions [..., J, 3].

  local_rot [..., J, 3, 3] (entry 0 is the root's global rotation), root_pos [..., 3],
  offsets [J, 3] from `joint_offsets`.
  """
  rots, pos = [], []
  for j, p in enumerate(PARENTS):
    if p < 0:
      rots.append(local_rot[..., j, :, :])
      pos.append(root_pos)
    else:
      rots.append(rots[p] @ local_rot[..., j, :, :])
      pos.append(pos[p] + (rots[p] @ offsets[j][:, None])[..., 0])
  return xp.stack(rots, axis=-3), xp.stack(pos, axis=-2)


def posed_primitives(joint_rot, joint_pos, rest: RestPrimitives, xp=np):
  """World rotation [..., P, 3, 3] and centre [..., P, 3] of every primitive."""
  g = joint_rot[..., PRIM_JOINT, :, :]
  rot = g @ rest.rot
  center = joint_pos[..., PRIM_JOINT, :] + (g @ rest.center[..., None])[..., 0]
  return rot, center


def rest_root_height(shape) -> float:
  """Pelvis height above the floor in the rest pose (soles at z = 0)."""
  off = joint_offsets(shape)
  a, _, radii = primitive_geometry(shape)
  ankle = off[J["r_hip"], 2] + off[J["r_knee"], 2] + off[J["r_ankle"], 2]
  return float(-(ankle + a[P["r_foot"], 2] - radii[P["r_foot"], 0]))


def capsule_point(s, phi, h, xp=np):
  """Inverse surface parameterisation: (s in [0,1] along the profile, phi) -> unit-space point."""
  total = np.pi + 2.0 * h
  arc = s * total
  alpha_bot = xp.clip(arc, 0.0, np.pi / 2)
  alpha_top = xp.clip(total - arc, 0.0, np.pi / 2)
  bottom = arc < np.pi / 2
  top = arc > np.pi / 2 + 2.0 * h
  ring = xp.where(bottom, xp.sin(alpha_bot), xp.where(top, xp.sin(alpha_top), 1.0))
  z = xp.where(bottom, -h - xp.cos(alpha_bot),
               xp.where(top, h + xp.cos(alpha_top), arc - np.pi / 2 - h))
  return xp.stack([ring * xp.cos(phi), ring * xp.sin(phi), z], axis=-1)


def capsule_coords(q: np.ndarray, h: np.ndarray):
  """Surface parameterisation of unit-space points q [N, 3] on capsules of half-length h [N].

  Returns s in [0, 1] (arc length along the profile from the a-end, normalised) and phi in
  (-pi, pi] (angle around the axis from the local x axis).
  """
  qz = q[:, 2]
  total = np.pi + 2.0 * h
  bot = np.arccos(np.clip(-(qz + h), -1.0, 1.0))
  top = np.arccos(np.clip(qz - h, -1.0, 1.0))
  arc = np.where(qz < -h, bot, np.where(qz > h, total - top, np.pi / 2 + qz + h))
  s = np.clip(arc / total, 0.0, 1.0)
  phi = np.arctan2(q[:, 1], q[:, 0])
  return s, phi


def rest_pose(shape):
  """Identity local rotations [J, 3, 3] and the root position of the T-pose on the floor."""
  rot = np.broadcast_to(np.eye(3), (NUM_JOINTS, 3, 3)).copy()
  return rot, np.array([0.0, 0.0, rest_root_height(shape)])
