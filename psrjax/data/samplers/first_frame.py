"""INTERnet's examples: a video's first frame animated into a later frame and the one before it.

INTERnet's training (Sec. 3.3, "Training and Inference") takes the source S as the first frame of
a video and reconstructs a random driving frame D_t at least two seconds into it (t > 60 at
30 fps), with D_{t-1} for the temporal loss. One example holds

  src_rgb [1, H, W, 3], src_keypoints [1, 18, 3]             frame 0;
  tgt_rgb [2, H, W, 3], tgt_keypoints, tgt_mask,             frames t - 1 and t, with both
  tgt_flow_bwd [2, H, W, 2], tgt_flow_fwd [2, H, W, 2]       flows of the batch contract;

t drawn uniformly from [data.min_driving_frame, num_frames - 1] (a random camera of a synthetic
clip; a random training video of a prepared dataset long enough for it). Evaluation and synthesis
examples are `psrjax.data.samplers.same_video`'s with one source frame (the first frame of the clip,
the last `num_targets` frames driving it) plus "tgt_flow_fwd" (Interp-PSNR reads both flows): exact
on the synthetic world, the dataset's estimated (DIS) flows on prepared videos.

Used by INTERnet (`psrjax.systems.internet`: training examples) and by FOMM
(`psrjax.systems.fomm`: evaluation examples, which INTERnet inherits).
"""
from __future__ import annotations

import grain
import ml_collections
import numpy as np

from psrjax.data.samplers import same_video
from psrjax.data.sources import base as video_sources
from psrjax.data.sources import predicted_surface

MODALITIES = same_video.MODALITIES + ("flow_fwd",)


def check_min_frame(num_frames: int, min_driving_frame: int) -> None:
  if not 2 <= min_driving_frame <= num_frames - 1:
    raise ValueError(f"data.min_driving_frame must be in [2, data.num_frames - 1] = [2, "
                     f"{num_frames - 1}] (frame t - 1 must follow the source frame 0); got "
                     f"{min_driving_frame}")


def open_dataset(data, what: str = "FOMM and INTERnet"):
  """The prepared dataset at `data.resolution`, checked for what these examples read."""
  src = predicted_surface.open_data(data)
  video_sources.require(src, MODALITIES, what=what)
  return src


def with_forward_flow(src, video, example: dict, start: int, length: int) -> dict:
  """`example` with "tgt_flow_fwd" of frames [start, start + length) of the video."""
  run = np.arange(start, start + length)
  return {**example, "tgt_flow_fwd": src.frames(video, run, ("flow_fwd",))["flow_fwd"]}


def example(src, video, t: int) -> dict:
  """Source frame 0, driving frames t - 1 and t of one video."""
  ex = same_video.video_example(src, video, t - 1, [0], 2)
  return with_forward_flow(src, video, ex, t - 1, 2)


def example_spec(data, num_targets: int = 2) -> dict:
  spec = same_video.example_spec(_lengths(data, num_targets))
  spec["tgt_flow_fwd"] = spec["tgt_flow_bwd"]
  return spec


def _lengths(data, num_targets: int):
  out = ml_collections.ConfigDict(data.to_dict())
  out.update(num_sources=1, num_targets=num_targets)
  return out


class _Draw(grain.transforms.RandomMap):
  """A synthetic clip's index -> a random camera and driving frame t."""

  def __init__(self, src, min_frame: int):
    self.src, self.min_frame = src, min_frame

  def random_map(self, index, rng: np.random.Generator):
    view = int(rng.integers(self.src.num_views))
    t = int(rng.integers(self.min_frame, self.src.num_frames))
    return example(self.src, self.src.take(int(index))[view], t)


class _RealDraw(grain.transforms.RandomMap):
  """A prepared video -> a random driving frame t of it."""

  def __init__(self, src, min_frame: int):
    self.src, self.min_frame = src, min_frame

  def random_map(self, video, rng: np.random.Generator):
    return example(self.src, video, int(rng.integers(self.min_frame, video.num_frames)))


def train_dataset(data, *, seed: int, shard_index: int, shard_count: int) -> grain.MapDataset:
  """Random (first frame, frames t - 1 and t) draws of this shard's training videos."""
  if data.dataset:
    src = open_dataset(data)
    videos = [v for v in src.videos("train") if v.num_frames > data.min_driving_frame]
    if not videos:
      raise ValueError(f"no training video of {data.dataset} is longer than "
                       f"data.min_driving_frame = {data.min_driving_frame} frames; lower it")
    ds = grain.MapDataset.source(videos)[shard_index::shard_count]
    return ds.random_map(_RealDraw(src, data.min_driving_frame), seed=seed)
  check_min_frame(data.num_frames, data.min_driving_frame)
  src = same_video._source(data, "train", data.train_clips)
  ds = grain.MapDataset.range(len(src))[shard_index::shard_count]
  return ds.random_map(_Draw(src, data.min_driving_frame), seed=seed)


def eval_dataset(data, split: str, *, num_clips: int, shard_index: int,
                 shard_count: int, extra: tuple[str, ...] = ()) -> grain.MapDataset:
  """`same_video.eval_dataset` with one source frame, plus "tgt_flow_fwd" (`extra`: more
  modalities, `same_video.video_example`)."""
  if data.dataset:
    src = open_dataset(data)
    items = same_video.real_eval_items(src, split, data, num_clips)
    ds = grain.MapDataset.source(items).map(lambda it: with_forward_flow(
        src, it[0], same_video.video_example(src, it[0], it[1], it[2], data.num_targets,
                                             extra),
        it[1], data.num_targets))
    return ds[shard_index::shard_count]
  start, sources = same_video.eval_frames(data.num_frames, 1, data.num_targets)
  src = same_video._source(data, split, num_clips)

  def build(i):
    video = src.take(int(i))[0]
    ex = same_video.video_example(src, video, start, sources, data.num_targets, extra)
    return with_forward_flow(src, video, ex, start, data.num_targets)

  return grain.MapDataset.range(len(src)).map(build)[shard_index::shard_count]
