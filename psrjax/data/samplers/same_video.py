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
examples come from its videos instead (a `sources.PreparedSource` at `data.resolution`, frames
resized when the dataset was prepared at another size): training draws a random training
video, a random run of L consecutive target frames and K random source frames among the video's
other frames; evaluation takes, from each held-out video in turn, runs of L frames from its end
backwards, with K source frames spread evenly over the rest of the video. Masks and flows are then
the dataset's estimated ones.

Both kinds of video go through one example builder over a video source (`video_example`): the
synthetic clips as `synthetic_clips.SyntheticClips` (each camera of a clip a video), prepared
datasets as `sources.PreparedSource`. Synthesis (`synthesis_example`) takes the source frames from one clip, the target poses from a
driving clip and, for background substitution, the background branch's frames from a third clip.
"""
from __future__ import annotations

import grain
import numpy as np

from psrjax.data import synthetic
from psrjax.data.sources import base as video_sources, prerendered, synthetic_clips
from psrjax.data.sources import predicted_surface
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
  return start, video_sources.evenly_spaced(num_sources, start)


def source_part(clip: dict, view: int, frames, prefix: str = "src") -> dict[str, np.ndarray]:
  """RGB and keypoints of some frames of one camera of a rendered clip."""
  src = synthetic_clips.RenderedClip(clip)
  return frames_part(src, src.take()[view], np.asarray(frames), prefix)


def target_part(clip: dict, view: int, start: int, length: int) -> dict[str, np.ndarray]:
  """L consecutive frames from `start`: RGB, keypoints, mask and backward flow."""
  src = synthetic_clips.RenderedClip(clip)
  return target_frames(src, src.take()[view], np.arange(start, start + length))


def make_example(clip: dict, view: int, start: int, sources, num_targets: int,
                 extra: tuple[str, ...] = ()) -> dict:
  """One Same-Video example of a rendered clip (`video_example`); raises ValueError if a source
  frame is among the targets."""
  src = synthetic_clips.RenderedClip(clip)
  return video_example(src, src.take()[view], start, sources, num_targets, extra)


def example_spec(data) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """Per-example shapes and dtypes of `make_example`."""
  k, l, h = data.num_sources, data.num_targets, data.resolution
  return {"src_rgb": ((k, h, h, 3), np.float32), "src_keypoints": ((k, 18, 3), np.float32),
          "tgt_rgb": ((l, h, h, 3), np.float32), "tgt_keypoints": ((l, 18, 3), np.float32),
          "tgt_mask": ((l, h, h, 1), np.float32), "tgt_flow_bwd": ((l, h, h, 2), np.float32)}


# What examples read from a video source.
MODALITIES = ("rgb", "keypoints", "mask", "flow_bwd")


def video_example(src, video, start: int, sources_idx, num_targets: int,
                  extra: tuple[str, ...] = ()) -> dict:
  """The example of frames `sources_idx` (the K sources) and [start, start + L) (the targets) of
  one video of a source (synthetic clips or prepared videos); `extra`: more modalities of the
  source's (e.g. "face", "part", "uv"), read for both, as "src_<name>" and "tgt_<name>"."""
  sources_idx = np.asarray(sources_idx, np.int64)
  if np.any((sources_idx >= start) & (sources_idx < start + num_targets)):
    raise ValueError(f"source frames {sources_idx.tolist()} overlap the target frames "
                     f"{start}..{start + num_targets - 1}")
  run = np.arange(start, start + num_targets)
  return {**frames_part(src, video, sources_idx, "src", extra),
          **target_frames(src, video, run, extra)}


def frames_part(src, video, frames, prefix: str, extra=()) -> dict[str, np.ndarray]:
  """RGB and keypoints (and `extra`) of some frames of a prepared video (`source_part`'s
  keys)."""
  f = src.frames(video, frames, ("rgb",) + tuple(extra))
  kp = np.array(src.keypoints(video)[np.asarray(frames)], np.float32)
  pose_labels.check_keypoints(kp, *f["rgb"].shape[1:3], name=f"{prefix}_keypoints")
  return {f"{prefix}_rgb": f["rgb"], f"{prefix}_keypoints": kp,
          **{f"{prefix}_{k}": f[k] for k in extra}}


