"""The camera model against OpenCV (projection, point and image undistortion, Rodrigues), resized
and cropped cameras against cv2.resize and array crops, the Pose2Sim TOML and OpenCV
FileStorage readers, and the check that cameras face the scene."""
import dataclasses

import cv2
import numpy as np
import pytest

from psrjax.data.synthetic.cameras import camera_ring
from psrjax.geometry.calibration import (Camera, check_cameras_face_scene, read_calibration,
                                         read_opencv_yaml, read_toml, undistort_image,
                                         undistortion_maps, write_toml)

DISTORTIONS = {
    4: lambda rng: [rng.uniform(-0.3, 0.3), rng.uniform(-0.1, 0.1), *rng.uniform(-2e-3, 2e-3, 2)],
    5: lambda rng: [*DISTORTIONS[4](rng), rng.uniform(-0.05, 0.05)],
    8: lambda rng: [*DISTORTIONS[5](rng), *rng.uniform(-0.05, 0.05, 3)],
    12: lambda rng: [*DISTORTIONS[8](rng), *rng.uniform(-1e-3, 1e-3, 4)],
}


def _random_camera(rng, n_dist=5, fisheye=False, size=(640, 480)):
  f = rng.uniform(400, 900)
  K = [[f * rng.uniform(0.95, 1.05), 0, size[0] / 2 + rng.uniform(-20, 20)],
       [0, f, size[1] / 2 + rng.uniform(-20, 20)], [0, 0, 1]]
  dist = rng.uniform(-0.05, 0.05, 4) if fisheye else DISTORTIONS[n_dist](rng)
  return Camera.from_rvec("cam", size, K, dist, rng.uniform(-1.5, 1.5, 3),
                          rng.uniform(-1, 1, 3), fisheye)


def _points_in_view(rng, cam, n=200, spread=0.6):
  """World points whose normalised coordinates lie within +-spread, 1 to 5 units deep."""
  z = rng.uniform(1, 5, n)
  xy = rng.uniform(-spread, spread, (n, 2)) * z[:, None]
  return (np.concatenate([xy, z[:, None]], -1) - cam.t) @ cam.R


@pytest.mark.parametrize("n_dist", [4, 5, 8, 12])
def test_project_matches_cv2_project_points(n_dist):
  rng = np.random.default_rng(n_dist)
  for _ in range(5):
    cam = _random_camera(rng, n_dist)
    pts = _points_in_view(rng, cam)
    want, _ = cv2.projectPoints(pts, cam.rvec, cam.t, cam.K, cam.dist)
    np.testing.assert_allclose(cam.project(pts), want[:, 0], atol=1e-6)
    np.testing.assert_allclose(cam.depth(pts), (pts @ cam.R.T + cam.t)[:, 2])
  grid = cam.project(pts.reshape(10, 20, 3))                       # leading axes
  np.testing.assert_allclose(grid.reshape(-1, 2), cam.project(pts))


def test_fisheye_matches_cv2_fisheye():
  rng = np.random.default_rng(7)
  for _ in range(5):
    cam = _random_camera(rng, fisheye=True)
    pts = _points_in_view(rng, cam, spread=1.0)                    # up to ~55 degrees off axis
    want, _ = cv2.fisheye.projectPoints(pts[:, None], cam.rvec, cam.t, cam.K, cam.dist)
    pix = cam.project(pts)
    np.testing.assert_allclose(pix, want[:, 0], atol=1e-6)
    want = cv2.fisheye.undistortPoints(pix[:, None], cam.K, cam.dist, P=cam.K)[:, 0]
    np.testing.assert_allclose(cam.undistort_points(pix), want, atol=1e-6)
    pinhole = dataclasses.replace(cam, dist=(), fisheye=False).project(pts)
    np.testing.assert_allclose(cam.undistort_points(pix), pinhole, atol=1e-6)


