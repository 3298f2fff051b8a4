"""The synthetic world read pre-rendered: a built `synthetic_humans` TFDS dataset as the clips.

Rendering a clip costs 0.2-0.6 CPU-seconds, so an accelerator fed by per-step rendering waits
on its input. The `synthetic_humans` builder (datasets/synthetic_humans) stores every clip
`synthetic.render_clip` makes for a split's i-th seed as record i (ArrayRecord, random access);
`PrerenderedClips` reads them in place of rendering and gives exactly the same examples (the
samplers see the same source interface as `synthetic_clips.SyntheticClips`). Each process reads
only the records of its shard's clips.

`data.prerendered` chooses (`resolve`):
  ""       render every example (the default; CPU runs, runlocal and tiny variants);
  "auto"   on GPU / TPU the built dataset in the default TFDS data dir (`$TFDS_DATA_DIR`, else
           ~/tensorflow_datasets) whose settings match the config, and a one-line error that
           names the build command when none is built (an accelerator fed by rendering runs
           10x or more below its speed, so a silent fallback would hide it); on CPU, render;
  a path   a built dataset: its version directory (holding dataset_info.json), its config
           directory, or a TFDS data dir holding synthetic_humans/ (the first that matches).
A dataset whose resolution, frames, views, rooms or travel differ from the config's, or that holds
fewer clips than the config reads, is a one-line error naming the build command of a matching one;
so is one built before the current storage format (`FORMAT`, builder version 2.0.0), which must be
rebuilt. Records store each image modality as `STORAGE` says, and an example decodes only the
frames of the views it uses, straight into the batch contract's dtypes.
"""
from __future__ import annotations

import collections.abc
import glob
import json
import os
import struct
import zlib
from typing import Sequence

import numpy as np

from psrjax.data.sources import base as sources, estimated_geometry, synthetic_clips
from psrjax.data.synthetic import source as synthetic_source

BUILDER = "synthetic_humans"
SETTINGS = ("resolution", "num_frames", "num_views", "rooms", "travel")
# The builder's named configs (datasets/synthetic_humans) a build command may name ("travel"
# 0 unless given).
NAMED = {
    "small": dict(resolution=64, num_frames=8, num_views=3, rooms=0, num_train=200,
                  num_validation=25, num_test=25),
    "medium": dict(resolution=128, num_frames=16, num_views=3, rooms=0, num_train=2000,
                   num_validation=200, num_test=200),
    "psrnet": dict(resolution=112, num_frames=16, num_views=3, rooms=17, num_train=100_000,
                 num_validation=1000, num_test=1000),
    "mfci": dict(resolution=128, num_frames=16, num_views=1, rooms=0, num_train=100_000,
                 num_validation=1000, num_test=1000),
    "fomm": dict(resolution=256, num_frames=16, num_views=1, rooms=0, travel=0.5,
                 num_train=100_000, num_validation=1000, num_test=1000),
}


def wanted(data) -> dict[str, int]:
  """render_clip's settings of a config's `data` block."""
  return {"resolution": int(data.resolution), "num_frames": int(data.num_frames),
          "num_views": int(data.num_views), "rooms": int(data.get("rooms", 0)),
          "travel": float(data.get("travel", 0.0))}


def default_data_dir() -> str:
  """TFDS's default data dir: $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
  return os.path.expanduser(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))


def complete(settings: dict) -> dict:
  """`settings` with every key of SETTINGS, in its order ("travel" 0 when missing)."""
  return {k: float(settings.get(k, 0.0)) if k == "travel" else settings[k] for k in SETTINGS}


def build_command(settings: dict, counts: dict, data_dir: str | None = None) -> str:
  """The command that builds a dataset with `settings` and at least `counts[split]` clips of
  each split named."""
  where = f" --data_dir {data_dir or default_data_dir()}"
  settings = complete(settings)
  for name, named in NAMED.items():
    if (complete(named) == settings
        and all(named[f"num_{split}"] >= n for split, n in counts.items())):
      return f"python datasets/synthetic_humans/build.py --config {name}{where}"
  if not settings["travel"]:
    del settings["travel"]
  flags = " ".join(f"--{k} {v:g}" if isinstance(v, float) else f"--{k} {v}" for k, v in
                   {**settings, **{f"num_{s}": n for s, n in counts.items()}}.items())
  return f"python datasets/synthetic_humans/build.py --config custom {flags}{where}"


def _read_meta(path: str) -> dict:
  """A built dataset's settings, split sizes ("sizes"), storage format and version."""
  with open(os.path.join(path, "metadata.json")) as f:
    meta = json.load(f)
  with open(os.path.join(path, "dataset_info.json")) as f:
    info = json.load(f)
  sizes = {s["name"]: sum(int(n) for n in s.get("shardLengths", [])) for s in info["splits"]}
  return {**{k: _setting(meta, k) for k in SETTINGS}, "sizes": sizes, "format": meta.get("format"),
          "version": info.get("version", "")}


