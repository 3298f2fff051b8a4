"""One calibrated recording -> the per-camera frames and maps of a multi-view dataset
(`psrjax.data.sources.multiview`), shared by `psrjax prepare multiview` and the NTU RGB+D builder.

For a `Recording` (videos, calibrated cameras at the videos' size, 2D detections per camera and
the person's 3D keypoints in the world, in metres):

1. the body: `body_fit.fit_body` fits the synthetic world's body (one shape, per-frame pose
   and root, plausibility priors) to the 3D keypoints (padded with unseen frames to a
   multiple of `FIT_FRAMES_MULTIPLE`, which only the smoothness term reaches);
2. the crop: per camera one square for the whole recording, around the fitted body's keypoints
   projected into the undistorted image over all frames, grown by `margin` x their height at
   the sides and bottom and `video.HEAD_GROWTH` x that at the top (as `video.person_box`);
   kept inside the frame when it fits, else centred on the person and padded with black (a
   portrait camera close to a standing person); its camera is the undistorted pinhole
   `Camera.cropped(...).scaled(R, R)` of the calibrated one;
3. the frames: each frame is undistorted, cropped and resized in one `cv2.remap` through the
   calibration's lens model (bilinear; a frame more than twice the crop's scale is first
   area-shrunk, so that a 1920-pixel video is not aliased into a 256-pixel crop);
4. the geometry: face, part, uv, depth and forward / backward flow maps of the fitted body
   rendered by the synthetic world's renderer in the crop cameras (`body_fit.render_fit`):
   estimated through triangulation and the fit, not measured;
5. keypoints: the camera's detections (left/right repaired), undistorted and moved into the
   crop; points3d: the 3D keypoints the body was fitted to;
6. background and masks (`preprocess.background_and_masks`, `psrjax.data.preparation.estimate`): the
   static camera's plate by masked temporal median outside the person region of the fitted
   body's keypoints (all 18, seen or not: a frame whose detections miss the hips still has a
   torso) and outside the fitted body (grown); person masks given by the recording
   (MediaPipe's segmentation, the NTU depth camera's masked depth) or else by background
   differencing with cleanup around those keypoints.

Each camera's result is cached in a work folder (atomically, keyed by the recording's inputs
and the settings), so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Callable

import cv2
import numpy as np

from psrjax.data import video
from psrjax.data.preparation import body_fit, preprocess
from psrjax.data.sources import multiview
from psrjax.geometry.calibration import Camera

# The fit runs on the frames padded with unseen ones to a multiple of this: its program is
# compiled once per padded length, not once per recording length.
FIT_FRAMES_MULTIPLE = 16


@dataclasses.dataclass(frozen=True)
class Settings:
  resolution: int = 256         # R: every camera's crop is R x R
  fit_steps: int = 600          # Adam steps of the body fit
  margin: float = 0.15          # crop growth (module docstring, step 2)
  tail_fraction: float = 0.15   # a lone recording's held-out tail (every camera)
  min_frames: int = 2           # fewest frames of a take (flow needs neighbours)

  def key(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclasses.dataclass(frozen=True)
class Recording:
  """One synchronised multi-camera recording (module docstring). keypoints2d [V, T, 18, 3]
  (distorted pixels of each video), points3d [T, 18, 3] world metres (NaN = missing),
  confidence [T, 18]; `report` the triangulation's reprojection report (or the camera
  estimation's); `sources` says where keypoints, 3D points and cameras come from; `masks`,
  when given, returns camera v's person masks uint8 [T, R, R] for its crop camera and crop
  box: masks(v, crop, box)."""
  name: str
  videos: tuple[str, ...]
  cameras: tuple[Camera, ...]
  num_frames: int
  fps: float
  keypoints2d: np.ndarray
  points3d: np.ndarray
  confidence: np.ndarray
  report: dict
  sources: dict
  masks: Callable[..., np.ndarray] | None = dataclasses.field(default=None, compare=False)

  @property
  def names(self) -> list[str]:
    return [c.name for c in self.cameras]


def pinhole(camera: Camera) -> Camera:
  """`camera` without lens distortion (the camera of its undistorted images)."""
  return dataclasses.replace(camera, dist=np.zeros(0), fisheye=False)


def crop_box(points, width: int, height: int, margin: float = 0.15) -> tuple[int, int, int]:
  """(x0, y0, size): the square of step 2 (module docstring) around points [..., 2] (NaN
  ignored) of a width x height image; it may reach outside the image when larger than it."""
  pts = np.asarray(points, np.float64).reshape(-1, 2)
  pts = pts[np.all(np.isfinite(pts), axis=-1)]
  if len(pts) == 0:
    raise ValueError("the fitted body projects nowhere; the camera does not see the person")
  (left, top), (right, bottom) = pts.min(0) - 0.5, pts.max(0) + 0.5
  grow = margin * (bottom - top)
  left, right, bottom, top = left - grow, right + grow, bottom + grow, top - video.HEAD_GROWTH * grow
  size = max(int(np.ceil(max(right - left, bottom - top) - 1e-6)), 1)
  size = min(size, max(width, height))
  x0, y0 = round((left + right) / 2 - size / 2 + 0.5), round((top + bottom) / 2 - size / 2 + 0.5)
  if size <= width:
    x0 = int(np.clip(x0, 0, width - size))
  if size <= height:
    y0 = int(np.clip(y0, 0, height - size))
  return int(x0), int(y0), size


def crop_camera(camera: Camera, box, resolution: int) -> Camera:
  """The undistorted camera of the square `box` of `camera`'s image resized to R x R."""
  x0, y0, size = box
  return pinhole(camera).cropped(x0, y0, size, size).scaled(resolution, resolution)


