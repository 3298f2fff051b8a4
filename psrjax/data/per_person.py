"""Per-person examples: one identity's long video from the synthetic world's sequence mode.

The per-person baselines (pix2pixHD, Everybody Dance Now) learn ONE person from a long video and
are evaluated on a held-out segment of it, and by cross-person driving: another person's poses
drive the learned person. Here the video is one `synthetic.ScriptedSequence`: identity
`data.identity` performs `data.train_script` and then `data.test_script` (which holds actions the
training part never shows, `novel_actions`) in one room, seen by one fixed camera. Frames
[0, N_train) are the training segment, [N_train, N_train + N_test) the held-out one.

One example holds T = `frames_per_example` consecutive frames (EDN: previous + current) of one
segment, in the batch contract:

  rgb [T, H, W, 3] float32 in [-1, 1]; keypoints [T, 18, 3] (x, y pixels; visibility);
  mask [T, H, W, 1] float32 {0, 1}; flow_fwd / flow_bwd [T, H, W, 2]; frame_index [T] int32.

Each segment is treated as a video of its own: the flows that would cross the segment boundary
(flow_fwd of the last training frame, flow_bwd of the first held-out frame) are zero, as at a
video's ends, so nothing of the held-out motion reaches training. Evaluation examples are the
held-out segment cut into runs of `eval_run_frames` consecutive frames (a remainder shorter
than a run is dropped), in order.

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

Cross-person driving: identity `data.driving_identity` performs `data.driving_script` in its own
room (`data.driving_seed`) before the same camera; its keypoints pass through a normalisation
`normalize(keypoints [N, 18, 3]) -> keypoints [N, 18, 3]` (default: identity), applied once to
the WHOLE driving track so that a global normalisation (Everybody Dance Now's ankle-based scale
and translation, fitted over the videos) sees all of it.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import uuid
from typing import Callable

import grain
import ml_collections
import numpy as np

from psrjax.data import synthetic
from psrjax.data.synthetic import actions, cameras as cams, sequence
from psrjax.data.synthetic.clip import check_positive_int

Normalize = Callable[[np.ndarray], np.ndarray]
SPLITS = ("train", "test")

# ~3000 training frames (200 s at 15 fps): ten actions of 300 frames each.
TRAIN_SCRIPT = tuple((a, 300) for a in (
    "walk_in_place", "wave", "squat", "jumping_jacks", "arm_circles", "dance", "punch", "kick",
    "bow", "cross_arms"))
# The held-out segment: seen actions with new speeds and phases, then "throw" and "turn_around",
# which the training script never shows (turning shows the person's back).
TEST_SCRIPT = (("wave", 48), ("throw", 64), ("dance", 48), ("turn_around", 64))
DRIVING_SCRIPT = (("dance", 64), ("punch", 64), ("throw", 64), ("squat", 64))


def default_data_config() -> ml_collections.ConfigDict:
  """The `data` block of a per-person system's config (every field commented)."""
  return ml_collections.ConfigDict(dict(
      identity=7,                 # the learned person (synthetic identity index >= 0)
      seed=0,                     # room and the actions' speeds / phases / amplitudes
      resolution=64,              # H = W in pixels
      camera_yaw=0.0,             # degrees around the person: 0 front, +90 the person's left
      fps=synthetic.CLIP_FPS,     # frames per second of the scripts' motion
      train_script=TRAIN_SCRIPT,  # ((action, frames), ...) of the training segment
      test_script=TEST_SCRIPT,    # the held-out segment that follows it in the same video
      frames_per_example=2,       # T consecutive frames per example (EDN: previous + current)
      eval_run_frames=8,          # consecutive held-out frames per evaluation example (>= 2)
      driving_identity=23,        # the person whose poses drive the learned one
      driving_seed=1,             # the driving video's room and action parameters
      driving_script=DRIVING_SCRIPT,  # ((action, frames), ...) of the driving video
      cache_dir="",               # "" renders every example's frames; a directory keeps them
      cache_chunk_frames=64,      # frames rendered and stored together in the cache
  ))


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


# Names of the per-run groups `run_groups` assigns (the evaluator's `eval_groups`).
RUN_GROUPS = ("seen", "novel")


def novel_frames(data) -> np.ndarray:
  """bool [N_train + N_test]: the frames of the video showing an action of `novel_actions`."""
  novel = set(novel_actions(data))
  flags = [a in novel for a, n in _script(data.train_script, "train_script") for _ in range(n)]
  flags += [a in novel for a, n in _script(data.test_script, "test_script") for _ in range(n)]
  return np.asarray(flags, bool)


def run_groups(data, frame_index) -> np.ndarray:
  """int32 [...] for runs frame_index [..., T]: 1 ("novel") when most of the run's frames show an
  action the training segment never shows, else 0 ("seen"); index into RUN_GROUPS."""
  novel = novel_frames(data)[np.asarray(frame_index)]
  return (novel.mean(axis=-1) > 0.5).astype(np.int32)


