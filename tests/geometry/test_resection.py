"""Cameras from correspondences: resection of a known camera from noisy 3D-2D points with
mislabelled ones, and the rigid motion between two frames from points with outliers; checked
against OpenCV's own resection (cv2.calibrateCamera with the same points)."""
import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from psrjax.geometry import resection
from psrjax.geometry.calibration import Camera


@pytest.fixture
def camera():
  R = Rotation.from_rotvec([0.1, -0.4, 0.05]).as_matrix()
  return Camera("c", (1920, 1080), [[1060.0, 0, 955], [0, 1058.0, 540], [0, 0, 1]], [], R,
                [0.1, -0.2, 3.0])


def test_resection_recovers_the_camera_despite_noise_and_mislabelled_points(camera):
  rng = np.random.default_rng(0)
  X = rng.normal(0, 0.5, (300, 3))
  x = camera.project(X) + rng.normal(0, 0.5, (300, 2))
  x[:15] += rng.normal(0, 60, (15, 2))                   # joints a tracker put elsewhere
  got = resection.resect(X, x, camera.size)
  np.testing.assert_allclose(got.K, camera.K, atol=3.0)
  np.testing.assert_allclose(got.R, camera.R, atol=2e-3)
  np.testing.assert_allclose(got.center, camera.center, atol=5e-3)
  assert got.K[0, 1] == 0 and np.linalg.det(got.R) > 0
  err = np.linalg.norm(got.project(X[15:]) - x[15:], axis=-1)
  flags = (cv2.CALIB_USE_INTRINSIC_GUESS | cv2.CALIB_ZERO_TANGENT_DIST | cv2.CALIB_FIX_K1
           | cv2.CALIB_FIX_K2 | cv2.CALIB_FIX_K3)
  rms, K, *_ = cv2.calibrateCamera([X[15:].astype(np.float32)], [x[15:].astype(np.float32)],
                                   camera.size, camera.K.copy(), np.zeros(5), flags=flags)
  assert np.sqrt(np.mean(err ** 2)) < rms * 1.05        # as good as OpenCV's refinement
  np.testing.assert_allclose(got.K, K, atol=3.0)


def test_decompose_splits_a_scaled_negated_projection(camera):
  K, R, t = resection.decompose(-3.0 * camera.projection)
  np.testing.assert_allclose(K, camera.K, atol=1e-8)
  np.testing.assert_allclose(R, camera.R, atol=1e-10)
  np.testing.assert_allclose(t, camera.t, atol=1e-10)


def test_rigid_transform_ignores_the_worst_points():
  rng = np.random.default_rng(1)
  R = Rotation.from_rotvec([0.3, 1.2, -0.2]).as_matrix()
  src = rng.normal(0, 0.5, (200, 3))
  dst = src @ R.T + [1.0, 2.0, 3.0] + rng.normal(0, 0.005, (200, 3))
  dst[:20] += rng.normal(0, 0.3, (20, 3))
  src[25] = np.nan
  got_R, got_t = resection.rigid_transform(src, dst)
  np.testing.assert_allclose(got_R, R, atol=3e-3)
  np.testing.assert_allclose(got_t, [1.0, 2.0, 3.0], atol=3e-3)
  with pytest.raises(ValueError, match="at least 3"):
    resection.rigid_transform(src[:2], dst[:2])
  with pytest.raises(ValueError, match="at least 6"):
    resection.dlt_projection(src[:5], dst[:5, :2])