def _setting(meta: dict, key: str):
  """A stored setting: "travel" a float (0 in datasets built before it), the others ints."""
  return float(meta.get(key, 0.0)) if key == "travel" else int(meta[key])


def _old_format_error(path: str, got: dict) -> ValueError:
  data_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(path))))
  command = build_command({k: got[k] for k in SETTINGS}, {"train": got["sizes"].get("train", 0)},
                          data_dir)
  return ValueError(f"{path} is a {BUILDER} {got['version']} dataset in an older storage format "
                    f"than this psrjax reads (format {FORMAT}); rebuild it with `{command}`")


def read_settings(path: str) -> dict:
  """The settings (SETTINGS) and split sizes ("sizes") of the built dataset at `path` (a version
  dir); a dataset in an older storage format than `FORMAT` is a one-line error naming its
  rebuild."""
  got = _read_meta(path)
  if got["format"] != FORMAT:
    raise _old_format_error(path, got)
  return {**{k: got[k] for k in SETTINGS}, "sizes": got["sizes"]}


def built_versions(path: str) -> list[str]:
  """Version directories of every built config under `path`: a TFDS data dir, the builder's
  directory in one or one config's directory (only those with metadata: version 1.2.0 and later,
  whose records are in seed order)."""
  found = []
  for pattern in (f"{BUILDER}/*/*", "*/*", "*"):
    found += glob.glob(os.path.join(path, pattern, "metadata.json"))
  return sorted({os.path.dirname(p) for p in found})


def find(data_dir: str, settings: dict, num_train: int) -> str | None:
  """A built dataset under `data_dir` with `settings` and >= `num_train` train clips (one in an
  older storage format only: a one-line error naming its rebuild)."""
  old, settings = None, complete(settings)
  for path in built_versions(data_dir):
    got = _read_meta(path)
    if {k: got[k] for k in SETTINGS} == settings and got["sizes"].get("train", 0) >= num_train:
      if got["format"] == FORMAT:
        return path
      old = old or path
  if old is not None:
    raise _old_format_error(old, _read_meta(old))
  return None


def _platform() -> str:
  import jax  # pylint: disable=g-import-not-at-top  # only when "auto" asks
  return jax.default_backend()


def resolve(data) -> str:
  """The dataset directory `data.prerendered` names ("" renders; module docstring)."""
  value = str(data.get("prerendered", "") or "")
  if not value:
    return ""
  settings, num_train = wanted(data), int(data.train_clips)
  if value == "auto":
    if _platform() == "cpu":
      return ""
    path = find(default_data_dir(), settings, num_train)
    if path is None:
      raise ValueError(f"data.prerendered='auto' on {_platform()} found no built {BUILDER} with "
                       f"{_describe(settings)} and >= {num_train} train clips in "
                       f"{default_data_dir()}; build it with "
                       f"`{build_command(settings, {'train': num_train})}`"
                       " or set data.prerendered='' to render every example on the host")
    return path
  path = os.path.abspath(os.path.expanduser(value))
  if os.path.exists(os.path.join(path, "dataset_info.json")):
    return path
  found = find(path, settings, num_train)
  if found is None:
    raise ValueError(f"data.prerendered={value!r} holds no built {BUILDER} with "
                     f"{_describe(settings)} and >= {num_train} train clips; build it with "
                     f"`{build_command(settings, {'train': num_train})}` and name its data dir")
  return found


def _describe(settings: dict) -> str:
  return ", ".join(f"{k}={v}" for k, v in settings.items())


