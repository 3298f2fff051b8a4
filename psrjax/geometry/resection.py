"""Cameras from correspondences: resection from 3D-2D points and rigid alignment of 3D point sets.

Datasets recorded with depth sensors (NTU RGB+D's Kinects) publish no calibration but give, per
camera, every skeleton joint both in the sensor's metric 3D frame and in pixels of its colour
and depth images. That fixes each image's camera in the sensor's frame (`resect`), and the same
joints seen by two sensors at the same instants fix the rigid motion between their frames
(`rigid_transform`).

- `resect`: the direct linear transform of 3D-2D correspondences with Hartley's normalisation
  (Hartley & Zisserman, Multiple View Geometry, 2nd ed., Alg. 7.1), P = K [R | t] split by an RQ
  decomposition (Sec. 6.2.4) with a positive focal length and det R = +1, the skew set to 0,
  then R and t refined by Levenberg-Marquardt on the reprojection error with K fixed
  (cv2.solvePnP, iterative); the points with the largest errors (beyond 3 x the median and
  2 px) are dropped once and the camera re-estimated, since skeleton trackers mislabel joints.
- `rigid_transform`: the least-squares rotation and translation between corresponding points
  (Kabsch 1976; Umeyama 1991 without scale), refit on the `keep` fraction of the points with
  the smallest residuals, `iterations` times, for the same reason.
Conventions: `calibration.Camera`'s (world -> camera, pixel centres at integers).
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy import linalg

from psrjax.geometry.calibration import Camera


def _normalizer(points: np.ndarray) -> np.ndarray:
  """The similarity that moves `points` [N, D] to their centroid with mean distance sqrt(D)."""
  d = points.shape[1]
  centre = points.mean(0)
  scale = np.sqrt(d) / max(np.linalg.norm(points - centre, axis=1).mean(), 1e-12)
  T = np.eye(d + 1)
  T[:d, :d] *= scale
  T[:d, d] = -scale * centre
  return T


def dlt_projection(points3d, pixels) -> np.ndarray:
  """[3, 4] projection matrix of at least 6 correspondences (normalised DLT)."""
  X, x = np.asarray(points3d, np.float64), np.asarray(pixels, np.float64)
  if len(X) < 6 or X.shape[1:] != (3,) or x.shape != (len(X), 2):
    raise ValueError(f"resection needs at least 6 points [N, 3] with pixels [N, 2]; got "
                     f"{X.shape}, {x.shape}")
  T3, T2 = _normalizer(X), _normalizer(x)
  Xn = np.c_[X, np.ones(len(X))] @ T3.T
  xn = np.c_[x, np.ones(len(x))] @ T2.T
  rows = np.zeros((2 * len(X), 12))
  rows[0::2, 4:8], rows[0::2, 8:] = -Xn, xn[:, 1:2] * Xn
  rows[1::2, 0:4], rows[1::2, 8:] = Xn, -xn[:, 0:1] * Xn
  P = np.linalg.svd(rows)[2][-1].reshape(3, 4)
  return np.linalg.inv(T2) @ P @ T3


def decompose(P) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(K with K[2, 2] = 1 and positive diagonal, R with det +1, t) of P = s K [R | t], the sign
  chosen so that the points' side of the camera is its front."""
  P = np.asarray(P, np.float64)
  M = P[:, :3]
  if np.linalg.det(M) < 0:
    P, M = -P, -M
  K, R = linalg.rq(M)
  signs = np.diag(np.sign(np.diag(K)))
  K, R = K @ signs, signs @ R
  t = np.linalg.solve(K, P[:, 3])
  return K / K[2, 2], R, t


def _refine(X, x, K) -> tuple[np.ndarray, np.ndarray]:
  """(R, t) minimising the reprojection error of X -> x with K fixed (cv2.solvePnP)."""
  ok, rvec, tvec = cv2.solvePnP(X, x, K, None, flags=cv2.SOLVEPNP_EPNP)
  if not ok:
    raise ValueError("cv2.solvePnP found no pose for the correspondences")
  ok, rvec, tvec = cv2.solvePnP(X, x, K, None, rvec, tvec, useExtrinsicGuess=True,
                                flags=cv2.SOLVEPNP_ITERATIVE)
  return cv2.Rodrigues(rvec)[0], tvec.reshape(3)


def _camera(X, x, size, name: str) -> Camera:
  K, _, _ = decompose(dlt_projection(X, x))
  K[0, 1] = 0.0                                 # zero skew, as every calibration tool writes
  R, t = _refine(X, x, K)
  return Camera(name, size, K, np.zeros(0), R, t)


def resect(points3d, pixels, size, name: str = "camera") -> Camera:
  """The pinhole camera (no distortion) of an image of `size` (width, height) that sees
  points3d [N, 3] at pixels [N, 2] (module docstring); NaN rows are ignored."""
  X, x = np.asarray(points3d, np.float64), np.asarray(pixels, np.float64)
  ok = np.all(np.isfinite(X), axis=-1) & np.all(np.isfinite(x), axis=-1)
  X, x = X[ok], x[ok]
  camera = _camera(X, x, size, name)
  err = np.linalg.norm(camera.project(X) - x, axis=-1)
  inliers = err <= max(3.0 * np.median(err), 2.0)
  if inliers.sum() >= 6 and not inliers.all():
    camera = _camera(X[inliers], x[inliers], size, name)
  return camera


def rigid_transform(source, target, *, keep: float = 0.8,
                    iterations: int = 3) -> tuple[np.ndarray, np.ndarray]:
  """(R [3, 3], t [3]) with target ~ R source + t for corresponding points [N, 3] (NaN rows
  ignored; module docstring)."""
  src, dst = np.asarray(source, np.float64), np.asarray(target, np.float64)
  ok = np.all(np.isfinite(src), axis=-1) & np.all(np.isfinite(dst), axis=-1)
  src, dst = src[ok], dst[ok]
  if len(src) < 3:
    raise ValueError(f"rigid alignment needs at least 3 corresponding points; got {len(src)}")
  use = np.ones(len(src), bool)
  for _ in range(max(1, iterations)):
    a, b = src[use], dst[use]
    ca, cb = a.mean(0), b.mean(0)
    u, _, vt = np.linalg.svd((a - ca).T @ (b - cb))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    R = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    t = cb - R @ ca
    residual = np.linalg.norm(src @ R.T + t - dst, axis=-1)
    use = residual <= np.quantile(residual, keep)
  return R, t
