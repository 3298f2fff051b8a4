"""MFCI examples from the synthetic world: K source frames and L consecutive target frames.

As in the paper's training (Sec. 3.5) and its Same-Video test subset (Sec. 4.2), the source
frames and the target frames come from the same video and do not overlap. One example holds:

  src_rgb [K, H, W, 3], src_keypoints [K, 18, 3]            the K source frames of person A;
  tgt_rgb [L, H, W, 3], tgt_keypoints [L, 18, 3],           L consecutive target frames (the
  tgt_mask [L, H, W, 1], tgt_flow_bwd [L, H, W, 2]          ground truth of Same-Video synthesis);

batch-contract dtypes and ranges. Training examples draw a random camera of the clip, a random
start of the target run and K random source frames among the others (the paper picks the source
frames at random too); evaluation examples use the first camera, the last L frames as targets and
K source frames spread evenly over the remaining frames. Pose labels are derived on the
accelerator by the system (`MFCI.prepare`).

Real videos: with `data.dataset` set to a folder `psrjax prepare` wrote (`configs/mfci.py:data=DIR`),
examples come from its videos instead (`psrjax.data.prepared`): training draws a random training
video, a random run of L consecutive target frames and K random source frames among the video's
other frames; evaluation takes, from each held-out video in turn, runs of L frames from its end
backwards, with K source frames spread evenly over the rest of the video. Masks and flows are then
the dataset's estimated ones.

Synthesis (`synthesis_example`) takes the source frames from one clip, the target poses from a
driving clip and, for background substitution, the background branch's frames from a third clip.
"""
from __future__ import annotations

import grain
import numpy as np

from psrjax.data import prepared, synthetic
from psrjax.geometry import pose_labels


def check_lengths(num_frames: int, num_sources: int, num_targets: int) -> None:
  """K >= 1 source frames and L >= 1 target frames that fit in a clip without overlapping."""
  if num_sources < 1:
    raise ValueError(f"data.num_sources (K) must be >= 1 source frame, got {num_sources}")
  if num_targets < 1:
    raise ValueError(f"data.num_targets (L) must be >= 1 target frame, got {num_targets}")
  if num_sources + num_targets > num_frames:
    raise ValueError(f"K + L = {num_sources} + {num_targets} source and target frames do not fit "
                     f"without overlap in data.num_frames = {num_frames}; raise num_frames")


def eval_frames(num_frames: int, num_sources: int, num_targets: int):
  """(target start, source frame indices) of evaluation: the last L frames; K spread before."""
  start = num_frames - num_targets
  sources = np.round(np.linspace(0, start - 1, num_sources)).astype(np.int64)
  return start, sources


def _unit(rgb: np.ndarray) -> np.ndarray:
  return rgb.astype(np.float32) / 127.5 - 1.0


def source_part(clip: dict, view: int, frames, prefix: str = "src") -> dict[str, np.ndarray]:
  """RGB and keypoints of some frames of one camera of a rendered clip."""
  frames = np.asarray(frames)
  kp = clip["keypoints"][view][frames].astype(np.float32)
  h, w = clip["rgb"].shape[2:4]
  pose_labels.check_keypoints(kp, h, w, name=f"{prefix}_keypoints")
  return {f"{prefix}_rgb": _unit(clip["rgb"][view][frames]), f"{prefix}_keypoints": kp}


def target_part(clip: dict, view: int, start: int, length: int) -> dict[str, np.ndarray]:
  """L consecutive frames from `start`: RGB, keypoints, mask and backward flow."""
  t = slice(start, start + length)
  kp = clip["keypoints"][view][t].astype(np.float32)
  h, w = clip["rgb"].shape[2:4]
  pose_labels.check_keypoints(kp, h, w, name="tgt_keypoints")
  return {"tgt_rgb": _unit(clip["rgb"][view][t]), "tgt_keypoints": kp,
          "tgt_mask": clip["mask"][view][t].astype(np.float32)[..., None],
          "tgt_flow_bwd": clip["flow_bwd"][view][t].astype(np.float32)}


def make_example(clip: dict, view: int, start: int, sources, num_targets: int) -> dict:
  """One Same-Video example; raises ValueError if a source frame is among the targets."""
  sources = np.asarray(sources)
  if np.any((sources >= start) & (sources < start + num_targets)):
    raise ValueError(f"source frames {sources.tolist()} overlap the target frames "
                     f"{start}..{start + num_targets - 1}")
  return {**source_part(clip, view, sources), **target_part(clip, view, start, num_targets)}