def segments(data) -> dict[str, tuple[int, int]]:
  """{"train": (0, N_train), "test": (N_train, N_train + N_test)}: frame ranges of the video."""
  n_train = sum(n for _, n in _script(data.train_script, "train_script"))
  n_test = sum(n for _, n in _script(data.test_script, "test_script"))
  return {"train": (0, n_train), "test": (n_train, n_train + n_test)}


def check_data(data) -> None:
  """One-line ValueErrors for a `data` block that cannot yield examples."""
  (_, n_train), (lo, hi) = segments(data).values()
  _script(data.driving_script, "driving_script")
  if not 1 <= data.frames_per_example <= n_train:
    raise ValueError(f"data.frames_per_example must lie in 1..{n_train} (the training frames); "
                     f"got {data.frames_per_example}")
  if not 2 <= data.eval_run_frames <= hi - lo:
    raise ValueError(f"data.eval_run_frames must lie in 2..{hi - lo} (the held-out frames; "
                     f"E_temp needs 2); got {data.eval_run_frames}")


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


def train_keypoints(data) -> np.ndarray:
  """[N_train, 18, 3] keypoints of the training segment (e.g. to fit a pose normalisation)."""
  lo, hi = segments(data)["train"]
  return keypoints(data)[lo:hi]


def _unit(rgb: np.ndarray) -> np.ndarray:
  return rgb.astype(np.float32) / 127.5 - 1.0


# ----------------------------------------------------------------------------- frame cache
_CACHED = ("rgb", "mask", "flow_fwd", "flow_bwd")  # what examples read from rendered frames
_CACHE_FORMAT = 1


def cache_path(data) -> str:
  """The cache directory of the person's video: `cache_dir`/<hash of everything that changes
  its frames>, so a changed config never reads stale frames."""
  if not data.cache_dir:
    raise ValueError("data.cache_dir is empty (no frame cache); set it to a directory")
  key = json.dumps([_CACHE_FORMAT, _video_args(data), int(data.cache_chunk_frames)])
  name = "person_" + hashlib.sha1(key.encode()).hexdigest()[:16]
  return os.path.join(os.path.expanduser(data.cache_dir), name)


def _write_chunk(data, final: str, start: int, stop: int) -> None:
  clip = video(data).render(start, stop)
  tmp = f"{final}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
  os.makedirs(tmp)
  try:
    for key in _CACHED:
      np.save(os.path.join(tmp, f"{key}.npy"), clip[key][0])
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
    keep = slice(max(start, lo) - lo, min(stop, hi) - lo)
    for key in keys:
      parts[key].append(np.array(_open(os.path.join(final, f"{key}.npy"))[keep]))
  return {key: np.concatenate(value) for key, value in parts.items()}


@functools.lru_cache(maxsize=256)
def _open(path: str) -> np.ndarray:
  """A complete chunk's array as a read-only memory map, opened once per process."""
  return np.load(path, mmap_mode="r")


def _rendered_range(data, start: int, stop: int) -> dict[str, np.ndarray]:
  """`_CACHED` arrays (first view) of frames [start, stop): from the cache or rendered now."""
  if data.cache_dir:
    return _cached_range(data, start, stop)
  clip = video(data).render(start, stop)
  return {key: clip[key][0] for key in _CACHED}


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
  return {"rgb": _unit(rgb), "mask": mask.astype(np.float32)[..., None]}


# ----------------------------------------------------------------------------- examples
def frames(data, start: int, length: int) -> dict[str, np.ndarray]:
  """Frames [start, start + length) of the person's video as one example (module docstring);
  they must lie in one segment. Flows crossing the segment's ends are zero."""
  bounds = [b for b in segments(data).values() if b[0] <= start and start + length <= b[1]]
  if length < 1 or not bounds:
    raise ValueError(f"frames [{start}, {start + length}) must be non-empty and lie within one "
                     f"segment of {segments(data)}")
  lo, hi = bounds[0]
  clip = _rendered_range(data, start, start + length)
  flow_fwd, flow_bwd = clip["flow_fwd"].astype(np.float32), clip["flow_bwd"].astype(np.float32)
  if start + length == hi:
    flow_fwd[-1] = 0.0
  if start == lo:
    flow_bwd[0] = 0.0
  return {"rgb": _unit(clip["rgb"]), "keypoints": np.array(keypoints(data)[start:start + length]),
          "mask": clip["mask"].astype(np.float32)[..., None], "flow_fwd": flow_fwd,
          "flow_bwd": flow_bwd, "frame_index": np.arange(start, start + length, dtype=np.int32)}


