"""Prepared real-video datasets: the folder `psrjax prepare` writes, and random access to it.

A prepared dataset is a folder DATASET:

  DATASET/videos.json                 psrjax's index: resolution, every video's name, source,
                                      split, frame count, fps, crop box and which modalities are
                                      estimated (and how); `FORMAT` names its version
  DATASET/keypoints.npy               float32 [frames, 18, 3]: every frame's keypoints, video
                                      after video in videos.json's order (read without
                                      decoding a frame; older datasets lack it and are read
                                      from the records instead)
  DATASET/preview.png                 frames with skeleton, mask and flow overlays, to check by eye
  DATASET/psrjax_videos/r<R>/1.0.0/   a TFDS dataset (array_record, one record per frame, in
                                      video order), readable without psrjax:
                                      `tfds.builder_from_directory(that folder).as_data_source()`

Every record holds one frame at R x R (the person-centred square crop of its video), with the
synthetic world's batch-contract modalities, all estimated on real videos:

  video int32 (index in videos.json), frame int32 (index in the video),
  rgb uint8 [R,R,3], keypoints float32 [18,3] (COCO-18 x, y pixels, pixel centres at integers;
  confidence in [0, 1], 0 = missing), mask uint8 [R,R,1] {0,1}, flow_fwd / flow_bwd float16
  [R,R,2] (x, y pixels; t -> t+1 / t -> t-1, zero at the video's last / first frame),
  background uint8 [R,R,3] (the video's static-camera plate, repeated on each of its frames so
  that any frame is self-contained), face_box float32 [4] (x0, y0, x1, y1;
  `psrjax.geometry.face_crop.face_boxes`).

The TFDS builders of the papers' datasets (`datasets/`) write the same records, with the index
as the TFDS folder's metadata.json; `PreparedVideos` reads either folder.

Splits: "train" and "test" (held-out videos). Readers asking for "validation" get "test".

The folder appears only complete: `psrjax prepare` builds it in DATASET.partial and renames it
at the end, so a folder with videos.json is a finished dataset.

DATASET may be a bucket URL (`gs://bucket/dataset`, `psrjax.paths`): the index and keypoints
are read whole, the records through TFDS and ArrayRecord, which read `gs://` themselves.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import os

import numpy as np

from psrjax import paths

FORMAT = "psrjax-videos/1"
BUILDER_NAME = "psrjax_videos"
INDEX_FILE = "videos.json"
KEYPOINTS_FILE = "keypoints.npy"
SPLITS = ("train", "test")
FRAME_KEYS = ("rgb", "keypoints", "mask", "flow_fwd", "flow_bwd", "background", "face_box")


def features(resolution: int):
  """The TFDS features of one frame record."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  # Heavy; only here.
  r, enc, T = resolution, tfds.features.Encoding.ZLIB, tfds.features.Tensor
  return tfds.features.FeaturesDict({
      "video": T(shape=(), dtype=np.int32),
      "frame": T(shape=(), dtype=np.int32),
      "rgb": tfds.features.Image(shape=(r, r, 3), encoding_format="png"),
      "keypoints": T(shape=(18, 3), dtype=np.float32),
      "mask": tfds.features.Image(shape=(r, r, 1), encoding_format="png"),
      "flow_fwd": T(shape=(r, r, 2), dtype=np.float16, encoding=enc),
      "flow_bwd": T(shape=(r, r, 2), dtype=np.float16, encoding=enc),
      "background": tfds.features.Image(shape=(r, r, 3), encoding_format="png"),
      "face_box": T(shape=(4,), dtype=np.float32),
  })


def builder_dir(path: str, resolution: int) -> str:
  return os.path.join(path, BUILDER_NAME, f"r{resolution}", "1.0.0")


@dataclasses.dataclass(frozen=True)
class Video:
  """One video of a prepared dataset: its records are [offset, offset + num_frames) of `split`."""
  index: int          # position in videos.json
  name: str
  split: str
  offset: int
  num_frames: int
  fps: float


def check_tensorflow() -> None:
  """Raises a one-line ImportError where TensorFlow is not installed: writing the image records
  of a dataset needs it (TFDS encodes PNGs with it); reading them does not."""
  if importlib.util.find_spec("tensorflow") is None:
    raise ImportError("writing a TFDS video dataset (psrjax prepare, the builders in datasets/) "
                      "needs TensorFlow: pip install 'psrjax[tfds]'")


