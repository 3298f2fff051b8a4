"""The motion geometry of the First Order Motion Model (Siarohin et al., NeurIPS 2019): keypoint
heatmaps, the first-order sparse motions (Eq. 4), warping by normalised grids, and the random
thin-plate-spline transforms of the equivariance losses (Sec. 3.3).

Followed from the official code (AliaksandrSiarohin/first-order-model at c0274845, file and
lines there):

- Coordinates are normalised (x, y) in [-1, 1], x first (`coordinate_grid`, modules/util.py
  L33-L49): -1 and 1 are the CENTRES of the first and last pixel of a row or column. Warping
  follows grid_sample with align_corners=True, the only behaviour of the torch 1.0 the code was
  written and its checkpoints trained for (its requirements.txt pinned torch==1.0.0 until a
  later dependency update to 1.12.1, whose grid_sample defaults to align_corners=False and
  shifts every warp by half a pixel). `deform` converts a grid with `from_normalized(...,
  align_corners=True)` and reads it with psrjax's one sampler, `bilinear_sample`.
- `keypoint_heatmaps` (util.py `kp2gaussian`, L9-L30): exp(-|z - p_k|^2 / (2 variance)) over the
  grid, one unnormalised Gaussian per keypoint.
- `heatmap_difference` (dense_motion.py L32-L45, Eq. 6): driving minus source heatmaps, with an
  all-zero channel 0 for the background.
- `sparse_motions` (dense_motion.py L47-L67, Eq. 4): for each keypoint k the motion
  z -> p_k(S) + J_k(S) J_k(D)^-1 (z - p_k(D)) of every driving-frame position z (without
  Jacobians: z - p_k(D) + p_k(S)), preceded by the identity motion of the background.
- The random transform (model.py `Transform`, L71-L120): an affine map theta = [I | 0] + N(0,
  sigma_affine^2) per example, plus a thin-plate-spline term on a points x points grid of control
  points c_p with weights w_p ~ N(0, sigma_tps^2). As the official code, and unlike the textbook
  spline, the distance is the L1 norm r_p = |x - c_p|_1, and the spline is ONE scalar field
  sum_p w_p r_p^2 log(r_p + 1e-6) added to both coordinates. Images are warped with reflection
  padding (its `transform_frame`). Its Jacobian (the code differentiates with autograd.grad) is
  `jax.jacfwd` of the per-point map here.

Layouts: keypoint values `[..., K, 2]` and Jacobians `[..., K, 2, 2]` (float32; J[i, j] = d
out_i / d in_j); heatmaps channels-last `[..., H, W, K]`; sparse motions one grid per keypoint
`[B, K + 1, H, W, 2]`. All geometry is float32 (`float32_geometry`); warped images are in the
image's floating dtype.
"""
from __future__ import annotations

import math
from typing import Mapping

import jax
import jax.numpy as jnp

from psrjax.geometry.sampler import bilinear_sample, from_normalized
from psrjax.nn.policy import float32_geometry

DEFORM_PADDINGS = ("zeros", "border", "reflection")
_TPS_LOG_EPS = 1e-6   # model.py L108: log(r + 1e-6)


def _axis(n: int) -> jax.Array:
  """n positions from -1 to 1, computed as util.py L41-L42 (2 (i / (n - 1)) - 1); one position
  (where the official code divides by zero) is -1."""
  return 2.0 * (jnp.arange(n, dtype=jnp.float32) / max(n - 1, 1)) - 1.0


def coordinate_grid(height: int, width: int) -> jax.Array:
  """`[H, W, 2]` normalised (x, y): grid[i, j] = (2 j / (W - 1) - 1, 2 i / (H - 1) - 1)."""
  ys, xs = jnp.meshgrid(_axis(height), _axis(width), indexing="ij")
  return jnp.stack([xs, ys], axis=-1)


@float32_geometry
def keypoint_heatmaps(kp, height: int, width: int, variance: float) -> jax.Array:
  """Gaussians exp(-|z - p_k|^2 / (2 variance)) `[..., H, W, K]` float32 for keypoints `kp`
  `[..., K, 2]` (a value array or a keypoint dict with "value")."""
  value = _value(kp)
  grid = coordinate_grid(height, width)                               # [H, W, 2]
  diff = grid[..., None, :] - value[..., None, None, :, :]            # [..., H, W, K, 2]
  return jnp.exp(-0.5 * jnp.sum(jnp.square(diff), axis=-1) / variance)


@float32_geometry
def heatmap_difference(kp_source, kp_driving, height: int, width: int,
                       variance: float) -> jax.Array:
  """Eq. 6's H_k: driving minus source heatmaps `[..., H, W, K + 1]`, channel 0 (the
  background) zero."""
  diff = (keypoint_heatmaps(kp_driving, height, width, variance)
          - keypoint_heatmaps(kp_source, height, width, variance))
  return jnp.concatenate([jnp.zeros_like(diff[..., :1]), diff], axis=-1)


