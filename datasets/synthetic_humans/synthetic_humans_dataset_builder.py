"""TFDS builder `synthetic_humans`: pre-rendered clips of psrjax's synthetic multi-view world.

Build and read (array_record, random access):

    tfds build datasets/synthetic_humans --data_dir ~/tensorflow_datasets [--config small]
    tfds.data_source("synthetic_humans", data_dir="~/tensorflow_datasets")

Every example is `psrjax.data.synthetic.render_clip(seed, ...)` for the split's i-th seed (held-out
identities in validation and test, see `psrjax.data.synthetic.source`) plus the `seed`, stored in
seed order (record i of a split is its i-th clip, so a reader maps a clip to its record without an
index). Small features are `Tensor`s, views first; the image modalities are stored as
`psrjax.data.sources.prerendered.STORAGE` says (rgb and the empty room as raw bytes, which the
ArrayRecord's own zstd compresses; the rest one chunk per view and frame holding the deflated
box around the person, so a reader inflates only the frames it uses; face ids int16, parts
uint8, both exact); `prerendered.decode_clip` gives a record back in render_clip's form.
Configs fix resolution, frames, views, rooms, travel and split sizes (also written to the dataset's
metadata, which `psrjax.data.sources.prerendered` checks against a system's config); `small` (the
default) is 64x64, 8 frames, 3 views. `psrnet`, `mfci` and `fomm` hold the clips of those paper
configs (`data.prerendered="auto"` reads them on an accelerator).
"""
import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from psrjax.data.sources import prerendered
from psrjax.data.synthetic import source


@dataclasses.dataclass
class SyntheticHumansConfig(tfds.core.BuilderConfig):
  resolution: int = 64   # image height and width in pixels
  num_frames: int = 8    # frames per clip
  num_views: int = 3     # cameras per clip
  num_train: int = 200   # clips per split
  num_validation: int = 25
  num_test: int = 25
  rooms: int = 0         # render_clip's fixed room + camera setups (0: every clip its own)
  travel: float = 0.0    # render_clip's drift of the people across the room (m/s; 0: none)


def settings(config: SyntheticHumansConfig) -> dict:
  """What a reader checks against a system's config: render_clip's arguments."""
  return {"resolution": config.resolution, "num_frames": config.num_frames,
          "num_views": config.num_views, "rooms": config.rooms, "travel": config.travel}


def _stored_feature(key: str, config: SyntheticHumansConfig):
  """The feature of an image modality (`prerendered.STORAGE`): the raw bytes of the whole array,
  or its crop chunks, one per view and frame."""
  if prerendered.STORAGE[key][1] == "raw":
    return tfds.features.Tensor(shape=(), dtype=np.object_)
  views, frames = prerendered.stored_shape(key, settings(config))[:2]
  return tfds.features.Tensor(shape=(views * frames,), dtype=np.object_)


class Builder(tfds.core.GeneratorBasedBuilder):
  """Multi-view clips of procedural people with exact depth, parts, faces, uv, keypoints, flow."""

  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release.",
                   "1.1.0": "background_depth: the empty room's camera z per view.",
                   "1.2.0": "Records in seed order; rooms; the settings in the metadata; "
                            "the paper configs psrnet, mfci, fomm.",
                   "2.0.0": "Storage a reader decodes per view and frame: rgb and the empty room "
                            "raw, the other images one crop chunk per view and frame, face int16, "
                            "part uint8 (format 2; older builds must be rebuilt)."}
  BUILDER_CONFIGS = [
      SyntheticHumansConfig(name="small", description="64x64, 8 frames, 3 views, 200/25/25 clips."),
      SyntheticHumansConfig(name="medium", description="128x128, 16 frames, 3 views, 2000/200/200 clips.",
                            resolution=128, num_frames=16, num_train=2000, num_validation=200,
                            num_test=200),
      SyntheticHumansConfig(name="tiny", description="16x16, 2 frames, 2 views, 4/2/2 clips (tests).",
                            resolution=16, num_frames=2, num_views=2, num_train=4, num_validation=2,
                            num_test=2),
      # The synthetic settings of configs/psrnet.py, mfci.py and fomm.py (their train_clips;
      # validation and test sized for their evaluations).
      SyntheticHumansConfig(name="psrnet", description="PSR-Net paper: 112x112, 16 frames, 3 "
                            "views, 17 rooms, 100000/1000/1000 clips.", resolution=112,
                            num_frames=16, num_views=3, rooms=17, num_train=100_000,
                            num_validation=1000, num_test=1000),
      SyntheticHumansConfig(name="mfci", description="MFCI paper: 128x128, 16 frames, 1 view, "
                            "100000/1000/1000 clips.", resolution=128, num_frames=16, num_views=1,
                            num_train=100_000, num_validation=1000, num_test=1000),
      SyntheticHumansConfig(name="fomm", description="FOMM paper: 256x256, 16 frames, 1 view, "
                            "people drifting at up to 0.5 m/s, 100000/1000/1000 clips.",
                            resolution=256, num_frames=16, num_views=1, travel=0.5,
                            num_train=100_000, num_validation=1000, num_test=1000),
  ]
  DEFAULT_CONFIG_NAME = "small"

  def __init__(self, *, file_format=None, **kwargs):
    super().__init__(file_format=file_format or "array_record", **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    v, t = c.num_views, c.num_frames
    T = tfds.features.Tensor
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            **{key: _stored_feature(key, c) for key in prerendered.STORAGE},
            "keypoints": T(shape=(v, t, 18, 3), dtype=np.float32),
            "K": T(shape=(v, 3, 3), dtype=np.float32),
            "R": T(shape=(v, 3, 3), dtype=np.float32),
            "t": T(shape=(v, 3), dtype=np.float32),
            "action": T(shape=(), dtype=np.int32),
            "identity": T(shape=(), dtype=np.int32),
            "seed": T(shape=(), dtype=np.int64),
        }),
        homepage="https://github.com/psrjax/psrjax",
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict({**settings(c), "format": prerendered.FORMAT}),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # everything is rendered locally
    c = self.builder_config
    sizes = {"train": c.num_train, "validation": c.num_validation, "test": c.num_test}
    return {split: self._generate_examples(split, n) for split, n in sizes.items()}

  def _generate_examples(self, split: str, num_clips: int):
    c = self.builder_config
    src = source.SyntheticSource(split, num_views=c.num_views, num_frames=c.num_frames,
                                 resolution=c.resolution, num_clips=num_clips, rooms=c.rooms,
                                 travel=c.travel)
    for i in range(num_clips):
      example = prerendered.encode_clip(src[i])
      example["seed"] = np.int64(source.split_seed(split, i))
      yield i, example
