"""Per-video processing shared by `psrjax prepare` (`psrjax.data.preparation.prepare`) and the TFDS
builders of real videos (`psrjax.data.builders.video_builder`): listing a folder's videos and their
splits, importing keypoints and masks, cropping, estimating masks, background and flow, the
per-video work cache, the dataset index and its frame records. `psrjax.data.preparation.prepare`'s
docstring describes the steps and the layout they produce.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os

import cv2
import numpy as np

from psrjax.data import video
from psrjax.data.preparation import estimate, keypoint_io, pose_estimator
from psrjax.data.sources import prepared
from psrjax.geometry import face_crop

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclasses.dataclass(frozen=True)
class Settings:
  resolution: int = 256         # R: output frames are R x R
  smooth: float = 0.0           # temporal Gaussian std (frames) of the keypoints; 0 = none
  min_frames: int = 2           # videos with fewer frames are an error
  tail_fraction: float = 0.15   # a lone video's held-out tail
  flow_preset: str = "medium"   # OpenCV DIS preset: "ultrafast" | "fast" | "medium"

  def key(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True)


# ----------------------------------------------------------------------------------------------
# Inputs.


def list_videos(videos_dir: str) -> list[str]:
  """Video files and image sub-folders of `videos_dir`, sorted by name."""
  if not os.path.isdir(videos_dir):
    raise FileNotFoundError(f"--videos {videos_dir!r} is not a folder; give the folder that holds "
                            "the videos")
  found = []
  for name in sorted(os.listdir(videos_dir)):
    path = os.path.join(videos_dir, name)
    if os.path.isdir(path) and any(f.lower().endswith(IMAGE_EXTENSIONS) for f in os.listdir(path)):
      found.append(path)
    elif os.path.isfile(path) and name.lower().endswith(VIDEO_EXTENSIONS):
      found.append(path)
  if not found:
    raise ValueError(f"no videos in {videos_dir!r}: expected files ending in "
                     f"{', '.join(VIDEO_EXTENSIONS)} or sub-folders of images")
  return found


def video_name(path: str) -> str:
  base = os.path.basename(os.path.normpath(path))
  return os.path.splitext(base)[0] if os.path.isfile(path) else base


def mask_path(masks_dir: str, name: str) -> str:
  """The person masks of video `name` in `masks_dir`: <name>.npy / .npz ([T, H, W], > 0 =
  person) or <name>/ (one image per frame, > 127 = person)."""
  for candidate in (name + ".npy", name + ".npz", name):
    path = os.path.join(masks_dir, candidate)
    if os.path.exists(path):
      return path
  raise FileNotFoundError(f"no masks for video {name!r} in {masks_dir!r}: expected {name}.npy, "
                          f"{name}.npz or {name}/ (one image per frame)")


def load_masks(path: str, *, num_frames: int, height: int, width: int) -> np.ndarray:
  """bool [T, H, W] person masks from `mask_path`'s file or folder, checked against the video."""
  if os.path.isdir(path):
    masks = np.stack([f[..., 0] > 127 for f in video.iter_frames(path)])
  else:
    try:
      with np.load(path) as z:
        masks = z if isinstance(z, np.ndarray) else z[z.files[0]]
        masks = np.asarray(masks) > 0
    except (OSError, ValueError) as e:
      raise ValueError(f"{path} is not a NumPy mask file ({e}); save masks as [T, H, W]") from e
  if masks.shape != (num_frames, height, width):
    raise ValueError(f"{path} holds masks of shape {masks.shape} but the video has {num_frames} "
                     f"frames of {height}x{width}; give one mask per frame at the video's size")
  return masks


def keypoint_path(keypoints_dir: str, name: str) -> str:
  """The keypoint source of video `name` in `keypoints_dir` (a folder of OpenPose JSONs, a COCO
  .json, a .npy or .npz)."""
  for candidate in (name, name + ".json", name + ".npy", name + ".npz"):
    path = os.path.join(keypoints_dir, candidate)
    if os.path.exists(path):
      return path
  raise FileNotFoundError(f"no keypoints for video {name!r} in {keypoints_dir!r}: expected "
                          f"{name}/ (OpenPose JSON per frame), {name}.json (COCO) or {name}.npy")


