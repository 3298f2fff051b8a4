"""Differentiable forward kinematics of the synthetic body in JAX.

The same geometry code as the numpy renderer (`body`, `faces`, `keypoints` take an array module),
run with jax.numpy: shape parameters and axis-angle joint rotations map to joints, primitive
frames, COCO-18 keypoints and face-centre surface points, differentiably, so the body can be
fitted to real 3D keypoints (`keypoint_fit_loss`) and then rendered in real cameras with
`psrjax.data.synthetic.render`.
"""
import jax
import jax.numpy as jnp

from psrjax.data.synthetic import body, faces, keypoints
from psrjax.data.synthetic.rotations import rotvec_to_matrix


def forward_kinematics(shape: jax.Array, pose: jax.Array, root: jax.Array) -> dict:
  """Body geometry for shape [NUM_SHAPE], pose [..., J, 3] (axis-angle, joint 0 = global pelvis
  rotation) and root [..., 3] (pelvis position, metres).

  Returns joint_rot [..., J, 3, 3], joints [..., J, 3], prim_rot [..., P, 3, 3],
  prim_center [..., P, 3] and keypoints [..., 18, 3] (COCO-18 order).
  """
  shape = jnp.asarray(shape)
  local = rotvec_to_matrix(jnp.asarray(pose), xp=jnp)
  jrot, jpos = body.forward_kinematics(local, jnp.asarray(root), body.joint_offsets(shape, jnp), jnp)
  rest = body.rest_primitives(shape, jnp)
  prot, pcen = body.posed_primitives(jrot, jpos, rest, jnp)
  kp = keypoints.keypoints_3d(jpos, prot, pcen, rest, jnp)
  return dict(joint_rot=jrot, joints=jpos, prim_rot=prot, prim_center=pcen, keypoints=kp)


def surface_points(shape: jax.Array, pose: jax.Array, root: jax.Array) -> jax.Array:
  """Centre point of every face [..., NUM_FACES, 3] on the posed body."""
  local = rotvec_to_matrix(jnp.asarray(pose), xp=jnp)
  return faces.face_points(jnp.asarray(shape), local, jnp.asarray(root), xp=jnp)


def keypoint_fit_loss(shape, pose, root, target, weight=None) -> jax.Array:
  """Mean (weighted) squared distance between the body's COCO-18 keypoints and target [..., 18, 3]."""
  kp = forward_kinematics(shape, pose, root)["keypoints"]
  err = jnp.sum((kp - target) ** 2, axis=-1)
  w = jnp.ones_like(err) if weight is None else jnp.broadcast_to(weight, err.shape)
  return jnp.sum(err * w) / jnp.maximum(jnp.sum(w), 1e-8)
