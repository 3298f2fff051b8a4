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
A dataset whose resolution, frames, views or rooms differ from the config's, or that holds fewer
clips than the config reads, is a one-line error naming the build command of a matching one.
"""
from __future__ import annotations

import collections.abc
import glob
import json
import os
from typing import Sequence

import numpy as np

from psrjax.data.sources import base as sources, estimated_geometry, synthetic_clips
from psrjax.data.synthetic import source as synthetic_source

BUILDER = "synthetic_humans"
SETTINGS = ("resolution", "num_frames", "num_views", "rooms")
# The builder's named configs (datasets/synthetic_humans) a build command may name.
NAMED = {
    "small": dict(resolution=64, num_frames=8, num_views=3, rooms=0, num_train=200,
                  num_validation=25, num_test=25),
    "medium": dict(resolution=128, num_frames=16, num_views=3, rooms=0, num_train=2000,
                   num_validation=200, num_test=200),
    "psrnet": dict(resolution=112, num_frames=16, num_views=3, rooms=17, num_train=100_000,
                 num_validation=1000, num_test=1000),
    "mfci": dict(resolution=128, num_frames=16, num_views=1, rooms=0, num_train=100_000,
                 num_validation=1000, num_test=1000),
    "fomm": dict(resolution=256, num_frames=16, num_views=1, rooms=0, num_train=100_000,
                 num_validation=1000, num_test=1000),
}


def wanted(data) -> dict[str, int]:
  """render_clip's settings of a config's `data` block."""
  return {"resolution": int(data.resolution), "num_frames": int(data.num_frames),
          "num_views": int(data.num_views), "rooms": int(data.get("rooms", 0))}


def default_data_dir() -> str:
  """TFDS's default data dir: $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
  return os.path.expanduser(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))


def build_command(settings: dict, counts: dict, data_dir: str | None = None) -> str:
  """The command that builds a dataset with `settings` and at least `counts[split]` clips of
  each split named."""
  where = f" --data_dir {data_dir or default_data_dir()}"
  for name, named in NAMED.items():
    if ({k: named[k] for k in SETTINGS} == settings
        and all(named[f"num_{split}"] >= n for split, n in counts.items())):
      return f"python datasets/synthetic_humans/build.py --config {name}{where}"
  flags = " ".join(f"--{k} {v}" for k, v in {**settings, **{f"num_{s}": n for s, n in
                                                           counts.items()}}.items())
  return f"python datasets/synthetic_humans/build.py --config custom {flags}{where}"


def read_settings(path: str) -> dict:
  """The settings (SETTINGS) and split sizes of the built dataset at `path` (a version dir)."""
  with open(os.path.join(path, "metadata.json")) as f:
    meta = json.load(f)
  with open(os.path.join(path, "dataset_info.json")) as f:
    info = json.load(f)
  sizes = {s["name"]: sum(int(n) for n in s.get("shardLengths", [])) for s in info["splits"]}
  return {**{k: int(meta[k]) for k in SETTINGS}, "sizes": sizes}


def built_versions(path: str) -> list[str]:
  """Version directories of every built config under `path`: a TFDS data dir, the builder's
  directory in one or one config's directory (only those with metadata: version 1.2.0 and later,
  whose records are in seed order)."""
  found = []
  for pattern in (f"{BUILDER}/*/*", "*/*", "*"):
    found += glob.glob(os.path.join(path, pattern, "metadata.json"))
  return sorted({os.path.dirname(p) for p in found})


def find(data_dir: str, settings: dict, num_train: int) -> str | None:
  """A built dataset under `data_dir` with `settings` and >= `num_train` train clips."""
  for path in built_versions(data_dir):
    got = read_settings(path)
    if {k: got[k] for k in SETTINGS} == settings and got["sizes"].get("train", 0) >= num_train:
      return path
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


_SCALARS = ("seed", "action", "identity")


