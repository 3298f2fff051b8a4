"""Windows of consecutive frames with their body-surface maps, from many synthetic identities.

A person-agnostic model of the body's surface (D²G-Net's UV generator, pre-trained "on frames of a
large corpus of different characters" with DensePose's part and UV maps as targets, Eq. 5) needs
many people in many poses seen from many cameras. The synthetic world is this corpus with exact
maps: clip `i` of a split (`psrjax.data.sources.synthetic_clips.SyntheticClips`, identities held out
by split, each clip its own identity, action, room and camera) gives one example per epoch:

  keypoints [T, 18, 3]            the window's keypoints (pixels, visibility);
  face [T, H, W] int32            face ids (-1 background), for a 3D label drawn through them;
  part [H, W] int32, uv [H, W, 2] the last frame's part (0 background, 1..24) and (u, v) in [0, 1];
  mask [H, W, 1] float32          the last frame's person mask;

T = `frames` consecutive frames (a pose label of frame t reading t - 1 and t - 2: 3) starting at
frame 0 of a `frames`-frame clip seen by one camera, so an example renders only its own frames
(~35 ms at 64 x 64 on one core). Training examples are clips 0, 1, ... of "train" in an order
shuffled with the seed; evaluation examples the first clips of the held-out split.

Used by D²G-Net (`psrjax.systems.d2gnet`): the pre-training of its UV generator.
"""
from __future__ import annotations

import grain
import numpy as np

from psrjax.data.sources import synthetic_clips
from psrjax.data.synthetic.clip import check_positive_int

KEYS = ("keypoints", "face", "part", "uv", "mask")


def source(split: str, *, frames: int, resolution: int, num_clips: int | None = None):
  """The split's clips, one camera each, `frames` frames long."""
  return synthetic_clips.SyntheticClips(split, num_views=1, num_frames=frames,
                                        resolution=resolution, num_clips=num_clips)


def example(src, index: int) -> dict[str, np.ndarray]:
  """Clip `index`'s window (module docstring)."""
  video = src.take(int(index))[0]
  f = src.frames(video, np.arange(src.num_frames), ("face", "part", "uv", "mask"))
  return {"keypoints": np.array(src.keypoints(video), np.float32), "face": f["face"],
          "part": f["part"][-1], "uv": f["uv"][-1].astype(np.float32), "mask": f["mask"][-1]}


def example_spec(frames: int, resolution: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  r = resolution
  return {"keypoints": ((frames, 18, 3), np.float32), "face": ((frames, r, r), np.int32),
          "part": ((r, r), np.int32), "uv": ((r, r, 2), np.float32),
          "mask": ((r, r, 1), np.float32)}


def dataset(split: str, *, frames: int, resolution: int, num_clips: int, seed: int,
            shard_index: int, shard_count: int, shuffle: bool) -> grain.MapDataset:
  """This shard's examples of the split's first `num_clips` clips (shuffled with `seed` when
  `shuffle`; shards take every shard_count-th clip)."""
  check_positive_int("frames", frames)
  src = source(split, frames=frames, resolution=resolution, num_clips=num_clips)
  ds = grain.MapDataset.range(len(src))[shard_index::shard_count]
  if shuffle:
    ds = ds.shuffle(seed=seed)
  return ds.map(lambda i: example(src, int(i)))