def warp_maps(camera: Camera, crop: Camera) -> tuple[np.ndarray, np.ndarray]:
  """float32 (map_x, map_y) [R, R] for cv2.remap: where each pixel of the `crop` camera's image
  lies in `camera`'s recorded (distorted) image. Both share R and t; `camera` may be scaled."""
  r = crop.height
  ys, xs = np.mgrid[:r, :crop.width].astype(np.float64)
  rays = np.stack([xs, ys, np.ones_like(xs)], -1) @ np.linalg.inv(crop.K).T
  pix = camera.distort(rays[..., :2]) @ camera.K[:2, :2].T + camera.K[:2, 2]
  return pix[..., 0].astype(np.float32), pix[..., 1].astype(np.float32)


def _shrunk(camera: Camera, crop: Camera, side: float) -> tuple[Camera, float]:
  """(the camera of the frame area-shrunk to about twice the crop's scale, the factor <= 1);
  `side` is the crop's side in the frame's pixels."""
  factor = min(1.0, 2.0 * crop.width / side)
  if factor == 1.0:
    return camera, factor
  size = (max(1, round(camera.width * factor)), max(1, round(camera.height * factor)))
  return camera.scaled(*size), factor


def warp_image(image: np.ndarray, camera: Camera, crop: Camera, box, *, maps=None,
               interpolation=cv2.INTER_LINEAR) -> np.ndarray:
  """One image of `camera` (any size with its aspect) undistorted, cropped and resized to the
  `crop` camera (step 3), black outside the recorded image."""
  side = box[2] * image.shape[1] / camera.width
  if camera.size != image.shape[1::-1]:
    camera = camera.scaled(image.shape[1], image.shape[0])
  small, factor = _shrunk(camera, crop, side)
  if factor < 1.0:
    image = cv2.resize(image, small.size, interpolation=cv2.INTER_AREA)
  mx, my = maps if maps is not None else warp_maps(small, crop)
  return cv2.remap(image, mx, my, interpolation, borderMode=cv2.BORDER_CONSTANT)