def target_frames(src, video, run, extra=()) -> dict[str, np.ndarray]:
  """`target_part`'s keys (and `extra`) for consecutive frames `run` of a prepared video."""
  f = src.frames(video, run, ("rgb", "mask", "flow_bwd") + tuple(extra))
  kp = np.array(src.keypoints(video)[run], np.float32)
  pose_labels.check_keypoints(kp, *f["rgb"].shape[1:3], name="tgt_keypoints")
  return {"tgt_rgb": f["rgb"], "tgt_keypoints": kp, "tgt_mask": f["mask"],
          "tgt_flow_bwd": f["flow_bwd"], **{f"tgt_{k}": f[k] for k in extra}}


PAIR_SAMPLINGS = ("uniform", "motion")


def motion_weights(keypoints: np.ndarray, frames, start: int) -> np.ndarray:
  """Draw probabilities of source frames `frames` by how far the person moved from target frame
  `start`: (d + 0.5 px)², d each frame's mean distance (pixels) between its visible keypoints and
  the target's (every frame stays possible), normalised. keypoints [T, 18, 3] (x, y, visible).
  On runlocal's FOMM clips (64 px, 16 frames) the pairs' mean keypoint distance goes from 1.8 px
  (uniform) to 2.8 px (the farthest frame: 3.6 px)."""
  kp = np.asarray(keypoints, np.float64)
  target = kp[start]
  distances = []
  for t in frames:
    seen = (kp[t, :, 2] > 0) & (target[:, 2] > 0)
    d = np.linalg.norm(kp[t, seen, :2] - target[seen, :2], axis=-1)
    distances.append(d.mean() if d.size else 0.0)
  weights = (np.asarray(distances) + 0.5) ** 2
  return weights / weights.sum()


class _RandomFrames(grain.transforms.RandomMap):
  """A clip's index -> a random camera, target run and set of source frames of it (seeded per
  example). `pair_sampling`: "uniform" draws the source frames uniformly among the other frames
  (the papers' training); "motion" draws them with probability growing with how far the person
  moved from the first target frame (`motion_weights`), for worlds whose clips move little."""

  def __init__(self, src, num_sources: int, num_targets: int, pair_sampling: str = "uniform",
               extra: tuple[str, ...] = ()):
    if pair_sampling not in PAIR_SAMPLINGS:
      raise ValueError(f"data.pair_sampling={pair_sampling!r} is not one of {PAIR_SAMPLINGS}")
    self.src, self.num_sources, self.num_targets = src, num_sources, num_targets
    self.pair_sampling, self.extra = pair_sampling, tuple(extra)

  def random_map(self, index, rng: np.random.Generator):
    src, length = self.src, self.src.num_frames
    view = int(rng.integers(src.num_views))
    video = src.take(int(index))[view]
    start = int(rng.integers(length - self.num_targets + 1))
    others = [t for t in range(length) if not start <= t < start + self.num_targets]
    weights = (motion_weights(src.keypoints(video), others, start)
               if self.pair_sampling == "motion" else None)
    sources = np.sort(rng.choice(others, self.num_sources, replace=False, p=weights))
    return video_example(src, video, start, sources, self.num_targets, self.extra)


def _source(data, split: str, num_clips: int | None) -> synthetic_clips.SyntheticClips:
  return prerendered.clips(data, split, num_clips)