@pytest.mark.parametrize("n_dist", [5, 8, 12])
def test_undistort_points_matches_cv2_undistort_points(n_dist):
  rng = np.random.default_rng(10 + n_dist)
  for _ in range(5):
    cam = _random_camera(rng, n_dist)
    pix = rng.uniform([0, 0], cam.size, (300, 2))
    for iterations in (5, 20):
      criteria = (cv2.TERM_CRITERIA_COUNT, iterations, 0.0)
      want = cv2.undistortPoints(pix[:, None], cam.K, cam.dist, P=cam.K, criteria=criteria)
      np.testing.assert_allclose(cam.undistort_points(pix, iterations), want[:, 0], atol=1e-6)
    default = cv2.undistortPoints(pix[:, None], cam.K, cam.dist, P=cam.K)[:, 0]   # 5 steps
    np.testing.assert_allclose(cam.undistort_points(pix, 5), default, atol=1e-6)
  # Where the radial factor turns negative OpenCV leaves the point undistorted, as here.
  cam = Camera("strong", (640, 480), [[200, 0, 320], [0, 200, 240], [0, 0, 1]], [-0.9, 0, 0, 0],
               np.eye(3), np.zeros(3))
  pix = np.array([[620.0, 240.0], [330.0, 250.0], [20.0, 460.0]])
  criteria = (cv2.TERM_CRITERIA_COUNT, 20, 0.0)
  want = cv2.undistortPoints(pix[:, None], cam.K, cam.dist, P=cam.K, criteria=criteria)[:, 0]
  np.testing.assert_allclose(cam.undistort_points(pix), want, atol=1e-6)
  np.testing.assert_allclose(cam.undistort_points(pix)[[0, 2]], pix[[0, 2]], atol=1e-9)
  # Converged, undistorting inverts the distortion: back to the distortion-free projection.
  cam = _random_camera(rng, 5)
  pts = _points_in_view(rng, cam, spread=0.4)
  pinhole = dataclasses.replace(cam, dist=()).project(pts)
  np.testing.assert_allclose(cam.undistort_points(cam.project(pts), 50), pinhole, atol=1e-6)


def test_rodrigues_and_projection_agree_with_cv2():
  rng = np.random.default_rng(3)
  for _ in range(20):
    axis = rng.normal(size=3)
    rvec = axis / np.linalg.norm(axis) * rng.uniform(0.0, np.pi - 0.05)
    cam = Camera.from_rvec("c", (100, 80), np.diag([50.0, 50.0, 1.0]), (), rvec, rng.normal(size=3))
    np.testing.assert_allclose(cam.R, cv2.Rodrigues(rvec)[0], atol=1e-12)
    np.testing.assert_allclose(cam.rvec, cv2.Rodrigues(cam.R)[0][:, 0], atol=1e-9)
    np.testing.assert_allclose(cam.center, -cam.R.T @ cam.t)
    np.testing.assert_allclose(cam.depth(cam.center), 0.0, atol=1e-12)
    pts = rng.normal(size=(10, 3))
    h = np.concatenate([pts, np.ones((10, 1))], -1) @ cam.projection.T
    np.testing.assert_allclose(h[:, :2] / h[:, 2:], cam.project(pts), rtol=1e-9, atol=1e-9)


def _smooth_image(h, w):
  ys, xs = np.mgrid[:h, :w].astype(np.float32)
  return np.stack([np.sin(xs / 9.0) * np.cos(ys / 7.0), np.cos((xs + 2 * ys) / 11.0), xs / w], -1)


