"""The synthetic per-person video: one identity's long scripted sequence, as a video source.

The per-person baselines (pix2pixHD, Everybody Dance Now) learn ONE person from a long video and
are evaluated on a held-out segment of it, and by cross-person driving: another person's poses
drive the learned person. Here the video is one `synthetic.ScriptedSequence`: identity
`data.identity` performs `data.train_script` and then `data.test_script` (which holds actions the
training part never shows, `novel_actions`) in one room, seen by one fixed camera. Frames
[0, N_train) are the training segment ("train" video of `ScriptedPerson`), [N_train, N_train +
N_test) the held-out one ("test"); every modality is exact.

Each segment is treated as a video of its own: the flows that would cross the segment boundary
(flow_fwd of the last training frame, flow_bwd of the first held-out frame) are zero, as at a
video's ends, so nothing of the held-out motion reaches training.

Streaming: poses and keypoints of the whole script are computed up front (a few KB per frame,
once per process); an example renders only its own frames (plus one posed on each side, so its
flows are exact). Measured on one core of a shared 2-core CPU, a 2-frame example takes 8-15 ms
to render at 64x64 and 13-25 ms at 128x128: for a batch of 8, about half a small model's
training step. With `data.cache_dir` set, rendered frames are kept on disk instead, chunk by
chunk (`cache_chunk_frames` frames rendered together on first use, ~1.6 / 4.7 ms per frame at
64 / 128 pixels, then read through memory maps: ~0.5 ms per example, a few MB of memory
whatever the video's length, ~80 KB per frame on disk at 64x64, mostly the float32 flows). A
chunk is written to a temporary directory renamed into place, so an interrupted write never
looks complete; examples are identical with and without the cache.

The driving person (cross-person driving): identity `data.driving_identity` performs
`data.driving_script` in its own room (`data.driving_seed`) before the same camera
(`video(data, driving=True)`).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import uuid
from typing import Sequence

import numpy as np

from psrjax.data.sources import base as sources
from psrjax.data.synthetic import actions, cameras as cams, sequence
from psrjax.data.synthetic.clip import check_positive_int

# ~3000 training frames (200 s at 15 fps): ten actions of 300 frames each.
TRAIN_SCRIPT = tuple((a, 300) for a in (
    "walk_in_place", "wave", "squat", "jumping_jacks", "arm_circles", "dance", "punch", "kick",
    "bow", "cross_arms"))
# The held-out segment: seen actions with new speeds and phases, then "throw" and "turn_around",
# which the training script never shows (turning shows the person's back).
TEST_SCRIPT = (("wave", 48), ("throw", 64), ("dance", 48), ("turn_around", 64))
DRIVING_SCRIPT = (("dance", 64), ("punch", 64), ("throw", 64), ("squat", 64))



def _script(value, name: str) -> tuple[tuple[str, int], ...]:
  """A script as a hashable tuple of (action name, frames); ValueError naming the field."""
  try:
    script = tuple((actions.ACTIONS[actions.action_index(a)], int(n)) for a, n in value)
  except (TypeError, ValueError) as e:
    raise ValueError(f"data.{name} must be ((action, frames), ...) with actions from "
                     f"{', '.join(actions.ACTIONS)}: {e}") from None
  if not script or min(n for _, n in script) < 1:
    raise ValueError(f"data.{name} must hold at least one (action, frames) entry, each with "
                     f"frames >= 1; got {value!r}")
  return script


def novel_actions(data) -> tuple[str, ...]:
  """Actions of the held-out segment that the training segment never shows."""
  seen = {a for a, _ in _script(data.train_script, "train_script")}
  return tuple(dict.fromkeys(a for a, _ in _script(data.test_script, "test_script")
                             if a not in seen))


def novel_frames(data) -> np.ndarray:
  """bool [N_train + N_test]: the frames of the video showing an action of `novel_actions`."""
  novel = set(novel_actions(data))
  flags = [a in novel for a, n in _script(data.train_script, "train_script") for _ in range(n)]
  flags += [a in novel for a, n in _script(data.test_script, "test_script") for _ in range(n)]
  return np.asarray(flags, bool)


def segments(data) -> dict[str, tuple[int, int]]:
  """{"train": (0, N_train), "test": (N_train, N_train + N_test)}: frame ranges of the video."""
  n_train = sum(n for _, n in _script(data.train_script, "train_script"))
  n_test = sum(n for _, n in _script(data.test_script, "test_script"))
  return {"train": (0, n_train), "test": (n_train, n_train + n_test)}


def _rig(resolution: int, yaw: float) -> cams.Cameras:
  return cams.camera_ring([yaw], height=resolution, width=resolution,
                          fov_y_deg=sequence.DEFAULT_FOV_Y_DEG)


def camera(data) -> cams.Cameras:
  """The one fixed camera: the default rig's distance, height and field of view at `camera_yaw`."""
  return _rig(check_positive_int("data.resolution", data.resolution), float(data.camera_yaw))


