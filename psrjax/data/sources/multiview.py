"""Prepared multi-view datasets: the folder `psrjax prepare multiview` (and the NTU RGB+D
builder) writes, random access to it, and the multi-view video source PSR-Net reads.

A multi-view dataset is a folder DATASET:

  DATASET/multiview.json              psrjax's index (`FORMAT`): resolution; "recordings" (one per
                                      calibrated recording: its cameras, frame count, fps, source
                                      files, crop boxes, the reprojection report of its
                                      triangulation and the body fit's residuals); "takes" (the
                                      synchronised frame ranges examples come from: a recording's
                                      training part and its held-out tail, or a whole recording;
                                      each lists its videos, one per camera); "videos" (one per
                                      take and camera, in record order: split, record offset in
                                      the split, frame count, the camera after crop and resize,
                                      undistorted: {"name", "size", "K", "R", "t"}, world ->
                                      camera, pixel centres at integers); "estimated" (each
                                      modality and how it was had)
  DATASET/keypoints.npy               float32 [records, 18, 3], every video's keypoints in index
                                      order (read without decoding; absent in TFDS builds, where
                                      they are read from the records)
  DATASET/preview.png                 the fitted body's part map over every view at a few frames
  DATASET/psrjax_multiview/r<R>/1.0.0/  TFDS (array_record), one record per camera and frame, in
                                      video order, readable without psrjax:
                                      `tfds.builder_from_directory(that folder).as_data_source()`

A record: video int32 (index in "videos"), frame int32 (in the video), rgb uint8 [R,R,3]
(undistorted, cropped, resized), mask uint8 [R,R,1], keypoints float32 [18,3] (the camera's
2D detections in the record's pixels, confidence 0 = missing), points3d float32 [18,3] (the
take's 3D keypoints in the world, NaN = missing), face int32 [R,R] (-1 background), part uint8
[R,R] (0 background), uv float16 [R,R,2], depth float32 [R,R] (camera z, metres, 0 background),
flow_fwd / flow_bwd float16 [R,R,2] (pixels), background uint8 [R,R,3]. Every modality is
estimated: the index's "estimated" says how (on a recording, face/part/uv/depth/flows are
those of a body fitted to the triangulated keypoints, rendered in the camera). The TFDS
builders write the same records with the index as the TFDS folder's metadata.json.

Splits "train" and "test" ("validation" reads "test") are per video: a take's example pairs
use target views of the split and, in training, source views of it too (NTU RGB+D's
cross-view protocol holds out camera 1 of every take; a recording's tail holds out every view).

`MultiViewSource` is the source of `psrjax.data.sources.base`'s interface that `view_pairs` samples,
with `SyntheticClips`' take interface (`take(i)`, `num_views`, `len`), and `Windows` cuts its takes
into windows of T frames (a long recording gives many examples).

DATASET may be a bucket URL (`gs://bucket/dataset`, `psrjax.paths`), read as
`psrjax.data.sources.prepared` reads one.
"""
from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

from psrjax import paths
from psrjax.data.sources import base as sources, prepared

FORMAT = "psrjax-multiview/1"
BUILDER_NAME = "psrjax_multiview"
INDEX_FILE = "multiview.json"
KEYPOINTS_FILE = "keypoints.npy"
SPLITS = ("train", "test")
FRAME_KEYS = ("rgb", "keypoints", "points3d", "mask", "face", "part", "uv", "depth", "flow_fwd",
              "flow_bwd", "background")
# Modalities of the source (batch contract), all estimated.
MODALITIES = ("rgb", "keypoints", "mask", "face", "part", "uv", "depth", "flow_fwd", "flow_bwd",
              "background")


