"""A calibrated multi-camera recording of the synthetic world, written as a real one would be.

`Recording(seed, num_views=4, width=..., height=...)` is one identity performing a script of
actions in a room, filmed by `num_views` cameras around it at any image size (portrait or
landscape), optionally through a lens with barrel distortion (OpenCV's k1, k2): the pinhole
render on a canvas large enough to cover the distorted field is remapped through
`calibration.Camera.undistort_points`, so that what the file shows is what the calibration's
model predicts. Frames render on demand, a range of frames of one camera at a time, so a long
recording at full HD never sits in memory.

`write(folder, ...)` lays the recording out as Pose2Sim expects a project: `videos/<cam>.mp4`
(H.264), `calibration.toml` (`calibration.write_toml`) and `pose/<cam>_json/` with one OpenPose
COCO-18 JSON per frame, holding the person's true 2D keypoints with the errors real 2D
estimators make: Gaussian pixel noise, left/right swaps on some frames of some cameras, and a
decoy: a second detection per frame that is the person's skeleton moved and scaled differently
in each view (in some views larger than the person), so that it is consistent in no two views,
as a reflection or a false detection is. `truth(cameras)` renders the exact modalities in other
(pinhole) cameras, e.g. those of a prepared dataset, to check estimates against, and
`agreement` scores estimated maps against them.
"""
from __future__ import annotations

import dataclasses
import json
import os

import cv2
import numpy as np

from psrjax.data import video
from psrjax.data.synthetic import appearance, cameras as cams, keypoints, motion, renderer, room
from psrjax.data.synthetic.faces import nearest_faces
from psrjax.data.synthetic.clip import CLIP_FPS, NUM_IDENTITIES, check_positive_int
from psrjax.data.synthetic.sequence import DEFAULT_FOV_Y_DEG, script_motion
from psrjax.geometry.calibration import Camera, write_toml
from psrjax.geometry.skeleton import COCO_NAMES

DEFAULT_SCRIPT = (("wave", 20), ("squat", 20), ("turn_around", 24), ("jumping_jacks", 20),
                  ("punch", 20), ("dance", 24))
_SWAP = [(COCO_NAMES.index(n), COCO_NAMES.index("l" + n[1:])) for n in COCO_NAMES
         if n.startswith("r")]


def _script(num_frames: int, script) -> tuple:
  """`script` (default `DEFAULT_SCRIPT`) cut or repeated to `num_frames` frames."""
  script, out, total = tuple(script or DEFAULT_SCRIPT), [], 0
  while total < num_frames:
    action, frames = script[len(out) % len(script)]
    frames = min(frames, num_frames - total)
    out.append((action, frames))
    total += frames
  return tuple(out)


def ring_cameras(num_views: int, width: int, height: int, rng: np.random.Generator,
                 distortion: float = 0.0) -> list[Camera]:
  """`num_views` cameras evenly around the person (first one in front, azimuth jittered by
  5 degrees), 3 m away at 0.9..1.6 m, the default rig's vertical field of view; `distortion`
  is k1 (k2 = -k1 / 4): negative for barrel."""
  yaws = 360.0 * np.arange(num_views) / num_views + rng.uniform(-5.0, 5.0, num_views)
  rig = cams.camera_ring(yaws, height=height, width=width, distance=rng.uniform(2.9, 3.3, num_views),
                         eye_height=rng.uniform(0.9, 1.6, num_views), fov_y_deg=DEFAULT_FOV_Y_DEG,
                         roll_deg=rng.uniform(-2.0, 2.0, num_views))
  dist = np.array([distortion, -distortion / 4, 0.0, 0.0])
  return [Camera(f"cam{v + 1:02d}", (width, height), rig.K[v], dist, rig.R[v], rig.t[v])
          for v in range(num_views)]


def _pinhole(cameras) -> cams.Cameras:
  return cams.Cameras(np.stack([c.K for c in cameras]), np.stack([c.R for c in cameras]),
                      np.stack([c.t for c in cameras]), cameras[0].height, cameras[0].width)


