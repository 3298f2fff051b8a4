"""PSR-Net examples from a multi-view video source: one (input view i, target view j) pair of a
take (the synchronised cameras of one recording): the synthetic world's clips
(`synthetic_clips.SyntheticClips`), or with `data.dataset` a multi-view dataset `psrjax prepare
multiview` or the NTU RGB+D builder wrote (`multiview.MultiViewSource`), cut into windows of
`data.num_frames` frames (every frame a window start in training, back-to-back windows in
evaluation) and read at `data.resolution`; a source may restrict a take's pairs (`pairs(i)`:
NTU RGB+D's cross-view protocol holds out camera 1 as target), all ordered pairs otherwise. A
real recording has no empty-room depth, so it takes `data.depth="person"`.

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

from psrjax.data.sources import (base as sources, estimated_geometry, multiview, prerendered,
                                 synthetic_clips)


def pairs(num_views: int) -> tuple[tuple[int, int], ...]:
  """All ordered pairs (i, j), i != j, in a fixed order."""
  return tuple(itertools.permutations(range(num_views), 2))


def pair_names(num_views: int) -> tuple[str, ...]:
  """Names of `view_pairs` with 1-based views, as in the paper ("1->2")."""
  return tuple(f"{i + 1}->{j + 1}" for i, j in pairs(num_views))


DEPTHS = ("person", "scene")


def target_depth(frames: dict, depth: str) -> np.ndarray:
  """d_j, float32 [T, H, W, 1] from a view's frames ("depth", and "background_depth" for
  "scene"): the person's camera z (0 elsewhere) for "person"; for "scene", a Kinect-like
  full-frame depth, the person's z where it shows (depth > 0: the depth map's own person, which
  in the estimated-geometry mode is the fitted body's, not the true mask's) and the empty room's
  elsewhere (NTU RGB+D's depth maps, the paper's d_j, cover the whole scene)."""
  if depth not in DEPTHS:
    raise ValueError(f"data.depth must be one of {DEPTHS}; got {depth!r}")
  z = frames["depth"]
  if depth == "scene":
    z = np.where(z > 0, z, frames["background_depth"])
  return z[..., None]


def _needs(depth: str) -> tuple[str, ...]:
  return ("rgb", "depth", "face", "part", "mask", "flow_bwd") + (
      ("background_depth",) if depth == "scene" else ())


def pair_example(view_frames, pair_index: int, num_views: int,
                 depth: str = "person") -> dict[str, np.ndarray]:
  """One ordered view pair of a take: `view_frames(view, keys)` gives every frame of a camera
  (batch contract); `depth` chooses d_j (`target_depth`)."""
  if depth not in DEPTHS:
    raise ValueError(f"data.depth must be one of {DEPTHS}; got {depth!r}")
  i, j = pairs(num_views)[pair_index]
  src, tgt = view_frames(i, ("rgb", "face")), view_frames(j, _needs(depth))
  return {
      "src_rgb": src["rgb"], "src_face": src["face"],
      "tgt_rgb": tgt["rgb"], "tgt_depth": target_depth(tgt, depth), "tgt_face": tgt["face"],
      "tgt_part": tgt["part"], "tgt_mask": tgt["mask"], "tgt_flow_bwd": tgt["flow_bwd"],
      "pair": np.int32(pair_index),
  }


def make_example(clip: dict, pair_index: int, num_views: int,
                 depth: str = "person") -> dict[str, np.ndarray]:
  """`pair_example` of a rendered clip (`synthetic.render_clip`)."""
  del num_views   # the clip's
  return take_example(synthetic_clips.RenderedClip(clip), 0, pair_index, depth)


def take_example(src, index: int, pair_index: int, depth: str) -> dict[str, np.ndarray]:
  """`pair_example` of take (clip) `index` of a multi-view source."""
  take = src.take(index)
  frames = np.arange(take[0].num_frames)
  return pair_example(lambda v, keys: src.frames(take[v], frames, keys), pair_index,
                      len(take), depth)


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


def pair_indices(src, index: int) -> tuple[int, ...]:
  """Indices into `pairs(num_views)` of the pairs take `index` of `src` may use (all of them
  unless the source restricts them with `pairs(index)`)."""
  every = pairs(src.num_views)
  if not hasattr(src, "pairs"):
    return tuple(range(len(every)))
  return tuple(every.index(p) for p in src.pairs(index))


class _RandomPair(grain.transforms.RandomMap):
  """A take's index -> a random ordered view pair of it (seeded per example by grain)."""

  def __init__(self, src, depth: str):
    self.src, self.depth = src, depth

  def random_map(self, index, rng: np.random.Generator):
    allowed = pair_indices(self.src, int(index))
    pair = allowed[int(rng.integers(len(allowed)))]
    return take_example(self.src, int(index), pair, self.depth)


