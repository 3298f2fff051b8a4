"""Procedural actions in the spirit of NTU RGB+D, as local joint rotations over time.

Each action maps a phase angle psi [T] (radians, advancing at the action's own rate) and an
amplitude factor to local rotations of some joints; joints an action leaves alone keep the
neutral standing pose (arms hanging slightly away from the body). Anatomical angles are in
degrees with the conventions of `body` (x = right, y = forward, z = up); left-side joints use
the sagittal mirror `M R M` of the right-side rotation.
"""
import numpy as np

from psrjax.data.synthetic import body
from psrjax.data.synthetic.rotations import mirror, rot_deg

ACTIONS = (
    "walk_in_place", "wave", "throw", "squat", "jumping_jacks", "kick", "bow",
    "arm_circles", "turn_around", "dance", "cross_arms", "punch")
NUM_ACTIONS = len(ACTIONS)
# Cycles per second of each action at speed 1.
ACTION_RATE_HZ = dict(
    walk_in_place=0.9, wave=1.4, throw=0.6, squat=0.45, jumping_jacks=0.8, kick=0.55, bow=0.35,
    arm_circles=0.8, turn_around=0.9, dance=0.7, cross_arms=0.4, punch=0.9)
J = body.J


def arm(elev, flex=0.0, adduct=0.0, twist=0.0):
  """Right shoulder: elevation in the frontal plane (0 = down, 90 = sideways, 180 = up), then
  flexion (forward swing), horizontal adduction (across the chest) and twist about the arm."""
  return rot_deg(2, adduct) @ rot_deg(0, flex) @ rot_deg(1, 90.0 - np.asarray(elev)) @ rot_deg(0, twist)


def elbow(flex):
  return rot_deg(2, flex)


def hip(flex, abduct=0.0, twist=0.0):
  """Right hip: flexion (thigh forward), abduction (outwards), twist about the vertical."""
  return rot_deg(2, twist) @ rot_deg(0, flex) @ rot_deg(1, -np.asarray(abduct))


def knee(flex):
  return rot_deg(0, -np.asarray(flex))


def ankle(flex):
  return rot_deg(0, flex)


def spine(bend, side=0.0, twist=0.0):
  """Forward bend, side bend (towards the right for positive values) and twist (to the left)."""
  return rot_deg(2, twist) @ rot_deg(0, -np.asarray(bend)) @ rot_deg(1, side)


def keys(u: np.ndarray, points) -> np.ndarray:
  """Periodic key-frame curve over u in [0, 1) with cosine easing; points = ((pos, value), ...)."""
  xs = np.array([p for p, _ in points] + [1.0])
  ys = np.array([v for _, v in points] + [points[0][1]])
  u = np.mod(u, 1.0)
  i = np.clip(np.searchsorted(xs, u, side="right") - 1, 0, len(xs) - 2)
  w = (u - xs[i]) / (xs[i + 1] - xs[i])
  w = 0.5 - 0.5 * np.cos(np.pi * w)
  return ys[i] * (1 - w) + ys[i + 1] * w


class _Pose:
  """Local rotations under construction: neutral stance, then per-action overrides."""

  def __init__(self, n: int):
    self.n = n
    self.rot = np.broadcast_to(np.eye(3), (n, body.NUM_JOINTS, 3, 3)).copy()
    self.root_offset = np.zeros((n, 3))  # body-frame translation of the pelvis (x, y), lift (z)
    self.yaw = np.zeros(n)               # extra rotation about the vertical, degrees
    self.set_pair("shoulder", arm(np.full(n, 10.0)))
    self.set_pair("elbow", elbow(np.full(n, 12.0)))

  def set(self, joint: str, rot):
    self.rot[:, J[joint]] = np.broadcast_to(rot, (self.n, 3, 3))

  def set_pair(self, joint: str, right, left=None):
    self.set(f"r_{joint}", right)
    self.set(f"l_{joint}", mirror(right if left is None else left))