def test_undistort_image_matches_cv2_undistort():
  rng = np.random.default_rng(4)
  cam = _random_camera(rng, 5, size=(160, 120))
  cam = dataclasses.replace(cam, dist=[-0.25, 0.08, 1e-3, -1e-3, -0.02])
  want_x, want_y = cv2.initUndistortRectifyMap(cam.K, cam.dist, None, cam.K, cam.size, cv2.CV_32FC1)
  map_x, map_y = undistortion_maps(cam)
  np.testing.assert_allclose(map_x, want_x, atol=2e-3)
  np.testing.assert_allclose(map_y, want_y, atol=2e-3)
  image = _smooth_image(120, 160)
  ours = undistort_image(image, cam)
  want = cv2.undistort(image, cam.K, cam.dist)        # fixed-point maps: 1/32 pixel steps
  inside = (map_x > 1) & (map_x < 158) & (map_y > 1) & (map_y < 118)
  assert inside.mean() > 0.8
  np.testing.assert_allclose(ours[inside], want[inside], atol=0.01)
  assert np.abs(ours[inside] - want[inside]).mean() < 2e-3
  # More than 4 channels and uint8 images take the same maps.
  wide = np.concatenate([image, image], -1)
  np.testing.assert_allclose(undistort_image(wide, cam), np.concatenate([ours, ours], -1))
  as_uint8 = undistort_image((image[..., 0] * 100 + 120).astype(np.uint8), cam)
  assert as_uint8.dtype == np.uint8 and as_uint8.shape == (120, 160)
  with pytest.raises(ValueError, match="scale or crop the camera"):
    undistort_image(image[:100], cam)


def test_fisheye_undistort_image_matches_cv2():
  rng = np.random.default_rng(5)
  cam = _random_camera(rng, fisheye=True, size=(160, 120))
  map_x, map_y = undistortion_maps(cam)
  want_x, want_y = cv2.fisheye.initUndistortRectifyMap(cam.K, cam.dist, np.eye(3), cam.K,
                                                        cam.size, cv2.CV_32FC1)
  np.testing.assert_allclose(map_x, want_x, atol=2e-3)
  np.testing.assert_allclose(map_y, want_y, atol=2e-3)
  image = _smooth_image(120, 160)
  want = cv2.fisheye.undistortImage(image, cam.K, cam.dist, Knew=cam.K)
  inside = (map_x > 1) & (map_x < 158) & (map_y > 1) & (map_y < 118)
  np.testing.assert_allclose(undistort_image(image, cam)[inside], want[inside], atol=0.01)


def _blob(size, centre, sigma=3.0):
  ys, xs = np.mgrid[:size[1], :size[0]].astype(np.float64)
  return np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma ** 2))


def _centroid(image):
  ys, xs = np.mgrid[:image.shape[0], :image.shape[1]]
  return np.array([(xs * image).sum(), (ys * image).sum()]) / image.sum()


def _points_at_pixels(cam, pixels, depth):
  """World points that `cam` sees at `pixels` [N, 2], `depth` in front of it."""
  undistorted = cam.undistort_points(pixels, iterations=50)
  xy = (undistorted - cam.K[:2, 2]) / np.diag(cam.K)[:2]
  return (np.concatenate([xy, np.ones((len(xy), 1))], -1) * depth - cam.t) @ cam.R


def test_scaled_and_cropped_cameras_follow_the_resized_and_cropped_images():
  rng = np.random.default_rng(6)
  cam = _random_camera(rng, 5, size=(240, 180))
  pts = _points_at_pixels(cam, rng.uniform([40, 30], [200, 150], (6, 2)), 2.0)
  np.testing.assert_allclose(cam.depth(pts), 2.0)
  for (w, h), interp in (((120, 90), cv2.INTER_AREA), ((360, 150), cv2.INTER_LINEAR)):
    small = cam.scaled(w, h)
    assert small.size == (w, h)
    for p in pts:
      resized = cv2.resize(_blob(cam.size, cam.project(p)), (w, h), interpolation=interp)
      np.testing.assert_allclose(_centroid(resized), small.project(p), atol=0.05)
    np.testing.assert_allclose(small.project(pts), (cam.project(pts) + 0.5) * [w / 240, h / 180]
                               - 0.5, atol=1e-9)
    np.testing.assert_allclose(small.undistort_points(small.project(pts)),
                               (cam.undistort_points(cam.project(pts)) + 0.5)
                               * [w / 240, h / 180] - 0.5, atol=1e-9)
  crop = cam.cropped(30, 20, 150, 130)
  assert crop.size == (150, 130)
  for p in pts:
    image = _blob(cam.size, cam.project(p))
    np.testing.assert_allclose(_centroid(image[20:150, 30:180]), crop.project(p), atol=1e-3)
  both = cam.cropped(30, 20, 150, 130).scaled(75, 65)
  np.testing.assert_allclose(both.project(pts), (cam.project(pts) - [30, 20] + 0.5) * 0.5 - 0.5,
                             atol=1e-9)


