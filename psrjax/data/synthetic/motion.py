"""Body motion: an action's local rotations placed in the world and kept on the floor."""
import dataclasses

import numpy as np

from psrjax.data.synthetic import actions, body
from psrjax.data.synthetic.rotations import rot_deg


@dataclasses.dataclass(frozen=True)
class Motion:
  """Pose sequence of one body: local joint rotations and pelvis positions."""
  local_rot: np.ndarray  # [T, J, 3, 3] local rotations (joint 0 = global pelvis rotation)
  root_pos: np.ndarray   # [T, 3] pelvis position, metres, world frame


@dataclasses.dataclass(frozen=True)
class PosedBody:
  """Forward kinematics of a Motion: joints and primitives in the world."""
  joint_rot: np.ndarray   # [T, J, 3, 3]
  joint_pos: np.ndarray   # [T, J, 3]
  prim_rot: np.ndarray    # [T, P, 3, 3] columns = primitive local axes
  prim_center: np.ndarray  # [T, P, 3]
  rest: body.RestPrimitives


def pose_body(shape: np.ndarray, motion: Motion) -> PosedBody:
  """numpy forward kinematics of the whole body for every frame."""
  rest = body.rest_primitives(shape)
  jrot, jpos = body.forward_kinematics(motion.local_rot, motion.root_pos, body.joint_offsets(shape))
  prot, pcen = body.posed_primitives(jrot, jpos, rest)
  return PosedBody(jrot, jpos, prot, pcen, rest)


def lowest_point(prim_rot: np.ndarray, prim_center: np.ndarray, rest: body.RestPrimitives):
  """Lowest z of the body surface per frame ([T]): support function of each capsule."""
  m_z = prim_rot[..., 2, :] * rest.radii  # third row of R diag(r): [T, P, 3]
  low = prim_center[..., 2] - rest.h * np.abs(m_z[..., 2]) - np.linalg.norm(m_z, axis=-1)
  return low.min(axis=-1)


def place_action(shape, action, times, *, speed=1.0, phase=0.0, amplitude=1.0,
                 heading_deg=0.0, position=(0.0, 0.0)) -> Motion:
  """An action performed at `position` (x, y) facing `heading_deg` (0 = +y), feet on the floor.

  The pelvis height is set per frame so that the lowest surface point touches z = 0, plus the
  action's own lift (jumps).
  """
  rot, offset, yaw = actions.action_pose(action, times, speed=speed, phase=phase, amplitude=amplitude)
  return place_pose(shape, rot, offset, np.asarray(heading_deg) + yaw, position)


def place_pose(shape, rot, offset, heading_deg, position) -> Motion:
  """Apply heading and position to body-frame local rotations and root offsets, then ground."""
  n = rot.shape[0]
  heading = rot_deg(2, np.broadcast_to(heading_deg, (n,)))
  local = rot.copy()
  local[:, 0] = heading @ rot[:, 0]
  root = np.zeros((n, 3))
  root[:, :2] = np.asarray(position, np.float64)[..., :2] + (heading @ offset[:, :, None])[:, :2, 0]
  root[:, 2] = body.rest_root_height(shape)
  posed = pose_body(shape, Motion(local, root))
  root[:, 2] += offset[:, 2] - lowest_point(posed.prim_rot, posed.prim_center, posed.rest)
  return Motion(local, root)
