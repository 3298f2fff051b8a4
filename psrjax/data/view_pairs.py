"""PSR-Net examples from the synthetic multi-view world: one (input view i, target view j) pair.

Each example carries the input-view video and face maps and the target-view video, depth, face,
part, mask and backward flow, all in the batch contract. The derived inputs that need the face
tables (visibility map, texture transfer) are computed on the accelerator by the system
(`psrjax.systems.psrnet.prepare_inputs`), so the host pipeline only renders and slices.

Training examples draw a random ordered pair i != j per clip; evaluation examples enumerate every
ordered pair of every clip, in a fixed order, so per-pair scores (the paper's Fig. 8) are exact.
"""
from __future__ import annotations

import itertools

import grain
import numpy as np

from psrjax.data import synthetic


def pairs(num_views: int) -> tuple[tuple[int, int], ...]:
  """All ordered pairs (i, j), i != j, in a fixed order."""
  return tuple(itertools.permutations(range(num_views), 2))


def pair_names(num_views: int) -> tuple[str, ...]:
  """Names of `view_pairs` with 1-based views, as in the paper ("1->2")."""
  return tuple(f"{i + 1}->{j + 1}" for i, j in pairs(num_views))


DEPTHS = ("person", "scene")


def target_depth(clip: dict, view: int, depth: str) -> np.ndarray:
  """d_j, float32 [T, H, W, 1]: the person's camera z (0 elsewhere) for "person"; for "scene", a
  Kinect-like full-frame depth, the person's z where it shows and the empty room's elsewhere (NTU
  RGB+D's depth maps, the paper's d_j, cover the whole scene)."""
  if depth not in DEPTHS:
    raise ValueError(f"data.depth must be one of {DEPTHS}; got {depth!r}")
  z = clip["depth"][view].astype(np.float32)
  if depth == "scene":
    z = np.where(clip["mask"][view] > 0, z, clip["background_depth"][view][None].astype(np.float32))
  return z[..., None]


def make_example(clip: dict, pair_index: int, num_views: int,
                 depth: str = "person") -> dict[str, np.ndarray]:
  """Slices one ordered view pair out of a rendered clip (batch-contract dtypes and ranges);
  `depth` chooses d_j (`target_depth`)."""
  i, j = pairs(num_views)[pair_index]
  to_unit = lambda rgb: rgb.astype(np.float32) / 127.5 - 1.0
  return {
      "src_rgb": to_unit(clip["rgb"][i]),
      "src_face": clip["face"][i].astype(np.int32),
      "tgt_rgb": to_unit(clip["rgb"][j]),
      "tgt_depth": target_depth(clip, j, depth),
      "tgt_face": clip["face"][j].astype(np.int32),
      "tgt_part": clip["part"][j].astype(np.int32),
      "tgt_mask": clip["mask"][j].astype(np.float32)[..., None],
      "tgt_flow_bwd": clip["flow_bwd"][j].astype(np.float32),
      "pair": np.int32(pair_index),
  }


def example_spec(num_frames: int, resolution: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """Per-example shapes and dtypes of `make_example`."""
  t, h = num_frames, resolution
  video = (t, h, h)
  return {
      "src_rgb": (video + (3,), np.float32), "src_face": (video, np.int32),
      "tgt_rgb": (video + (3,), np.float32), "tgt_depth": (video + (1,), np.float32),
      "tgt_face": (video, np.int32), "tgt_part": (video, np.int32),
      "tgt_mask": (video + (1,), np.float32), "tgt_flow_bwd": (video + (2,), np.float32),
      "pair": ((), np.int32),
  }


class _RandomPair(grain.transforms.RandomMap):
  """Picks a random ordered view pair of a clip (seeded per example by grain)."""

  def __init__(self, num_views: int, depth: str):
    self.num_views, self.depth = num_views, depth

  def random_map(self, clip, rng: np.random.Generator):
    pair = int(rng.integers(len(pairs(self.num_views))))
    return make_example(clip, pair, self.num_views, self.depth)


def train_dataset(data, *, seed: int, shard_index: int, shard_count: int) -> grain.MapDataset:
  """Random view pairs of this shard's training clips."""
  source = synthetic.SyntheticSource(
      "train", num_views=data.num_views, num_frames=data.num_frames,
      resolution=data.resolution, num_clips=data.train_clips, rooms=data.get("rooms", 0))
  ds = grain.MapDataset.source(source)[shard_index::shard_count]
  return ds.random_map(_RandomPair(data.num_views, data.get("depth", "person")), seed=seed)


def eval_dataset(data, split: str, *, num_clips: int, shard_index: int,
                 shard_count: int) -> grain.MapDataset:
  """Every ordered view pair of the first `num_clips` clips of `split`, clip-major."""
  source = synthetic.SyntheticSource(
      split, num_views=data.num_views, num_frames=data.num_frames,
      resolution=data.resolution, num_clips=num_clips, rooms=data.get("rooms", 0))
  num_pairs = len(pairs(data.num_views))
  clips = grain.MapDataset.source(source)

  def example(index: int) -> dict[str, np.ndarray]:
    return make_example(clips[index // num_pairs], index % num_pairs, data.num_views,
                        data.get("depth", "person"))

  ds = grain.MapDataset.range(len(source) * num_pairs).map(example)
  return ds[shard_index::shard_count]
