"""Calibrated cameras of a multi-view recording: the OpenCV camera model, its readers and writer.

Conventions (those of OpenCV, Pose2Sim and anipose):
- world -> camera: x_cam = R x_world + t; the camera looks along +z, image x right, image y down;
- pixels: (x, y) = (column, row) with pixel centres at integers, as `psrjax.geometry.skeleton`'s
  keypoints; `size` is (width, height);
- lens distortion acts on the normalised coordinates (x / z, y / z) and pixels are K times the
  distorted coordinates. The pinhole model takes OpenCV's coefficient order (k1, k2, p1, p2[, k3[,
  k4, k5, k6[, s1, s2, s3, s4]]]) -- 4, 5, 8 or 12 values, rational and thin-prism terms included
  (OpenCV's tilt terms are not supported); `fisheye=True` selects OpenCV's fisheye model
  (Kannala-Brandt, exactly 4 coefficients k1..k4). OpenCV's functions read fx, fy, cx, cy only;
  here the full K applies, which is the same for the zero skew every calibration tool writes.
  (OpenCV documentation, "Camera Calibration and 3D Reconstruction" and "Fisheye camera model".)

Files: `read_toml` / `write_toml` for the anipose / Pose2Sim calibration TOML, `read_opencv_yaml`
for OpenCV FileStorage files (YAML, XML or JSON), `read_calibration` choosing by suffix.
NumPy throughout: this is data preparation, not a training path.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

PINHOLE_DISTORTION_SIZES = (0, 4, 5, 8, 12)
_ROTATION_TOLERANCE = 1e-4


def _finite_array(value, shape: tuple[int, ...], what: str, where: str) -> np.ndarray:
  """`value` as a float64 array of `shape`, or a one-line ValueError naming `what` and `where`."""
  try:
    arr = np.asarray(value, dtype=np.float64)
  except (TypeError, ValueError):
    raise ValueError(f"{where}: {what} must be numbers, shaped {shape}; got {value!r}") from None
  if arr.size != int(np.prod(shape)):
    raise ValueError(f"{where}: {what} must hold {int(np.prod(shape))} values {shape}; got "
                     f"{arr.size} {arr.shape}")
  if not np.all(np.isfinite(arr)):
    raise ValueError(f"{where}: {what} has a non-finite value (nan or inf); fix the calibration")
  return arr.reshape(shape)


def _frozen(arr: np.ndarray) -> np.ndarray:
  arr = np.array(arr, dtype=np.float64)
  arr.setflags(write=False)
  return arr


@dataclasses.dataclass(frozen=True, eq=False)
class Camera:
  """One calibrated camera (conventions in the module docstring).

  name: the camera's name in its calibration file; size: image (width, height) in pixels;
  K: [3, 3] intrinsics (K[1, 0] = K[2, 0] = K[2, 1] = 0, K[2, 2] = 1); dist: distortion
  coefficients, OpenCV order; R: [3, 3] world -> camera rotation; t: [3] world -> camera
  translation; fisheye: OpenCV's fisheye model instead of the pinhole one.
  """
  name: str
  size: tuple[int, int]
  K: np.ndarray
  dist: np.ndarray
  R: np.ndarray
  t: np.ndarray
  fisheye: bool = False

  def __post_init__(self):
    where = f"camera {self.name!r}"
    w, h = _finite_array(self.size, (2,), "size (width, height)", where)
    if w < 1 or h < 1 or w != int(w) or h != int(h):
      raise ValueError(f"{where}: size must be two positive integers (width, height); got "
                       f"{tuple(self.size)}")
    K = _finite_array(self.K, (3, 3), "K", where)
    if K[1, 0] != 0 or np.any(K[2] != (0.0, 0.0, 1.0)) or K[0, 0] <= 0 or K[1, 1] <= 0:
      raise ValueError(f"{where}: K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0;"
                       f" got {K.tolist()}")
    dist = np.asarray(self.dist, dtype=np.float64).reshape(-1)
    sizes = (4,) if self.fisheye else PINHOLE_DISTORTION_SIZES
    if dist.size not in sizes:
      model = "fisheye" if self.fisheye else "pinhole"
      raise ValueError(f"{where}: the {model} model takes {' or '.join(map(str, sizes))} "
                       f"distortion coefficients; got {dist.size}")
    dist = _finite_array(dist, dist.shape, "dist", where)
    object.__setattr__(self, "name", str(self.name))
    object.__setattr__(self, "size", (int(w), int(h)))
    object.__setattr__(self, "K", _frozen(K))
    object.__setattr__(self, "dist", _frozen(dist))
    object.__setattr__(self, "R", _frozen(_rotation(self.R, where)))
    object.__setattr__(self, "t", _frozen(_finite_array(self.t, (3,), "t", where)))
    object.__setattr__(self, "fisheye", bool(self.fisheye))

  @classmethod
  def from_rvec(cls, name: str, size, K, dist, rvec, tvec, fisheye: bool = False) -> Camera:
    """A camera from a Rodrigues rotation vector (world -> camera), as OpenCV's solvers give."""
    rvec = _finite_array(rvec, (3,), "rotation (Rodrigues vector)", f"camera {name!r}")
    return cls(name, size, K, dist, Rotation.from_rotvec(rvec).as_matrix(), tvec, fisheye)

  @property
  def width(self) -> int:
    return self.size[0]

  @property
  def height(self) -> int:
    return self.size[1]

  @property
  def rvec(self) -> np.ndarray:
    """[3] Rodrigues vector of R: axis times angle in radians (cv2.Rodrigues)."""
    return Rotation.from_matrix(self.R).as_rotvec()

  @property
  def center(self) -> np.ndarray:
    """[3] the camera centre in world coordinates, -R^T t."""
    return -self.R.T @ self.t

  @property
  def projection(self) -> np.ndarray:
    """[3, 4] K [R | t]: the projection of undistorted pixels (Hartley & Zisserman, Sec. 6.1)."""
    return self.K @ np.concatenate([self.R, self.t[:, None]], axis=1)

  def depth(self, points_world) -> np.ndarray:
    """`[...]` z of world points `[..., 3]` in this camera (negative behind it)."""
    return (np.asarray(points_world, np.float64) @ self.R[2]) + self.t[2]

  def project(self, points_world) -> np.ndarray:
    """Pixels `[..., 2]` of world points `[..., 3]` with lens distortion (cv2.projectPoints or
    cv2.fisheye.projectPoints). Points behind the camera project as the formulas give."""
    cam = np.asarray(points_world, np.float64) @ self.R.T + self.t
    return self._to_pixels(self.distort(cam[..., :2] / cam[..., 2:3]))

  def distort(self, normalized) -> np.ndarray:
    """Distorted normalised coordinates `[..., 2]` of undistorted ones (x / z, y / z)."""
    xy = np.asarray(normalized, np.float64)
    return _fisheye_distort(xy, self.dist) if self.fisheye else _pinhole_distort(xy, self.dist)

  def undistort_points(self, pixels, iterations: int = 20) -> np.ndarray:
    """Undistorted pixels `[..., 2]` (through the same K) of observed pixels `[..., 2]`:
    cv2.undistortPoints(pixels, K, dist, P=K) with `iterations` fixed-point steps (OpenCV's
    default is 5; 20 converge for usual lenses), or cv2.fisheye.undistortPoints's Newton steps.
    Fisheye points beyond the model's reach come back NaN."""
    xy = self._to_normalized(np.asarray(pixels, np.float64))
    if self.fisheye:
      return self._to_pixels(_fisheye_undistort(xy, self.dist, iterations))
    return self._to_pixels(_pinhole_undistort(xy, self.dist, iterations))

  def scaled(self, width: int, height: int) -> Camera:
    """The camera of the image resized to `width` x `height` (cv2.resize's pixel-centre mapping,
    x' = (x + 0.5) s - 0.5): K's first two rows scaled, the principal point shifted."""
    sx, sy = width / self.width, height / self.height
    S = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    return dataclasses.replace(self, size=(width, height), K=S @ self.K)

  def cropped(self, x0: int, y0: int, width: int, height: int) -> Camera:
    """The camera of `image[y0:y0 + height, x0:x0 + width]` (offsets may reach outside the
    image, as for padded crops): the principal point moves by (-x0, -y0)."""
    K = self.K.copy()
    K[0, 2] -= x0
    K[1, 2] -= y0
    return dataclasses.replace(self, size=(width, height), K=K)

  def _to_pixels(self, xy: np.ndarray) -> np.ndarray:
    return xy @ self.K[:2, :2].T + self.K[:2, 2]

  def _to_normalized(self, pixels: np.ndarray) -> np.ndarray:
    y = (pixels[..., 1] - self.K[1, 2]) / self.K[1, 1]
    x = (pixels[..., 0] - self.K[0, 2] - self.K[0, 1] * y) / self.K[0, 0]
    return np.stack([x, y], axis=-1)


