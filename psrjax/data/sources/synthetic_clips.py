"""Multi-view synthetic clips as a video source (`psrjax.data.sources.base`).

A split's i-th clip (`synthetic.split_seed`) is seen by `num_views` synchronised cameras; each
camera's recording is one video of the source ("<split><i>:view<v>"), and the cameras of one
clip form a *take* (`take(i)`), as a calibrated multi-camera recording would. Every modality is
exact, or with `geometry="estimated"` the geometry maps come from a body fitted to noisy
triangulated keypoints (`estimated_geometry`). Exact keypoints come from the posed body and the
cameras without rendering (`synthetic.clip_keypoints`); frames render the whole clip once per
process and serve all its cameras and frames from memory (the last few clips are kept).
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from psrjax.data import synthetic
from psrjax.data.sources import base as sources, estimated_geometry
from psrjax.data.synthetic.clip import CLIP_FPS, check_positive_int, check_travel

MODALITIES = ("rgb", "keypoints", "mask", "flow_fwd", "flow_bwd", "depth", "face", "part", "uv",
              "background", "background_depth")


@functools.lru_cache(maxsize=4)
def _render(seed: int, num_views: int, num_frames: int, resolution: int, rooms: int,
            travel: float, estimate: estimated_geometry.Estimate | None = None) -> dict:
  clip = synthetic.render_clip(seed, num_views=num_views, num_frames=num_frames,
                               resolution=resolution, rooms=rooms, travel=travel)
  return clip if estimate is None else estimated_geometry.estimate_clip(clip, estimate, seed)


@functools.lru_cache(maxsize=64)
def _keypoints(seed: int, num_views: int, num_frames: int, resolution: int,
               rooms: int, travel: float) -> np.ndarray:
  kp = synthetic.clip_keypoints(seed, num_views=num_views, num_frames=num_frames,
                                resolution=resolution, rooms=rooms, travel=travel)
  kp.setflags(write=False)
  return kp


class SyntheticClips:
  """The first `num_clips` clips of `split` (module docstring); picklable for grain workers.
  `estimate` (an `estimated_geometry.Estimate`) switches on the estimated-geometry mode."""

  group_names = ()

  def __init__(self, split: str, *, num_views: int, num_frames: int, resolution: int,
               num_clips: int | None = None, rooms: int = 0, travel: float = 0.0,
               estimate: estimated_geometry.Estimate | None = None):
    self.split = synthetic.check_split(split)
    self.num_views = check_positive_int("num_views", num_views)
    self.num_frames = check_positive_int("num_frames", num_frames)
    self.resolution = check_positive_int("resolution", resolution)
    self.rooms = check_positive_int("rooms", rooms, 0)
    self.travel = check_travel(travel)
    self.num_clips = (synthetic.DEFAULT_NUM_CLIPS[split] if num_clips is None
                      else check_positive_int("num_clips", num_clips))
    self.estimate = estimate
    estimated = () if estimate is None else estimated_geometry.ESTIMATED_KEYS
    self.modalities = {k: sources.ESTIMATED if k in estimated else sources.EXACT
                       for k in MODALITIES}
    self.description = f"the synthetic world's {split} clips" + (
        "" if estimate is None else " with estimated geometry")

  def __len__(self) -> int:
    """The number of takes (clips)."""
    return self.num_clips

  def take(self, index: int) -> list[sources.VideoInfo]:
    """The `num_views` videos of clip `index`, camera by camera."""
    index = int(index)
    if not 0 <= index < self.num_clips:
      raise IndexError(f"clip {index} out of range for {self.num_clips} clips")
    seed = synthetic.split_seed(self.split, index)
    return [sources.VideoInfo(f"{self.split}{index}:view{v}", self.split, self.num_frames,
                              CLIP_FPS, offset=(index * self.num_views + v) * self.num_frames,
                              key=(seed, v)) for v in range(self.num_views)]

  def videos(self, split: str) -> list[sources.VideoInfo]:
    if split != self.split:
      return []
    return [v for i in range(self.num_clips) for v in self.take(i)]

  def _args(self, seed: int) -> tuple:
    return (int(seed), self.num_views, self.num_frames, self.resolution, self.rooms, self.travel)

  def keypoints(self, video: sources.VideoInfo) -> np.ndarray:
    seed, view = video.key
    if self.estimate is not None:   # the noisy detections the geometry was estimated from
      kp = _render(*self._args(seed), self.estimate)["keypoints"][view].astype(np.float32)
    else:
      kp = _keypoints(*self._args(seed))[view]
    return sources.checked_keypoints(self, video, kp)

  def frames(self, video: sources.VideoInfo, indices,
             keys: Sequence[str]) -> dict[str, np.ndarray]:
    seed, view = video.key
    return sources.checked(self, video, clip_frames(_render(*self._args(seed), self.estimate),
                                                    view, indices, keys))


def clip_frames(clip: dict, view: int, indices, keys: Sequence[str]) -> dict[str, np.ndarray]:
  """Frames `indices` of camera `view` of a rendered clip (`synthetic.render_clip`), in the batch
  contract: rgb / background float32 in [-1, 1], mask float32 [n, H, W, 1], flows and
  keypoints float32, face / part int32, depth / uv as rendered; "background" and
  "background_depth" (the empty room) repeated on every frame."""
  indices = np.asarray(indices, np.int64)
  out = {}
  for key in keys:
    if key in ("background", "background_depth"):
      value = np.repeat(clip[key][view][None], len(indices), 0)
    else:
      value = clip[key][view][indices]
    if key in ("rgb", "background"):
      value = sources.to_unit(value)
    elif key == "mask":
      value = value.astype(np.float32)[..., None]
    elif key in ("flow_fwd", "flow_bwd", "keypoints", "background_depth", "depth"):
      value = value.astype(np.float32)
    elif key in ("face", "part"):
      value = value.astype(np.int32)
    out[key] = value
  return out


class RenderedClip:
  """An already rendered clip (`synthetic.render_clip`) as a one-take source: `take(0)` its
  cameras, frames and keypoints sliced from it (synthesis examples of chosen seeds)."""

  modalities = {k: sources.EXACT for k in MODALITIES}
  group_names = ()

  def __init__(self, clip: dict):
    self.clip = clip
    self.num_views, self.num_frames, self.resolution = clip["rgb"].shape[:3]
    self.description = "a rendered clip"

  def take(self, index: int = 0) -> list[sources.VideoInfo]:
    if index != 0:
      raise IndexError(f"a rendered clip is one take; got take {index}")
    return [sources.VideoInfo(f"view{v}", "test", self.num_frames, CLIP_FPS, key=(None, v))
            for v in range(self.num_views)]

  def videos(self, split: str) -> list[sources.VideoInfo]:
    return self.take(0) if split == "test" else []

  def keypoints(self, video: sources.VideoInfo) -> np.ndarray:
    return sources.checked_keypoints(self, video, self.clip["keypoints"][video.key[1]])

  def frames(self, video: sources.VideoInfo, indices,
             keys: Sequence[str]) -> dict[str, np.ndarray]:
    return sources.checked(self, video, clip_frames(self.clip, video.key[1], indices, keys))