@functools.lru_cache(maxsize=4)
def _cached_video(identity, script, resolution, yaw, fps, seed) -> sequence.ScriptedSequence:
  return sequence.ScriptedSequence(identity, script, cameras=_rig(resolution, yaw), fps=fps,
                                   seed=seed)


@functools.lru_cache(maxsize=4)
def _cached_keypoints(*args) -> np.ndarray:
  keypoints = _cached_video(*args).keypoints()[0]
  keypoints.setflags(write=False)
  return keypoints


def _video_args(data, driving: bool = False) -> tuple:
  check_positive_int("data.resolution", data.resolution)
  if not data.fps > 0:
    raise ValueError(f"data.fps must be > 0 frames per second, got {data.fps}")
  if driving:
    who, script = data.driving_identity, _script(data.driving_script, "driving_script")
    seed = data.driving_seed
  else:
    who = data.identity
    script = (_script(data.train_script, "train_script")
              + _script(data.test_script, "test_script"))
    seed = data.seed
  return (int(who), script, int(data.resolution), float(data.camera_yaw), float(data.fps),
          int(seed))


def video(data, *, driving: bool = False) -> sequence.ScriptedSequence:
  """The person's whole video (train then test segment), or the driving person's; built once
  per process (poses only: frames are rendered on demand)."""
  return _cached_video(*_video_args(data, driving))


def keypoints(data, *, driving: bool = False) -> np.ndarray:
  """float32 [N, 18, 3] keypoints of every frame of the video (read-only), without rendering."""
  return _cached_keypoints(*_video_args(data, driving))


# ----------------------------------------------------------------------------- frame cache
_CACHED = ("rgb", "mask", "flow_fwd", "flow_bwd")  # what examples read from rendered frames
# The body-surface maps (face ids, parts, (u, v)), read by systems that ask for them (D²G-Net's
# part / UV labels and its 3D pose label). A chunk written before they were cached gets them
# added when first asked for (`_complete_chunk`), so older caches stay valid.
SURFACE = ("face", "part", "uv")
_STORED = {"face": np.int16, "part": np.uint8}   # compact on disk; read back as int32
_CACHE_FORMAT = 1


def cache_path(data) -> str:
  """The cache directory of the person's video: `cache_dir`/<hash of everything that changes
  its frames>, so a changed config never reads stale frames."""
  if not data.cache_dir:
    raise ValueError("data.cache_dir is empty (no frame cache); set it to a directory")
  key = json.dumps([_CACHE_FORMAT, _video_args(data), int(data.cache_chunk_frames)])
  name = "person_" + hashlib.sha1(key.encode()).hexdigest()[:16]
  return os.path.join(os.path.expanduser(data.cache_dir), name)


def _stored(key: str, value: np.ndarray) -> np.ndarray:
  return value.astype(_STORED[key]) if key in _STORED else value