def _rotation(value, where: str) -> np.ndarray:
  """A 3x3 rotation (re-orthonormalised within `_ROTATION_TOLERANCE`) or a ValueError."""
  R = _finite_array(value, (3, 3), "R", where)
  if np.abs(R.T @ R - np.eye(3)).max() > _ROTATION_TOLERANCE or np.linalg.det(R) <= 0:
    raise ValueError(f"{where}: R must be a rotation matrix (orthonormal, det +1); got "
                     f"{R.tolist()}")
  u, _, vt = np.linalg.svd(R)
  return u @ vt


def _coefficients(dist: np.ndarray, n: int) -> np.ndarray:
  return np.concatenate([dist, np.zeros(n - dist.size)])


def _pinhole_distort(xy: np.ndarray, dist: np.ndarray) -> np.ndarray:
  """OpenCV's pinhole distortion of normalised coordinates (radial rational, tangential, thin
  prism): x' = x (1 + k1 r^2 + k2 r^4 + k3 r^6) / (1 + k4 r^2 + k5 r^4 + k6 r^6)
  + 2 p1 x y + p2 (r^2 + 2 x^2) + s1 r^2 + s2 r^4, and likewise y'."""
  k1, k2, p1, p2, k3, k4, k5, k6, s1, s2, s3, s4 = _coefficients(dist, 12)
  x, y = xy[..., 0], xy[..., 1]
  r2 = x * x + y * y
  radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
  xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x) + s1 * r2 + s2 * r2 * r2
  yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y + s3 * r2 + s4 * r2 * r2
  return np.stack([xd, yd], axis=-1)


