"""Keypoints of real videos, imported to psrjax's COCO-18 contract.

The contract (`pose_labels.check_keypoints`): float32 [T, 18, 3] in the order of
`psrjax.geometry.skeleton.COCO_NAMES` (OpenPose's COCO-18), columns x, y in pixels with pixel centres
at integers, and a visibility/confidence in [0, 1] where 0 means missing. Missing points are
stored as (0, 0, 0), as OpenPose does.

Sources:
  OpenPose  a folder of per-frame JSONs (`--write_json`), BODY_25 or COCO-18 per person; pixel
            coordinates already use the contract's convention.
  COCO      a keypoints JSON (`images`, `annotations` with 17 keypoints each); COCO keypoint
            coordinates are pixel indices, also the contract's convention. Visibility flags
            v in {0, 1, 2} become 0 / 1 (1 = labelled, even when occluded); values that are not
            all in {0, 1, 2} are taken as detector confidences and clipped to [0, 1].
  MediaPipe Pose's 33 landmarks with x, y normalised to [0, 1] of the image: x_pix = x W - 0.5.
  numpy     .npy, or .npz with a `keypoints` array, [T, N, C] where N picks the layout:
            18 COCO-18, 17 COCO, 25 BODY_25 (all in pixels) and 33 MediaPipe (normalised; C = 3
            is x, y, visibility, C = 4 or 5 is x, y, z, visibility(, presence)). C = 2 (N != 33)
            means every point is visible. A third column outside [0, 1] (a depth, not a
            confidence) is refused rather than guessed at.
COCO, MediaPipe and COCO-18 share "left" = the person's left. The neck, which COCO and MediaPipe
lack, is the midpoint of the shoulders when both are present, with the smaller confidence.

When several people are detected in a frame, `track_main_person` follows one of them: the
largest in the first frame with anyone (area of the box of its confident points x its mean
confidence), then in each frame the one nearest the previous choice (mean distance of the
joints confident in both, over the previous person's size), falling back to the largest when
even the nearest moved more than MAX_JUMP of its size. Frames with nobody get zeros.
"""
from __future__ import annotations

import json
import os
import re

import numpy as np
from scipy import ndimage

NUM_KEYPOINTS = 18
# COCO-18 slot -> source index (-1: the neck, from the shoulders).
BODY25_TO_COCO18 = np.array([0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18])
COCO17_TO_COCO18 = np.array([0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3])
MEDIAPIPE33_TO_COCO18 = np.array([0, -1, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8,
                                  7])
R_SHOULDER, L_SHOULDER = 2, 5
# Points below this confidence do not count for a person's box, size or matching.
MIN_CONFIDENCE = 0.1
# Tracking gives up on the nearest person when it is farther than this x the previous size.
MAX_JUMP = 1.0


def _remap(points: np.ndarray, table: np.ndarray) -> np.ndarray:
  """[..., N, 3] source points -> [..., 18, 3] by `table`, the neck from the shoulders."""
  out = np.array(points[..., np.maximum(table, 0), :], np.float32)
  ls, rs = out[..., L_SHOULDER, :], out[..., R_SHOULDER, :]
  both = (ls[..., 2] > 0) & (rs[..., 2] > 0)
  neck = np.concatenate([(ls[..., :2] + rs[..., :2]) / 2,
                         np.minimum(ls[..., 2:], rs[..., 2:])], -1)
  out[..., 1, :] = np.where(both[..., None], neck, 0.0)
  return _zero_missing(out)


def _zero_missing(kp: np.ndarray) -> np.ndarray:
  """Missing points (confidence 0 or non-finite) become (0, 0, 0)."""
  finite = np.all(np.isfinite(kp), -1)
  kp = np.where(np.isfinite(kp), kp, 0.0).astype(np.float32)
  bad = ~finite | (kp[..., 2] <= 0)
  kp[bad] = 0.0
  return kp


def body25_to_coco18(points) -> np.ndarray:
  """[..., 25, 3] OpenPose BODY_25 -> [..., 18, 3] COCO-18 (MidHip and the feet dropped)."""
  return _zero_missing(np.asarray(points, np.float32)[..., BODY25_TO_COCO18, :])


def _coco_confidence(v: np.ndarray) -> np.ndarray:
  if np.all(np.isin(v, (0.0, 1.0, 2.0))):
    return (v > 0).astype(np.float32)
  return np.clip(v, 0.0, 1.0)