def inverse2(m: jax.Array) -> jax.Array:
  """The inverses of 2x2 matrices `[..., 2, 2]` (adjugate / determinant, elementwise: no
  linear-algebra call, and exact float32 on accelerators whose matrix units round)."""
  a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
  adjugate = jnp.stack([jnp.stack([d, -b], -1), jnp.stack([-c, a], -1)], -2)
  return adjugate / (a * d - b * c)[..., None, None]


def matmul2(a: jax.Array, b: jax.Array) -> jax.Array:
  """a @ b for small matrices `[..., n, m]` x `[..., m, p]`, elementwise in their dtype."""
  return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


@float32_geometry
def sparse_motions(kp_source: Mapping, kp_driving: Mapping, height: int,
                   width: int) -> jax.Array:
  """Eq. 4: `[B, K + 1, H, W, 2]` normalised source positions for every driving position:
  channel 0 the identity (background), channel k + 1 keypoint k's first-order motion (module
  docstring). Keypoint dicts hold "value" `[B, K, 2]` and optionally "jacobian" `[B, K, 2, 2]`
  (used when the driving dict has one, as the official code)."""
  grid = coordinate_grid(height, width)
  p_s, p_d = _value(kp_source), _value(kp_driving)
  z = grid - p_d[:, :, None, None, :]                                  # [B, K, H, W, 2]
  if "jacobian" in kp_driving:
    jac = matmul2(jnp.asarray(kp_source["jacobian"], jnp.float32),
                  inverse2(jnp.asarray(kp_driving["jacobian"], jnp.float32)))
    z = jnp.sum(jac[:, :, None, None] * z[..., None, :], axis=-1)       # J z per position
  moved = z + p_s[:, :, None, None, :]
  identity = jnp.broadcast_to(grid, (moved.shape[0], 1) + grid.shape)
  return jnp.concatenate([identity, moved], axis=1)


@float32_geometry
def _reflect(positions: jax.Array, height: int, width: int) -> jax.Array:
  """Pixel positions reflected into [0, W - 1] x [0, H - 1] about the corner pixel centres
  (grid_sample's padding_mode="reflection" with align_corners=True)."""
  span = jnp.array([width - 1, height - 1], jnp.float32)
  period = jnp.maximum(2.0 * span, 1.0)
  p = jnp.mod(jnp.abs(positions), period)
  return jnp.where(span > 0, jnp.where(p > span, period - p, p), 0.0)


def deform(image, grid, *, padding: str = "zeros") -> jax.Array:
  """grid_sample(image, grid) with align_corners=True: image `[..., H, W, C]` read at the
  normalised (x, y) of `grid` `[..., H', W', 2]` (same leading axes) -> `[..., H', W', C]`.

  padding: "zeros" (the networks' warps), "border", or "reflection" (the random transform's).
  """
  if padding not in DEFORM_PADDINGS:
    raise ValueError(f"padding={padding!r} is not one of {', '.join(map(repr, DEFORM_PADDINGS))}")
  image = jnp.asarray(image)
  h, w = image.shape[-3:-1]
  positions = from_normalized(grid, h, w, align_corners=True)
  if padding == "reflection":
    positions, padding = _reflect(positions, h, w), "border"
  return bilinear_sample(image, positions, padding=padding)


# ----------------------------------------------------------------------------- random TPS
def tps_parameters(theta, control_params=None, *, points: int = 5) -> dict:
  """A transform's parameters: "theta" `[B, 2, 3]` (affine), "control_points" `[P, 2]` (the
  points x points grid, `coordinate_grid`) and "control_params" `[B, P]` (the spline weights,
  the same on both axes as the official transform's; `[B, P, 2]`: one per axis, as `fit_tps`
  gives; zeros when None: the affine map alone)."""
  theta = jnp.asarray(theta, jnp.float32)
  control_points = coordinate_grid(points, points).reshape(-1, 2)
  if control_params is None:
    control_params = jnp.zeros((theta.shape[0], control_points.shape[0]), jnp.float32)
  control_params = jnp.asarray(control_params, jnp.float32)
  if control_params.shape[:2] != (theta.shape[0], control_points.shape[0]) or (
      control_params.shape[2:] not in ((), (2,))):
    raise ValueError(f"control_params must be [B, points^2] = {(theta.shape[0], points ** 2)} "
                     f"(or [B, points^2, 2], one weight per axis); got {control_params.shape}")
  return {"theta": theta, "control_points": control_points, "control_params": control_params}