def split_videos(paths: list[str], test_videos: tuple[str, ...] = ()) -> dict[str, str]:
  """{path: "train" | "test"}: the named videos, else the last ceil(10 %), are held out."""
  names = [video_name(p) for p in paths]
  unknown = sorted(set(test_videos) - set(names))
  if unknown:
    raise ValueError(f"the held-out videos {', '.join(unknown)} are not videos of the folder (its "
                     f"videos: {', '.join(names[:10])}{' ...' if len(names) > 10 else ''}); "
                     "name held-out videos by file name without extension")
  if len(paths) == 1:
    return {paths[0]: "train"}   # the tail of the lone video is held out instead
  held = set(test_videos) or set(names[-math.ceil(0.1 * len(paths)):])
  if held == set(names):
    raise ValueError("every video is held out; leave at least one for training")
  return {p: ("test" if n in held else "train") for p, n in zip(paths, names)}


def fingerprint(path: str, kp_path: str | None, settings: Settings,
                mask_file: str | None = None) -> str:
  """Changes when the video, its keypoints, its masks or the settings change."""
  parts = [settings.key()]
  for p in (path, kp_path, mask_file):
    if p is None:
      continue
    st = os.stat(p)
    parts.append(f"{os.path.abspath(p)}:{st.st_size}:{st.st_mtime_ns}")
    if os.path.isdir(p):
      parts.append(str(sorted((f, os.stat(os.path.join(p, f)).st_mtime_ns) for f in os.listdir(p))))
  return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# One video.


def estimate_poses(path: str, info) -> tuple[np.ndarray, list[np.ndarray]]:
  """MediaPipe keypoints [T, 18, 3] of the full frames and their segmentations (uint8 0..255,
  downscaled to at most 512 px on the longer side to bound memory)."""
  scale = min(1.0, 512 / max(info.height, info.width))
  small = (max(1, round(info.width * scale)), max(1, round(info.height * scale)))
  keypoints, segmentations = [], []
  with pose_estimator.MediaPipePose() as estimator:
    for frame in video.iter_frames(path):
      kp, seg = estimator(frame)
      keypoints.append(kp)
      seg = np.zeros(frame.shape[:2], np.float32) if seg is None else seg
      segmentations.append(cv2.resize((seg * 255).astype(np.uint8), small,
                                      interpolation=cv2.INTER_AREA))
  return np.stack(keypoints).astype(np.float32), segmentations


def _crop_segmentations(segmentations, info, box, resolution: int) -> np.ndarray:
  """Person masks {0,1} [T, R, R] from the estimator's segmentations."""
  out = []
  for seg in segmentations:
    full = cv2.resize(seg, (info.width, info.height), interpolation=cv2.INTER_LINEAR)
    rgb = np.repeat(full[..., None], 3, axis=-1)
    out.append(video.crop_resize(rgb[None], box, resolution)[0, ..., 0] >= 128)
  return np.stack(out).astype(np.uint8)


def _crop_frames(path: str, box, resolution: int, num_frames: int) -> np.ndarray:
  frames = np.empty((num_frames, resolution, resolution, 3), np.uint8)
  count = 0
  for frame in video.iter_frames(path):
    if count == num_frames:
      raise ValueError(f"{path} decoded more frames than the {num_frames} it reported; re-encode "
                       "it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)")
    frames[count] = video.crop_resize(frame[None], box, resolution)[0]
    count += 1
  if count != num_frames:
    raise ValueError(f"{path} decoded {count} frames but reported {num_frames}; re-encode it "
                     "(e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)")
  return frames


def _person(path: str, kp_path: str | None, info) -> tuple[np.ndarray, list | None, dict]:
  """Keypoints [T, 18, 3] in the video's pixels, MediaPipe's segmentations (None when the
  keypoints are imported) and where both come from."""
  if kp_path is None:
    keypoints, segmentations = estimate_poses(path, info)
    return keypoints, segmentations, {"keypoints": "mediapipe-pose",
                                      "mask": "mediapipe-segmentation"}
  keypoints = keypoint_io.load_keypoints(kp_path, num_frames=info.num_frames,
                                         height=info.height, width=info.width)
  return keypoints, None, {"keypoints": f"imported:{os.path.basename(kp_path)}",
                           "mask": "background-difference"}


