"""Rotation helpers shared by the numpy renderer and the JAX body model.

Every function takes an array module `xp` (numpy or jax.numpy) so the same code runs in the fast
numpy renderer and in differentiable JAX fitting. Angles are in radians unless a name says `deg`.
"""
import numpy as np

# Reflection through the body's sagittal plane (x = person's right, y = forward, z = up).
MIRROR = np.diag([-1.0, 1.0, 1.0])


def axis_rotation(axis: int, angle, xp=np):
  """Rotation matrices [..., 3, 3] about the x (0), y (1) or z (2) axis by `angle` [...]."""
  angle = xp.asarray(angle)
  c, s = xp.cos(angle), xp.sin(angle)
  o, z = xp.ones_like(angle), xp.zeros_like(angle)
  if axis == 0:
    rows = ((o, z, z), (z, c, -s), (z, s, c))
  elif axis == 1:
    rows = ((c, z, s), (z, o, z), (-s, z, c))
  elif axis == 2:
    rows = ((c, -s, z), (s, c, z), (z, z, o))
  else:
    raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
  return xp.stack([xp.stack(r, axis=-1) for r in rows], axis=-2)


def rot_deg(axis: int, degrees) -> np.ndarray:
  """numpy rotation about a body axis by an angle in degrees (scalar or [T])."""
  return axis_rotation(axis, np.deg2rad(np.asarray(degrees, np.float64)))


def mirror(rot: np.ndarray) -> np.ndarray:
  """The left-side rotation matching a right-side one: M R M with M the sagittal reflection."""
  return MIRROR @ rot @ MIRROR


def rotvec_to_matrix(rotvec, xp=np):
  """Rodrigues' formula, [..., 3] axis-angle -> [..., 3, 3]; smooth (differentiable) at zero."""
  theta2 = xp.sum(rotvec * rotvec, axis=-1, keepdims=True)
  theta = xp.sqrt(theta2 + 1e-12)
  k = rotvec / theta
  kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
  zero = xp.zeros_like(kx)
  cross = xp.stack([
      xp.stack([zero, -kz, ky], axis=-1),
      xp.stack([kz, zero, -kx], axis=-1),
      xp.stack([-ky, kx, zero], axis=-1)], axis=-2)
  s = xp.sin(theta)[..., None]
  c = xp.cos(theta)[..., None]
  eye = xp.eye(3, dtype=rotvec.dtype)
  return eye + s * cross + (1.0 - c) * (cross @ cross)


def matrix_to_rotvec(rot: np.ndarray) -> np.ndarray:
  """numpy inverse of `rotvec_to_matrix` ([..., 3, 3] -> [..., 3])."""
  from scipy.spatial.transform import Rotation
  shape = rot.shape[:-2]
  flat = Rotation.from_matrix(rot.reshape(-1, 3, 3)).as_rotvec()
  return flat.reshape(shape + (3,))