def _clip_index(split: str, seed: int) -> int:
  """The index of clip `seed` in `split` (the inverse of `synthetic.split_seed`)."""
  residues = synthetic_source._RESIDUES[split]  # pylint: disable=protected-access
  return (int(seed) // 10) * len(residues) + residues.index(int(seed) % 10)


# The storage format the reader understands (the builder's metadata "format"; datasets built
# before it lack the key and must be rebuilt).
FORMAT = 2
# How each image modality of a clip is stored: its dtype on disk (lossless for render_clip's
# values) and its codec: "raw", the bytes of the whole [views, (frames,) ...] array (the
# record's own zstd compresses them, and one read serves every view and frame), or "crop", one
# chunk per (view, frame): the box around the pixels that differ from the frame's first one
# (the person), deflate-compressed, and that pixel's value for the rest, so a read inflates only
# the person's pixels of the frames asked for.
STORAGE = {
    "rgb": ("uint8", "raw"), "background": ("uint8", "raw"),
    "background_depth": ("float32", "raw"), "depth": ("float32", "crop"),
    "mask": ("uint8", "crop"), "face": ("int16", "crop"), "part": ("uint8", "crop"),
    "uv": ("float32", "crop"), "flow_fwd": ("float32", "crop"), "flow_bwd": ("float32", "crop"),
}
# Modalities of one image per view (the empty room), not one per frame; stored "raw".
PER_VIEW = ("background", "background_depth")
_CHANNELS = {"rgb": 3, "background": 3, "uv": 2, "flow_fwd": 2, "flow_bwd": 2}
# render_clip's dtypes of its scalars (`tfds.data_source` gives Python ints) and where storage
# narrows them.
_SCALAR_DTYPE = {"action": np.int32, "identity": np.int32}
_RENDERED_DTYPE = {"face": np.int32, "part": np.int32}
_ZLIB_LEVEL = 1   # inflates ~2x faster than the default level for ~10 % more bytes
# Crops are raw deflate streams (no zlib header or Adler-32: ~20 % faster to inflate; the
# ArrayRecord file's riegeli chunks carry a hash of their data).
_RAW_DEFLATE = -15
_HEADER = struct.Struct("<4i")   # a crop chunk's box: y0, y1, x0, x1 (then the fill value)


def stored_shape(key: str, settings: dict) -> tuple[int, ...]:
  """The [views, (frames,) H, W, (C)] shape of modality `key` of a clip with `settings`."""
  r = settings["resolution"]
  lead = (settings["num_views"],) + (() if key in PER_VIEW else (settings["num_frames"],))
  return lead + (r, r) + ((_CHANNELS[key],) if key in _CHANNELS else ())


def encode_crop(frame: np.ndarray) -> bytes:
  """One frame [H, W, (C)] as a "crop" chunk (`STORAGE`)."""
  fill = frame.reshape(-1)[:1]
  differs = (frame != fill[0]).reshape(frame.shape[:2] + (-1,)).any(axis=2)
  rows, cols = np.flatnonzero(differs.any(axis=1)), np.flatnonzero(differs.any(axis=0))
  box = (0, 0, 0, 0) if not rows.size else (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)
  crop = np.ascontiguousarray(frame[box[0]:box[1], box[2]:box[3]])
  deflate = zlib.compressobj(_ZLIB_LEVEL, zlib.DEFLATED, _RAW_DEFLATE)
  return (_HEADER.pack(*(int(b) for b in box)) + fill.tobytes()
          + deflate.compress(crop.tobytes()) + deflate.flush())


def decode_crop(chunk: bytes, dtype, out: np.ndarray) -> None:
  """Writes the frame of a "crop" chunk of stored `dtype` into `out` [H, W, (C)] (any dtype that
  holds the stored values exactly)."""
  y0, y1, x0, x1 = _HEADER.unpack_from(chunk)
  out[...] = np.frombuffer(chunk, dtype, 1, _HEADER.size)[0]
  if y1 > y0:
    crop = np.frombuffer(zlib.decompress(memoryview(chunk)[_HEADER.size + dtype.itemsize:],
                                         _RAW_DEFLATE), dtype)
    out[y0:y1, x0:x1] = crop.reshape((y1 - y0, x1 - x0) + out.shape[2:])


def encode_clip(clip: dict) -> dict:
  """A rendered clip (`synthetic.render_clip`) as the builder stores it (`STORAGE`); a value
  the storage dtype cannot hold exactly is a ValueError."""
  out = dict(clip)
  for key, (dtype, codec) in STORAGE.items():
    value = np.asarray(clip[key])
    stored = value.astype(dtype)
    if not np.array_equal(stored, value):
      raise ValueError(f"{key} holds values that {dtype} storage would change "
                       f"[{value.min()}, {value.max()}]")
    out[key] = (stored.tobytes() if codec == "raw" else
                [encode_crop(frame) for frame in stored.reshape((-1,) + stored.shape[2:])])
  return out


class _Example(collections.abc.Mapping):
  """A serialized record (a tf.train.Example) whose features are converted when read: a bytes
  feature as its bytes (crop chunks: their sequence, each chunk made when indexed), a numeric
  one as a numpy array of its feature's shape and dtype (`features`, the dataset's)."""

  def __init__(self, serialized: bytes, features):
    from tensorflow_datasets.proto import tf_example_pb2  # pylint: disable=g-import-not-at-top
    self._map = tf_example_pb2.Example.FromString(serialized).features.feature
    self._features = features

  def __getitem__(self, key: str):
    if key not in self._map:   # (indexing a proto map adds the key)
      raise KeyError(key)
    feature, info = self._map[key], self._features[key]
    kind = feature.WhichOneof("kind")
    if kind == "bytes_list":
      return feature.bytes_list.value[0] if info.shape == () else feature.bytes_list.value
    values = feature.float_list.value if kind == "float_list" else feature.int64_list.value
    return np.asarray(values, info.np_dtype).reshape(info.shape)

  def __iter__(self):
    return iter(self._map)

  def __len__(self) -> int:
    return len(self._map)


class _Record:
  """One stored clip (`STORAGE`): frames of a view decoded on demand, or whole modalities in
  render_clip's form."""

  def __init__(self, record: dict, settings: dict):
    self.record, self.settings = record, settings

  def frames(self, key: str, view: int, indices=None, dtype=None) -> np.ndarray:
    """Frames `indices` of `view` (of a per-view modality: its image) in `dtype` (default: the
    stored one; any that holds the stored values exactly)."""
    stored, codec = STORAGE[key]
    stored, dtype = np.dtype(stored), np.dtype(dtype or stored)
    shape = stored_shape(key, self.settings)
    if codec == "raw":
      whole = np.frombuffer(self.record[key], stored).reshape(shape)[view]
      return (whole if key in PER_VIEW else whole[_as_slice(indices)]).astype(dtype, copy=False)
    chunks, first = self.record[key], view * self.settings["num_frames"]
    out = np.empty((len(indices),) + shape[2:], dtype)
    for i, f in enumerate(indices):
      decode_crop(chunks[first + int(f)], stored, out[i])
    return out

  def contract_frames(self, key: str, view: int, indices: np.ndarray) -> np.ndarray:
    """Frames `indices` of `view` in the batch contract, as `synthetic_clips.clip_frames` gives
    them (per-view images repeated on every frame), decoded straight into their dtypes."""
    if key in ("rgb", "background"):
      value = _unit(self.frames(key, view, indices))
    elif key == "mask":
      value = self.frames(key, view, indices, np.float32)[..., None]
    else:
      value = self.frames(key, view, indices, _RENDERED_DTYPE.get(key))
    return np.repeat(value[None], len(indices), 0) if key in PER_VIEW else value

  def whole(self, key: str) -> np.ndarray:
    """Modality `key` of every view and frame, as render_clip gives it."""
    if key not in STORAGE:
      return np.asarray(self.record[key], _SCALAR_DTYPE.get(key))
    views = range(self.settings["num_views"])
    everything = np.arange(self.settings["num_frames"])
    value = np.stack([self.frames(key, v, everything) for v in views])
    return value.astype(_RENDERED_DTYPE.get(key, value.dtype))


def decode_clip(record: collections.abc.Mapping, settings: dict) -> dict:
  """A record of a built dataset as `tfds.data_source` gives it, in `render_clip`'s form (every
  modality, values and dtypes) plus its "seed"; `settings`: its resolution, num_frames and
  num_views (the dataset's metadata)."""
  stored = _Record(record, settings)
  return {key: int(record[key]) if key == "seed" else stored.whole(key) for key in record}


class _LazyClip(collections.abc.Mapping):
  """A record's clip (render_clip's keys) whose modalities are decoded on first access."""

  def __init__(self, record: _Record):
    self._record, self._decoded = record, {}

  def __getitem__(self, key: str) -> np.ndarray:
    if key not in self._decoded:
      if key == "seed" or key not in self._record.record:
        raise KeyError(key)
      self._decoded[key] = self._record.whole(key)
    return self._decoded[key]

  def __iter__(self):
    return (k for k in self._record.record if k != "seed")

  def __len__(self) -> int:
    return len(self._record.record) - 1


def _as_slice(indices: np.ndarray):
  """`indices` as a slice where they are a run of consecutive frames (no copy to take them)."""
  if len(indices) and np.array_equal(indices, np.arange(indices[0], indices[0] + len(indices))):
    return slice(int(indices[0]), int(indices[0]) + len(indices))
  return indices


def _unit(rgb: np.ndarray) -> np.ndarray:
  """`sources.to_unit` (uint8 -> float32 in [-1, 1], the same values) in one float32 array."""
  out = rgb.astype(np.float32)
  np.divide(out, 127.5, out=out)
  np.subtract(out, 1.0, out=out)
  return out


class PrerenderedClips(synthetic_clips.SyntheticClips):
  """`SyntheticClips` read from the built dataset `path` (module docstring): the same takes,
  videos, keypoints and frames; picklable for grain workers (each opens its own reader)."""

  def __init__(self, path: str, split: str, **kwargs):
    super().__init__(split, **kwargs)
    self.path = path
    got = read_settings(path)
    want = {"resolution": self.resolution, "num_frames": self.num_frames,
            "num_views": self.num_views, "rooms": self.rooms, "travel": self.travel}
    have = got["sizes"].get(split, 0)
    if {k: got[k] for k in SETTINGS} != want or have < self.num_clips:
      raise ValueError(
          f"{path} holds {have} {split} clips with {_describe({k: got[k] for k in SETTINGS})} "
          f"but the config reads {self.num_clips} with {_describe(want)}; build a matching one "
          f"with `{build_command(want, {split: self.num_clips})}`")
    self.description = f"the synthetic world's {split} clips pre-rendered in {path}" + (
        "" if self.estimate is None else " with estimated geometry")
    self._reader, self._features = None, None
    self._cached, self._clip_cache = (None, None), (None, None)

  def __getstate__(self):
    return {**self.__dict__, "_reader": None, "_features": None, "_cached": (None, None),
            "_clip_cache": (None, None)}

  def _settings(self) -> dict:
    return {"resolution": self.resolution, "num_frames": self.num_frames,
            "num_views": self.num_views}

  def _record(self, seed: int) -> _Record:
    """The stored clip of `seed` (the last one read is kept: an example reads several of its
    modalities)."""
    if self._cached[0] == seed:
      return self._cached[1]
    if self._reader is None:
      import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  # Heavy; here.
      builder = tfds.builder_from_directory(self.path)
      self._features = builder.info.features
      self._reader = builder.as_data_source(
          split=self.split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
    record = _Example(self._reader[_clip_index(self.split, seed)], self._features)
    if int(record["seed"]) != seed:
      raise ValueError(f"{self.path}'s {self.split} record of clip seed {seed} holds seed "
                       f"{int(record['seed'])}; rebuild it with this psrjax's builder")
    self._cached = (seed, _Record(record, self._settings()))
    return self._cached[1]

  def _clip(self, seed: int):
    """The clip of `seed` as `render_clip` gives it (with estimated geometry: as
    `estimated_geometry.estimate_clip` makes it of that); a modality is decoded when first
    asked for."""
    if self._clip_cache[0] == seed:
      return self._clip_cache[1]
    clip = _LazyClip(self._record(seed))
    if self.estimate is not None:
      clip = estimated_geometry.estimate_clip(dict(clip), self.estimate, seed)
    self._clip_cache = (seed, clip)
    return clip

  def keypoints(self, video) -> np.ndarray:
    seed, view = video.key
    kp = (self._clip(seed)["keypoints"] if self.estimate is not None
          else self._record(seed).record["keypoints"])
    return sources.checked_keypoints(self, video, np.asarray(kp[view], np.float32))

  def frames(self, video, indices, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Frames `indices` of `video` as `synthetic_clips.clip_frames` gives them; only those
    frames of that view are decoded (with estimated geometry: the whole clip, once)."""
    seed, view = video.key
    if self.estimate is not None:
      return sources.checked(self, video, synthetic_clips.clip_frames(
          self._clip(seed), view, indices, keys))
    indices = np.asarray(indices, np.int64)
    record = self._record(seed)
    out = {key: record.contract_frames(key, view, indices) if key in STORAGE
           else np.asarray(record.record[key][view][indices], np.float32) for key in keys}
    return sources.checked(self, video, out)


def clips(data, split: str, num_clips: int | None, *, num_views: int | None = None,
          estimate=None):
  """The synthetic clips of a config's `data` block: pre-rendered when `data.prerendered`
  resolves to a dataset, else rendered (`synthetic_clips.SyntheticClips`)."""
  kwargs = dict(num_views=num_views or data.num_views, num_frames=data.num_frames,
                resolution=data.resolution, num_clips=num_clips, rooms=data.get("rooms", 0),
                travel=data.get("travel", 0.0),
                estimate=estimate)
  path = resolve(data)
  if not path:
    return synthetic_clips.SyntheticClips(split, **kwargs)
  return PrerenderedClips(path, split, **kwargs)