def read_index(path: str) -> dict:
  """The video index of a prepared dataset, checked: DATASET/videos.json, or the metadata.json of
  a TFDS dataset folder a real-video builder wrote (its "builder_dir" is then the folder itself).
  A one-line error when `path` is neither."""
  path = path if paths.is_url(path) else os.path.expanduser(path)
  index_file = paths.join(path, INDEX_FILE)
  tfds_index = paths.join(path, "metadata.json")
  if not paths.isfile(index_file) and paths.isfile(tfds_index):
    index_file = tfds_index
  if not paths.isfile(index_file):
    hint = (" (an interrupted `psrjax prepare` left it unfinished; run it again to resume)"
            if paths.isdir(path + ".partial") else "")
    raise FileNotFoundError(f"{path!r} is not a prepared dataset: {INDEX_FILE} is missing{hint}; "
                            "create one with `psrjax prepare --videos DIR --out DATASET`")
  index = json.loads(paths.read_text(index_file))
  if index.get("format") != FORMAT:
    raise ValueError(f"{index_file} has format {index.get('format')!r}, expected {FORMAT!r}; "
                     "prepare the dataset again with this psrjax version")
  index.setdefault("builder_dir", ".")
  return index


def builder_path(path: str, builder: str) -> str:
  """`path`/`builder` (videos.json's relative "builder_dir", "." for the folder itself)."""
  return path if builder in (".", "") else paths.join(path, builder)


class PreparedVideos:
  """Random access to the frames of a prepared dataset (picklable for grain workers: the
  array_record readers open lazily in each process)."""

  def __init__(self, path: str):
    self.path = paths.resolve(path)
    self.index = read_index(self.path)
    self.resolution = int(self.index["resolution"])
    self._sources = {}
    self._keypoints = None

  def __getstate__(self):
    return {**self.__dict__, "_sources": {}, "_keypoints": None}

  def split_name(self, split: str) -> str:
    """`split`, with "validation" read as "test" (prepared datasets hold out one set)."""
    split = "test" if split == "validation" else split
    if split not in SPLITS:
      raise ValueError(f"unknown split {split!r} of prepared dataset {self.path}; use one of "
                       f"{', '.join(SPLITS)}")
    return split

  def videos(self, split: str) -> list[Video]:
    split = self.split_name(split)
    return [Video(i, v["name"], v["split"], v["offset"], v["num_frames"], v["fps"])
            for i, v in enumerate(self.index["videos"]) if v["split"] == split]

  def keypoints(self, video: Video) -> np.ndarray:
    """float32 [num_frames, 18, 3]: the keypoints of every frame of `video` (from
    keypoints.npy, without decoding a frame; from the records in datasets without it)."""
    if self._keypoints is None:
      path = paths.join(self.path, KEYPOINTS_FILE)
      if not paths.isfile(path):
        self._keypoints = {}
      else:
        self._keypoints = paths.load_npy(path)
    if isinstance(self._keypoints, dict):   # an older dataset: read once per video
      if video.index not in self._keypoints:
        source = self._source(video.split)
        self._keypoints[video.index] = np.stack(
            [source[int(video.offset + i)]["keypoints"] for i in range(video.num_frames)])
      return np.array(self._keypoints[video.index], np.float32)
    start = sum(v["num_frames"] for v in self.index["videos"][:video.index])
    return np.array(self._keypoints[start:start + video.num_frames], np.float32)

  def _source(self, split: str):
    if split not in self._sources:
      import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
      builder = tfds.builder_from_directory(builder_path(self.path, self.index["builder_dir"]))
      self._sources[split] = builder.as_data_source(split=split)
    return self._sources[split]

  def frames(self, video: Video, indices) -> dict[str, np.ndarray]:
    """Stacked modalities of frames `indices` of `video` (FRAME_KEYS, leading axis = frames;
    mask as {0,1} [n,R,R], flows as float32)."""
    indices = np.asarray(indices, np.int64).reshape(-1)
    if indices.size and (indices.min() < 0 or indices.max() >= video.num_frames):
      raise IndexError(f"frames {indices.tolist()} out of range for video {video.name!r} with "
                       f"{video.num_frames} frames")
    source = self._source(video.split)
    records = [source[int(video.offset + i)] for i in indices]
    out = {k: np.stack([r[k] for r in records]) for k in FRAME_KEYS}
    out["mask"] = out["mask"][..., 0]
    out["flow_fwd"] = out["flow_fwd"].astype(np.float32)
    out["flow_bwd"] = out["flow_bwd"].astype(np.float32)
    return out
