"""NTU RGB+D (Shahroudy et al., CVPR 2016; NTU RGB+D 120, Liu et al., TPAMI 2019) read as
calibrated multi-view recordings for the multi-view dataset (`datasets/ntu_rgbd`).

Layout (the release's archives unpacked in one folder):

  nturgb+d_rgb/SsssCcccPpppRrrrAaaa_rgb.avi        1920x1080 colour video of camera ccc
  nturgb+d_depth_masked/SsssCcccPpppRrrrAaaa/MDepth-00000001.png ...
                                                    512x424 uint16 depth in millimetres, the
                                                    person only (0 elsewhere); optional
  nturgb+d_skeletons/SsssCcccPpppRrrrAaaa.skeleton  Kinect v2 skeletons, text (`read_skeleton`)

Setup sss, performer ppp, replication rrr and action aaa name a take; cameras C001..C003 film
it at once from -45, 0 and +45 degrees. A take is read when all three cameras have a video and
a skeleton file (the release misses some skeletons: those takes are skipped).

The skeleton file: the frame count; per frame the body count; per body a line `bodyID
clippedEdges handLeftConfidence handLeftState handRightConfidence handRightState isRestricted
leanX leanY trackingState`, the joint count (25) and per joint a line `x y z depthX depthY
colorX colorY orientationW orientationX orientationY orientationZ trackingState`: metres in the
Kinect's camera space, pixels in its depth and colour images, tracking 0 (not tracked),
1 (inferred) or 2 (tracked). The recorded person is the body ID present in most frames.

NTU publishes no calibration, so the cameras are estimated per take (`psrjax.geometry.resection`):
each Kinect's colour camera (and depth camera) from its own joints' 3D positions and colour
(depth) pixels, by DLT and Levenberg-Marquardt; the rigid motion from each Kinect's frame to
camera 1's from the same joints seen by both at the same frames (robust Kabsch). The world is
camera 1's Kinect frame (metres). The videos are taken to start together and the take is the
first N frames of every camera, N the fewest frames any of its videos, skeletons or depth
folders has (they differ by a few frames).

Modalities: keypoints are the tracked joints' colour pixels mapped to COCO-18 (`COCO_FROM_KINECT`:
Kinect's shoulders, elbows, wrists, hips, knees and ankles, its spine-shoulder joint as the
neck; it has no nose, eyes or ears, so the fitted head's turn follows the body fit's prior);
points3d the joints of all three Kinects in the world, per joint and frame the median of the
cameras that track it (else of those that infer it); the report is their reprojection into
each colour camera against its joints. Person masks come from the masked depth maps: every
depth pixel back-projected through the estimated depth camera and splatted into the crop
camera (each depth pixel sampled over its area; a crop pixel whose centre is covered is the
person); without depth maps, background differencing.
"""
from __future__ import annotations

import dataclasses
import os
import re

import imageio.v3 as iio
import numpy as np
from scipy import ndimage

from psrjax.data.preparation import multiview_process, preprocess
from psrjax.geometry import resection, triangulation
from psrjax.geometry.calibration import Camera

RGB_DIR, DEPTH_DIR, SKELETON_DIR = "nturgb+d_rgb", "nturgb+d_depth_masked", "nturgb+d_skeletons"
NAME = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$")
CAMERAS = (1, 2, 3)
# Cross-view protocol (Shahroudy et al.): cameras 2 and 3 train, camera 1 is held out; for
# view synthesis camera 1 is the held-out target view, synthesized from camera 2 or 3.
CROSS_VIEW_SPLITS = ("test", "train", "train")
KINECT_JOINTS = ("spine_base", "spine_mid", "neck", "head", "l_shoulder", "l_elbow", "l_wrist",
                 "l_hand", "r_shoulder", "r_elbow", "r_wrist", "r_hand", "l_hip", "l_knee",
                 "l_ankle", "l_foot", "r_hip", "r_knee", "r_ankle", "r_foot", "spine_shoulder",
                 "l_hand_tip", "l_thumb", "r_hand_tip", "r_thumb")