def coco17_to_coco18(points) -> np.ndarray:
  """[..., 17, 3] COCO keypoints (x, y, v) -> [..., 18, 3] COCO-18."""
  pts = np.array(points, np.float32)
  pts[..., 2] = _coco_confidence(pts[..., 2])
  return _remap(pts, COCO17_TO_COCO18)


def mediapipe33_to_coco18(landmarks, height: int, width: int) -> np.ndarray:
  """[..., 33, C] MediaPipe Pose landmarks, x, y normalised (C = 3: x, y, visibility; C = 4/5:
  x, y, z, visibility(, presence)) -> [..., 18, 3] COCO-18 in pixels of a height x width image.
  Points that fall outside the image get confidence 0."""
  lm = np.asarray(landmarks, np.float32)
  if lm.shape[-2] != 33 or lm.shape[-1] not in (3, 4, 5):
    raise ValueError(f"MediaPipe landmarks must be [..., 33, 3|4|5], got {lm.shape}; "
                     "pass x, y(, z), visibility per landmark")
  vis = lm[..., 2] if lm.shape[-1] == 3 else lm[..., 3]
  pts = np.stack([lm[..., 0] * width - 0.5, lm[..., 1] * height - 0.5, np.clip(vis, 0, 1)], -1)
  return drop_outside(_remap(pts, MEDIAPIPE33_TO_COCO18), height, width)


def drop_outside(keypoints, height: int, width: int) -> np.ndarray:
  """Keypoints with the points outside the height x width frame set to (0, 0, 0)."""
  kp = np.array(keypoints, np.float32)
  x, y = kp[..., 0], kp[..., 1]
  outside = (x < -0.5) | (x > width - 0.5) | (y < -0.5) | (y > height - 0.5)
  kp[outside] = 0.0
  return kp


def _extent(person: np.ndarray) -> tuple[float, float]:
  """(box area, size = longer box side) of a person's confident points (size at least 1)."""
  pts = person[person[:, 2] >= MIN_CONFIDENCE, :2]
  if len(pts) == 0:
    return 0.0, 1.0
  w, h = pts.max(0) - pts.min(0)
  return float(w * h), max(float(w), float(h), 1.0)


def _largest(people: list[np.ndarray]) -> int:
  scores = [_extent(p)[0] * float(p[:, 2].mean()) for p in people]
  return int(np.argmax(scores))


def _distance(prev: np.ndarray, person: np.ndarray) -> float:
  """Mean distance of the joints confident in both, over the previous person's size."""
  both = (prev[:, 2] >= MIN_CONFIDENCE) & (person[:, 2] >= MIN_CONFIDENCE)
  if not both.any():
    return np.inf
  d = np.linalg.norm(prev[both, :2] - person[both, :2], axis=-1).mean()
  return float(d) / _extent(prev)[1]


def track_main_person(people) -> np.ndarray:
  """float32 [T, 18, 3]: the main person of `people` (per frame, a list of [18, 3] detections
  in any order), followed as described in the module docstring; frames with nobody are zeros."""
  out = np.zeros((len(people), NUM_KEYPOINTS, 3), np.float32)
  prev = None
  for t, frame in enumerate(people):
    frame = [np.asarray(p, np.float32) for p in frame]
    if not frame:
      continue
    pick = _largest(frame)
    if prev is not None:
      dists = [_distance(prev, p) for p in frame]
      if min(dists) <= MAX_JUMP:
        pick = int(np.argmin(dists))
    prev = out[t] = frame[pick]
  return out


def _read_json(file: str):
  try:
    with open(file) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f"{file} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); "
                     "re-export it") from None
  except UnicodeDecodeError:
    raise ValueError(f"{file} is not a text JSON file; re-export it") from None


def _openpose_person(values, file: str) -> np.ndarray | None:
  pts = np.asarray(values, np.float32)
  if pts.size == 0:
    return None
  if pts.size == 75:
    return body25_to_coco18(pts.reshape(25, 3))
  if pts.size == 54:
    return _zero_missing(pts.reshape(18, 3))
  raise ValueError(f"{file}: pose_keypoints_2d has {pts.size} values, not 75 (BODY_25) or 54 "
                   "(COCO-18); export with --model_pose BODY_25 or COCO")