POSE2SIM_TOML = """\
[cam_01]
name = "cam_01"
size = [ 1088.0, 1920.0]
matrix = [ [ 1681.2, 0.0, 532.9], [ 0.0, 1681.0, 948.1], [ 0.0, 0.0, 1.0]]
distortions = [ -0.0007, 0.0021, 9.5e-06, 1.07e-05]
rotation = [ 1.688, 1.048, -0.419]
translation = [ 0.321, 0.956, 2.890]
fisheye = false

[cam_02]
name = "side"
size = [ 1920.0, 1080.0]
matrix = [ [ 1500.0, 0.0, 959.5], [ 0.0, 1500.0, 539.5], [ 0.0, 0.0, 1.0]]
distortions = [ -0.1, 0.02, 0.0, 0.0, 0.003]
rotation = [ 0.811, -2.197, 1.376]
translation = [ -0.793, 0.322, 4.353]

[metadata]
adjusted = false
error = 0.0
"""


def test_read_pose2sim_toml(tmp_path):
  path = tmp_path / "Calib_scene.toml"
  path.write_text(POSE2SIM_TOML)
  a, b = read_calibration(path)
  assert (a.name, a.size, b.name, b.size) == ("cam_01", (1088, 1920), "side", (1920, 1080))
  np.testing.assert_array_equal(a.K, [[1681.2, 0, 532.9], [0, 1681.0, 948.1], [0, 0, 1]])
  np.testing.assert_array_equal(a.dist, [-0.0007, 0.0021, 9.5e-06, 1.07e-05])
  np.testing.assert_array_equal(b.dist, [-0.1, 0.02, 0.0, 0.0, 0.003])
  np.testing.assert_allclose(a.R, cv2.Rodrigues(np.array([1.688, 1.048, -0.419]))[0], atol=1e-12)
  np.testing.assert_allclose(b.R, cv2.Rodrigues(np.array([0.811, -2.197, 1.376]))[0], atol=1e-12)
  np.testing.assert_array_equal(b.t, [-0.793, 0.322, 4.353])
  assert not a.fisheye and not b.fisheye


def test_toml_round_trip(tmp_path):
  rng = np.random.default_rng(8)
  cams = [dataclasses.replace(_random_camera(rng, 5), name="front"),
          dataclasses.replace(_random_camera(rng, fisheye=True), name="odd name.1")]
  write_toml(cams, tmp_path / "calib.toml")
  back = read_toml(tmp_path / "calib.toml")
  for c, d in zip(cams, back):
    assert (c.name, c.size, c.fisheye) == (d.name, d.size, d.fisheye)
    for field in ("K", "dist", "t"):
      np.testing.assert_array_equal(getattr(c, field), getattr(d, field))
    np.testing.assert_allclose(c.R, d.R, atol=1e-14)
  with pytest.raises(ValueError, match="distinct"):
    write_toml([cams[0], cams[0]], tmp_path / "twice.toml")


