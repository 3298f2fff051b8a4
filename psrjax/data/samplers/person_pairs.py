"""Animation examples of one person's video: the per-person protocol of a model of every person.

D²G-Net's Table 1 (seed 002) lists Liquid Warping GAN, which animates any person, beside systems
that learn one person (Everybody Dance Now, vid2vid, D²G-Net) on their data: one person's long
video, whose held-out segment is scored run by run. This module reads that data (the per-person
`data` block: `psrjax.data.samplers.per_person.source`, the synthetic person's scripted video or
a prepared dataset) as the animation task's examples:

- training (`train_dataset`): every frame of the training videos once per epoch as the driving
  frame, its source a frame drawn at random among the same video's other frames (the authors'
  iPER loader draws two frames of one video); `psrjax.data.samplers.same_video`'s keys with one
  source and one driving frame;
- evaluation (`eval_dataset`): each held-out run of `data.eval_run_frames` frames
  (`per_person.eval_runs`, the runs the per-person systems score) driven from ONE source frame of
  the person, training frame `data.source_frame` (default 0, the first frame of the recording:
  D²G-Net does not say which frame its LWG row was given; one fixed reference image is what
  Liquid Warping GAN's motion imitation takes). Keys: "src_rgb" [1, H, W, 3], "src_keypoints",
  "tgt_rgb" [L, H, W, 3], "tgt_keypoints", "tgt_mask", "tgt_flow_bwd", "tgt_flow_fwd" (the
  batch contract's, `first_frame.example_spec`), `extra` modalities of both as "src_<m>" /
  "tgt_<m>", and "run_group" int32 (`per_person.run_groups`: seen or novel actions).

The same runs and the same training frames as the per-person systems, so R-SSIM / R-PSNR
(`psrjax.evals.robust_pose`) choose the same challenging poses for every row of the table.
"""
from __future__ import annotations

import grain
import ml_collections
import numpy as np

from psrjax.data.samplers import first_frame, per_person, same_video
from psrjax.data.sources import base as sources


def _pairs(data) -> ml_collections.ConfigDict:
  out = ml_collections.ConfigDict(data.to_dict())
  out.update(num_sources=1, num_targets=1)
  return out


def source_frame(data) -> int:
  """The training frame (position over the training videos in order) every run is driven
  from, checked against their length."""
  index = int(data.get("source_frame", 0))
  total = sum(v.num_frames for v in per_person.source(data).videos("train"))
  if not 0 <= index < total:
    raise ValueError(f"data.source_frame must be a training frame (0..{total - 1}); got {index}")
  return index


def _train_position(videos, index: int):
  """(video, frame) of position `index` over `videos` in order."""
  for video in videos:
    if index < video.num_frames:
      return video, index
    index -= video.num_frames
  raise ValueError(f"training frame {index} is past the training videos")


def train_dataset(data, *, seed: int, shard_index: int, shard_count: int,
                  extra: tuple[str, ...] = ()) -> grain.MapDataset:
  """(source, driving) pairs of the person's training videos (module docstring)."""
  per_person.check_data(data, per_person.MODALITIES + tuple(extra))
  src = per_person.source(data)
  videos = [v for v in src.videos("train") if v.num_frames >= 2]
  if not videos:
    raise ValueError(f"{sources.describe(src)} has no training video of >= 2 frames "
                     "(a source and a driving frame)")
  return same_video.videos_train_dataset(src, videos, _pairs(data), seed=seed,
                                         shard_index=shard_index, shard_count=shard_count,
                                         extra=extra)


def eval_example(src, data, head: dict, video, start: int, extra=()) -> dict:
  """The run [start, start + eval_run_frames) of held-out `video` driven from the source
  frame `head` (`frames_part`'s "src_*" keys)."""
  length = int(data.eval_run_frames)
  run = np.arange(start, start + length)
  example = first_frame.with_forward_flow(
      src, video, {**head, **same_video.target_frames(src, video, run, extra)}, start, length)
  frame_index = video.offset + run
  example["run_group"] = np.int32(per_person.run_groups(data, frame_index[None])[0])
  return example


def _head(src, data, extra=()) -> dict:
  video, frame = _train_position(src.videos("train"), source_frame(data))
  return same_video.frames_part(src, video, np.array([frame]), "src", extra)


def eval_dataset(data, *, shard_index: int, shard_count: int, num_runs: int | None = None,
                 extra: tuple[str, ...] = ()) -> grain.MapDataset:
  """This shard's held-out runs (the first `num_runs`, None: all), in order, each driven from
  the source frame (module docstring)."""
  per_person.check_data(data, first_frame.MODALITIES + tuple(extra))
  src, items = per_person.source(data), per_person.eval_runs(data)[:num_runs]
  head = _head(src, data, extra)
  ds = grain.MapDataset.source(items).map(
      lambda item: eval_example(src, data, head, item[0], item[1], extra))
  return ds[shard_index::shard_count]


def example_spec(data) -> dict:
  """{key: (shape, dtype)} of an evaluation example (without `extra`)."""
  spec = first_frame.example_spec(data, int(data.eval_run_frames))
  spec["run_group"] = ((), np.int32)
  return spec


def synthesis_example(data, *, run: int, extra: tuple[str, ...] = ()) -> dict:
  """Held-out run `run` driven from the source frame (`eval_dataset`'s example)."""
  per_person.check_data(data, first_frame.MODALITIES + tuple(extra))
  src, items = per_person.source(data), per_person.eval_runs(data)
  if not 0 <= run < len(items):
    raise ValueError(f"--seed {run} names no held-out run: the person's held-out video(s) hold "
                     f"{len(items)} runs of {data.eval_run_frames} frames (seeds 0.."
                     f"{len(items) - 1})")
  return eval_example(src, data, _head(src, data, extra), *items[run], extra)