def _write_chunk(data, final: str, start: int, stop: int) -> None:
  clip = video(data).render(start, stop)
  tmp = f"{final}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
  os.makedirs(tmp)
  try:
    for key in _CACHED + SURFACE:
      np.save(os.path.join(tmp, f"{key}.npy"), _stored(key, clip[key][0]))
    os.rename(tmp, final)  # atomic: the chunk appears complete or not at all
  except OSError:
    if not os.path.isdir(final):  # not another process finishing the same chunk first
      raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def _cached_range(data, start: int, stop: int, keys=_CACHED) -> dict[str, np.ndarray]:
  """`keys` arrays of frames [start, stop), rendering missing chunks into the cache first."""
  size = check_positive_int("data.cache_chunk_frames", data.cache_chunk_frames)
  total, root = len(video(data)), cache_path(data)
  parts = {key: [] for key in keys}
  for chunk in range(start // size, (stop - 1) // size + 1):
    lo, hi = chunk * size, min((chunk + 1) * size, total)
    final = os.path.join(root, f"chunk_{chunk:06d}")
    if not os.path.isdir(final):
      _write_chunk(data, final, lo, hi)
    _complete_chunk(data, final, lo, hi, keys)
    keep = slice(max(start, lo) - lo, min(stop, hi) - lo)
    for key in keys:
      value = np.array(_open(os.path.join(final, f"{key}.npy"))[keep])
      parts[key].append(value.astype(np.int32) if key in _STORED else value)
  return {key: np.concatenate(value) for key, value in parts.items()}


def _complete_chunk(data, final: str, start: int, stop: int, keys) -> None:
  """Adds the surface maps `keys` asks for to a chunk written without them (each file written
  beside and renamed into place)."""
  missing = [k for k in keys if not os.path.isfile(os.path.join(final, f"{k}.npy"))]
  if not missing:
    return
  clip = video(data).render(start, stop)
  for key in missing:
    tmp = os.path.join(final, f"{key}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}.npy")
    np.save(tmp, _stored(key, clip[key][0]))
    os.replace(tmp, os.path.join(final, f"{key}.npy"))


@functools.lru_cache(maxsize=256)
def _open(path: str) -> np.ndarray:
  """A complete chunk's array as a read-only memory map, opened once per process."""
  return np.load(path, mmap_mode="r")


def _rendered_range(data, start: int, stop: int, keys=_CACHED) -> dict[str, np.ndarray]:
  """`keys` arrays (first view) of frames [start, stop): from the cache or rendered now."""
  if data.cache_dir:
    return _cached_range(data, start, stop, keys)
  clip = video(data).render(start, stop)
  return {key: clip[key][0] for key in keys}


def appearance(data, frame_indices) -> dict[str, np.ndarray]:
  """"rgb" [N, H, W, 3] in [-1, 1] and "mask" [N, H, W, 1] of arbitrary frames of the person's
  video (e.g. retrieved training frames), from the cache or rendered without flows."""
  frame_indices = np.asarray(frame_indices, np.int64).reshape(-1)
  if data.cache_dir:
    got = [_cached_range(data, int(f), int(f) + 1, ("rgb", "mask")) for f in frame_indices]
    rgb, mask = (np.concatenate([g[k] for g in got]) for k in ("rgb", "mask"))
  else:
    clip = video(data).render_frames(frame_indices)
    rgb, mask = clip["rgb"][0], clip["mask"][0]
  return {"rgb": sources.to_unit(rgb), "mask": mask.astype(np.float32)[..., None]}


def frames(data, start: int, length: int, surface=()) -> dict[str, np.ndarray]:
  """Frames [start, start + length) of the person's video as one example (module docstring);
  they must lie in one segment. Flows crossing the segment's ends are zero. `surface`: the
  surface maps of SURFACE to add ("face" / "part" int32 [T, H, W], "uv" float32 [T, H, W, 2])."""
  bounds = [b for b in segments(data).values() if b[0] <= start and start + length <= b[1]]
  if length < 1 or not bounds:
    raise ValueError(f"frames [{start}, {start + length}) must be non-empty and lie within one "
                     f"segment of {segments(data)}")
  lo, hi = bounds[0]
  surface = tuple(surface)
  if set(surface) - set(SURFACE):
    raise ValueError(f"surface maps are {', '.join(SURFACE)}; asked for {surface}")
  clip = _rendered_range(data, start, start + length, _CACHED + surface)
  flow_fwd, flow_bwd = clip["flow_fwd"].astype(np.float32), clip["flow_bwd"].astype(np.float32)
  if start + length == hi:
    flow_fwd[-1] = 0.0
  if start == lo:
    flow_bwd[0] = 0.0
  out = {"rgb": sources.to_unit(clip["rgb"]), "keypoints": np.array(keypoints(data)[start:start + length]),
         "mask": clip["mask"].astype(np.float32)[..., None], "flow_fwd": flow_fwd,
         "flow_bwd": flow_bwd, "frame_index": np.arange(start, start + length, dtype=np.int32)}
  for key in surface:
    out[key] = clip[key].astype(np.float32 if key == "uv" else np.int32)
  return out


# ----------------------------------------------------------------------------- the source
class ScriptedPerson:
  """The person's video as a video source (module docstring): "train" and "test" are its two
  segments, numbered in the video's frames (`VideoInfo.offset`); every modality exact."""

  resolution: int
  modalities = {k: sources.EXACT for k in ("rgb", "keypoints", "mask", "flow_fwd", "flow_bwd",
                                           "background") + SURFACE}
  group_names = ("seen", "novel")   # frames of actions the training segment shows / never shows

  def __init__(self, data):
    self.data = data
    self.resolution = check_positive_int("data.resolution", data.resolution)
    self.description = f"the synthetic person (identity {data.identity})"
    self.cache_token = json.dumps(_video_args(data))   # what changes its frames

  def videos(self, split: str) -> list[sources.VideoInfo]:
    split = "test" if split == "validation" else split
    if split not in segments(self.data):
      raise ValueError(f"unknown per-person split {split!r}; use train or test")
    lo, hi = segments(self.data)[split]
    groups = novel_frames(self.data)[lo:hi].astype(np.int32)
    return [sources.VideoInfo(f"identity{self.data.identity}:{split}", split, hi - lo,
                              float(self.data.fps), offset=lo, groups=groups)]

  def all_videos(self) -> list[sources.VideoInfo]:
    return self.videos("train") + self.videos("test")

  def keypoints(self, video: sources.VideoInfo) -> np.ndarray:
    return sources.checked_keypoints(
        self, video, np.array(keypoints(self.data)[video.offset:video.offset + video.num_frames]))

  def frames(self, video: sources.VideoInfo, indices,
             keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Consecutive frames are rendered as a run (exact flows, zero across the segment's ends);
    other index sets give rgb and mask only (`appearance`)."""
    return sources.checked(self, video, self._frames(video, indices, keys))

  def _frames(self, video: sources.VideoInfo, indices,
              keys: Sequence[str]) -> dict[str, np.ndarray]:
    indices = np.asarray(indices, np.int64).reshape(-1)
    start = video.offset + int(indices[0]) if indices.size else video.offset
    if indices.size and np.array_equal(indices, np.arange(indices[0], indices[0] + len(indices))):
      run = frames(self.data, start, len(indices), tuple(k for k in keys if k in SURFACE))
      return {k: run[k] for k in keys} if "background" not in keys else {
          **{k: run[k] for k in keys if k != "background"},
          "background": np.repeat(background(self.data)[None], len(indices), 0)}
    if set(keys) - {"rgb", "mask"}:
      raise ValueError(f"non-consecutive frames give rgb and mask only; asked for {keys}")
    got = appearance(self.data, video.offset + indices)
    return {k: got[k] for k in keys}


def background(data) -> np.ndarray:
  """float32 [H, W, 3] in [-1, 1]: the room behind the person, as the camera sees it."""
  return video(data).background[0].astype(np.float32) / 127.5 - 1.0


def check_scripts(data) -> None:
  """One-line ValueErrors for scripts that are not ((action, frames), ...)."""
  segments(data)
  _script(data.driving_script, "driving_script")


class DrivingPerson:
  """The synthetic driving person's video (module docstring) as a one-video source; its frames
  give "rgb" (the driving person is shown, never learned) and the body-surface maps a label is
  drawn from ("face": a 3D pose label's; "part" and "uv": an IUV label's)."""

  modalities = {k: sources.EXACT for k in ("rgb", "keypoints") + SURFACE}
  group_names = ()

  def __init__(self, data):
    self.data = data
    self.resolution = check_positive_int("data.resolution", data.resolution)
    self.description = f"the synthetic driving person (identity {data.driving_identity})"

  def all_videos(self) -> list[sources.VideoInfo]:
    n = len(keypoints(self.data, driving=True))
    return [sources.VideoInfo(f"identity{self.data.driving_identity}:driving", "test", n,
                              float(self.data.fps))]

  def videos(self, split: str) -> list[sources.VideoInfo]:
    return self.all_videos() if split in ("test", "validation") else []

  def keypoints(self, video: sources.VideoInfo) -> np.ndarray:
    return sources.checked_keypoints(self, video, np.array(keypoints(self.data, driving=True)))

  def frames(self, info: sources.VideoInfo, indices,
             keys: Sequence[str]) -> dict[str, np.ndarray]:
    if not keys or set(keys) - {"rgb", *SURFACE}:
      raise ValueError(f"the driving person's frames give rgb, {', '.join(SURFACE)} only; asked "
                       f"for {keys}")
    indices = np.asarray(indices, np.int64).reshape(-1)
    person = video(self.data, driving=True)
    if indices.size and np.array_equal(indices, np.arange(indices[0], indices[0] + len(indices))):
      clip = person.render(int(indices[0]), int(indices[-1]) + 1)
    else:
      clip = person.render_frames(indices)
    out = {"rgb": sources.to_unit(clip["rgb"][0]), "face": clip["face"][0].astype(np.int32),
           "part": clip["part"][0].astype(np.int32), "uv": clip["uv"][0].astype(np.float32)}
    return sources.checked(self, info, {k: out[k] for k in keys})