def features(resolution: int):
  """The TFDS features of one record (module docstring)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  # Heavy; only here.
  r, enc, T = resolution, tfds.features.Encoding.ZLIB, tfds.features.Tensor
  image = lambda c: tfds.features.Image(shape=(r, r, c), encoding_format="png")
  return tfds.features.FeaturesDict({
      "video": T(shape=(), dtype=np.int32), "frame": T(shape=(), dtype=np.int32),
      "rgb": image(3), "mask": image(1), "background": image(3),
      "keypoints": T(shape=(18, 3), dtype=np.float32),
      "points3d": T(shape=(18, 3), dtype=np.float32),
      "face": T(shape=(r, r), dtype=np.int32, encoding=enc),
      "part": T(shape=(r, r), dtype=np.uint8, encoding=enc),
      "uv": T(shape=(r, r, 2), dtype=np.float16, encoding=enc),
      "depth": T(shape=(r, r), dtype=np.float32, encoding=enc),
      "flow_fwd": T(shape=(r, r, 2), dtype=np.float16, encoding=enc),
      "flow_bwd": T(shape=(r, r, 2), dtype=np.float16, encoding=enc),
  })


def builder_dir(path: str, resolution: int) -> str:
  return os.path.join(path, BUILDER_NAME, f"r{resolution}", "1.0.0")


def read_index(path: str) -> dict:
  """The index of a multi-view dataset, checked: DATASET/multiview.json, or the metadata.json of
  a TFDS folder a multi-view builder wrote ("builder_dir" is then the folder itself). A
  one-line error when `path` is neither."""
  path = path if paths.is_url(path) else os.path.expanduser(path)
  index_file = paths.join(path, INDEX_FILE)
  if not paths.isfile(index_file) and paths.isfile(paths.join(path, "metadata.json")):
    index_file = paths.join(path, "metadata.json")
  if not paths.isfile(index_file):
    if paths.isfile(paths.join(path, "videos.json")):
      raise ValueError(f"{path!r} is a single-view dataset (psrjax prepare); PSR-Net needs a "
                       "multi-view one: psrjax prepare multiview --videos cam*.mp4 --calibration "
                       "CALIB --out DATASET")
    hint = (" (an interrupted `psrjax prepare multiview` left it unfinished; run it again)"
            if paths.isdir(path + ".partial") else "")
    raise FileNotFoundError(f"{path!r} is not a multi-view dataset: {INDEX_FILE} is missing"
                            f"{hint}; create one with `psrjax prepare multiview`")
  index = json.loads(paths.read_text(index_file))
  if index.get("format") != FORMAT:
    raise ValueError(f"{index_file} has format {index.get('format')!r}, expected {FORMAT!r}; "
                     "prepare the dataset again with `psrjax prepare multiview` of this psrjax")
  index.setdefault("builder_dir", ".")
  return index


def split_name(split: str) -> str:
  """`split`, with "validation" read as "test"."""
  split = "test" if split == "validation" else split
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r} of a multi-view dataset; use one of "
                     f"{', '.join(SPLITS)}")
  return split


def num_views(path: str) -> int:
  """The number of cameras of every take of the dataset `path` (one-line error if they differ)."""
  index = read_index(path)
  counts = sorted({len(t["videos"]) for t in index["takes"]})
  if len(counts) != 1:
    raise ValueError(f"{path}: takes have {counts} cameras; PSR-Net needs one camera count")
  return counts[0]


class MultiViewVideos:
  """Random access to the records of a multi-view dataset (picklable for grain workers: the
  array_record readers open lazily in each process)."""

  def __init__(self, path: str):
    self.path = paths.resolve(path)
    self.index = read_index(self.path)
    self.resolution = int(self.index["resolution"])
    self._sources, self._keypoints = {}, None

  def __getstate__(self):
    return {**self.__dict__, "_sources": {}, "_keypoints": None}

  def _source(self, split: str):
    if split not in self._sources:
      import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
      builder = tfds.builder_from_directory(
          prepared.builder_path(self.path, self.index["builder_dir"]))
      self._sources[split] = builder.as_data_source(split=split)
    return self._sources[split]

  def frames(self, video: int, indices) -> dict[str, np.ndarray]:
    """Stacked FRAME_KEYS of frames `indices` of video `video` (index in "videos"), as stored."""
    v = self.index["videos"][video]
    indices = np.asarray(indices, np.int64).reshape(-1)
    if indices.size and (indices.min() < 0 or indices.max() >= v["num_frames"]):
      raise IndexError(f"frames {indices.tolist()} out of range for video {v['name']!r} with "
                       f"{v['num_frames']} frames")
    source = self._source(v["split"])
    records = [source[int(v["offset"] + i)] for i in indices]
    return {k: np.stack([r[k] for r in records]) for k in FRAME_KEYS}

  def keypoints(self, video: int) -> np.ndarray:
    """float32 [num_frames, 18, 3] of video `video` (keypoints.npy, else the records)."""
    v = self.index["videos"][video]
    if self._keypoints is None:
      path = paths.join(self.path, KEYPOINTS_FILE)
      self._keypoints = paths.load_npy(path) if paths.isfile(path) else {}
    if isinstance(self._keypoints, dict):
      if video not in self._keypoints:
        self._keypoints[video] = self.frames(video, np.arange(v["num_frames"]))["keypoints"]
      return np.array(self._keypoints[video], np.float32)
    start = sum(u["num_frames"] for u in self.index["videos"][:video])
    return np.array(self._keypoints[start:start + v["num_frames"]], np.float32)


def to_contract(raw: dict, keys: Sequence[str]) -> dict[str, np.ndarray]:
  """Stored record values -> the batch contract (rgb / background float32 in [-1, 1], mask
  float32 [..., 1], face / part int32, the rest float32)."""
  out = {}
  for key in keys:
    value = raw[key]
    if key in ("rgb", "background"):
      value = sources.to_unit(value)
    elif key in ("face", "part"):
      value = value.astype(np.int32)
    else:
      value = value.astype(np.float32)
    out[key] = value
  return out


class MultiViewSource:
  """The takes of one split of a multi-view dataset as a video source (module docstring):
  `take(i)` its cameras' videos, `pairs(i)` the ordered view pairs its examples may use."""

  group_names = ()

  def __init__(self, path: str, split: str):
    self.data = MultiViewVideos(path)
    self.split = split_name(split)
    self.resolution = self.data.resolution
    self.modalities = {k: sources.ESTIMATED for k in MODALITIES}
    self.description = f"multi-view dataset {self.data.path}"
    index = self.data.index
    self._takes = [i for i, t in enumerate(index["takes"])
                   if any(index["videos"][v]["split"] == self.split for v in t["videos"])]
    self.num_views = num_views(self.data.path) if index["takes"] else 0

  def __len__(self) -> int:
    return len(self._takes)

  def _info(self, video: int) -> sources.VideoInfo:
    v = self.data.index["videos"][video]
    take = self.data.index["takes"][v["take"]]
    return sources.VideoInfo(v["name"], v["split"], v["num_frames"], float(take["fps"]),
                             offset=int(v["offset"]), key=video)

  def take(self, index: int) -> list[sources.VideoInfo]:
    """The videos of the split's take `index`, camera by camera."""
    if not 0 <= int(index) < len(self._takes):
      raise IndexError(f"take {index} out of range for {len(self._takes)} {self.split} takes")
    return [self._info(v) for v in self.data.index["takes"][self._takes[int(index)]]["videos"]]

  def pairs(self, index: int) -> tuple[tuple[int, int], ...]:
    """Ordered view pairs (i, j) of take `index`: target j in the split; in "train" also i."""
    split = [v.split == self.split for v in self.take(index)]
    return tuple((i, j) for i in range(len(split)) for j in range(len(split))
                 if i != j and split[j] and (split[i] or self.split != "train"))

  def camera(self, video: sources.VideoInfo) -> dict:
    """{"name", "size", "K", "R", "t"} of a video's camera (at the dataset's resolution)."""
    return self.data.index["videos"][video.key]["camera"]

  def videos(self, split: str) -> list[sources.VideoInfo]:
    split = split_name(split)
    return [self._info(i) for i, v in enumerate(self.data.index["videos"]) if v["split"] == split]

  def keypoints(self, video: sources.VideoInfo) -> np.ndarray:
    return sources.checked_keypoints(self, video, self.data.keypoints(video.key))

  def frames(self, video: sources.VideoInfo, indices, keys: Sequence[str]) -> dict[str, np.ndarray]:
    unknown = [k for k in keys if k not in self.modalities]
    if unknown:
      raise KeyError(f"{self.description} has no {unknown[0]!r} (it has "
                     f"{', '.join(self.modalities)})")
    out = to_contract(self.data.frames(video.key, indices), keys)
    if "mask" in out:
      out["mask"] = out["mask"].reshape(out["mask"].shape[:3] + (1,))
    return sources.checked(self, video, out)


