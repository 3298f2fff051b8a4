"""TFDS builders of multi-view datasets (the records of `psrjax.data.sources.multiview`).

`MultiViewBuilder` is the base of every multi-view builder: a subclass lists its recordings in
`_recordings(manual_dir)` as (`multiview_process.Recording`, splits) pairs (splits as
`multiview_process.takes_of` takes them: "tail", "train", "test" or one split per camera); the base
processes each recording (`multiview_process.process_recording`: body fit, crops, frames, rendered
maps, masks; cached per camera in DATA_DIR/downloads/psrjax_work/<config>, so an interrupted build
resumes; the cache is deleted when the build succeeds), writes one array_record record per camera
and frame in video order and stores the index (multiview.json's content) as the dataset's TFDS
metadata, which `psrjax.data.sources.multiview.MultiViewVideos` reads. Builder configs set the crop
size: `r256` (default), `r128`, `r64`.

`from_entries` is the builder `psrjax prepare multiview` writes with, over recordings it has
already processed.
"""
from __future__ import annotations

import dataclasses
import os

import tensorflow_datasets as tfds

from psrjax.data.builders import video_builder
from psrjax.data.preparation import multiview_process
from psrjax.data.sources import multiview


@dataclasses.dataclass
class MultiViewConfig(tfds.core.BuilderConfig):
  resolution: int = 256        # R: every camera's crop is R x R
  fit_steps: int = 600         # Adam steps of the body fit


def default_configs() -> list[MultiViewConfig]:
  return [MultiViewConfig(name=f"r{r}", description=f"{r}x{r} person-centred crops per camera",
                          resolution=r) for r in (256, 128, 64)]


class MultiViewBuilder(video_builder.DeletesWorkCache, tfds.core.GeneratorBasedBuilder,
                       skip_registration=True):
  """Per-camera, per-frame records of calibrated recordings; subclasses define `_recordings`
  (and may set `ESTIMATED`, how each modality is had)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = default_configs()
  ESTIMATED: dict = {}

  def __init__(self, *, file_format=None, **kwargs):
    super().__init__(file_format=file_format or "array_record", **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=multiview.features(self.builder_config.resolution), disable_shuffling=True,
        metadata=tfds.core.MetadataDict())

  def _recordings(self, manual_dir: str):
    """[(Recording, splits)] in take order."""
    raise TypeError(f"{type(self).__name__} must define _recordings")

  def _settings(self) -> multiview_process.Settings:
    c = self.builder_config
    return multiview_process.Settings(resolution=c.resolution, fit_steps=c.fit_steps)

  def _index(self, dl_manager) -> tuple[dict, list[dict]]:
    manual_dir = os.fspath(dl_manager.manual_dir)
    self._work = os.path.join(os.fspath(dl_manager.download_dir), "psrjax_work",
                              self.builder_config.name)
    listed = self._recordings(manual_dir)
    if not listed:
      raise ValueError(f"no recordings found in {manual_dir}; see the builder's docstring")
    settings, recordings, takes = self._settings(), [], []
    for i, (rec, splits) in enumerate(listed):
      caches, entry = multiview_process.process_recording(rec, settings, self._work, index=i)
      recordings.append(entry)
      takes += multiview_process.takes_of(i, entry, caches, splits, settings)
    return multiview_process.make_index(recordings, takes, settings, dict(self.ESTIMATED))

  def _split_generators(self, dl_manager):
    index, entries = self._index(dl_manager)
    self.info.metadata.update(index)
    return {s: self._generate_examples(entries, s) for s in sorted(index["splits"])}

  def _generate_examples(self, entries, split):
    yield from multiview_process.records(entries, split)


class _FromEntries(MultiViewBuilder, skip_registration=True):
  """Recordings `psrjax prepare multiview` has processed already."""

  name = multiview.BUILDER_NAME
  BUILDER_CONFIGS = []        # its one config is made per run (`from_entries`)

  def __init__(self, *, index, entries, **kwargs):
    self._given = (index, entries)
    super().__init__(**kwargs)

  def _index(self, dl_manager):
    del dl_manager
    return self._given


def from_entries(index: dict, entries: list[dict], *, data_dir: str):
  """The builder of `psrjax prepare multiview`'s dataset in `data_dir` (config r<R>)."""
  r = int(index["resolution"])
  config = MultiViewConfig(name=f"r{r}", resolution=r, description=f"{r}x{r} crops per camera")
  return _FromEntries(index=index, entries=entries, config=config, data_dir=data_dir)