# COCO-18 slot -> Kinect joint (-1: none): nose, neck, r_shoulder ... l_ear.
COCO_FROM_KINECT = np.array([-1, 20, 8, 9, 10, 4, 5, 6, 16, 17, 18, 12, 13, 14, -1, -1, -1, -1])
# 2D keypoint confidence of a tracked / inferred joint.
CONFIDENCE = {2: 1.0, 1: 0.5}


@dataclasses.dataclass(frozen=True)
class Skeleton:
  """One body over a camera's frames: xyz [T, 25, 3] (metres, Kinect camera space), depth and
  color [T, 25, 2] (pixels), state [T, 25] (0 absent or not tracked, 1 inferred, 2 tracked)."""
  xyz: np.ndarray
  depth: np.ndarray
  color: np.ndarray
  state: np.ndarray


def read_skeleton(path: str) -> list[dict[str, np.ndarray]]:
  """Per frame, {body ID: float64 [25, 12] joint rows} of an NTU .skeleton file."""
  with open(path) as f:
    tokens = f.read().split()
  pos, frames = 1, []
  try:
    for _ in range(int(tokens[0])):
      bodies, count = {}, int(tokens[pos])
      pos += 1
      for _ in range(count):
        body_id, joints = tokens[pos], int(tokens[pos + 10])
        rows = np.asarray(tokens[pos + 11:pos + 11 + 12 * joints], np.float64).reshape(joints, 12)
        bodies[body_id] = rows
        pos += 11 + 12 * joints
      frames.append(bodies)
  except (IndexError, ValueError) as e:
    raise ValueError(f"{path} is not an NTU RGB+D .skeleton file ({e}); unpack the release's "
                     "nturgb+d_skeletons archive again") from None
  return frames


def main_body(frames: list[dict[str, np.ndarray]]) -> Skeleton:
  """The body ID present in most frames (ties: the one whose joints move most), as arrays."""
  ids = {}
  for bodies in frames:
    for body_id, rows in bodies.items():
      ids.setdefault(body_id, []).append(rows[:, :3])
  if not ids:
    raise ValueError("no body in any frame")
  motion = {b: np.ptp(np.stack(v), axis=0).sum() for b, v in ids.items()}
  pick = max(ids, key=lambda b: (len(ids[b]), motion[b]))
  rows = np.zeros((len(frames), 25, 12))
  for t, bodies in enumerate(frames):
    if pick in bodies:
      rows[t] = bodies[pick]
  return Skeleton(rows[..., :3], rows[..., 3:5], rows[..., 5:7], rows[..., 11].astype(np.int64))


def list_takes(manual_dir: str) -> tuple[list[tuple[str, list[dict]]], list[str]]:
  """([(take name SsssPpppRrrrAaaa, per camera {"rgb", "skeleton", "depth" or None})] sorted by
  name, [names of incomplete takes]) of MANUAL_DIR (module docstring)."""
  rgb_dir, skel_dir = os.path.join(manual_dir, RGB_DIR), os.path.join(manual_dir, SKELETON_DIR)
  for folder in (rgb_dir, skel_dir):
    if not os.path.isdir(folder):
      raise FileNotFoundError(f"NTU RGB+D: {folder} is missing; unpack the release's "
                              f"{os.path.basename(folder)} archive into {manual_dir}")
  takes = {}
  for name in os.listdir(rgb_dir):
    m = NAME.match(name.removesuffix("_rgb.avi"))
    if m and name.endswith("_rgb.avi"):
      s, c, p, r, a = m.groups()
      takes.setdefault(f"S{s}P{p}R{r}A{a}", {})[int(c)] = m.group(0)
  complete, incomplete = [], []
  for take, cams in sorted(takes.items()):
    files = [_camera_files(manual_dir, cams.get(c)) for c in CAMERAS]
    (complete.append((take, files)) if all(files) else incomplete.append(take))
  return complete, incomplete


def _camera_files(manual_dir: str, name: str | None) -> dict | None:
  if name is None:
    return None
  skeleton = os.path.join(manual_dir, SKELETON_DIR, name + ".skeleton")
  if not os.path.isfile(skeleton):
    return None
  depth = os.path.join(manual_dir, DEPTH_DIR, name)
  return {"rgb": os.path.join(manual_dir, RGB_DIR, name + "_rgb.avi"), "skeleton": skeleton,
          "depth": depth if os.path.isdir(depth) else None}


