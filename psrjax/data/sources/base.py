"""Video sources: one interface over the synthetic world and prepared real videos.

A *video source* lists its videos per split and gives, for any video, its keypoints without decoding
a frame and any frames with the modalities it holds, in the batch contract (`psrjax.data.contract`:
rgb float32 [n, H, W, 3] in [-1, 1], keypoints float32 [n, 18, 3] in pixels of the frame, mask
float32 [n, H, W, 1] in {0, 1}, flow_fwd / flow_bwd float32 [n, H, W, 2] in pixels, background
float32 [n, H, W, 3] in [-1, 1]), which every source checks on every read (`checked`:
`contract.check_example`). Each modality is marked "exact" (the synthetic world renders it) or
"estimated" (`psrjax prepare` estimated it from the pixels). Samplers (`per_person`, `same_video`,
`view_pairs`) turn a source into examples; a system names the modalities it needs (`require`), so a
source without one fails when the config is built, not in the middle of a run.

Sources:
  `synthetic_clips.SyntheticClips`  the synthetic world's multi-view clips (read pre-rendered:
                                    `prerendered.PrerenderedClips`)
  `scripted_person.ScriptedPerson`  the synthetic per-person video (a train and a held-out
                                    segment)
  `PreparedSource`                  a folder `psrjax prepare` wrote (`psrjax.data.sources.prepared`)
  `multiview.MultiViewSource`       a multi-view dataset (`psrjax prepare multiview`, NTU RGB+D)
  `Resized`                         any source at another resolution (frames, masks, keypoints
                                    and flows resized consistently)
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Protocol, Sequence

import cv2
import numpy as np

from psrjax.data import contract
from psrjax.data.sources import prepared

EXACT, ESTIMATED = "exact", "estimated"
# How a missing modality can be had, for `require`'s error.
_HOW = {
    "keypoints": "import them with `psrjax prepare --keypoints DIR` or install the estimator "
                 "(pip install 'psrjax[pose]')",
    "mask": "prepare the videos again with this psrjax (`psrjax prepare` estimates masks)",
    "flow_fwd": "prepare the videos again with this psrjax (`psrjax prepare` estimates flow)",
    "flow_bwd": "prepare the videos again with this psrjax (`psrjax prepare` estimates flow)",
    "background": "prepare the videos again with this psrjax (`psrjax prepare` estimates it)",
}


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  """One video of a source. `key` is the source's own handle of it; `offset` its first frame's
  position in the source's frame numbering (the order of `all_videos`); `groups`, where the
  source can tell, int32 [num_frames]: each frame's group, an index into the source's
  `group_names` (the synthetic person: "seen" / "novel" actions)."""
  name: str
  split: str
  num_frames: int
  fps: float
  offset: int = 0
  key: object = None
  groups: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)


class VideoSource(Protocol):
  """What samplers read (module docstring)."""
  resolution: int
  modalities: Mapping[str, str]     # modality -> EXACT | ESTIMATED
  group_names: tuple[str, ...]      # names of VideoInfo.groups' values (() when none)

  def videos(self, split: str) -> list[VideoInfo]: ...
  def keypoints(self, video: VideoInfo) -> np.ndarray: ...
  def frames(self, video: VideoInfo, indices, keys: Sequence[str]) -> dict[str, np.ndarray]: ...


def require(source, needed: Sequence[str], *, what: str) -> None:
  """A one-line ValueError when `source` lacks a modality `what` (e.g. "EDN") needs."""
  missing = [m for m in needed if m not in source.modalities]
  if missing:
    how = _HOW.get(missing[0], "use a source that has it")
    raise ValueError(f"{what} needs the {missing[0]!r} modality, which {describe(source)} does "
                     f"not hold (it has {', '.join(source.modalities)}); {how}")


def describe(source) -> str:
  return getattr(source, "description", type(source).__name__)


def checked(source, video: VideoInfo, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """`out`, what `source` read of `video`, once `contract.check_example` passed it."""
  contract.check_example(out, where=f"{describe(source)}, video {getattr(video, 'name', video)}")
  return out


def checked_keypoints(source, video: VideoInfo, keypoints: np.ndarray) -> np.ndarray:
  """`keypoints` of `video`, once `contract.check_example` passed them."""
  return checked(source, video, {"keypoints": keypoints})["keypoints"]


def evenly_spaced(count: int, length: int) -> np.ndarray:
  """int64 [count]: `count` indices spread evenly over range(length), first and last included
  (rounded; repeats when count > length)."""
  return np.round(np.linspace(0, length - 1, count)).astype(np.int64)


def to_unit(rgb: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return rgb.astype(np.float32) / 127.5 - 1.0


# ----------------------------------------------------------------------------------------------
# Prepared real videos.


class PreparedSource:
  """A prepared dataset (`psrjax.data.sources.prepared`) as a video source: splits "train" / "test"
  ("validation" reads "test"); every modality estimated. Picklable for grain workers."""

  def __init__(self, path: str):
    self.data = prepared.PreparedVideos(path)
    self.resolution = self.data.resolution
    self.description = f"dataset {self.data.path}"
    self.modalities = {k: ESTIMATED for k in prepared.FRAME_KEYS}
    self.group_names = ()
    videos = self.data.index["videos"]
    offsets = np.concatenate([[0], np.cumsum([v["num_frames"] for v in videos])])
    self._offsets = offsets.tolist()

  def _info(self, video: prepared.Video) -> VideoInfo:
    return VideoInfo(video.name, video.split, video.num_frames, video.fps,
                     offset=self._offsets[video.index], key=video)

  def videos(self, split: str) -> list[VideoInfo]:
    return [self._info(v) for v in self.data.videos(split)]

  def all_videos(self) -> list[VideoInfo]:
    """Every video, in the dataset's index order (a lone video's train part, then its tail)."""
    return sorted(self.videos("train") + self.videos("test"), key=lambda v: v.key.index)

  def keypoints(self, video: VideoInfo) -> np.ndarray:
    return checked_keypoints(self, video, self.data.keypoints(video.key))

  def frames(self, video: VideoInfo, indices, keys: Sequence[str]) -> dict[str, np.ndarray]:
    raw = self.data.frames(video.key, indices)
    out = {}
    for key in keys:
      value = raw[key]
      if key in ("rgb", "background"):
        value = to_unit(value)
      elif key == "mask":
        value = value.astype(np.float32)[..., None]
      out[key] = value
    return checked(self, video, out)


# ----------------------------------------------------------------------------------------------
# Resizing.


def resize_keypoints(keypoints: np.ndarray, scale: float) -> np.ndarray:
  """Keypoints [..., 18, 3] of a frame resized by `scale` (pixel centres at integers:
  x' = (x + 0.5) s - 0.5); confidences unchanged."""
  kp = np.array(keypoints, np.float32)
  kp[..., :2] = (kp[..., :2] + 0.5) * scale - 0.5
  return kp


# Modalities resized by nearest neighbour: labels and per-pixel surface quantities, which
# averaging across the person's outline would turn into values of neither side.
_NEAREST = ("face", "part", "uv", "depth", "background_depth")


def resize_frames(value: np.ndarray, key: str, size: int) -> np.ndarray:
  """One modality [n, H, W, C] resized to size x size: area averaging down, bilinear up (labels,
  depths and surface coordinates: nearest); masks thresholded back to {0, 1}; flows scaled with
  the frame."""
  n, h = value.shape[0], value.shape[1]
  if key in _NEAREST:
    interp = cv2.INTER_NEAREST
  else:
    interp = cv2.INTER_AREA if size < h else cv2.INTER_LINEAR
  shape = (size, size) + value.shape[3:]
  out = np.stack([cv2.resize(np.ascontiguousarray(f), (size, size), interpolation=interp)
                  .reshape(shape) for f in value]) if n else np.zeros((0,) + shape, value.dtype)
  if key == "mask":
    out = (out >= 0.5).astype(np.float32)
  elif key.startswith("flow"):
    out = out * np.float32(size / h)
  return out.astype(value.dtype)


class Resized:
  """`source` at `resolution` x `resolution` (frames, masks, flows, keypoints and face boxes
  resized consistently; module docstring)."""

  def __init__(self, source, resolution: int):
    self.source, self.resolution = source, int(resolution)
    self.scale = self.resolution / source.resolution
    self.modalities, self.group_names = source.modalities, source.group_names
    self.description = f"{describe(source)} resized to {self.resolution} px"

  def __getattr__(self, name):   # videos, all_videos, ... of the wrapped source
    if name == "source":
      raise AttributeError(name)
    return getattr(self.source, name)

  def keypoints(self, video: VideoInfo) -> np.ndarray:
    return resize_keypoints(self.source.keypoints(video), self.scale)

  def frames(self, video: VideoInfo, indices, keys: Sequence[str]) -> dict[str, np.ndarray]:
    out = self.source.frames(video, indices, keys)
    for key, value in out.items():
      if key == "keypoints":
        out[key] = resize_keypoints(value, self.scale)
      elif key == "face_box":
        out[key] = (value * np.float32(self.scale)).astype(value.dtype)
      else:
        out[key] = resize_frames(value, key, self.resolution)
    return out


def at_resolution(source, resolution: int):
  """`source` itself when it already has `resolution`, else `Resized`."""
  return source if source.resolution == int(resolution) else Resized(source, resolution)


def open_prepared(path: str, resolution: int):
  """The prepared dataset `path` as a source at `resolution` (the config's); with predicted
  surface maps: `predicted_surface.open_prepared`."""
  return at_resolution(PreparedSource(path), resolution)