def background_and_masks(frames: np.ndarray, keypoints: np.ndarray, masks=None,
                         near=None) -> tuple[np.ndarray, np.ndarray]:
  """(background plate uint8 [R, R, 3], person masks uint8 {0,1} [T, R, R]) of cropped frames
  [T, R, R, 3] with keypoints [T, 18, 3] in their pixels: the plate is the masked temporal median
  outside the keypoints' person region, `masks` and `near` (bool [T, R, R], where the person is
  known to be; both grown by a few pixels); the masks are `masks` when given, else background
  differencing with keypoint-guided cleanup (`estimate.masks_from_background`)."""
  r = frames.shape[1]
  person = estimate.person_region(keypoints, r, frames.shape[2])
  for known in (masks, near):
    if known is not None:   # the known person, grown by a few pixels, is not background either
      person |= np.stack([cv2.dilate(np.asarray(m, np.uint8), np.ones((5, 5), np.uint8)) > 0
                          for m in known])
  background, covered = estimate.background_median(frames, person)
  if masks is None:
    masks = estimate.masks_from_background(frames, background, keypoints, covered=covered)
  return background, np.asarray(masks, np.uint8)


def process_video(path: str, kp_path: str | None, settings: Settings,
                  mask_file: str | None = None) -> dict:
  """Frames, keypoints and estimated modalities of one video at R x R, plus its metadata.
  Person masks: imported from `mask_file`, else MediaPipe's segmentation when it estimated the
  keypoints, else background differencing (`estimate.masks_from_background`)."""
  info = probe(path)
  if info.num_frames < settings.min_frames:
    raise ValueError(f"{path} has {info.num_frames} frame(s); a video needs at least "
                     f"{settings.min_frames} (flow needs neighbours)")
  keypoints, segmentations, sources = _person(path, kp_path, info)
  check_person(keypoints, path)
  box = video.person_box(keypoints, info.height, info.width)
  r = settings.resolution
  frames = _crop_frames(path, box, r, info.num_frames)
  kp = video.crop_keypoints(keypoints, box, r)
  if settings.smooth > 0:
    kp = keypoint_io.smooth_keypoints(kp, sigma=settings.smooth)
  kp = np.where(kp[..., 2:] > 0, kp, 0.0)          # missing keypoints are (0, 0, 0)
  mask = None
  if mask_file is not None:
    mask = video.crop_masks(load_masks(mask_file, num_frames=info.num_frames, height=info.height,
                                       width=info.width), box, r)
    sources["mask"] = f"imported:{os.path.basename(mask_file)}"
  elif segmentations is not None:
    mask = _crop_segmentations(segmentations, info, box, r)
  background, mask = background_and_masks(frames, kp, mask)
  flow_fwd, flow_bwd = estimate.flow_dis(frames, preset=settings.flow_preset)
  sources.update(background="masked-temporal-median", flow=f"opencv-dis-{settings.flow_preset}",
                 face_box="head-keypoints")
  meta = {"source": os.path.abspath(path), "fps": float(info.fps), "num_frames": len(frames),
          "original_size": [int(info.height), int(info.width)],
          "crop_box": [float(b) for b in box], "estimated": sources}
  return {"rgb": frames, "keypoints": kp.astype(np.float32), "mask": mask.astype(np.uint8),
          "flow_fwd": flow_fwd.astype(np.float16), "flow_bwd": flow_bwd.astype(np.float16),
          "background": background, "face_box": np.asarray(face_crop.face_boxes(kp), np.float32),
          "meta": meta}


# ----------------------------------------------------------------------------------------------
# The work folder: one cached, atomically written file per processed video.


def _cache_file(work: str, index: int, name: str, key: str) -> str:
  safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
  return os.path.join(work, f"{index:05d}_{safe}_{key}.npz")


def save_cached(path: str, result: dict) -> None:
  """Writes a processed video (arrays and "meta") to the work file `path` atomically."""
  tmp = path + ".tmp.npz"
  arrays = {k: v for k, v in result.items() if k != "meta"}
  np.savez(tmp, meta=np.array(json.dumps(result["meta"])), **arrays)
  os.replace(tmp, path)


def load_cached(path: str) -> dict:
  with np.load(path) as z:
    out = {k: z[k] for k in z.files if k != "meta"}
    out["meta"] = json.loads(str(z["meta"]))
  return out