def _walk(p, psi, a, lift_scale=1.0):
  sr, sl = np.maximum(np.sin(psi), 0), np.maximum(-np.sin(psi), 0)
  p.set_pair("hip", hip(50 * a * sr * lift_scale), hip(50 * a * sl * lift_scale))
  p.set_pair("knee", knee(80 * a * sr * lift_scale), knee(80 * a * sl * lift_scale))
  sw = 25 * a * np.sin(psi) * lift_scale
  p.set_pair("shoulder", arm(10, -sw), arm(10, sw))
  p.set_pair("elbow", elbow(25 + 10 * sr), elbow(25 + 10 * sl))


def _wave(p, psi, a):
  p.set("r_shoulder", arm(100 + 10 * a * np.sin(0.5 * psi), 10, 0, 90))
  p.set("r_elbow", elbow(70 + 35 * a * np.sin(psi)))
  p.set("spine", spine(0, -4 * a * np.sin(0.5 * psi)))


def _throw(p, psi, a):
  u = psi / (2 * np.pi)
  elev = keys(u, ((0, 15), (0.35, 110), (0.55, 130), (0.75, 50)))
  flex = keys(u, ((0, 0), (0.35, -45 * a), (0.55, 100 * a), (0.75, 50)))
  p.set("r_shoulder", arm(elev, flex))
  p.set("r_elbow", elbow(keys(u, ((0, 20), (0.35, 110), (0.55, 15), (0.75, 20)))))
  p.set("l_shoulder", mirror(arm(keys(u, ((0, 15), (0.35, 50), (0.6, 30))), keys(u, ((0, 0), (0.35, 60), (0.6, 10))))))
  p.set("spine", spine(keys(u, ((0, 0), (0.35, -5), (0.6, 20))), 0, keys(u, ((0, 0), (0.35, -30 * a), (0.6, 25 * a)))))
  p.set("l_hip", mirror(hip(keys(u, ((0, 0), (0.35, 30), (0.6, 10))))))
  p.set("l_knee", mirror(knee(keys(u, ((0, 0), (0.35, 35), (0.6, 10))))))


def _squat(p, psi, a):
  d = (0.5 - 0.5 * np.cos(psi)) * min(a, 1.0)
  p.set_pair("hip", hip(100 * d, 8 * d))
  p.set_pair("knee", knee(125 * d))
  p.set_pair("ankle", ankle(25 * d))
  p.set("spine", spine(30 * d))
  p.set_pair("shoulder", arm(10 + 5 * d, 85 * d))


def _jumping_jacks(p, psi, a):
  o = 0.5 - 0.5 * np.cos(psi)
  p.set_pair("shoulder", arm(15 + 150 * o * min(a, 1.05)))
  p.set_pair("elbow", elbow(10 + 10 * o))
  p.set_pair("hip", hip(0, 3 + 16 * o * a))
  p.root_offset[:, 2] = 0.07 * a * np.abs(np.sin(psi))


def _kick(p, psi, a):
  u = psi / (2 * np.pi)
  p.set("r_hip", hip(keys(u, ((0, 0), (0.3, 40 * a), (0.45, 85 * a), (0.6, 40 * a), (0.75, 0)))))
  p.set("r_knee", knee(keys(u, ((0, 0), (0.3, 90), (0.45, 8), (0.6, 60), (0.75, 0)))))
  p.set_pair("shoulder", arm(45, 20))
  p.set_pair("elbow", elbow(40))
  p.set("spine", spine(keys(u, ((0, 0), (0.3, -5), (0.45, -12), (0.75, 0)))))


def _bow(p, psi, a):
  b = keys(psi / (2 * np.pi), ((0, 0), (0.2, 0), (0.45, a), (0.7, a), (0.95, 0)))
  p.set("pelvis", spine(40 * b))
  p.set_pair("hip", hip(40 * b))
  p.set("spine", spine(25 * b))
  p.set("neck", spine(10 * b))
  p.set_pair("shoulder", arm(8, 35 * b))


