"""Calibrated pinhole cameras: x_cam = R x_world + t, pixel = K x_cam / z.

Pixel centres are at integer coordinates (x = column, y = row), so the principal point of an
unshifted camera is ((W - 1) / 2, (H - 1) / 2). The default rig follows NTU RGB+D: cameras at
the same height at -45, 0 and +45 degrees around the person, about 3 m away.
"""
import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Cameras:
  """V calibrated cameras and their image size."""
  K: np.ndarray  # [V, 3, 3] intrinsics
  R: np.ndarray  # [V, 3, 3] world -> camera rotation
  t: np.ndarray  # [V, 3] world -> camera translation
  height: int    # image rows
  width: int     # image columns

  def __post_init__(self):
    v = self.K.shape[0]
    if self.K.shape != (v, 3, 3) or self.R.shape != (v, 3, 3) or self.t.shape != (v, 3) or v < 1:
      raise ValueError(f"cameras need K [V,3,3], R [V,3,3], t [V,3] with V >= 1; got "
                       f"{self.K.shape}, {self.R.shape}, {self.t.shape}")
    if int(self.height) < 1 or int(self.width) < 1:
      raise ValueError(f"image size must be positive, got {self.height}x{self.width}")

  @property
  def num_views(self) -> int:
    return self.K.shape[0]

  @property
  def centres(self) -> np.ndarray:
    return -np.einsum("vji,vj->vi", self.R, self.t)

  def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels [V, ..., 2] and depths [V, ...] of world points [..., 3] in every camera."""
    cam = np.einsum("vij,...j->v...i", self.R, points)
    cam = cam + self.t.reshape((-1,) + (1,) * (cam.ndim - 2) + (3,))
    pix = np.einsum("vij,v...j->v...i", self.K, cam)
    return pix[..., :2] / pix[..., 2:3], cam[..., 2]


def look_at(eye: np.ndarray, target: np.ndarray, roll_deg: float = 0.0):
  """World->camera R, t of a camera at `eye` looking at `target`, world z up, image y down."""
  fwd = target - eye
  fwd = fwd / np.linalg.norm(fwd)
  right = np.cross(fwd, [0.0, 0.0, 1.0])
  right = right / np.linalg.norm(right)
  down = np.cross(fwd, right)
  c, s = np.cos(np.deg2rad(roll_deg)), np.sin(np.deg2rad(roll_deg))
  right, down = c * right + s * down, -s * right + c * down
  rot = np.stack([right, down, fwd])
  return rot, -rot @ eye


def intrinsics(fov_y_deg: float, height: int, width: int) -> np.ndarray:
  """Square-pixel intrinsics with the given vertical field of view, centred principal point."""
  f = 0.5 * height / np.tan(0.5 * np.deg2rad(fov_y_deg))
  return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def default_yaws(num_views: int) -> np.ndarray:
  """Camera azimuths in degrees: 45 degrees apart centred on the front (NTU's -45/0/+45 for
  three views) up to 8 views, an even ring beyond."""
  if num_views < 1:
    raise ValueError(f"num_views must be >= 1, got {num_views}")
  if num_views <= 8:
    return 45.0 * (np.arange(num_views) - (num_views - 1) / 2)
  return 360.0 * np.arange(num_views) / num_views


def camera_ring(yaws_deg, *, height: int, width: int, distance=3.0, eye_height=1.2,
                target=(0.0, 0.0, 0.95), fov_y_deg=50.0, roll_deg=0.0) -> Cameras:
  """Cameras on a circle around `target`; yaw 0 looks along -y (at the front of a person facing
  +y), positive yaw moves the camera towards the person's left. Scalars or one value per view."""
  yaws = np.asarray(yaws_deg, np.float64).reshape(-1)
  v = len(yaws)
  dist, eh, fov, roll = (np.broadcast_to(np.asarray(x, np.float64), (v,))
                         for x in (distance, eye_height, fov_y_deg, roll_deg))
  target = np.broadcast_to(np.asarray(target, np.float64), (v, 3))
  Ks, Rs, ts = [], [], []
  for i in range(v):
    yaw = np.deg2rad(yaws[i])
    eye = target[i] + dist[i] * np.array([-np.sin(yaw), np.cos(yaw), 0.0])
    eye[2] = eh[i]
    rot, tr = look_at(eye, target[i], roll[i])
    Ks.append(intrinsics(fov[i], height, width))
    Rs.append(rot)
    ts.append(tr)
  return Cameras(np.stack(Ks), np.stack(Rs), np.stack(ts), int(height), int(width))


def sample_cameras(rng: np.random.Generator, num_views: int, resolution: int,
                   center=(0.0, 0.0)) -> Cameras:
  """The default rig with per-clip jitter of azimuth, distance, height, aim, roll and zoom."""
  return camera_ring(height=resolution, width=resolution, **_rig(rng, num_views, center))


# Per-clip deviations of a fixed setup's rig (`setup_cameras`): degrees, metres, degrees.
SETUP_JITTER = dict(yaw=1.0, distance=0.03, eye_height=0.03, aim=0.02, roll=0.5)


def setup_cameras(setup_rng: np.random.Generator, clip_rng: np.random.Generator, num_views: int,
                  resolution: int) -> Cameras:
  """A fixed setup's rig (drawn from `setup_rng` like `sample_cameras`, aimed at the room's
  centre) with a small per-clip jitter from `clip_rng` (`SETUP_JITTER`), as a recording setup
  is set up again between sessions."""
  rig, j = _rig(setup_rng, num_views, (0.0, 0.0)), SETUP_JITTER
  rig["yaws_deg"] = rig["yaws_deg"] + clip_rng.uniform(-j["yaw"], j["yaw"], num_views)
  rig["distance"] = rig["distance"] + clip_rng.uniform(-j["distance"], j["distance"], num_views)
  rig["eye_height"] = rig["eye_height"] + clip_rng.uniform(-j["eye_height"], j["eye_height"],
                                                           num_views)
  rig["target"][:, :2] += clip_rng.uniform(-j["aim"], j["aim"], (num_views, 2))
  rig["roll_deg"] = rig["roll_deg"] + clip_rng.uniform(-j["roll"], j["roll"], num_views)
  return camera_ring(height=resolution, width=resolution, **rig)


def _rig(rng: np.random.Generator, num_views: int, center) -> dict:
  """`camera_ring` arguments: azimuth, distance, height, aim, roll and zoom jittered by `rng`."""
  yaws = default_yaws(num_views) + rng.uniform(-5.0, 5.0, num_views)
  dist = rng.uniform(2.8, 3.4) + rng.uniform(-0.15, 0.15, num_views)
  eye_h = rng.uniform(0.9, 1.6) + rng.uniform(-0.1, 0.1, num_views)
  target = np.zeros((num_views, 3))
  target[:, :2] = np.asarray(center) + rng.uniform(-0.08, 0.08, (num_views, 2))
  target[:, 2] = rng.uniform(0.98, 1.06, num_views)
  fov = 2 * np.rad2deg(np.arctan(1.08 / dist)) * rng.uniform(0.96, 1.06, num_views)
  roll = rng.uniform(-2.0, 2.0, num_views)
  return dict(yaws_deg=yaws, distance=dist, eye_height=eye_h, target=target, fov_y_deg=fov,
              roll_deg=roll)