def _openpose_files(path: str) -> list[str]:
  numbered = {}
  for name in os.listdir(path):
    if not name.lower().endswith(".json"):
      continue
    digits = re.findall(r"\d+", name)
    if not digits:
      raise ValueError(f"{os.path.join(path, name)} has no frame number in its name; name the "
                       "files like video_000000000012_keypoints.json")
    frame = int(digits[-1])
    if frame in numbered:
      raise ValueError(f"{path}: {numbered[frame]} and {name} are both frame {frame}; keep the "
                       "keypoints of one video per folder")
    numbered[frame] = name
  if not numbered:
    raise ValueError(f"{path} has no .json keypoint files; export them with OpenPose --write_json")
  return [os.path.join(path, numbered[k]) for k in sorted(numbered)]


def _check_count(count: int, num_frames: int | None, path: str, what: str) -> None:
  if num_frames is not None and count != num_frames:
    raise ValueError(f"{path} has {count} {what} but the video has {num_frames} frames; "
                     "export keypoints for every frame")


def openpose_people(path, *, num_frames: int | None = None) -> list[list[np.ndarray]]:
  """Every person of a folder of OpenPose JSONs, one file per frame (ordered by the frame number
  in the file name): per frame, a list of float32 [18, 3] detections in the file's order."""
  path = os.fspath(path)
  files = _openpose_files(path)
  _check_count(len(files), num_frames, path, "keypoint files")
  people = []
  for file in files:
    data = _read_json(file)
    if not isinstance(data, dict) or not isinstance(data.get("people", []), list):
      raise ValueError(f"{file} is not an OpenPose keypoint file (no 'people' list); export it "
                       "with OpenPose --write_json")
    found = [_openpose_person(p.get("pose_keypoints_2d", []), file) for p in data.get("people", [])]
    people.append([p for p in found if p is not None])
  return people


def load_openpose_dir(path, *, num_frames: int | None = None) -> np.ndarray:
  """float32 [T, 18, 3] from a folder of OpenPose JSONs, one per frame (ordered by the frame
  number in the file name), the main person tracked across frames."""
  return track_main_person(openpose_people(path, num_frames=num_frames))


def _coco_tables(data, path: str) -> tuple[list, dict]:
  if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
    raise ValueError(f"{path} is not a COCO keypoints file (needs 'images' and 'annotations'); "
                     "export the dataset in COCO format")
  images = sorted(data["images"], key=lambda im: im["file_name"])
  by_image = {im["id"]: [] for im in images}
  for ann in data["annotations"]:
    if ann.get("image_id") not in by_image:
      raise ValueError(f"{path}: annotation {ann.get('id')} refers to image_id "
                       f"{ann.get('image_id')}, which is not in 'images'; fix the file")
    kp = np.asarray(ann.get("keypoints", []), np.float32)
    if kp.size != 51:
      raise ValueError(f"{path}: annotation {ann.get('id')} has {kp.size} keypoint values, not "
                       "51 (17 COCO keypoints x (x, y, v)); fix the file")
    by_image[ann["image_id"]].append(kp.reshape(17, 3))
  return images, by_image


def coco_people(path, *, num_frames: int | None = None) -> list[list[np.ndarray]]:
  """Every person of a COCO keypoints JSON, one frame per image (ordered by file_name): per
  frame, a list of float32 [18, 3] detections."""
  path = os.fspath(path)
  images, by_image = _coco_tables(_read_json(path), path)
  _check_count(len(images), num_frames, path, "images")
  people = []
  for im in images:
    found = [coco17_to_coco18(kp) for kp in by_image[im["id"]]]
    people.append([p for p in found if (p[:, 2] > 0).any()])
  return people


def load_coco_json(path, *, num_frames: int | None = None) -> np.ndarray:
  """float32 [T, 18, 3] from a COCO keypoints JSON: one frame per image (ordered by file_name),
  the main person tracked across frames."""
  return track_main_person(coco_people(path, num_frames=num_frames))


def _numpy_array(path: str) -> np.ndarray:
  try:
    data = np.load(path)
  except (OSError, EOFError, ValueError) as e:
    raise ValueError(f"{path} is not a readable numpy file ({e}); re-save it") from None
  if not isinstance(data, np.lib.npyio.NpzFile):
    return np.asarray(data, np.float32)
  with data:
    if "keypoints" not in data.files:
      raise ValueError(f"{path} has no 'keypoints' array (it has {sorted(data.files)}); "
                       "save it with np.savez(path, keypoints=...)")
    return np.asarray(data["keypoints"], np.float32)