class _LazyClip(collections.abc.Mapping):
  """A record's clip (render_clip's keys) whose modalities are decoded on first access."""

  def __init__(self, record: dict, features):
    self._record, self._features, self._decoded = record, features, {}

  def __getitem__(self, key: str) -> np.ndarray:
    if key not in self._decoded:
      if key == "seed" or key not in self._record:
        raise KeyError(key)
      value = self._record[key]
      if key not in _SCALARS:   # the rest arrive undecoded (SkipDecoding)
        value = self._features[key].decode_example_np(value)
      self._decoded[key] = np.asarray(value, self._features[key].np_dtype)
    return self._decoded[key]

  def __iter__(self):
    return (k for k in self._record if k != "seed")

  def __len__(self) -> int:
    return len(self._record) - 1


class PrerenderedClips(synthetic_clips.SyntheticClips):
  """`SyntheticClips` read from the built dataset `path` (module docstring): the same takes,
  videos, keypoints and frames; picklable for grain workers (each opens its own reader)."""

  def __init__(self, path: str, split: str, **kwargs):
    super().__init__(split, **kwargs)
    self.path = path
    got = read_settings(path)
    want = {"resolution": self.resolution, "num_frames": self.num_frames,
            "num_views": self.num_views, "rooms": self.rooms}
    have = got["sizes"].get(split, 0)
    if {k: got[k] for k in SETTINGS} != want or have < self.num_clips:
      raise ValueError(
          f"{path} holds {have} {split} clips with {_describe({k: got[k] for k in SETTINGS})} "
          f"but the config reads {self.num_clips} with {_describe(want)}; build a matching one "
          f"with `{build_command(want, {split: self.num_clips})}`")
    self.description = f"the synthetic world's {split} clips pre-rendered in {path}" + (
        "" if self.estimate is None else " with estimated geometry")
    self._reader, self._features, self._cached = None, None, (None, None)

  def __getstate__(self):
    return {**self.__dict__, "_reader": None, "_features": None, "_cached": (None, None)}

  def _clip(self, seed: int):
    """The clip of `seed` as `render_clip` gives it (the last one read is kept); a modality is
    decompressed when first asked for (an example reads a few of the stored ones)."""
    if self._cached[0] == seed:
      return self._cached[1]
    if self._reader is None:
      import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  # Heavy; here.
      builder = tfds.builder_from_directory(self.path)
      self._features = builder.info.features
      skip = {k: tfds.decode.SkipDecoding() for k in self._features if k not in _SCALARS}
      self._reader = builder.as_data_source(split=self.split, decoders=skip)
    record = self._reader[_clip_index(self.split, seed)]
    if int(record["seed"]) != seed:
      raise ValueError(f"{self.path}'s {self.split} record of clip seed {seed} holds seed "
                       f"{int(record['seed'])}; rebuild it with this psrjax's builder")
    clip = _LazyClip(record, self._features)
    if self.estimate is not None:
      clip = estimated_geometry.estimate_clip(dict(clip), self.estimate, seed)
    self._cached = (seed, clip)
    return clip

  def keypoints(self, video) -> np.ndarray:
    seed, view = video.key
    return sources.checked_keypoints(self, video,
                                     self._clip(seed)["keypoints"][view].astype(np.float32))

  def frames(self, video, indices, keys: Sequence[str]) -> dict[str, np.ndarray]:
    seed, view = video.key
    return sources.checked(self, video,
                           synthetic_clips.clip_frames(self._clip(seed), view, indices, keys))


def clips(data, split: str, num_clips: int | None, *, num_views: int | None = None,
          estimate=None):
  """The synthetic clips of a config's `data` block: pre-rendered when `data.prerendered`
  resolves to a dataset, else rendered (`synthetic_clips.SyntheticClips`)."""
  kwargs = dict(num_views=num_views or data.num_views, num_frames=data.num_frames,
                resolution=data.resolution, num_clips=num_clips, rooms=data.get("rooms", 0),
                estimate=estimate)
  path = resolve(data)
  if not path:
    return synthetic_clips.SyntheticClips(split, **kwargs)
  return PrerenderedClips(path, split, **kwargs)