def estimate_of(data) -> estimated_geometry.Estimate | None:
  """The config's estimated-geometry settings (`data.geometry`, `data.keypoint_noise`,
  `data.keypoint_swap_rate`, `data.fit_steps`), None for the exact geometry."""
  geometry = estimated_geometry.check_geometry(data.get("geometry", "exact"))
  if geometry == "exact":
    return None
  return estimated_geometry.Estimate(noise=float(data.keypoint_noise),
                                     swap_rate=float(data.keypoint_swap_rate),
                                     fit_steps=int(data.fit_steps))


def _source(data, split: str, num_clips: int | None):
  if data.get("dataset", ""):
    return recording_windows(data, split)
  return prerendered.clips(data, split, num_clips, estimate=estimate_of(data))


def recording_windows(data, split: str) -> multiview.Windows:
  """The windows of `split` of the multi-view dataset `data.dataset` (module docstring),
  checked against the config (views, depth, window length)."""
  if data.get("depth", "person") != "person":
    raise ValueError(f"data.depth={data.depth!r} needs the empty room's depth, which a real "
                     "recording does not have; use data.depth='person' (configs/psrnet.py's "
                     "data= argument sets it)")
  stride = 1 if split == "train" else data.num_frames
  src = multiview.open_windows(data.dataset, split, resolution=data.resolution,
                               length=data.num_frames, stride=stride)
  if src.num_views != data.num_views:
    raise ValueError(f"{data.dataset} has {src.num_views} cameras per take but data.num_views is "
                     f"{data.num_views}; set data.num_views={src.num_views} (data= does)")
  if not len(src):
    raise ValueError(f"no {split} take of {data.dataset} has the data.num_frames = "
                     f"{data.num_frames} frames a window needs; lower data.num_frames or prepare "
                     "a longer recording")
  return src


def train_dataset(data, *, seed: int, shard_index: int, shard_count: int) -> grain.MapDataset:
  """Random view pairs of this shard's training clips."""
  src = _source(data, "train", data.train_clips)
  ds = grain.MapDataset.range(len(src))[shard_index::shard_count]
  return ds.random_map(_RandomPair(src, data.get("depth", "person")), seed=seed)


def eval_dataset(data, split: str, *, num_clips: int, shard_index: int,
                 shard_count: int) -> grain.MapDataset:
  """Every ordered view pair the source allows of the first `num_clips` clips of `split` (of a
  dataset: `num_clips` windows spread evenly over its takes), clip-major."""
  src = _source(data, split, num_clips)
  takes = range(len(src))
  if data.get("dataset", ""):
    takes = np.unique(sources.evenly_spaced(min(num_clips, len(src)), len(src)))
  items = [(int(t), p) for t in takes for p in pair_indices(src, int(t))]
  depth = data.get("depth", "person")
  ds = grain.MapDataset.range(len(items)).map(
      lambda i: take_example(src, *items[int(i)], depth))
  return ds[shard_index::shard_count]


def recording_example(data, *, seed: int, pair_index: int) -> dict[str, np.ndarray]:
  """Pair `pair_index` of held-out window `seed` (modulo their number) of the dataset."""
  src = recording_windows(data, "test")
  return take_example(src, int(seed) % len(src), pair_index, data.get("depth", "person"))