def train_dataset(data, *, seed: int, shard_index: int, shard_count: int,
                  extra: tuple[str, ...] = ()) -> grain.MapDataset:
  """Random (sources, targets) draws of this shard's training clips (`extra`: more modalities,
  `video_example`)."""
  if data.dataset:
    return _real_train(data, seed=seed, shard_index=shard_index, shard_count=shard_count,
                       extra=extra)
  check_lengths(data.num_frames, data.num_sources, data.num_targets)
  src = _source(data, "train", data.train_clips)
  ds = grain.MapDataset.range(len(src))[shard_index::shard_count]
  draw = _RandomFrames(src, data.num_sources, data.num_targets,
                       data.get("pair_sampling", "uniform"), extra)
  return ds.random_map(draw, seed=seed)


def eval_dataset(data, split: str, *, num_clips: int, shard_index: int,
                 shard_count: int, extra: tuple[str, ...] = ()) -> grain.MapDataset:
  """The Same-Video example of each of the first `num_clips` clips of `split` (held-out people;
  `extra`: more modalities, `video_example`)."""
  if data.dataset:
    return _real_eval(data, split, num_examples=num_clips, shard_index=shard_index,
                      shard_count=shard_count, extra=extra)
  check_lengths(data.num_frames, data.num_sources, data.num_targets)
  start, sources = eval_frames(data.num_frames, data.num_sources, data.num_targets)
  src = _source(data, split, num_clips)
  ds = grain.MapDataset.range(len(src)).map(
      lambda i: video_example(src, src.take(int(i))[0], start, sources, data.num_targets, extra))
  return ds[shard_index::shard_count]