def read_view(path: str, camera: Camera, crop: Camera, box, num_frames: int) -> np.ndarray:
  """uint8 [num_frames, R, R, 3]: the first `num_frames` frames of a video warped (step 3)."""
  small, _ = _shrunk(camera, crop, box[2])
  maps = warp_maps(small, crop)
  out = np.zeros((num_frames, crop.height, crop.width, 3), np.uint8)
  count = 0
  for frame in video.iter_frames(path):
    if count == num_frames:
      break
    if frame.shape[1::-1] != camera.size:
      raise ValueError(f"{path}: frame {count} is {frame.shape[1]}x{frame.shape[0]}, not "
                       f"{camera.width}x{camera.height}; re-encode it at one size")
    out[count] = warp_image(frame, camera, crop, box, maps=maps)
    count += 1
  if count < num_frames:
    raise ValueError(f"{path} decoded {count} frames, fewer than the {num_frames} it reported; "
                     "re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)")
  return out


def crop_keypoints(keypoints2d, camera: Camera, crop: Camera) -> np.ndarray:
  """float32 [T, 18, 3]: detections in `camera`'s recorded pixels moved into the crop (step 5);
  missing ones and those outside the crop are (0, 0, 0)."""
  kp = np.asarray(keypoints2d, np.float64)
  undistorted = camera.undistort_points(kp[..., :2])
  rays = np.concatenate([undistorted, np.ones_like(undistorted[..., :1])], -1)
  rays = rays @ np.linalg.inv(pinhole(camera).K).T
  xy = rays[..., :2] @ crop.K[:2, :2].T + crop.K[:2, 2]
  ok = (kp[..., 2] > 0) & np.all(np.isfinite(xy), axis=-1)
  ok &= np.all((xy >= -0.5) & (xy <= crop.width - 0.5), axis=-1)
  out = np.concatenate([xy, kp[..., 2:]], -1)
  return np.where(ok[..., None], out, 0.0).astype(np.float32)


def camera_dict(camera: Camera) -> dict:
  """The index's record of a camera (module docstring of `psrjax.data.sources.multiview`)."""
  return {"name": camera.name, "size": list(camera.size), "K": camera.K.tolist(),
          "R": camera.R.tolist(), "t": camera.t.tolist()}


# ----------------------------------------------------------------------------------------------
# The recording, camera by camera, with the work cache.


def fingerprint(rec: Recording, settings: Settings) -> str:
  """Changes when the recording's files, detections, 3D points or the settings change."""
  digest = hashlib.sha256(settings.key().encode())
  for path in rec.videos:
    st = os.stat(path)
    digest.update(f"{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}".encode())
  for arr in (rec.keypoints2d, rec.points3d, rec.confidence):
    digest.update(np.ascontiguousarray(arr, np.float32).tobytes())
  for cam in rec.cameras:
    digest.update(json.dumps(camera_dict(cam)).encode() + cam.dist.tobytes())
  return digest.hexdigest()[:16]


def _fit(rec: Recording, settings: Settings, path: str) -> body_fit.BodyFit:
  """The body fit (step 1), from `path` when an earlier run saved it."""
  if os.path.exists(path):
    with np.load(path) as z:
      return body_fit.BodyFit(*(z[k] for k in ("shape", "pose", "root", "residuals",
                                               "loss_history")))
  n = rec.num_frames
  pad = -n % FIT_FRAMES_MULTIPLE
  points = np.concatenate([rec.points3d, np.full((pad, 18, 3), np.nan)])
  confidence = np.concatenate([rec.confidence, np.zeros((pad, 18))])
  fit = body_fit.fit_body(points, confidence, steps=settings.fit_steps)
  fit = dataclasses.replace(fit, pose=fit.pose[:n], root=fit.root[:n], residuals=fit.residuals[:n])
  tmp = path + ".tmp.npz"
  np.savez(tmp, **dataclasses.asdict(fit))
  os.replace(tmp, path)
  return fit