def _pinhole_undistort(xy: np.ndarray, dist: np.ndarray, iterations: int) -> np.ndarray:
  """OpenCV's fixed-point inversion of `_pinhole_distort` (cvUndistortPointsInternal): x <-
  (x_d - tangential(x)) / radial(x); where the radial factor turns negative the point is left
  undistorted, as OpenCV does."""
  k1, k2, p1, p2, k3, k4, k5, k6, s1, s2, s3, s4 = _coefficients(dist, 12)
  x0, y0 = xy[..., 0], xy[..., 1]
  x, y, stuck = x0.copy(), y0.copy(), np.zeros(x0.shape, bool)
  for _ in range(iterations):
    r2 = x * x + y * y
    icdist = (1 + r2 * (k4 + r2 * (k5 + r2 * k6))) / (1 + r2 * (k1 + r2 * (k2 + r2 * k3)))
    stuck |= icdist < 0
    dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x) + s1 * r2 + s2 * r2 * r2
    dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y + s3 * r2 + s4 * r2 * r2
    x = np.where(stuck, x0, (x0 - dx) * icdist)
    y = np.where(stuck, y0, (y0 - dy) * icdist)
  return np.stack([x, y], axis=-1)


def _fisheye_distort(xy: np.ndarray, dist: np.ndarray) -> np.ndarray:
  """OpenCV's fisheye model: theta = atan(r), theta_d = theta (1 + k1 theta^2 + k2 theta^4 +
  k3 theta^6 + k4 theta^8), (x', y') = (theta_d / r) (x, y)."""
  k1, k2, k3, k4 = dist
  r = np.hypot(xy[..., 0], xy[..., 1])
  theta = np.arctan(r)
  t2 = theta * theta
  theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
  scale = np.where(r > 1e-8, theta_d / np.maximum(r, 1e-8), 1.0)
  return xy * scale[..., None]