def random_tps(key: jax.Array, batch_size: int, *, sigma_affine: float = 0.05,
               sigma_tps: float = 0.005, points: int = 5) -> dict:
  """A random transform per example (model.py L75-L87): theta = [I | 0] + sigma_affine N(0, 1),
  spline weights sigma_tps N(0, 1) (the paper's 0.05, 0.005 and 5 x 5 points)."""
  k_affine, k_tps = jax.random.split(key)
  noise = sigma_affine * jax.random.normal(k_affine, (batch_size, 2, 3), jnp.float32)
  weights = sigma_tps * jax.random.normal(k_tps, (batch_size, points * points), jnp.float32)
  return tps_parameters(jnp.eye(2, 3, dtype=jnp.float32) + noise, weights, points=points)


def _tps_point(theta, control_points, control_params, z):
  """One example's transform of one normalised point z `[2]` (module docstring)."""
  affine = jnp.sum(theta[:, :2] * z, axis=-1) + theta[:, 2]
  r = jnp.sum(jnp.abs(z - control_points), axis=-1)                     # [P], L1 distances
  basis = jnp.square(r) * jnp.log(r + _TPS_LOG_EPS)
  if control_params.ndim == 2:                                          # [P, 2]: per axis
    return affine + jnp.sum(control_params * basis[:, None], axis=0)
  return affine + jnp.sum(control_params * basis)


def fit_tps(targets, *, points: int = 5) -> dict:
  """The thin-plate spline (Bookstein 1989, with the official transform's basis U(r) = r^2
  log r of the L1 distance r) that maps the points x points control grid onto `targets`
  `[B, points^2, 2]` (normalised coordinates): the affine part and per-axis weights solving
  [[K, P], [P^T, 0]] [w; a] = [targets; 0] with K_ij = U(|c_i - c_j|), P_i = [c_i, 1]."""
  targets = jnp.asarray(targets, jnp.float32)
  control_points = coordinate_grid(points, points).reshape(-1, 2)
  n = control_points.shape[0]
  if targets.shape[1:] != (n, 2):
    raise ValueError(f"fit_tps: targets must be [B, {n}, 2] for {points} x {points} control "
                     f"points; got {targets.shape}")
  r = jnp.sum(jnp.abs(control_points[:, None] - control_points[None]), axis=-1)
  kernel = jnp.square(r) * jnp.log(r + _TPS_LOG_EPS)
  p = jnp.concatenate([control_points, jnp.ones((n, 1), jnp.float32)], axis=1)
  system = jnp.block([[kernel, p], [p.T, jnp.zeros((3, 3), jnp.float32)]])
  rhs = jnp.concatenate([targets, jnp.zeros((targets.shape[0], 3, 2), jnp.float32)], axis=1)
  solution = jnp.linalg.solve(system[None], rhs)                        # [B, n + 3, 2]
  weights, affine = solution[:, :n], solution[:, n:]                    # affine rows: x, y, 1
  theta = jnp.swapaxes(affine, 1, 2)                                    # [B, 2, 3]
  return tps_parameters(theta, weights, points=points)


def _per_point(fn, tps: Mapping, coordinates):
  """`fn(theta, control_points, control_params, z)` over coordinates `[B or 1, ..., 2]`, by
  example and point -> `[B, ..., *out]`."""
  c = jnp.asarray(coordinates, jnp.float32)
  batch = tps["theta"].shape[0]
  flat = jnp.broadcast_to(c.reshape(c.shape[0], -1, 2), (batch, math.prod(c.shape[1:-1]), 2))
  per_example = jax.vmap(fn, in_axes=(None, None, None, 0))
  out = jax.vmap(per_example, in_axes=(0, None, 0, 0))(
      tps["theta"], tps["control_points"], tps["control_params"], flat)
  return out.reshape((batch,) + c.shape[1:-1] + out.shape[2:])


@float32_geometry
def tps_warp_coordinates(tps: Mapping, coordinates) -> jax.Array:
  """The transform of normalised points `[B or 1, ..., 2]` -> `[B, ..., 2]` (model.py L95-L113)."""
  return _per_point(_tps_point, tps, coordinates)


@float32_geometry
def tps_jacobian(tps: Mapping, coordinates) -> jax.Array:
  """d transform / d point at points `[B or 1, ..., 2]` -> `[B, ..., 2, 2]`, J[i, j] = d out_i /
  d in_j (model.py L115-L120)."""
  return _per_point(jax.jacfwd(_tps_point, argnums=3), tps, coordinates)


def tps_warp_image(tps: Mapping, image) -> jax.Array:
  """The image `[B, H, W, C]` seen through the transform: out(z) = image(T(z)) with reflection
  padding (model.py `transform_frame`, L89-L93)."""
  image = jnp.asarray(image)
  h, w = image.shape[-3:-1]
  grid = tps_warp_coordinates(tps, coordinate_grid(h, w)[None])         # [B, H, W, 2]
  return deform(image, grid, padding="reflection")


def _value(kp) -> jax.Array:
  value = kp["value"] if isinstance(kp, Mapping) else kp
  return jnp.asarray(value, jnp.float32)