def _crops(rec: Recording, fit: body_fit.BodyFit, settings: Settings):
  """(boxes, crop cameras) of every camera (step 2)."""
  boxes, crops = [], []
  for cam in rec.cameras:
    box = crop_box(pinhole(cam).project(fit.keypoints), cam.width, cam.height, settings.margin)
    boxes.append(box)
    crops.append(dataclasses.replace(crop_camera(cam, box, settings.resolution), name=cam.name))
  return boxes, crops


def process_view(rec: Recording, view: int, box, crop: Camera, maps: dict) -> dict:
  """Every modality of camera `view` over the whole recording (steps 3-6); `maps` are the
  fitted body's renders in the crop cameras (views first)."""
  cam = rec.cameras[view]
  frames = read_view(rec.videos[view], cam, crop, box, rec.num_frames)
  kp = crop_keypoints(rec.keypoints2d[view], cam, crop)
  known = None if rec.masks is None else rec.masks(view, crop, box)
  body = np.array(maps["keypoints"][view], np.float32)      # the fitted body's, every joint
  body[..., 2] = np.all((body[..., :2] >= -0.5) & (body[..., :2] <= crop.width - 0.5), axis=-1)
  background, mask = preprocess.background_and_masks(frames, body, known,
                                                      near=maps["depth"][view] > 0)
  out = {"rgb": frames, "keypoints": kp, "mask": mask, "background": background,
         "points3d": np.asarray(rec.points3d, np.float32),
         "face": maps["face"][view].astype(np.int32), "part": maps["part"][view].astype(np.uint8),
         "uv": maps["uv"][view].astype(np.float16), "depth": maps["depth"][view].astype(np.float32),
         "flow_fwd": maps["flow_fwd"][view].astype(np.float16),
         "flow_bwd": maps["flow_bwd"][view].astype(np.float16)}
  out["meta"] = {"source": os.path.abspath(rec.videos[view]), "camera": camera_dict(crop),
                 "calibrated_camera": {**camera_dict(cam), "dist": cam.dist.tolist(),
                                       "fisheye": cam.fisheye},
                 "crop_box": [int(b) for b in box]}
  return out


def process_recording(rec: Recording, settings: Settings, work: str, *, index: int = 0,
                      log=print) -> tuple[list[str], dict]:
  """(per camera the work-cache file of `process_view`'s result, the recording's index entry);
  cached results of an earlier run are kept (module docstring)."""
  os.makedirs(work, exist_ok=True)
  safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in rec.name)
  stem = os.path.join(work, f"{index:05d}_{safe}_{fingerprint(rec, settings)}")
  caches = [f"{stem}_view{v}.npz" for v in range(len(rec.cameras))]
  fit = _fit(rec, settings, stem + "_fit.npz")
  boxes, crops = _crops(rec, fit, settings)
  todo = [v for v, c in enumerate(caches) if not os.path.exists(c)]
  if todo:
    log(f"{rec.name}: rendering the fitted body in {len(crops)} cameras ...")
    maps = body_fit.render_fit(fit, crops)
  for v in todo:
    log(f"{rec.name}: camera {rec.names[v]}: reading, estimating ...")
    preprocess.save_cached(caches[v], process_view(rec, v, boxes[v], crops[v], maps))
  entry = {"name": rec.name, "cameras": rec.names, "num_frames": rec.num_frames,
           "fps": rec.fps, "videos": [os.path.abspath(p) for p in rec.videos],
           "sources": rec.sources, "reprojection": rec.report,
           "fit": {"steps": settings.fit_steps, "shape": fit.shape.tolist(),
                   "median_residual_m": _nanmedian(fit.residuals)}}
  return caches, entry


def _nanmedian(values) -> float | None:
  values = np.asarray(values, np.float64)
  values = values[np.isfinite(values)]
  return float(np.median(values)) if values.size else None