@pytest.mark.parametrize("edit,message", [
    (lambda s: "[metadata]\nerror = 0.0\n", "no camera table"),
    (lambda s: s.replace("rotation = [ 1.688, 1.048, -0.419]",
                         "rotation = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]"),
     r"\[cam_01\]: rotation must be 3 values"),
    (lambda s: s.replace("1681.2", "nan"), r"\[cam_01\]: matrix has a non-finite value"),
    (lambda s: s.replace("translation = [ -0.793, 0.322, 4.353]\n", ""),
     r"\[cam_02\]: missing translation"),
    (lambda s: s.replace("[ -0.1, 0.02, 0.0, 0.0, 0.003]", "[ -0.1, 0.02, 0.0]"),
     r"\[cam_02\]: .*takes 0 or 4 or 5 or 8 or 12 distortion coefficients; got 3"),
    (lambda s: s.replace("fisheye = false", 'fisheye = "no"'), "fisheye must be true or false"),
    (lambda s: s.replace("[ 1.688, 1.048, -0.419]", "[ 1.688, 1.048, -0.419"), "not valid TOML"),
    (lambda s: s.replace("[ 0.0, 1681.0, 948.1]", "[ 0.5, 1681.0, 948.1]"), "K must be"),
])
def test_malformed_toml_is_rejected_with_the_fix(tmp_path, edit, message):
  path = tmp_path / "bad.toml"
  path.write_text(edit(POSE2SIM_TOML))
  with pytest.raises(ValueError, match=message):
    read_toml(path)


def test_unknown_suffix_is_rejected(tmp_path):
  with pytest.raises(ValueError, match="unsupported calibration suffix '.txt'"):
    read_calibration(tmp_path / "calib.txt")


def _write_storage(path, entries):
  """Writes {key: value | {key: value}} with cv2.FileStorage (nested dicts as maps)."""
  fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
  def put(key, value):
    if isinstance(value, dict):
      fs.startWriteStruct(key, cv2.FileNode_MAP)
      for k, v in value.items():
        put(k, v)
      fs.endWriteStruct()
    elif isinstance(value, list):
      fs.startWriteStruct(key, cv2.FileNode_SEQ)
      for v in value:
        fs.write("", v)
      fs.endWriteStruct()
    else:
      fs.write(key, value)
  for key, value in entries.items():
    put(key, value)
  fs.release()


@pytest.mark.parametrize("suffix", [".yml", ".xml"])
def test_read_opencv_filestorage_layouts(tmp_path, suffix):
  rng = np.random.default_rng(9)
  a, b = _random_camera(rng, 5), _random_camera(rng, 8, size=(1280, 720))
  single = tmp_path / f"single{suffix}"
  _write_storage(single, {"camera_name": "left", "image_width": 640, "image_height": 480,
                          "camera_matrix": a.K, "distortion_coefficients": a.dist[None],
                          "R": a.R, "T": a.t[:, None]})
  multi = tmp_path / f"multi{suffix}"
  _write_storage(multi, {
      "cam_a": {"K": a.K, "D": a.dist, "rvec": a.rvec[:, None], "tvec": a.t, "size": [640, 480]},
      "cam_b": {"cameraMatrix": b.K, "distCoeffs": b.dist, "rotation": b.R, "translation": b.t,
                "image_width": 1280, "image_height": 720}})
  easymocap = tmp_path / f"intri{suffix}"
  _write_storage(easymocap, {"names": ["1", "2"], "K_1": a.K, "dist_1": a.dist[None],
                             "R_1": a.rvec[:, None], "T_1": a.t[:, None], "K_2": b.K,
                             "dist_2": b.dist[None], "Rot_2": b.R, "T_2": b.t[:, None],
                             "W_2": 1280, "H_2": 720})
  read = {p: read_calibration(p, **kw) for p, kw in
          ((single, {}), (multi, {}), (easymocap, {"image_size": (640, 480)}))}
  assert [c.name for c in read[single]] == ["left"]
  assert [c.name for c in read[multi]] == ["cam_a", "cam_b"]
  assert [c.name for c in read[easymocap]] == ["1", "2"]
  for got, want in ((read[single][0], a), (read[multi][0], a), (read[multi][1], b),
                    (read[easymocap][0], a), (read[easymocap][1], b)):
    assert got.size == want.size
    np.testing.assert_allclose(got.K, want.K)
    np.testing.assert_allclose(got.dist, want.dist)
    np.testing.assert_allclose(got.R, want.R, atol=1e-12)
    np.testing.assert_allclose(got.t, want.t)
  intrinsics_only = tmp_path / f"intrinsics{suffix}"
  _write_storage(intrinsics_only, {"K": a.K, "image_width": 640, "image_height": 480})
  (cam,) = read_opencv_yaml(intrinsics_only)
  assert cam.name == "intrinsics" and cam.dist.size == 0
  np.testing.assert_array_equal(cam.R, np.eye(3))
  np.testing.assert_array_equal(cam.t, np.zeros(3))