def example_spec(data, split: str = "train") -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """Per-example shapes and dtypes: T = frames_per_example ("train") or eval_run_frames."""
  if split not in SPLITS:
    raise ValueError(f"unknown per-person split {split!r}; allowed: {', '.join(SPLITS)}")
  t = data.frames_per_example if split == "train" else data.eval_run_frames
  h = data.resolution
  return {"rgb": ((t, h, h, 3), np.float32), "keypoints": ((t, 18, 3), np.float32),
          "mask": ((t, h, h, 1), np.float32), "flow_fwd": ((t, h, h, 2), np.float32),
          "flow_bwd": ((t, h, h, 2), np.float32), "frame_index": ((t,), np.int32)}


def eval_starts(data) -> np.ndarray:
  """First frames of the evaluation runs: the held-out segment cut into `eval_run_frames`."""
  lo, hi = segments(data)["test"]
  return np.arange(lo, hi - data.eval_run_frames + 1, data.eval_run_frames)


def train_dataset(data, *, seed: int, shard_index: int, shard_count: int) -> grain.MapDataset:
  """This shard's T-frame windows of the training segment (every start frame), shuffled with
  `seed` (the trainer's own per-epoch shuffle on top keeps it a permutation); shards take every
  shard_count-th start frame."""
  check_data(data)
  starts = grain.MapDataset.range(segments(data)["train"][1] - data.frames_per_example + 1)
  t = data.frames_per_example
  return starts[shard_index::shard_count].shuffle(seed=seed).map(
      lambda start: frames(data, int(start), t))


def eval_dataset(data, *, shard_index: int, shard_count: int,
                 num_runs: int | None = None) -> grain.MapDataset:
  """This shard's runs of the held-out segment (the first `num_runs`, None: all), in order."""
  check_data(data)
  starts = eval_starts(data)[:num_runs]
  ds = grain.MapDataset.source(starts)[shard_index::shard_count]
  return ds.map(lambda start: frames(data, int(start), data.eval_run_frames))


def driving_keypoints(data, normalize: Normalize | None = None) -> np.ndarray:
  """float32 [N, 18, 3]: the driving video's keypoints through `normalize` (None: unchanged),
  applied once to the whole track."""
  kp = np.array(keypoints(data, driving=True))
  if normalize is None:
    return kp
  out = np.asarray(normalize(kp), np.float32)
  if out.shape != kp.shape:
    raise ValueError(f"normalize must map keypoints {kp.shape} to the same shape; got {out.shape}")
  return out


def _driving_run(data, track: np.ndarray, start: int, length: int,
                 with_rgb: bool) -> dict[str, np.ndarray]:
  if not (length >= 1 and 0 <= start and start + length <= len(track)):
    raise ValueError(f"driving frames [{start}, {start + length}) must be non-empty and lie "
                     f"within the driving video's {len(track)} frames")
  example = {"keypoints": track[start:start + length],
             "frame_index": np.arange(start, start + length, dtype=np.int32)}
  if with_rgb:
    clip = video(data, driving=True).render(start, start + length)
    example["driving_rgb"] = _unit(clip["rgb"][0])
  return example


def driving_example(data, start: int, length: int, *, normalize: Normalize | None = None,
                    with_rgb: bool = True) -> dict[str, np.ndarray]:
  """Frames [start, start + length) of the driving video: "keypoints" [T, 18, 3] (through
  `normalize`), "frame_index" [T] and, with_rgb, the driving person's own frames
  "driving_rgb" [T, H, W, 3] in [-1, 1] (to show beside the result)."""
  return _driving_run(data, driving_keypoints(data, normalize), int(start), int(length), with_rgb)


def driving_dataset(data, *, shard_index: int, shard_count: int,
                    normalize: Normalize | None = None, with_rgb: bool = True) -> grain.MapDataset:
  """This shard's runs of `eval_run_frames` consecutive driving frames (`driving_example`); the
  normalisation runs once, here."""
  check_data(data)
  track = driving_keypoints(data, normalize)
  length = data.eval_run_frames
  starts = np.arange(0, len(track) - length + 1, length)
  ds = grain.MapDataset.source(starts)[shard_index::shard_count]
  return ds.map(lambda start: _driving_run(data, track, int(start), length, with_rgb))


def synthesis_example(data, *, driving: bool, start: int = 0, num_frames: int | None = None,
                      normalize: Normalize | None = None) -> dict[str, np.ndarray]:
  """`num_frames` (None: eval_run_frames) consecutive frames for `psrjax synthesize`: from
  frame `start` of the held-out segment (driving=False: keypoints and ground truth), or of the
  driving video (driving=True: `driving_example`, keypoints through `normalize`)."""
  check_data(data)
  length = data.eval_run_frames if num_frames is None else int(num_frames)
  if driving:
    return driving_example(data, start, length, normalize=normalize)
  return frames(data, segments(data)["test"][0] + int(start), length)
