"""Fit the synthetic world's parametric body to triangulated 3D keypoints, and render it.

Conventions: keypoints are COCO-18 world points [T, 18, 3] in metres (NaN = missing), world z up,
as `psrjax.geometry.triangulation` gives them; the body is `psrjax.data.synthetic.body` (x = the
person's right, y = forward, z = up) with one shape [NUM_SHAPE] per clip, per-frame axis-angle
joint rotations pose [T, J, 3] (joint 0 = global pelvis rotation) and pelvis positions root [T, 3].

Objective (all terms float32, minimised with Adam in one jitted `lax.scan`, as SMPLify fits SMPL
to keypoints -- Bogo et al., ECCV 2016):
- data: confidence-weighted Geman-McClure distance rho(d) = d^2 c^2 / (d^2 + c^2) with scale
  c = `robust_scale` (10 cm), in cm^2, so a keypoint off by 1 cm costs about 1 and gross outliers
  at most c^2; missing keypoints have weight 0;
- pose: mean squared rotation angle of the non-root joints (a weak pull to the rest T-pose), a
  joint-limit penalty on the angle beyond `JOINT_LIMITS_DEG` (squared excess) and a hinge
  penalty on the off-axis rotation of elbows and knees (`HINGE_AXES`) and a twist penalty on
  rotation about each bone's own axis (`_TWIST_AXIS`), which keypoints of a straight limb do not
  see;
- shape: the shape is parameterised as mid + half * tanh(z) over `body.SHAPE_RANGES` (the uniform
  range identities are sampled from, `appearance.sample_shape`), so it never leaves the valid
  range; the prior is mean(z^2), towards the mean shape (z = 0);
- smoothness: mean squared second differences over frames of pose (radians) and root (cm).
Initialisation: mean shape, rest pose, global rotation in closed form from the hips and the
hip-to-neck direction, root from the hip centre. Stages: global rotation and root only, then
every joint, then the shape as well (`STAGES`).

Rendering: the synthetic renderer is an undistorted pinhole camera; real images and keypoints must
be undistorted first (`calibration.undistort_image`, `Camera.undistort_points`), then the
calibration's K, R, t map directly (`cameras_from_calibration`).
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from psrjax.data.synthetic import body, jax_body
from psrjax.data.synthetic.cameras import Cameras
from psrjax.data.synthetic.motion import Motion
from psrjax.data.synthetic.renderer import render
from psrjax.data.synthetic.rotations import matrix_to_rotvec, rotvec_to_matrix
from psrjax.geometry.calibration import Camera
from psrjax.geometry.skeleton import COCO_NAMES, NUM_KEYPOINTS

# Largest plausible rotation angle (degrees, magnitude of the local axis-angle) per joint, from
# the rest T-pose. Shoulders reach 180 (arms from the T-pose down to the side is 90, fully up
# 90 the other way, plus twist); elbows and knees flex up to about 150; hips flex about 130;
# spine and neck segments bend about 60 / 45 each; head on neck and ankles about 45; the pelvis
# (global rotation) is free.
JOINT_LIMITS_DEG = dict(
    pelvis=360.0, spine=60.0, neck=45.0, head=45.0, r_shoulder=180.0, r_elbow=150.0,
    r_wrist=70.0, l_shoulder=180.0, l_elbow=150.0, l_wrist=70.0, r_hip=130.0, r_knee=150.0,
    r_ankle=45.0, l_hip=130.0, l_knee=150.0, l_ankle=45.0)
# Hinge joints rotate about one local axis in the body's actions (`actions.elbow`: z,
# `actions.knee`: x; the left side's sagittal mirror keeps the axis): the off-axis components are
# penalised, which also fixes the twist of the upper arm and thigh from the bend's plane.
HINGE_AXES = dict(r_elbow=2, l_elbow=2, r_knee=0, l_knee=0)
_HINGE_OFF = np.zeros((body.NUM_JOINTS, 3), np.float32)
for _name, _axis in HINGE_AXES.items():
  _HINGE_OFF[body.J[_name]] = 1.0
  _HINGE_OFF[body.J[_name], _axis] = 0.0
# Rotation about a limb's own bone axis (its rest direction: x for the arms, z for the legs and the
# spine) does not move any keypoint of a straight limb, so it is pulled towards 0 (the twist of
# the swing-twist decomposition, q = q_swing q_twist).
_TWIST_AXIS = np.zeros((body.NUM_JOINTS, 3), np.float32)
for _name in body.JOINT_NAMES[1:]:
  _TWIST_AXIS[body.J[_name], 0 if _name[2:] in ("shoulder", "elbow", "wrist") else 2] = 1.0
_LIMITS = np.deg2rad([JOINT_LIMITS_DEG[n] for n in body.JOINT_NAMES]).astype(np.float32)
# Fractions of the steps at which the stages end: global only, all joints, all joints + shape.
STAGES = (0.15, 0.5, 1.0)
_MID = (0.5 * (body.SHAPE_RANGES[:, 0] + body.SHAPE_RANGES[:, 1])).astype(np.float32)
_HALF = (0.5 * (body.SHAPE_RANGES[:, 1] - body.SHAPE_RANGES[:, 0])).astype(np.float32)
MEAN_SHAPE = _MID.astype(np.float64)
_K = {name: i for i, name in enumerate(COCO_NAMES)}


@dataclasses.dataclass(frozen=True)
class BodyFit:
  """A fitted body: shape [NUM_SHAPE], pose [T, J, 3] axis-angle, root [T, 3] metres,
  residuals [T, 18] keypoint distances in metres (NaN where missing), loss history [steps]."""
  shape: np.ndarray
  pose: np.ndarray
  root: np.ndarray
  residuals: np.ndarray
  loss_history: np.ndarray

  @property
  def keypoints(self) -> np.ndarray:
    """[T, 18, 3] the fitted body's COCO-18 keypoints."""
    return np.asarray(jax_body.forward_kinematics(self.shape, self.pose, self.root)["keypoints"])