class Recording:
  """One synthetic person recorded by calibrated cameras (module docstring)."""

  def __init__(self, seed: int, *, num_views: int = 4, num_frames: int = 60, width: int = 1080,
               height: int = 1920, distortion: float = 0.0, script=None, fps: float = CLIP_FPS):
    self.seed = check_positive_int("seed", seed, 0)
    self.num_frames = check_positive_int("num_frames", num_frames)
    self.fps = float(fps)
    self.identity = appearance.make_identity(self.seed % NUM_IDENTITIES)
    rng = np.random.default_rng([0x2EC, self.seed])
    self.motion = script_motion(self.identity.shape, _script(self.num_frames, script), fps=fps,
                                seed=self.seed, heading_deg=rng.uniform(-30, 30))
    self.cameras = ring_cameras(check_positive_int("num_views", num_views, 2), width, height, rng,
                                distortion)
    self.room = room.sample_room(rng)
    self._posed = motion.pose_body(np.asarray(self.identity.shape, np.float64), self.motion)

  @property
  def names(self) -> list[str]:
    return [c.name for c in self.cameras]

  def points3d(self) -> np.ndarray:
    """float64 [T, 18, 3]: the COCO-18 keypoints in the world (metres)."""
    p = self._posed
    return keypoints.keypoints_3d(p.joint_pos, p.prim_rot, p.prim_center, p.rest)

  def keypoints(self) -> np.ndarray:
    """float32 [V, T, 18, 3]: the keypoints as each camera records them (with its distortion),
    visibility exact."""
    vis = renderer.camera_keypoints(self._posed, _pinhole(self.cameras))[..., 2:]
    xy = np.stack([c.project(self.points3d()) for c in self.cameras])
    return np.concatenate([xy, vis], axis=-1).astype(np.float32)

  def _canvas(self, camera: Camera) -> tuple[Camera, int]:
    """(the pinhole camera of a canvas that covers the distorted image, its margin in pixels)."""
    corners = np.array([[-0.5, -0.5], [camera.width - 0.5, camera.height - 0.5]])
    reach = np.abs(camera.undistort_points(corners) - corners).max() if camera.dist.any() else 0
    margin = int(np.ceil(reach)) + 2 if reach else 0
    canvas = camera.cropped(-margin, -margin, camera.width + 2 * margin, camera.height + 2 * margin)
    return dataclasses.replace(canvas, dist=np.zeros(0)), margin

  def frames(self, view: int, start: int, stop: int) -> np.ndarray:
    """uint8 [stop - start, H, W, 3]: what camera `view` records in frames start..stop - 1."""
    camera = self.cameras[view]
    canvas, margin = self._canvas(camera)
    rig = _pinhole([canvas])
    centres, dirs = renderer.pixel_rays(rig.K, rig.R, rig.t, rig.height, rig.width)
    background = room.render_room(self.room, centres, dirs).reshape(1, rig.height, rig.width, 3)
    part = motion.Motion(self.motion.local_rot[start:stop], self.motion.root_pos[start:stop])
    rgb = renderer.render(self.identity.shape, self.identity.textures, part, rig,
                          background=background, light=self.room.light)["rgb"][0]
    if not margin:
      return rgb
    ys, xs = np.mgrid[:camera.height, :camera.width].astype(np.float64)
    src = camera.undistort_points(np.stack([xs, ys], -1)) + margin
    mx, my = src[..., 0].astype(np.float32), src[..., 1].astype(np.float32)
    return np.stack([cv2.remap(f, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for f in rgb])

  def truth(self, cameras) -> dict:
    """The exact modalities (`synthetic.render`, views first) in pinhole `cameras` (calibration
    `Camera`s of one size, distortion ignored) over every frame, on a black background."""
    return renderer.render(self.identity.shape, self.identity.textures, self.motion,
                           _pinhole(list(cameras)), light=self.room.light)

  def write(self, folder: str, *, noise_px: float = 2.0, swap_rate: float = 0.1,
            swap_views: int = 2, decoy: bool = True, crf: int = 20, chunk: int = 16) -> dict:
    """Writes videos/, calibration.toml and pose/ into `folder` (module docstring): detections
    with `noise_px` Gaussian noise, left/right swapped on `swap_rate` of the frames of the first
    `swap_views` cameras, and a decoy person. Returns {"videos", "calibration", "keypoints":
    paths, "swapped": bool [V, T]}."""
    for sub in ("videos", "pose"):
      os.makedirs(os.path.join(folder, sub), exist_ok=True)
    for v, name in enumerate(self.names):
      chunks = (self.frames(v, a, min(a + chunk, self.num_frames))
                for a in range(0, self.num_frames, chunk))
      video.write_video(os.path.join(folder, "videos", f"{name}.mp4"),
                        (f for c in chunks for f in c), fps=self.fps, crf=crf)
    rng = np.random.default_rng([0xDE7, self.seed])
    detections, swapped = noisy_detections(self.keypoints(), noise_px, swap_rate, swap_views, rng)
    for v, name in enumerate(self.names):
      people = [[d] for d in detections[v]]
      if decoy:
        people = [[decoy_of(d, v, rng)] + p for d, p in zip(detections[v], people)]
      write_openpose(os.path.join(folder, "pose", f"{name}_json"), name, people)
    write_toml(self.cameras, os.path.join(folder, "calibration.toml"))   # last: all is written
    return {"videos": os.path.join(folder, "videos"),
            "calibration": os.path.join(folder, "calibration.toml"),
            "keypoints": os.path.join(folder, "pose"), "swapped": swapped}


def noisy_detections(kp: np.ndarray, noise_px: float, swap_rate: float, swap_views: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """(detections [V, T, 18, 3], swapped bool [V, T]): true keypoints with Gaussian noise, a
  confidence of 0.9 where visible (0 and (0, 0) elsewhere) and left/right swaps."""
  out = np.array(kp, np.float32)
  out[..., :2] += rng.normal(0.0, noise_px, out[..., :2].shape)
  out[..., 2] = np.where(kp[..., 2] > 0, 0.9, 0.0)
  out[out[..., 2] == 0] = 0.0
  swapped = np.zeros(out.shape[:2], bool)
  swapped[:swap_views] = rng.random((min(swap_views, len(out)), out.shape[1])) < swap_rate
  for right, left in _SWAP:
    out[swapped, right], out[swapped, left] = out[swapped, left], out[swapped, right]
  return out, swapped


def decoy_of(person: np.ndarray, view: int, rng: np.random.Generator) -> np.ndarray:
  """The person's skeleton scaled by 0.6 (odd views) or 1.3 (even views) about its centre and
  shifted by 40 % of its height, sideways in view-dependent directions, plus 3 px of noise."""
  seen = person[:, 2] > 0
  if not seen.any():
    return person.copy()
  centre = person[seen, :2].mean(0)
  height = np.ptp(person[seen, 1]) + 1.0
  scale = 1.3 if view % 2 == 0 else 0.6
  angle = 0.7 * view + 0.3
  shift = 0.4 * height * np.array([np.cos(angle), 0.3 * np.sin(angle)])
  out = person.copy()
  out[seen, :2] = (person[seen, :2] - centre) * scale + centre + shift
  out[seen, :2] += rng.normal(0.0, 3.0, (int(seen.sum()), 2))
  return out


def write_openpose(folder: str, name: str, people) -> None:
  """OpenPose COCO-18 JSON files folder/<name>_<frame:012d>_keypoints.json, one per frame
  (`people`: per frame, a list of [18, 3] detections), coordinates rounded to 2 decimals as
  OpenPose writes them."""
  os.makedirs(folder, exist_ok=True)
  for t, frame in enumerate(people):
    entries = [{"pose_keypoints_2d": np.round(np.asarray(p, np.float64), 2).reshape(-1).tolist()}
               for p in frame]
    with open(os.path.join(folder, f"{name}_{t:012d}_keypoints.json"), "w") as f:
      json.dump({"version": 1.3, "people": entries}, f)


def _within_one_pixel(estimate: np.ndarray, agrees) -> np.ndarray:
  """bool [T, H, W]: some pixel of the 3x3 neighbourhood of `estimate` [T, H, W] satisfies
  `agrees` (a function of the shifted estimate)."""
  h, w = estimate.shape[1:]
  padded = np.pad(estimate, ((0, 0), (1, 1), (1, 1)), constant_values=-1)
  return np.any([agrees(padded[:, y:y + h, x:x + w]) for y in range(3) for x in range(3)], axis=0)


def agreement(got: dict, truth: dict, *, nearest: int = 10) -> dict:
  """Estimated face / part / depth maps [T, H, W] of one camera against the exact ones on the
  true foreground: silhouette IoU; part: the true part within 1 pixel; face: within 1 pixel a
  face among the true face's `nearest` nearest faces (`faces.nearest_faces`); exact face: the
  same face id; depth: median absolute error in metres where both see the person; with "mask"
  in both, the IoU of the estimated person mask ([T, H, W] or [T, H, W, 1]) with the true one."""
  face, part = np.asarray(truth["face"]), np.asarray(truth["part"])
  fg, est = face >= 0, np.asarray(got["face"]) >= 0
  near = nearest_faces(nearest)[np.maximum(face, 0)]
  faces = _within_one_pixel(np.asarray(got["face"]), lambda f: np.any(near == f[..., None], -1))
  parts = _within_one_pixel(np.asarray(got["part"]).astype(np.int64), lambda p: p == part)
  both = fg & est
  iou = lambda a, b: float(np.sum(a & b) / max(np.sum(a | b), 1))
  out = {"silhouette IoU": iou(fg, est), "part within 1 px": float(parts[fg].mean()),
         "face within 1 px": float(faces[fg].mean()),
         "exact face": float((np.asarray(got["face"]) == face)[fg].mean()),
         "depth error (m)": float(np.median(np.abs(np.asarray(got["depth"]) - truth["depth"])[both]))}
  if "mask" in got and "mask" in truth:
    mask = np.asarray(got["mask"]).reshape(face.shape) > 0
    out["mask IoU"] = iou(mask, np.asarray(truth["mask"]).reshape(face.shape) > 0)
  return out