class Windows:
  """Takes of `source` cut into windows of `length` frames every `stride` frames (shorter takes
  give none), each window a take of its own (`take`, `pairs`, `len`, `num_views`); frames read
  at `resolution` (`sources.Resized`; None: the source's)."""

  def __init__(self, source, length: int, stride: int, resolution: int | None = None):
    if length < 1 or stride < 1:
      raise ValueError(f"windows need length >= 1 and stride >= 1; got {length}, {stride}")
    self.length = int(length)
    self.windows = [(i, s) for i in range(len(source))
                    for s in range(0, source.take(i)[0].num_frames - length + 1, stride)]
    if resolution is not None:
      source = sources.at_resolution(source, resolution)
    self.source, self.num_views, self.resolution = source, source.num_views, source.resolution
    self.modalities, self.group_names = source.modalities, source.group_names
    self.description = f"{sources.describe(source)} in windows of {length} frames"

  def __len__(self) -> int:
    return len(self.windows)

  def take(self, index: int) -> list[sources.VideoInfo]:
    take, start = self.windows[int(index)]
    return [sources.VideoInfo(f"{v.name}@{start}", v.split, self.length, v.fps,
                              offset=v.offset + start, key=(v, start))
            for v in self.source.take(take)]

  def pairs(self, index: int) -> tuple[tuple[int, int], ...]:
    return self.source.pairs(self.windows[int(index)][0])

  def keypoints(self, video: sources.VideoInfo) -> np.ndarray:
    base, start = video.key
    return self.source.keypoints(base)[start:start + self.length]

  def frames(self, video: sources.VideoInfo, indices, keys: Sequence[str]) -> dict[str, np.ndarray]:
    base, start = video.key
    return self.source.frames(base, start + np.asarray(indices, np.int64), keys)


def open_windows(path: str, split: str, *, resolution: int, length: int, stride: int) -> Windows:
  """Windows of `length` frames of the takes of `split`, frames read at `resolution`."""
  return Windows(MultiViewSource(path, split), length, stride, resolution)