def _fisheye_undistort(xy: np.ndarray, dist: np.ndarray, iterations: int) -> np.ndarray:
  """Newton's inversion of theta_d(theta) (cv2.fisheye.undistortPoints), theta_d clipped to
  pi / 2; NaN where theta changes sign or reaches pi / 2 (beyond the model)."""
  k1, k2, k3, k4 = dist
  theta_d = np.minimum(np.hypot(xy[..., 0], xy[..., 1]), np.pi / 2)
  theta = theta_d.copy()
  for _ in range(iterations):
    t2 = theta * theta
    f = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))) - theta_d
    df = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))
    theta = theta - f / df
  small = theta_d <= 1e-8
  scale = np.where(small, 1.0, np.tan(theta) / np.where(small, 1.0, theta_d))
  bad = ~small & ((theta <= 0) | (theta >= np.pi / 2))
  return np.where(bad[..., None], np.nan, xy * scale[..., None])


def undistortion_maps(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
  """float32 (map_x, map_y) `[H, W]` for cv2.remap: where each pixel of the undistorted image
  (same K, no distortion) lies in the recorded one -- cv2.initUndistortRectifyMap(K, dist, I, K)
  or its fisheye counterpart. Compute once per camera to undistort a video's frames."""
  ys, xs = np.mgrid[:camera.height, :camera.width].astype(np.float64)
  normalized = camera._to_normalized(np.stack([xs, ys], axis=-1))
  source = camera._to_pixels(camera.distort(normalized))
  return source[..., 0].astype(np.float32), source[..., 1].astype(np.float32)


def undistort_image(image: np.ndarray, camera: Camera) -> np.ndarray:
  """`image` `[H, W]` or `[H, W, C]` with the lens distortion removed (bilinear cv2.remap of
  `undistortion_maps`, black outside). Its camera is `camera` without distortion:
  `dataclasses.replace(camera, dist=(), fisheye=False)`."""
  image = np.asarray(image)
  if image.shape[:2] != (camera.height, camera.width):
    raise ValueError(f"image is {image.shape[1]}x{image.shape[0]} but camera {camera.name!r} is "
                     f"{camera.width}x{camera.height}; scale or crop the camera to the image first")
  map_x, map_y = undistortion_maps(camera)
  remap = lambda a: cv2.remap(a, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
  if image.ndim == 3 and image.shape[2] > 4:   # cv2.remap takes up to 4 channels
    return np.stack([remap(np.ascontiguousarray(image[..., c])) for c in range(image.shape[2])], -1)
  out = remap(np.ascontiguousarray(image))
  return out.reshape(image.shape)


# ---- anipose / Pose2Sim TOML ----------------------------------------------------------------

_TOML_KEYS = ("size", "matrix", "distortions", "rotation", "translation")


def read_toml(path) -> list[Camera]:
  """Cameras of an anipose / Pose2Sim calibration TOML, in file order.

  One table per camera: `name` (the table's key if absent), `size` = [width, height], `matrix`
  3x3, `distortions` (4 or 5 values; 4 for fisheye), `rotation` = Rodrigues 3-vector and
  `translation` 3-vector (world -> camera), optional `fisheye` (false). `[metadata]` is skipped.
  """
  with open(path, "rb") as f:
    try:
      data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
      raise ValueError(f"{path}: not valid TOML ({e})") from None
  tables = [(k, v) for k, v in data.items() if isinstance(v, dict) and k.lower() != "metadata"]
  if not tables:
    raise ValueError(f"{path}: no camera table; add one [table] per camera with name, size, "
                     f"matrix, distortions, rotation and translation")
  return [_toml_camera(key, table, f"{path}: [{key}]") for key, table in tables]


def _toml_camera(key: str, table: dict, where: str) -> Camera:
  missing = [k for k in _TOML_KEYS if k not in table]
  if missing:
    raise ValueError(f"{where}: missing {', '.join(missing)}; every camera table needs "
                     f"{', '.join(_TOML_KEYS)}")
  rotation = np.asarray(table["rotation"], dtype=object).reshape(-1)
  if rotation.size != 3:
    raise ValueError(f"{where}: rotation must be 3 values (a Rodrigues vector, world -> camera); "
                     f"got {rotation.size}")
  fisheye = table.get("fisheye", False)
  if not isinstance(fisheye, bool):
    raise ValueError(f"{where}: fisheye must be true or false; got {fisheye!r}")
  dist = np.asarray(table["distortions"], dtype=object).reshape(-1)
  dist = _finite_array(dist, dist.shape, "distortions", where)
  try:
    return Camera.from_rvec(
        str(table.get("name", key)), _finite_array(table["size"], (2,), "size", where),
        _finite_array(table["matrix"], (3, 3), "matrix", where), dist,
        _finite_array(rotation, (3,), "rotation", where),
        _finite_array(table["translation"], (3,), "translation", where), fisheye)
  except ValueError as e:
    raise ValueError(f"{where}: {e}") from None


def _toml_key(name: str) -> str:
  return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _toml_array(values) -> str:
  return "[ " + ", ".join(repr(float(v)) for v in values) + "]"


def write_toml(cameras, path) -> None:
  """Writes `cameras` in the Pose2Sim layout (`read_toml` reads it back exactly)."""
  names = [c.name for c in cameras]
  if len(set(names)) != len(names) or "metadata" in {n.lower() for n in names}:
    raise ValueError(f"camera names must be distinct and not 'metadata'; got {names}")
  lines = []
  for c in cameras:
    matrix = "[ " + ", ".join(_toml_array(row) for row in c.K) + "]"
    lines += [f"[{_toml_key(c.name)}]", f"name = {json.dumps(c.name)}",
              f"size = {_toml_array(c.size)}", f"matrix = {matrix}",
              f"distortions = {_toml_array(c.dist)}", f"rotation = {_toml_array(c.rvec)}",
              f"translation = {_toml_array(c.t)}", f"fisheye = {str(c.fisheye).lower()}", ""]
  lines += ["[metadata]", "adjusted = false", "error = 0.0", ""]
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines))