def process_all(paths, splits: dict, keypoints: dict, settings: Settings, work: str,
                log=print, names: dict | None = None, masks: dict | None = None) -> list[dict]:
  """Processes (or loads from the work folder) every video, with keypoints from
  `keypoints[path]` (None: estimated), person masks from `masks[path]` (absent: estimated) and
  the name `names[path]` (default: `video_name`); returns the dataset's entries {name, split, cache, start, stop, meta} in order."""
  os.makedirs(work, exist_ok=True)
  entries = []
  for i, path in enumerate(paths):
    name = (names or {}).get(path) or video_name(path)
    kp_path, mask_file = keypoints.get(path), (masks or {}).get(path)
    cache = _cache_file(work, i, name, fingerprint(path, kp_path, settings, mask_file))
    if os.path.exists(cache):
      log(f"[{i + 1}/{len(paths)}] {name}: done earlier (resumed)")
      meta = load_cached(cache)["meta"]
    else:
      log(f"[{i + 1}/{len(paths)}] {name}: reading, estimating ...")
      result = process_video(path, kp_path, settings, mask_file)
      save_cached(cache, result)
      meta = result["meta"]
      log(f"[{i + 1}/{len(paths)}] {name}: {len(result['rgb'])} frames")
    entries.extend(_entries(name, splits[path], cache, meta, settings, lone=len(paths) == 1))
  return entries


def _entries(name, split, cache, meta, settings: Settings, *, lone: bool) -> list[dict]:
  n = meta["num_frames"]
  if not lone:
    return [dict(name=name, split=split, cache=cache, start=0, stop=n, meta=meta)]
  tail = max(1, round(settings.tail_fraction * n))
  if n - tail < settings.min_frames or tail < settings.min_frames:
    raise ValueError(f"the only video, {name}, has {n} frames: too few to hold out its last "
                     f"{settings.tail_fraction:.0%}; add more videos to the folder")
  return [dict(name=name, split="train", cache=cache, start=0, stop=n - tail, meta=meta),
          dict(name=name + ":tail", split="test", cache=cache, start=n - tail, stop=n, meta=meta)]


# ----------------------------------------------------------------------------------------------
# The index of a dataset's videos.


def make_index(entries: list[dict], settings: Settings) -> dict:
  """videos.json's content: every video's split, record offset in its split, frame count and
  metadata, in record order."""
  offsets, videos = {}, []
  for e in entries:
    n = e["stop"] - e["start"]
    videos.append({**e["meta"], "name": e["name"], "split": e["split"],
                   "offset": offsets.get(e["split"], 0), "num_frames": n,
                   "first_frame": e["start"]})
    offsets[e["split"]] = offsets.get(e["split"], 0) + n
  return {"format": prepared.FORMAT, "resolution": settings.resolution,
          "settings": dataclasses.asdict(settings), "splits": offsets, "videos": videos}


def records(entries: list[dict], split: str):
  """(key, record) of every frame of `split`'s entries, in order (the TFDS examples)."""
  key = 0
  for i, entry in enumerate(entries):
    if entry["split"] != split:
      continue
    data = load_cached(entry["cache"])
    for t in range(entry["start"], entry["stop"]):
      yield key, _record(data, i, t - entry["start"], t)
      key += 1


def _record(data: dict, video: int, frame: int, t: int) -> dict:
  return {"video": np.int32(video), "frame": np.int32(frame), "rgb": data["rgb"][t],
          "keypoints": data["keypoints"][t], "mask": data["mask"][t][..., None],
          "flow_fwd": data["flow_fwd"][t], "flow_bwd": data["flow_bwd"][t],
          "background": data["background"], "face_box": data["face_box"][t]}


def check_person(keypoints: np.ndarray, path: str) -> None:
  if not np.any(keypoints[..., 2] > 0):
    raise ValueError(f"no person found in {path}: no keypoint is visible in any frame; check the "
                     "video or its keypoint files")


def probe(path: str):
  """`video.probe`, once per version of a video (counting frames decodes the whole video)."""
  st = os.stat(path)
  return _probe_version(path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _probe_version(path: str, size: int, mtime_ns: int):
  del size, mtime_ns  # cache keys only
  return video.probe(path)
