"""TFDS builders of prepared real-video datasets (the record format of
`psrjax.data.sources.prepared`).

`VideoFramesBuilder` is the base of every real-video builder: a subclass lists its videos (and
keypoint files) per split in `_list_videos(manual_dir)`; the base processes them with
`psrjax.data.preparation.preprocess.process_all` (cached per video in
DATA_DIR/downloads/psrjax_work/<config>, so an interrupted build resumes; the cache is deleted when
the build succeeds), writes one array_record record per frame in video order, and stores the video
index (videos.json's content) as the dataset's TFDS metadata (metadata.json beside
dataset_info.json), which `psrjax.data.sources.prepared.PreparedVideos` reads. Builder configs set
the crop size: `r256` (default), `r128`, `r64`.

`from_entries` is the builder `psrjax prepare` writes with, over videos it already processed.
"""
from __future__ import annotations

import dataclasses
import os
import shutil

import tensorflow_datasets as tfds

from psrjax.data.preparation import preprocess
from psrjax.data.sources import prepared


@dataclasses.dataclass
class VideoFramesConfig(tfds.core.BuilderConfig):
  resolution: int = 256        # R: frames are R x R person-centred crops
  smooth: float = 0.0          # temporal Gaussian std (frames) of the keypoints


def default_configs() -> list[VideoFramesConfig]:
  return [VideoFramesConfig(name=f"r{r}", description=f"{r}x{r} person-centred crops",
                            resolution=r) for r in (256, 128, 64)]


class DeletesWorkCache:
  """Builder mixin: `download_and_prepare` deletes the work cache the build kept in
  `self._work` (it is only for resuming) once the build has succeeded."""

  def download_and_prepare(self, *args, **kwargs):
    prepared.check_tensorflow()
    self._work = None
    super().download_and_prepare(*args, **kwargs)
    if self._work and os.path.isdir(self._work):
      shutil.rmtree(self._work)


class VideoFramesBuilder(DeletesWorkCache, tfds.core.GeneratorBasedBuilder,
                         skip_registration=True):
  """Per-frame records of real videos; subclasses implement `_list_videos`."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = default_configs()

  def __init__(self, *, file_format=None, **kwargs):
    super().__init__(file_format=file_format or "array_record", **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=prepared.features(self.builder_config.resolution), disable_shuffling=True,
        metadata=tfds.core.MetadataDict())

  def _list_videos(self, manual_dir: str) -> list[tuple[str, str, str, str | None]]:
    """[(split, name, video path, keypoint path or None)] in record order."""
    raise TypeError(f"{type(self).__name__} must define _list_videos")

  def _settings(self) -> preprocess.Settings:
    c = self.builder_config
    return preprocess.Settings(resolution=c.resolution, smooth=c.smooth)

  def _entries(self, dl_manager) -> list[dict]:
    manual_dir = os.fspath(dl_manager.manual_dir)
    listed = self._list_videos(manual_dir)
    if not listed:
      raise ValueError(f"no videos found in {manual_dir}; see the builder's docstring for the layout")
    paths = [p for _, _, p, _ in listed]
    self._work = os.path.join(os.fspath(dl_manager.download_dir), "psrjax_work",
                              self.builder_config.name)
    return preprocess.process_all(paths, {p: s for s, _, p, _ in listed},
                               {p: k for _, _, p, k in listed}, self._settings(), self._work,
                               names={p: n for _, n, p, _ in listed})

  def _split_generators(self, dl_manager):
    entries = self._entries(dl_manager)
    self.info.metadata.update(preprocess.make_index(entries, self._settings()))
    splits = sorted({e["split"] for e in entries})
    return {s: self._generate_examples(entries, s) for s in splits}

  def _generate_examples(self, entries, split):
    """One record per frame of `split`'s videos, in order (`preprocess.records`)."""
    yield from preprocess.records(entries, split)


class _FromEntries(VideoFramesBuilder, skip_registration=True):
  """Videos `psrjax prepare` has processed already."""

  name = prepared.BUILDER_NAME
  BUILDER_CONFIGS = []        # its one config is made per run (`from_entries`)

  def __init__(self, *, entries, settings: preprocess.Settings, **kwargs):
    self._given, self._given_settings = entries, settings
    super().__init__(**kwargs)

  def _settings(self) -> preprocess.Settings:
    return self._given_settings

  def _entries(self, dl_manager) -> list[dict]:
    del dl_manager
    return self._given


def from_entries(entries: list[dict], settings: preprocess.Settings, *, data_dir: str):
  """The builder of `psrjax prepare`'s dataset in `data_dir` (config r<R>)."""
  config = VideoFramesConfig(name=f"r{settings.resolution}", resolution=settings.resolution,
                             smooth=settings.smooth,
                             description=f"{settings.resolution}x{settings.resolution} crops")
  return _FromEntries(entries=entries, settings=settings, config=config, data_dir=data_dir)