# ---- OpenCV FileStorage (YAML / XML / JSON) -------------------------------------------------

_CV_KEYS = {
    "K": ("camera_matrix", "K", "cameraMatrix", "intrinsic_matrix"),
    "dist": ("distortion_coefficients", "dist_coeffs", "D", "distCoeffs", "dist"),
    "R": ("R", "rvec", "rotation", "Rot"),
    "t": ("T", "tvec", "translation"),
    "size": ("size", "image_size", "imageSize"),
}


def _node_value(node):
  """A FileStorage node as Python: matrices ({rows, cols, data} or {sizes, data}) and numeric
  sequences as float arrays, numbers as float, strings as str, other maps as None."""
  if node.isMap():
    keys = node.keys()
    if "data" not in keys:
      return None
    data = np.asarray(_node_value(node.getNode("data")), np.float64)
    if "rows" in keys and "cols" in keys:
      return data.reshape(int(node.getNode("rows").real()), int(node.getNode("cols").real()))
    return data
  if node.isSeq():
    items = [_node_value(node.at(i)) for i in range(node.size())]
    return items if any(isinstance(v, str) for v in items) else np.asarray(items, np.float64)
  if node.isInt() or node.isReal():
    return node.real()
  if node.isString():
    return node.string()
  return None


def _map_values(node) -> dict:
  return {key: _node_value(node.getNode(key)) for key in node.keys()}