def depth_files(folder: str) -> list[str]:
  """MDepth-*.png of a masked-depth folder, by frame number."""
  names = [n for n in os.listdir(folder) if n.startswith("MDepth-") and n.endswith(".png")]
  return [os.path.join(folder, n) for n in sorted(names, key=lambda n: int(re.sub(r"\D", "", n)))]


def _world(skeletons, frames: int) -> list[tuple[np.ndarray, np.ndarray]]:
  """Per camera (R, t) mapping its Kinect frame into camera 1's: X_1 = R X_c + t."""
  out = [(np.eye(3), np.zeros(3))]
  first = skeletons[0]
  for sk in skeletons[1:]:
    both = (sk.state[:frames] == 2) & (first.state[:frames] == 2)
    out.append(resection.rigid_transform(sk.xyz[:frames][both], first.xyz[:frames][both]))
  return out


def _points3d(skeletons, world, frames: int) -> tuple[np.ndarray, np.ndarray]:
  """(COCO-18 points [T, 18, 3] in the world, NaN where no camera has the joint; confidence
  [T, 18]) (module docstring)."""
  xyz = np.stack([sk.xyz[:frames] @ R.T + t for sk, (R, t) in zip(skeletons, world)])
  state = np.stack([sk.state[:frames] for sk in skeletons])            # [V, T, 25]
  joints, conf = np.full(xyz.shape[1:], np.nan), np.zeros(xyz.shape[1:3])
  for level in (1, 2):            # tracked joints overwrite inferred ones
    seen = state == level
    have = seen.any(0)
    joints[have] = np.nanmedian(np.where(seen[..., None], xyz, np.nan)[:, have], axis=0)
    conf[have] = CONFIDENCE[level]
  none, idx = COCO_FROM_KINECT < 0, np.maximum(COCO_FROM_KINECT, 0)
  coco, coco_conf = joints[:, idx], conf[:, idx]
  coco[:, none], coco_conf[:, none] = np.nan, 0.0
  return coco, coco_conf


def _keypoints2d(sk: Skeleton, frames: int, width: int, height: int) -> np.ndarray:
  """[T, 18, 3] colour pixels of the COCO-18 joints (confidence by tracking state)."""
  state = sk.state[:frames]
  conf = np.select([state == 2, state == 1], [CONFIDENCE[2], CONFIDENCE[1]], 0.0)
  kp = np.concatenate([sk.color[:frames], conf[..., None]], -1)[:, np.maximum(COCO_FROM_KINECT, 0)]
  kp[:, COCO_FROM_KINECT < 0] = 0.0
  inside = (kp[..., 0] >= -0.5) & (kp[..., 0] <= width - 0.5) & (kp[..., 1] >= -0.5) & (
      kp[..., 1] <= height - 0.5)
  return np.where(inside[..., None] & (kp[..., 2:] > 0), kp, 0.0).astype(np.float32)


def _in_world(camera: Camera, R: np.ndarray, t: np.ndarray) -> Camera:
  """`camera` (in its Kinect's frame) in the world, where X_world = R X_kinect + t."""
  return dataclasses.replace(camera, R=camera.R @ R.T, t=camera.t - camera.R @ R.T @ t)


def _splat(points: np.ndarray, crop: Camera, density: float) -> np.ndarray:
  """uint8 [R, R]: the pixels of the pinhole `crop` that at least half of their expected
  `density` of world points [N, 3] fall in (their centre is covered), holes filled."""
  count = np.zeros((crop.height, crop.width), np.float64)
  z = crop.depth(points)
  xy = np.round(crop.project(points[z > 0])).astype(np.int64)
  inside = (xy[:, 0] >= 0) & (xy[:, 0] < crop.width) & (xy[:, 1] >= 0) & (xy[:, 1] < crop.height)
  np.add.at(count, (xy[inside, 1], xy[inside, 0]), 1.0)
  return ndimage.binary_fill_holes(count >= 0.5 * density).astype(np.uint8)