# ----------------------------------------------------------------------------------------------
# Takes, the index and the records (`psrjax.data.sources.multiview`'s layout).


def takes_of(rec_index: int, entry: dict, caches: list[str], splits,
             settings: Settings) -> list[tuple[dict, list[dict]]]:
  """[(take, its video entries)] of a processed recording: `splits` "tail" holds out the last
  `tail_fraction` of the frames of every camera as a take "<name>:tail"; "train" / "test" makes
  the whole recording one take of that split; a list gives each camera's split (one take)."""
  n, name = entry["num_frames"], entry["name"]
  if splits == "tail":
    tail = max(1, round(settings.tail_fraction * n))
    if n - tail < settings.min_frames or tail < settings.min_frames:
      raise ValueError(f"the only recording, {name}, has {n} frames: too few to hold out its last "
                       f"{settings.tail_fraction:.0%}; record longer or add recordings")
    parts = [(name, 0, n - tail, ["train"] * len(caches)),
             (name + ":tail", n - tail, n, ["test"] * len(caches))]
  else:
    split = [splits] * len(caches) if isinstance(splits, str) else list(splits)
    parts = [(name, 0, n, split)]
  out = []
  for take_name, start, stop, split in parts:
    videos = [dict(name=f"{take_name}:{cam}", view=v, split=split[v], cache=caches[v],
                   start=start, stop=stop) for v, cam in enumerate(entry["cameras"])]
    out.append((dict(name=take_name, recording=rec_index, first_frame=start,
                     num_frames=stop - start, fps=entry["fps"]), videos))
  return out


def make_index(recordings: list[dict], takes: list[tuple[dict, list[dict]]], settings: Settings,
               estimated: dict) -> tuple[dict, list[dict]]:
  """(the index's content, the video entries in record order): videos grouped by split, each
  with its record offset in the split, its take and its camera (from its work file)."""
  entries = [dict(v, take=t) for t, (_, videos) in enumerate(takes) for v in videos]
  entries = [e for _, e in sorted(enumerate(entries), key=lambda p: (p[1]["split"] != "train",
                                                                      p[0]))]
  offsets, videos = {}, []
  take_videos = [[None] * len(v) for _, v in takes]
  for i, e in enumerate(entries):
    n = e["stop"] - e["start"]
    meta = load_meta(e["cache"])
    videos.append({"name": e["name"], "take": e["take"], "view": e["view"], "split": e["split"],
                   "offset": offsets.get(e["split"], 0), "num_frames": n,
                   "first_frame": e["start"], "camera": meta["camera"],
                   "crop_box": meta["crop_box"]})
    offsets[e["split"]] = offsets.get(e["split"], 0) + n
    take_videos[e["take"]][e["view"]] = i
  index = {"format": multiview.FORMAT, "resolution": settings.resolution,
           "settings": dataclasses.asdict(settings), "splits": offsets, "estimated": estimated,
           "recordings": recordings,
           "takes": [dict(t, videos=vs) for (t, _), vs in zip(takes, take_videos)],
           "videos": videos}
  return index, entries


def load_meta(path: str) -> dict:
  with np.load(path) as z:
    return json.loads(str(z["meta"]))


def records(entries: list[dict], split: str):
  """(key, record) of every frame of `split`'s video entries, in record order."""
  key = 0
  for i, entry in enumerate(entries):
    if entry["split"] != split:
      continue
    data = preprocess.load_cached(entry["cache"])
    for t in range(entry["start"], entry["stop"]):
      record = {k: data[k][t] for k in ("rgb", "keypoints", "points3d", "face", "part", "uv",
                                        "depth", "flow_fwd", "flow_bwd")}
      record.update(video=np.int32(i), frame=np.int32(t - entry["start"]),
                    mask=data["mask"][t][..., None], background=data["background"])
      yield key, record
      key += 1