def _lookup(values: dict, kind: str):
  return next((values[k] for k in _CV_KEYS[kind] if values.get(k) is not None), None)


def _image_size(values: dict, image_size, where: str):
  for w_key, h_key in (("image_width", "image_height"), ("width", "height"), ("W", "H")):
    if values.get(w_key) is not None and values.get(h_key) is not None:
      return values[w_key], values[h_key]
  size = _lookup(values, "size")
  if size is None and image_size is None:
    raise ValueError(f"{where}: no image size; add image_width / image_height (or size: [w, h]) "
                     f"or pass image_size=(width, height)")
  return size if size is not None else image_size


def _cv_camera(name: str, values: dict, where: str, image_size) -> Camera:
  """A camera from one FileStorage camera's values (aliases in `_CV_KEYS`); without R / T the
  camera sits at the world origin (an intrinsics-only file)."""
  K = _lookup(values, "K")
  if K is None:
    raise ValueError(f"{where}: no camera matrix; name it one of {', '.join(_CV_KEYS['K'])}")
  dist = _lookup(values, "dist")
  dist = np.zeros(0) if dist is None else np.asarray(dist, np.float64).reshape(-1)
  rot = _lookup(values, "R")
  rot = np.eye(3) if rot is None else np.asarray(rot, np.float64)
  if rot.size not in (3, 9):
    raise ValueError(f"{where}: rotation must be 3x3 or a 3-value Rodrigues vector; got "
                     f"{rot.size} values")
  t = _lookup(values, "t")
  model = str(values.get("distortion_model") or "").lower()
  fisheye = bool(values.get("fisheye") or model in ("fisheye", "equidistant"))
  size = _image_size(values, image_size, where)
  try:
    if rot.size == 3:
      return Camera.from_rvec(name, size, K, dist, rot, np.zeros(3) if t is None else t, fisheye)
    return Camera(name, size, K, dist, rot, np.zeros(3) if t is None else t, fisheye)
  except ValueError as e:
    raise ValueError(f"{where}: {e}") from None