def example_spec(data) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """Per-example shapes and dtypes of `make_example`."""
  k, l, h = data.num_sources, data.num_targets, data.resolution
  return {"src_rgb": ((k, h, h, 3), np.float32), "src_keypoints": ((k, 18, 3), np.float32),
          "tgt_rgb": ((l, h, h, 3), np.float32), "tgt_keypoints": ((l, 18, 3), np.float32),
          "tgt_mask": ((l, h, h, 1), np.float32), "tgt_flow_bwd": ((l, h, h, 2), np.float32)}


class _RandomFrames(grain.transforms.RandomMap):
  """A random camera, target run and set of source frames of a clip (seeded per example)."""

  def __init__(self, num_views: int, num_frames: int, num_sources: int, num_targets: int):
    self.num_views, self.num_frames = num_views, num_frames
    self.num_sources, self.num_targets = num_sources, num_targets

  def random_map(self, clip, rng: np.random.Generator):
    view = int(rng.integers(self.num_views))
    start = int(rng.integers(self.num_frames - self.num_targets + 1))
    others = [t for t in range(self.num_frames) if not start <= t < start + self.num_targets]
    sources = np.sort(rng.choice(others, self.num_sources, replace=False))
    return make_example(clip, view, start, sources, self.num_targets)


def _source(data, split: str, num_clips: int | None):
  return synthetic.SyntheticSource(split, num_views=data.num_views, num_frames=data.num_frames,
                                   resolution=data.resolution, num_clips=num_clips)


def train_dataset(data, *, seed: int, shard_index: int, shard_count: int) -> grain.MapDataset:
  """Random (sources, targets) draws of this shard's training clips."""
  if data.dataset:
    return _real_train(data, seed=seed, shard_index=shard_index, shard_count=shard_count)
  check_lengths(data.num_frames, data.num_sources, data.num_targets)
  ds = grain.MapDataset.source(_source(data, "train", data.train_clips))[shard_index::shard_count]
  transform = _RandomFrames(data.num_views, data.num_frames, data.num_sources, data.num_targets)
  return ds.random_map(transform, seed=seed)


def eval_dataset(data, split: str, *, num_clips: int, shard_index: int,
                 shard_count: int) -> grain.MapDataset:
  """The Same-Video example of each of the first `num_clips` clips of `split` (held-out people)."""
  if data.dataset:
    return _real_eval(data, split, num_examples=num_clips, shard_index=shard_index,
                      shard_count=shard_count)
  check_lengths(data.num_frames, data.num_sources, data.num_targets)
  start, sources = eval_frames(data.num_frames, data.num_sources, data.num_targets)
  clips = grain.MapDataset.source(_source(data, split, num_clips))
  ds = clips.map(lambda clip: make_example(clip, 0, start, sources, data.num_targets))
  return ds[shard_index::shard_count]


def synthesis_example(data, *, seed: int, driving_seed: int | None,
                      background_seed: int | None) -> dict[str, np.ndarray]:
  """Person of clip `seed` performing the motion of clip `driving_seed` (None: Same-Video, the
  clip's own last L frames), in front of the background of clip `background_seed` (None: the
  source clip's own): source frames "src_*", target poses "tgt_*", and "bg_rgb" /
  "bg_keypoints" (the background branch's input frames) when substituting the background."""
  if data.dataset:
    return _real_synthesis(data, seed=seed, driving_seed=driving_seed,
                           background_seed=background_seed)
  check_lengths(data.num_frames, data.num_sources, data.num_targets)
  render = lambda s: synthetic.render_clip(s, num_views=1, num_frames=data.num_frames,
                                           resolution=data.resolution)
  clip = render(seed)
  start, sources = eval_frames(data.num_frames, data.num_sources, data.num_targets)
  if driving_seed is None or driving_seed == seed:
    example = make_example(clip, 0, start, sources, data.num_targets)
  else:
    every = np.round(np.linspace(0, data.num_frames - 1, data.num_sources)).astype(np.int64)
    example = {**source_part(clip, 0, every),
               **target_part(render(driving_seed), 0, start, data.num_targets)}
  if background_seed is not None:
    example.update(source_part(render(background_seed), 0, sources, prefix="bg"))
  return example


# ----------------------------------------------------------------------------------------------
# Examples from a prepared real-video dataset (`data.dataset`).


def open_dataset(data) -> prepared.PreparedVideos:
  """The prepared dataset, checked against the config's resolution."""
  videos = prepared.PreparedVideos(data.dataset)
  if videos.resolution != data.resolution:
    raise ValueError(f"dataset {data.dataset} has {videos.resolution}x{videos.resolution} frames "
                     f"but data.resolution is {data.resolution}; drop res= or prepare it with "
                     f"--resolution {data.resolution}")
  return videos