def load_numpy(path, *, height: int | None = None, width: int | None = None) -> np.ndarray:
  """float32 [T, 18, 3] from .npy / .npz (`keypoints`); layouts in the module docstring."""
  path = os.fspath(path)
  kp = _numpy_array(path)
  if kp.ndim != 3 or kp.shape[1] not in (17, 18, 25, 33) or kp.shape[2] not in (2, 3, 4, 5):
    raise ValueError(f"{path}: keypoints are {kp.shape}; save [T, N, 3] with N = 18 (COCO-18), "
                     "17 (COCO), 25 (BODY_25) or 33 (MediaPipe)")
  n, c = kp.shape[1:]
  if n == 33:
    if height is None or width is None:
      raise ValueError(f"{path} holds MediaPipe landmarks (33 points, normalised); pass the "
                       "video's height and width")
    reach = np.nanmax(np.abs(kp[..., :2]), initial=0)
    if reach > 2:
      raise ValueError(f"{path}: MediaPipe landmarks must be normalised to [0, 1] but reach "
                       f"{reach:.1f}; divide x by the width, y by the height")
    return mediapipe33_to_coco18(kp, height, width)
  if c == 2:
    kp = np.concatenate([kp, np.ones_like(kp[..., :1])], -1)
  elif c != 3:
    raise ValueError(f"{path}: {n} keypoints with {c} columns; save x, y and a confidence")
  conf = kp[..., 2][np.isfinite(kp[..., 2])]
  if n != 17 and conf.size and (conf.min() < 0 or conf.max() > 1):
    raise ValueError(f"{path}: the third column spans {conf.min():.2f}..{conf.max():.2f}, not a "
                     "confidence in [0, 1]; save x, y and a confidence (0 = missing)")
  if n == 17:
    return coco17_to_coco18(kp)
  return body25_to_coco18(kp) if n == 25 else _zero_missing(kp)


def load_keypoints(path, *, num_frames: int | None = None, height: int | None = None,
                   width: int | None = None) -> np.ndarray:
  """float32 [T, 18, 3] COCO-18 keypoints from an OpenPose JSON folder, a COCO .json or a
  .npy/.npz (`load_people`, the main person tracked: `track_main_person`). With `height` and
  `width`, points outside that frame become (0, 0, 0)."""
  return track_main_person(load_people(path, num_frames=num_frames, height=height, width=width))


def load_people(path, *, num_frames: int | None = None, height: int | None = None,
                width: int | None = None) -> list[list[np.ndarray]]:
  """Every detected person per frame, as `load_keypoints` reads the same sources without
  choosing one: per frame a list of float32 [18, 3] detections (a NumPy file holds one person
  per frame; a frame where it sees nothing has none). With `height` and `width`, points outside
  that frame become (0, 0, 0) and people left with no point are dropped."""
  path = os.fspath(path)
  if not os.path.exists(path):
    raise ValueError(f"{path} does not exist; give an OpenPose JSON folder, a COCO .json or a "
                     ".npy/.npz keypoint file")
  ext = os.path.splitext(path)[1].lower()
  if os.path.isdir(path):
    people = openpose_people(path, num_frames=num_frames)
  elif ext == ".json":
    people = coco_people(path, num_frames=num_frames)
  elif ext in (".npy", ".npz"):
    kp = load_numpy(path, height=height, width=width)
    _check_count(len(kp), num_frames, path, "frames of keypoints")
    people = [[p] for p in kp]
  else:
    raise ValueError(f"{path}: unknown keypoint format {ext or '(no extension)'}; give an "
                     "OpenPose JSON folder, a COCO .json or a .npy/.npz")
  if height is not None and width is not None:
    people = [[drop_outside(p, height, width) for p in frame] for frame in people]
  return [[p for p in frame if (p[:, 2] > 0).any()] for frame in people]


def smooth_keypoints(keypoints, *, sigma: float = 1.0) -> np.ndarray:
  """Temporal Gaussian smoothing (std `sigma` frames) of x, y within each run of frames where a
  joint is visible; gaps are never bridged and confidences are unchanged."""
  kp = np.array(keypoints, np.float32)
  if sigma <= 0:
    return kp
  visible = kp[..., 2] > 0                                     # [T, 18]
  for j in range(kp.shape[1]):
    edges = np.flatnonzero(np.diff(np.concatenate([[0], visible[:, j].astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2]):
      kp[start:stop, j, :2] = ndimage.gaussian_filter1d(
          kp[start:stop, j, :2].astype(np.float64), sigma, axis=0, mode="nearest")
  return kp