def read_opencv_yaml(path, *, image_size=None) -> list[Camera]:
  """Cameras of an OpenCV FileStorage file (YAML, XML or JSON), in file order. Accepted layouts:

  - one camera at the top level (named by `camera_name`, else the file's stem), as OpenCV's
    calibration sample writes it;
  - one map per camera at the top level, named by its key;
  - EasyMocap's: a `names` list and per camera keys suffixed `_<name>` (K_1, dist_1, R_1 /
    Rot_1, T_1).
  Per camera: intrinsics `camera_matrix` / `K` / `cameraMatrix`; distortion
  `distortion_coefficients` / `dist_coeffs` / `D` / `distCoeffs` (none: no distortion);
  rotation `R` / `rvec` / `rotation` / `Rot`, 3x3 or Rodrigues, and translation `T` / `tvec` /
  `translation`, world -> camera (none: the identity and zero); size `image_width` and
  `image_height`, or `size` = [width, height], else `image_size`; fisheye when `fisheye` is
  nonzero or `distortion_model` is fisheye / equidistant.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"no calibration file at {path}")
  try:
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
  except (cv2.error, SystemError) as e:   # the binding may wrap cv2.error in a SystemError
    reason = str(e.__cause__ or e).strip().splitlines()[-1]
    raise ValueError(f"{path}: OpenCV cannot parse it ({reason})") from None
  try:
    return _storage_cameras(fs.root(), str(path), image_size)
  finally:
    fs.release()


def _storage_cameras(root, path: str, image_size) -> list[Camera]:
  """The cameras of a FileStorage root in the layouts `read_opencv_yaml` accepts."""
  values = _map_values(root) if root.isMap() else {}
  if _lookup(values, "K") is not None:
    stem = os.path.splitext(os.path.basename(path))[0]
    return [_cv_camera(str(values.get("camera_name") or stem), values, path, image_size)]
  if isinstance(values.get("names"), list):
    return [_cv_camera(n, _suffixed(values, n), f"{path}: camera {n!r}", image_size)
            for n in values["names"]]
  maps = [(k, _map_values(root.getNode(k))) for k in values
          if values[k] is None and root.getNode(k).isMap()]
  cameras = [(k, v) for k, v in maps if _lookup(v, "K") is not None]
  if not cameras:
    raise ValueError(f"{path}: no camera; expected camera_matrix / K at the top level, one map "
                     f"per camera, or a names list (EasyMocap)")
  return [_cv_camera(k, v, f"{path}: {k}", image_size) for k, v in cameras]


def _suffixed(values: dict, name: str) -> dict:
  suffix = f"_{name}"
  return {k[:-len(suffix)]: v for k, v in values.items() if k.endswith(suffix)}


def read_calibration(path, **kwargs) -> list[Camera]:
  """Cameras of a calibration file by its suffix: .toml (`read_toml`), .yml / .yaml / .xml /
  .json (`read_opencv_yaml`, which takes the keyword arguments)."""
  suffix = os.path.splitext(str(path))[1].lower()
  if suffix == ".toml":
    return read_toml(path)
  if suffix in (".yml", ".yaml", ".xml", ".json"):
    return read_opencv_yaml(path, **kwargs)
  raise ValueError(f"{path}: unsupported calibration suffix {suffix!r}; expected .toml, .yml, "
                   f".yaml, .xml or .json")


# ---- sanity check -------------------------------------------------------------------------------

def _axes_meeting_point(cameras) -> np.ndarray:
  """The point nearest to every optical axis in the least-squares sense:
  sum_i (I - d_i d_i^T) p = sum_i (I - d_i d_i^T) c_i with d_i the axis direction R_i^T e_z."""
  A, b = np.zeros((3, 3)), np.zeros(3)
  for cam in cameras:
    d = cam.R[2]
    M = np.eye(3) - np.outer(d, d)
    A, b = A + M, b + M @ cam.center
  if len(cameras) < 2 or np.linalg.cond(A) > 1e8:
    raise ValueError("cannot locate the scene from the optical axes (fewer than 2 cameras or "
                     "parallel axes); pass points_world")
  return np.linalg.solve(A, b)


def check_cameras_face_scene(cameras, points_world=None, margin: float = 0.5) -> np.ndarray:
  """Raises a ValueError naming every camera that the scene lies behind, or whose image it
  projects outside of by more than `margin` x the image size (distortion ignored). The scene
  is the mean of the finite `points_world` `[..., 3]`, or without points the point nearest to
  all optical axes (a camera whose axis misses the scene shifts that point; pass points, e.g. a
  triangulated person, for a sharper check). Returns the scene point [3]."""
  if points_world is None:
    scene = _axes_meeting_point(cameras)
  else:
    pts = np.asarray(points_world, np.float64).reshape(-1, 3)
    pts = pts[np.all(np.isfinite(pts), axis=-1)]
    if len(pts) == 0:
      raise ValueError("points_world has no finite point; pass at least one 3D point")
    scene = pts.mean(axis=0)
  problems = []
  for cam in cameras:
    z = cam.depth(scene)
    if z <= 0:
      problems.append(f"{cam.name!r} has it behind (depth {z:.3g})")
      continue
    u, v = (cam.K @ (cam.R @ scene + cam.t))[:2] / z
    if not (-margin * cam.width <= u <= (1 + margin) * cam.width
            and -margin * cam.height <= v <= (1 + margin) * cam.height):
      problems.append(f"{cam.name!r} sees it at ({u:.0f}, {v:.0f}) outside its "
                      f"{cam.width}x{cam.height} image")
  if problems:
    raise ValueError(f"cameras do not face the scene at {np.round(scene, 3).tolist()}: "
                     f"{'; '.join(problems)}; check that rotation / translation are world -> "
                     f"camera and in the scene's units")
  return scene