def depth_masks(files, depth_cameras):
  """masks(view, crop, box) of `multiview_process.Recording`: each frame's masked depth map
  (millimetres, 0 = not the person) back-projected through camera `view`'s depth camera (in the
  world), every depth pixel sampled s x s times over its area (at least 2 x 2 samples per crop
  pixel), and a crop pixel is the person where at least half its expected samples land (its
  centre is covered; holes filled)."""
  def masks(view, crop, box):
    del box
    cam = depth_cameras[view]
    footprint = crop.K[0, 0] / cam.K[0, 0]               # crop pixels per depth pixel
    s = max(2, 2 * int(np.ceil(footprint)))
    ys, xs = np.mgrid[:cam.height * s, :cam.width * s].astype(np.float64)
    grid = np.stack([(xs + 0.5) / s - 0.5, (ys + 0.5) / s - 0.5, np.ones_like(xs)], -1)
    rays = grid @ np.linalg.inv(cam.K).T
    out = []
    for file in files[view]:
      z = iio.imread(file).astype(np.float64) / 1000.0
      if z.shape != (cam.height, cam.width):
        raise ValueError(f"{file} is {z.shape[1]}x{z.shape[0]}, not {cam.width}x{cam.height} "
                         "like the first depth map of its camera")
      z = np.repeat(np.repeat(z, s, 0), s, 1)
      points = (rays[z > 0] * z[z > 0, None] - cam.t) @ cam.R      # R^T (x - t)
      out.append(_splat(points, crop, (s / footprint) ** 2))
    return np.stack(out)
  return masks


def take_recording(name: str, files: list[dict]) -> multiview_process.Recording:
  """The take's `Recording` (module docstring: synchronisation, cameras, keypoints, points3d,
  report, depth masks). A ValueError when a camera has no body or too few tracked joints."""
  skeletons = [main_body(read_skeleton(f["skeleton"])) for f in files]
  infos = [preprocess.probe(f["rgb"]) for f in files]
  depths = [depth_files(f["depth"]) if f["depth"] else [] for f in files]
  n = min([len(s.state) for s in skeletons] + [i.num_frames for i in infos]
          + [len(d) for d in depths if d])
  if n < 2:
    raise ValueError(f"take {name} has {n} frame(s) in some camera; it needs at least 2")
  world = _world(skeletons, n)
  cameras, depth_cams = [], []
  for c, (sk, info, (R, t)) in enumerate(zip(skeletons, infos, world)):
    tracked = sk.state[:n] == 2
    color = resection.resect(sk.xyz[:n][tracked], sk.color[:n][tracked], (info.width, info.height),
                             f"C{CAMERAS[c]:03d}")
    cameras.append(_in_world(color, R, t))
    if depths[c]:
      h, w = iio.imread(depths[c][0]).shape[:2]
      depth = resection.resect(sk.xyz[:n][tracked], sk.depth[:n][tracked], (w, h), color.name)
      depth_cams.append(_in_world(depth, R, t))
  points, conf = _points3d(skeletons, world, n)
  kp = np.stack([_keypoints2d(sk, n, i.width, i.height) for sk, i in zip(skeletons, infos)])
  errors = triangulation.reprojection_errors(points, kp[..., :2], kp[..., 2], cameras)
  report = triangulation.error_report(errors, [c.name for c in cameras])
  with_depth = all(depths)
  sources = {"cameras": "estimated per take from the skeletons (DLT + Levenberg-Marquardt, "
                        "Kabsch into camera 1's Kinect frame)",
             "keypoints": "Kinect v2 joints' colour pixels", "points3d": "Kinect v2 joints of "
             "the three sensors in camera 1's frame, per joint the median",
             "mask": "masked depth maps back-projected" if with_depth else "background-difference"}
  masks = depth_masks([d[:n] for d in depths], depth_cams) if with_depth else None
  return multiview_process.Recording(name, tuple(f["rgb"] for f in files), tuple(cameras), n,
                                     float(infos[0].fps), kp, points, conf, report, sources, masks)