def _check_inputs(keypoints3d, confidence) -> tuple[np.ndarray, np.ndarray]:
  """(keypoints [T, 18, 3] with NaN zeroed, weights [T, 18]) after shape checks."""
  kp = np.asarray(keypoints3d, np.float64)
  if kp.ndim != 3 or kp.shape[1:] != (NUM_KEYPOINTS, 3) or kp.shape[0] < 1:
    raise ValueError(f"keypoints3d must be [T, {NUM_KEYPOINTS}, 3] with T >= 1; got {kp.shape}")
  conf = np.ones(kp.shape[:2]) if confidence is None else np.asarray(confidence, np.float64)
  if conf.shape != kp.shape[:2]:
    raise ValueError(f"confidence must be [T, {NUM_KEYPOINTS}] like keypoints3d; got {conf.shape}")
  seen = np.all(np.isfinite(kp), axis=-1) & np.isfinite(conf) & (conf > 0)
  if not seen.any():
    raise ValueError("no keypoint is finite with confidence > 0; nothing to fit")
  return np.where(seen[..., None], kp, 0.0), np.where(seen, conf, 0.0)


def _frame_values(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
  """values [T, ...] with frames where ok [T] is False replaced by the nearest valid frame."""
  if not ok.any():
    raise ValueError("no frame sees both hips and the neck or a shoulder; cannot place the body")
  idx = np.flatnonzero(ok)
  nearest = idx[np.argmin(np.abs(np.arange(len(ok))[:, None] - idx[None]), axis=1)]
  return values[nearest]


def initial_pose(kp: np.ndarray, w: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Closed-form (pose [T, J, 3], root [T, 3]): rest pose, global rotation with x along
  left hip -> right hip and z along hip centre -> neck (or shoulder centre), root from the hips."""
  r_hip, l_hip, neck = kp[:, _K["r_hip"]], kp[:, _K["l_hip"]], kp[:, _K["neck"]]
  shoulders = 0.5 * (kp[:, _K["r_shoulder"]] + kp[:, _K["l_shoulder"]])
  has_sh = (w[:, _K["r_shoulder"]] > 0) & (w[:, _K["l_shoulder"]] > 0)
  top = np.where((w[:, _K["neck"]] > 0)[:, None], neck, shoulders)
  ok = (w[:, _K["r_hip"]] > 0) & (w[:, _K["l_hip"]] > 0) & ((w[:, _K["neck"]] > 0) | has_sh)
  centre = 0.5 * (r_hip + l_hip)
  x = r_hip - l_hip
  x /= np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)
  z = top - centre
  z -= np.sum(z * x, axis=-1, keepdims=True) * x
  z /= np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-9)
  rot = _frame_values(np.stack([x, np.cross(z, x), z], axis=-1), ok)
  hip_offset = body.joint_offsets(shape)[body.J["r_hip"]] * np.array([0.0, 0.0, 1.0])
  root = _frame_values(centre, ok) - rot @ hip_offset
  pose = np.zeros((len(kp), body.NUM_JOINTS, 3))
  pose[:, 0] = matrix_to_rotvec(rot)
  return pose, root


def _twist(pose):
  """Twist angle [..., J] of every local rotation about its bone axis (`_TWIST_AXIS`)."""
  half = 0.5 * jnp.sqrt(jnp.sum(pose ** 2, axis=-1) + 1e-12)
  along = jnp.sum(pose * _TWIST_AXIS, axis=-1) * jnp.sin(half) / (2 * half)
  return 2 * jnp.arctan2(along, jnp.cos(half))


def _shape_of(z):
  return _MID + _HALF * jnp.tanh(z)


def _loss(params, target, weight, prior, robust_scale):
  """Total objective (module docstring) of params = (z, pose, root)."""
  z, pose, root = params
  kp = jax_body.forward_kinematics(_shape_of(z), pose, root)["keypoints"]
  d2 = jnp.sum((kp - target) ** 2, axis=-1)
  c2 = robust_scale ** 2
  data = jnp.sum(weight * d2 * c2 / (d2 + c2)) / jnp.maximum(jnp.sum(weight), 1e-8) * 1e4
  angle = jnp.sqrt(jnp.sum(pose ** 2, axis=-1) + 1e-12)
  pose_mag = jnp.mean(angle[:, 1:] ** 2)
  limits = jnp.mean(jax.nn.relu(angle - _LIMITS) ** 2)
  twist = jnp.mean(_twist(pose)[:, 1:] ** 2)
  hinge = jnp.sum(jnp.mean((pose * _HINGE_OFF) ** 2, axis=0)) / len(HINGE_AXES)
  smooth_pose = jnp.mean(jnp.diff(pose, 2, axis=0) ** 2) if pose.shape[0] > 2 else 0.0
  smooth_root = jnp.mean((jnp.diff(root, 2, axis=0) * 100) ** 2) if root.shape[0] > 2 else 0.0
  return (data + prior["pose"] * pose_mag + prior["limits"] * limits + prior["hinge"] * hinge
          + prior["twist"] * twist + prior["shape"] * jnp.mean(z ** 2)
          + prior["smooth_pose"] * smooth_pose + prior["smooth_root"] * smooth_root)


def _stage_masks(step, steps: int, num_joints: int):
  """Gradient masks (z, pose, root) of the stage `step` falls in (`STAGES`)."""
  all_joints = step >= int(STAGES[0] * steps)
  with_shape = step >= int(STAGES[1] * steps)
  joint = jnp.where(all_joints, 1.0, (jnp.arange(num_joints) == 0).astype(jnp.float32))
  return jnp.where(with_shape, 1.0, 0.0), joint[:, None], 1.0


@functools.partial(jax.jit, static_argnames=("steps",))
def _optimise(params, target, weight, prior, robust_scale, lr, *, steps: int):
  """Adam over the stages in one `lax.scan`; compiled once per input shapes and step count."""
  opt = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.05))
  grad_fn = jax.value_and_grad(_loss)

  def step_fn(carry, step):
    p, state = carry
    loss, g = grad_fn(p, target, weight, prior, robust_scale)
    masks = _stage_masks(step, steps, p[1].shape[1])
    g = tuple(gi * m for gi, m in zip(g, masks))
    updates, state = opt.update(g, state, p)
    return (optax.apply_updates(p, updates), state), loss

  (params, _), history = jax.lax.scan(step_fn, (params, opt.init(params)), jnp.arange(steps))
  return params, history


def _initial_z(init_shape) -> np.ndarray:
  if init_shape is None:
    return np.zeros(body.NUM_SHAPE, np.float32)
  s = np.asarray(init_shape, np.float64)
  if s.shape != (body.NUM_SHAPE,):
    raise ValueError(f"init_shape must be [{body.NUM_SHAPE}] (body.SHAPE_NAMES); got {s.shape}")
  return np.arctanh(np.clip((s - _MID) / _HALF, -0.99, 0.99)).astype(np.float32)


def fit_body(keypoints3d, confidence=None, *, steps: int = 1200, lr: float = 0.03,
             pose_prior: float = 0.2, limit_prior: float = 100.0, hinge_prior: float = 100.0,
             twist_prior: float = 20.0, shape_prior: float = 0.1, smooth_pose: float = 5.0,
             smooth_root: float = 0.5, robust_scale: float = 0.1, init_shape=None,
             seed: int = 0) -> BodyFit:
  """Fit one shape, per-frame pose and root to keypoints3d [T, 18, 3] (metres, NaN = missing)
  with confidences [T, 18] (None = all 1); objective, priors and stages in the module docstring.

  The data term is in cm^2, so a prior weight w makes 1 rad^2 of that prior (1 cm^2 of root
  acceleration for smooth_root, 1 unit of z^2 for shape_prior) cost as much as w cm^2 of keypoint
  error. lr: Adam's initial step (radians / metres), cosine-decayed to 5 %. init_shape: start
  from this shape [NUM_SHAPE] instead of the mean (clipped into the sampled range). seed jitters
  the initial non-root rotations by 1e-3 rad (the rest pose is a symmetric saddle)."""
  if int(steps) < 1 or lr <= 0 or robust_scale <= 0:
    raise ValueError(f"need steps >= 1, lr > 0 and robust_scale > 0; got {steps}, {lr}, "
                     f"{robust_scale}")
  kp, w = _check_inputs(keypoints3d, confidence)
  z0 = _initial_z(init_shape)
  pose0, root0 = initial_pose(kp, w, _MID + _HALF * np.tanh(z0))
  pose0[:, 1:] += np.random.default_rng(seed).normal(0.0, 1e-3, pose0[:, 1:].shape)
  params = (jnp.asarray(z0), jnp.asarray(pose0, jnp.float32), jnp.asarray(root0, jnp.float32))
  prior = dict(pose=pose_prior, limits=limit_prior, hinge=hinge_prior, twist=twist_prior,
               shape=shape_prior, smooth_pose=smooth_pose, smooth_root=smooth_root)
  prior = {k: jnp.float32(v) for k, v in prior.items()}
  (z, pose, root), history = _optimise(params, jnp.asarray(kp, jnp.float32),
                                       jnp.asarray(w, jnp.float32), prior,
                                       jnp.float32(robust_scale), jnp.float32(lr), steps=int(steps))
  shape = np.asarray(_shape_of(z), np.float64)
  fitted = np.asarray(jax_body.forward_kinematics(shape, pose, root)["keypoints"])
  res = np.where(w > 0, np.linalg.norm(fitted - kp, axis=-1), np.nan)
  return BodyFit(shape, np.asarray(pose, np.float64), np.asarray(root, np.float64), res,
                 np.asarray(history))


def to_motion(fit: BodyFit) -> Motion:
  """The fit as a synthetic `Motion` (local rotation matrices and pelvis positions)."""
  rot = rotvec_to_matrix(np.asarray(fit.pose, np.float64))
  return Motion(rot, np.asarray(fit.root, np.float64))


def cameras_from_calibration(cameras: Sequence[Camera], height: int | None = None,
                             width: int | None = None) -> Cameras:
  """Synthetic `Cameras` from calibration cameras sharing one working size (after `scaled` /
  `cropped`): K, R, t map directly. The synthetic renderer is an undistorted pinhole, so the
  images and keypoints it is compared with must be undistorted first; `dist` is not used."""
  cameras = list(cameras)
  if not cameras:
    raise ValueError("need at least one calibration camera")
  sizes = sorted({c.size for c in cameras})
  if len(sizes) > 1:
    raise ValueError(f"cameras have different sizes {sizes}; bring them to one working size "
                     "with Camera.scaled or Camera.cropped first")
  w, h = sizes[0]
  if (height is not None and height != h) or (width is not None and width != w):
    raise ValueError(f"cameras are {w}x{h} but {width}x{height} was asked; use Camera.scaled or "
                     "Camera.cropped to change the working size")
  return Cameras(np.stack([c.K for c in cameras]), np.stack([c.R for c in cameras]),
                 np.stack([c.t for c in cameras]), int(h), int(w))


def render_fit(fit: BodyFit, cameras: Cameras | Sequence[Camera]) -> dict:
  """Views-first maps of the fitted body (`psrjax.data.synthetic.render`): depth, mask, face,
  part, uv, flow_fwd, flow_bwd [V, T, H, W(, C)] and keypoints [V, T, 18, 3] (x, y, visibility),
  with a neutral grey texture (the rgb is not returned)."""
  if not isinstance(cameras, Cameras):
    cameras = cameras_from_calibration(cameras)
  grey = np.full((body.NUM_PRIMITIVES, 2, 2, 3), 128, np.uint8)
  out = render(fit.shape, grey, to_motion(fit), cameras)
  keys = ("depth", "mask", "face", "part", "uv", "flow_fwd", "flow_bwd", "keypoints")
  return {k: out[k] for k in keys}