def synthesis_example(data, *, seed: int, driving_seed: int | None,
                      background_seed: int | None,
                      extra: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
  """Person of clip `seed` performing the motion of clip `driving_seed` (None: Same-Video, the
  clip's own last L frames), in front of the background of clip `background_seed` (None: the
  source clip's own): source frames "src_*", target poses "tgt_*", and "bg_rgb" /
  "bg_keypoints" (the background branch's input frames) when substituting the background.
  `extra`: more modalities of the source and target frames (`video_example`; Same-Video only)."""
  if extra and driving_seed is not None and driving_seed != seed:
    raise ValueError(f"more modalities ({', '.join(extra)}) are read for Same-Video synthesis "
                     "only; give no driving clip")
  if data.dataset:
    return _real_synthesis(data, seed=seed, driving_seed=driving_seed,
                           background_seed=background_seed, extra=extra)
  check_lengths(data.num_frames, data.num_sources, data.num_targets)
  render = lambda s: synthetic.render_clip(s, num_views=1, num_frames=data.num_frames,
                                           resolution=data.resolution,
                                           travel=data.get("travel", 0.0))
  clip = render(seed)
  start, sources = eval_frames(data.num_frames, data.num_sources, data.num_targets)
  if driving_seed is None or driving_seed == seed:
    example = make_example(clip, 0, start, sources, data.num_targets, extra)
  else:
    every = video_sources.evenly_spaced(data.num_sources, data.num_frames)
    example = {**source_part(clip, 0, every),
               **target_part(render(driving_seed), 0, start, data.num_targets)}
  if background_seed is not None:
    example.update(source_part(render(background_seed), 0, sources, prefix="bg"))
  return example


# ----------------------------------------------------------------------------------------------
# Examples from a prepared real-video dataset (`data.dataset`), at the config's resolution.

def open_dataset(data):
  """The prepared dataset as a video source at `data.resolution` (frames resized when the
  dataset was prepared at another size), checked for what examples read."""
  src = predicted_surface.open_data(data)
  video_sources.require(src, MODALITIES, what="MFCI")
  return src


def _usable(src, split: str, data) -> list[video_sources.VideoInfo]:
  need = data.num_sources + data.num_targets
  videos = src.videos(split)
  if not videos:
    raise ValueError(f"{video_sources.describe(src)} has no {split} video; prepare it again with "
                     "--test-videos NAME (held-out videos are MFCI's evaluation)")
  usable = [v for v in videos if v.num_frames >= need]
  if not usable:
    raise ValueError(f"no {split} video of {data.dataset} has the K + L = {need} frames an "
                     "example needs; lower data.num_sources / num_targets")
  return usable


class _RealRandomFrames(grain.transforms.RandomMap):
  """(video, target start) -> K random source frames of the video outside the run."""

  def __init__(self, src, data, extra=()):
    self.src, self.k, self.l, self.extra = src, data.num_sources, data.num_targets, tuple(extra)

  def random_map(self, item, rng: np.random.Generator):
    video, start = item
    others = np.setdiff1d(np.arange(video.num_frames), np.arange(start, start + self.l))
    sources_idx = np.sort(rng.choice(others, self.k, replace=False))
    return video_example(self.src, video, start, sources_idx, self.l, self.extra)


def videos_train_dataset(src, videos, data, *, seed, shard_index, shard_count,
                         extra=()) -> grain.MapDataset:
  """Every run of L = `data.num_targets` consecutive frames of `videos` (of the video source
  `src`) once, with K = `data.num_sources` source frames drawn among the same video's other
  frames (seeded per example); shards take every shard_count-th run."""
  items = [(v, s) for v in videos for s in range(v.num_frames - data.num_targets + 1)]
  ds = grain.MapDataset.source(items)[shard_index::shard_count]
  return ds.random_map(_RealRandomFrames(src, data, extra), seed=seed)


def _real_train(data, *, seed, shard_index, shard_count, extra=()) -> grain.MapDataset:
  src = open_dataset(data)
  return videos_train_dataset(src, _usable(src, "train", data), data, seed=seed,
                              shard_index=shard_index, shard_count=shard_count, extra=extra)


def real_eval_items(src, split: str, data, num_examples: int) -> list[tuple]:
  """(video, start, sources) of evaluation: held-out videos in turn, runs of L frames from each
  video's end backwards, K sources spread evenly over the video's other frames."""
  k, l = data.num_sources, data.num_targets
  runs = []
  for v in _usable(src, split, data):      # K + L <= frames: K sources outside any run
    runs.append([(v, s) for s in range(v.num_frames - l, -1, -l)])
  items = []
  for i in range(max(len(r) for r in runs)):
    items += [r[i] for r in runs if i < len(r)]
  out = []
  for v, s in items[:num_examples]:
    others = np.setdiff1d(np.arange(v.num_frames), np.arange(s, s + l))
    out.append((v, s, others[video_sources.evenly_spaced(k, len(others))]))
  return out


def _real_eval(data, split, *, num_examples, shard_index, shard_count,
               extra=()) -> grain.MapDataset:
  src = open_dataset(data)
  items = real_eval_items(src, split, data, num_examples)
  ds = grain.MapDataset.source(items).map(
      lambda it: video_example(src, it[0], it[1], it[2], data.num_targets, extra))
  return ds[shard_index::shard_count]


def _real_synthesis(data, *, seed, driving_seed, background_seed, extra=()) -> dict:
  """Held-out video `seed` (modulo their count) as the person (its last L frames as the
  Same-Video targets), video `driving_seed`'s last L poses as the motion, and video
  `background_seed`'s frames as the background branch's input."""
  src = open_dataset(data)
  held = _usable(src, "test", data)
  pick = lambda s: held[int(s) % len(held)]
  video = pick(seed)
  # The first len(held) evaluation items are each held-out video's last run, in order.
  _, start, sources_idx = real_eval_items(src, "test", data, len(held))[held.index(video)]
  example = video_example(src, video, start, sources_idx, data.num_targets, extra)
  if driving_seed is not None and pick(driving_seed) != video:
    drive = pick(driving_seed)
    example.update(target_frames(src, drive, np.arange(drive.num_frames - data.num_targets,
                                                         drive.num_frames)))
  if background_seed is not None:
    bg = pick(background_seed)
    example.update(frames_part(src, bg, video_sources.evenly_spaced(data.num_sources, bg.num_frames),
                                "bg"))
  return example