def _arm_circles(p, psi, a):
  p.set_pair("shoulder", arm(90 + 22 * a * np.sin(psi), 22 * a * np.cos(psi)))
  p.set_pair("elbow", elbow(5))


def _turn_around(p, psi, a):
  _walk(p, 2.0 * psi, a, lift_scale=0.45)
  p.yaw = np.rad2deg(psi) * 0.5 * a


def _dance(p, psi, a):
  s, s2 = np.sin(psi), np.sin(2 * psi)
  p.root_offset[:, 0] = 0.07 * a * s
  p.set("pelvis", spine(0, 6 * a * s))
  p.set("spine", spine(0, -12 * a * s, 12 * a * s))
  p.set_pair("shoulder", arm(100 + 60 * a * s, 30), arm(100 - 60 * a * s, 30))
  p.set_pair("elbow", elbow(50 + 30 * s2), elbow(50 - 30 * s2))
  k = 12 * a * (0.5 - 0.5 * np.cos(2 * psi))
  p.set_pair("hip", hip(k, 6 - 6 * s), hip(k, 6 + 6 * s))
  p.set_pair("knee", knee(2 * k))
  p.set_pair("ankle", ankle(k))


def _cross_arms(p, psi, a):
  c = keys(psi / (2 * np.pi), ((0, 0), (0.3, 1), (0.7, 1)))
  p.set_pair("shoulder", arm(10 + 5 * c, 80 * c, 35 * c * a, -90 * c), arm(10 + 5 * c, 95 * c, 35 * c * a, -90 * c))
  p.set_pair("elbow", elbow(20 + 85 * c))
  p.set("spine", spine(0, 0, 10 * np.sin(psi)))


def _punch(p, psi, a):
  er, el = np.maximum(np.sin(psi), 0) ** 2, np.maximum(-np.sin(psi), 0) ** 2
  p.set_pair("shoulder", arm(20 - 5 * er, 65 + 25 * er * a, 25 - 20 * er),
             arm(20 - 5 * el, 65 + 25 * el * a, 25 - 20 * el))
  p.set_pair("elbow", elbow(125 - 120 * er), elbow(125 - 120 * el))
  p.set("spine", spine(5, 0, 22 * a * (er - el)))
  p.set_pair("hip", hip(12, 6))
  p.set_pair("knee", knee(22))
  p.set_pair("ankle", ankle(10))


_BUILDERS = dict(
    walk_in_place=_walk, wave=_wave, throw=_throw, squat=_squat, jumping_jacks=_jumping_jacks,
    kick=_kick, bow=_bow, arm_circles=_arm_circles, turn_around=_turn_around, dance=_dance,
    cross_arms=_cross_arms, punch=_punch)


def action_index(action) -> int:
  """Index of an action given its name or index; ValueError naming the allowed values."""
  if isinstance(action, (int, np.integer)) and not isinstance(action, bool):
    if 0 <= action < NUM_ACTIONS:
      return int(action)
  elif isinstance(action, str) and action in ACTIONS:
    return ACTIONS.index(action)
  raise ValueError(f"unknown action {action!r}; allowed: {', '.join(ACTIONS)} (or 0..{NUM_ACTIONS - 1})")


def action_pose(action, times: np.ndarray, *, speed=1.0, phase=0.0, amplitude=1.0):
  """Local rotations [T, J, 3, 3], body-frame root offset [T, 3] and extra yaw [T] (degrees).

  times: seconds [T]. The root rotation slot (joint 0) holds the pelvis tilt relative to the
  body's heading; the clip adds its global heading and position on top (`motion`).
  """
  name = ACTIONS[action_index(action)]
  psi = 2 * np.pi * ACTION_RATE_HZ[name] * speed * np.asarray(times, np.float64) + phase
  pose = _Pose(len(psi))
  _BUILDERS[name](pose, psi, amplitude)
  return pose.rot, pose.root_offset, pose.yaw