def _usable(videos: prepared.PreparedVideos, split: str, data) -> list[prepared.Video]:
  need = data.num_sources + data.num_targets
  usable = [v for v in videos.videos(split) if v.num_frames >= need]
  if not usable:
    raise ValueError(f"no {videos.split_name(split)} video of {data.dataset} has the K + L = "
                     f"{need} frames an example needs; lower data.num_sources / num_targets")
  return usable


def real_example(videos, video: prepared.Video, start: int, sources, num_targets: int) -> dict:
  """The example of frames `sources` and [start, start + L) of one prepared video."""
  sources = np.asarray(sources, np.int64)
  if np.any((sources >= start) & (sources < start + num_targets)):
    raise ValueError(f"source frames {sources.tolist()} overlap the target frames "
                     f"{start}..{start + num_targets - 1}")
  f = videos.frames(video, np.concatenate([sources, np.arange(start, start + num_targets)]))
  clip = {k: f[k][None] for k in ("rgb", "keypoints", "mask", "flow_bwd")}
  return make_example(clip, 0, len(sources), np.arange(len(sources)), num_targets)


class _RealRandomFrames(grain.transforms.RandomMap):
  """(video, target start) -> K random source frames of the video outside the run."""

  def __init__(self, videos, data):
    self.videos, self.k, self.l = videos, data.num_sources, data.num_targets

  def random_map(self, item, rng: np.random.Generator):
    video, start = item
    others = np.setdiff1d(np.arange(video.num_frames), np.arange(start, start + self.l))
    sources = np.sort(rng.choice(others, self.k, replace=False))
    return real_example(self.videos, video, start, sources, self.l)


def _real_train(data, *, seed, shard_index, shard_count) -> grain.MapDataset:
  videos = open_dataset(data)
  items = [(v, s) for v in _usable(videos, "train", data)
           for s in range(v.num_frames - data.num_targets + 1)]
  ds = grain.MapDataset.source(items)[shard_index::shard_count]
  return ds.random_map(_RealRandomFrames(videos, data), seed=seed)


def real_eval_items(videos, split: str, data, num_examples: int) -> list[tuple]:
  """(video, start, sources) of evaluation: held-out videos in turn, runs of L frames from each
  video's end backwards, K sources spread evenly over the video's other frames."""
  k, l = data.num_sources, data.num_targets
  runs = []
  for v in _usable(videos, split, data):      # K + L <= frames: K sources outside any run
    runs.append([(v, s) for s in range(v.num_frames - l, -1, -l)])
  items = []
  for i in range(max(len(r) for r in runs)):
    items += [r[i] for r in runs if i < len(r)]
  out = []
  for v, s in items[:num_examples]:
    others = np.setdiff1d(np.arange(v.num_frames), np.arange(s, s + l))
    out.append((v, s, others[np.round(np.linspace(0, len(others) - 1, k)).astype(np.int64)]))
  return out


def _real_eval(data, split, *, num_examples, shard_index, shard_count) -> grain.MapDataset:
  videos = open_dataset(data)
  items = real_eval_items(videos, split, data, num_examples)
  ds = grain.MapDataset.source(items).map(
      lambda it: real_example(videos, it[0], it[1], it[2], data.num_targets))
  return ds[shard_index::shard_count]


def _frames_clip(videos, video, frames) -> dict:
  """Frames of a prepared video as a one-camera clip for `source_part` / `target_part`."""
  f = videos.frames(video, frames)
  return {k: f[k][None] for k in ("rgb", "keypoints", "mask", "flow_bwd")}


def _real_synthesis(data, *, seed, driving_seed, background_seed) -> dict:
  """Held-out video `seed` (modulo their count) as the person (its last L frames as the
  Same-Video targets), video `driving_seed`'s last L poses as the motion, and video
  `background_seed`'s frames as the background branch's input."""
  videos = open_dataset(data)
  held = _usable(videos, "test", data)
  pick = lambda s: held[int(s) % len(held)]
  video = pick(seed)
  # The first len(held) evaluation items are each held-out video's last run, in order.
  _, start, sources = real_eval_items(videos, "test", data, len(held))[held.index(video)]
  example = real_example(videos, video, start, sources, data.num_targets)
  if driving_seed is not None and pick(driving_seed) != video:
    drive = pick(driving_seed)
    run = np.arange(drive.num_frames - data.num_targets, drive.num_frames)
    example.update(target_part(_frames_clip(videos, drive, run), 0, 0, data.num_targets))
  if background_seed is not None:
    bg = pick(background_seed)
    frames = np.round(np.linspace(0, bg.num_frames - 1, data.num_sources)).astype(np.int64)
    example.update(source_part(_frames_clip(videos, bg, frames), 0, np.arange(len(frames)),
                               prefix="bg"))
  return example
