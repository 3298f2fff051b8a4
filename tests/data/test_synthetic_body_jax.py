"""The JAX body model matches the numpy renderer and is differentiable (for fitting)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax

import psrjax.data.synthetic as S
from psrjax.data.synthetic import body, faces, jax_body, keypoints, motion
from psrjax.data.synthetic.rotations import matrix_to_rotvec


def _motion(seed=4, action="throw", frames=3):
  person = S.make_identity(seed)
  mot = motion.place_action(person.shape, action, np.arange(frames) / 15.0, heading_deg=30.0)
  return person, mot


def test_jax_matches_numpy():
  person, mot = _motion()
  out = jax.jit(jax_body.forward_kinematics)(person.shape, matrix_to_rotvec(mot.local_rot), mot.root_pos)
  posed = motion.pose_body(person.shape, mot)
  np.testing.assert_allclose(out["joints"], posed.joint_pos, atol=1e-5)
  np.testing.assert_allclose(out["prim_rot"], posed.prim_rot, atol=1e-5)
  np.testing.assert_allclose(out["prim_center"], posed.prim_center, atol=1e-5)
  kp = keypoints.keypoints_3d(posed.joint_pos, posed.prim_rot, posed.prim_center, posed.rest)
  np.testing.assert_allclose(out["keypoints"], kp, atol=1e-5)
  surf = jax.jit(jax_body.surface_points)(person.shape, matrix_to_rotvec(mot.local_rot[:1]), mot.root_pos[:1])
  np.testing.assert_allclose(surf[0], faces.face_points(person.shape, mot.local_rot[:1], mot.root_pos[:1])[0],
                             atol=1e-5)


def test_rest_surface_matches_face_centroids():
  _, root = body.rest_pose(body.DEFAULT_SHAPE)
  surf = jax.jit(jax_body.surface_points)(body.DEFAULT_SHAPE, jnp.zeros((body.NUM_JOINTS, 3)), root)
  np.testing.assert_allclose(surf, S.FACE_CENTROIDS, atol=1e-5)


def test_fit_pose_and_shape_to_keypoints():
  person, mot = _motion(frames=1)
  posed = motion.pose_body(person.shape, mot)
  target = keypoints.keypoints_3d(posed.joint_pos, posed.prim_rot, posed.prim_center, posed.rest)
  params = dict(shape=jnp.asarray(S.DEFAULT_SHAPE, jnp.float32),
                pose=jnp.zeros((1, body.NUM_JOINTS, 3)) + 1e-3, root=jnp.asarray(mot.root_pos, jnp.float32))
  loss = lambda p: jax_body.keypoint_fit_loss(p["shape"], p["pose"], p["root"], target)
  opt = optax.adam(0.03)

  @jax.jit
  def step(p, s):
    l, g = jax.value_and_grad(loss)(p)
    u, s = opt.update(g, s)
    return optax.apply_updates(p, u), s, l, g

  state = opt.init(params)
  params, state, first, grads = step(params, state)
  assert all(bool(jnp.isfinite(g).all()) and float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))
  for _ in range(150):
    params, state, last, _ = step(params, state)
  assert float(last) < 0.05 * float(first)