def test_malformed_opencv_files_are_rejected(tmp_path):
  K = np.diag([500.0, 500.0, 1.0])
  cases = [({"R": np.eye(3)}, "no camera; expected camera_matrix"),
           ({"K": K}, "no image size; add image_width"),
           ({"K": K, "size": [64, 48], "R": np.ones(4)}, "rotation must be 3x3 or a 3-value"),
           ({"K": K, "size": [64, 48], "T": np.array([0.0, np.inf, 1.0])}, "non-finite"),
           ({"K": K, "size": [64, 48], "D": np.zeros(6)}, "takes 0 or 4 or 5 or 8 or 12")]
  for i, (entries, message) in enumerate(cases):
    path = tmp_path / f"bad{i}.yml"
    _write_storage(path, entries)
    with pytest.raises(ValueError, match=message):
      read_opencv_yaml(path)
  (tmp_path / "broken.yml").write_text("%YAML:1.0\nK: [1, 2\n")
  with pytest.raises(ValueError, match="OpenCV cannot parse it"):
    read_opencv_yaml(tmp_path / "broken.yml")


def test_camera_rejects_bad_values():
  K = np.diag([500.0, 500.0, 1.0])
  with pytest.raises(ValueError, match="'c': R must be a rotation matrix"):
    Camera("c", (64, 48), K, (), np.diag([1.0, 1.0, -1.0]), np.zeros(3))
  with pytest.raises(ValueError, match="fisheye model takes 4 distortion coefficients; got 5"):
    Camera("c", (64, 48), K, np.zeros(5), np.eye(3), np.zeros(3), fisheye=True)
  with pytest.raises(ValueError, match="size must be two positive integers"):
    Camera("c", (64.5, 48), K, (), np.eye(3), np.zeros(3))
  cam = Camera("c", (64, 48), K, (), np.eye(3), np.zeros(3))
  with pytest.raises(ValueError, match="read-only"):
    cam.K[0, 0] = 1.0


def _ring():
  rig = camera_ring([-60, 0, 60, 180], height=480, width=640)
  return [Camera(f"cam{v}", (640, 480), rig.K[v], (), rig.R[v], rig.t[v]) for v in range(4)]


def test_cameras_facing_the_scene_pass_and_a_turned_camera_is_named():
  cams = _ring()
  scene = check_cameras_face_scene(cams)
  np.testing.assert_allclose(scene, [0.0, 0.0, 0.95], atol=0.05)   # the ring's target
  person = np.array([[0.1, 0.0, 0.2], [-0.1, 0.05, 1.7]])
  np.testing.assert_allclose(check_cameras_face_scene(cams, person), person.mean(0))
  turned = cams[2]
  R = np.diag([-1.0, 1.0, -1.0]) @ turned.R                        # 180 degrees about its y axis
  cams[2] = dataclasses.replace(turned, R=R, t=-R @ turned.center)
  for points in (None, person):
    with pytest.raises(ValueError, match=r"'cam2' has it behind") as info:
      check_cameras_face_scene(cams, points)
    assert "cam0" not in str(info.value) and "world -> camera" in str(info.value)
  far = dataclasses.replace(_ring()[1], t=_ring()[1].t + [6.0, 0.0, 0.0])   # looks 6 m aside
  with pytest.raises(ValueError, match=r"'cam1' sees it at \(.*\) outside its 640x480 image"):
    check_cameras_face_scene([_ring()[0], far, _ring()[2]], person)
  with pytest.raises(ValueError, match="pass points_world"):
    check_cameras_face_scene(_ring()[:1])
