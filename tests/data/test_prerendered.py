"""Systems read the synthetic world pre-rendered (`psrjax.data.sources.prerendered`) with the same
examples as rendering; mismatched datasets and `data.prerendered="auto"` resolve as documented."""
import importlib
import os
import sys

import numpy as np
import pytest

from psrjax.data.sources import prerendered, synthetic_clips
from psrjax.systems import registry

_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(_TESTS, "train"))
import train_harness  # noqa: E402

_ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
# Tiny settings of two samplers: PSR-Net's view pairs and MFCI's same-video frames.
PSRNET = dict(resolution=32, num_frames=4, num_views=3, rooms=17)
MFCI = dict(resolution=16, num_frames=9, num_views=1, rooms=0)
CLIPS = dict(num_train=4, num_validation=4, num_test=1)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """A TFDS data dir with the two tiny settings built (seconds)."""
  sys.path.insert(0, os.path.abspath(os.path.join(_ROOT, "datasets", "synthetic_humans")))
  try:
    build = importlib.import_module("build")
  finally:
    sys.path.pop(0)
  path = str(tmp_path_factory.mktemp("tfds"))
  for settings in (PSRNET, MFCI):
    build.build(build.custom_config(**settings, **CLIPS), path)
  return path


def _config(name: str, prerendered_value: str):
  return train_harness.config_with(os.path.join(_ROOT, "configs", f"{name}.py:tiny"),
                                   **{"data.train_clips": 4, "data.prerendered": prerendered_value})


def _examples(name: str, value: str, split: str, count: int) -> list[dict]:
  system = registry.get_system(_config(name, value))
  ds = system.dataset(split, seed=3, shard_index=1, shard_count=2)
  return [ds[i] for i in range(min(count, len(ds)))]


@pytest.mark.parametrize("name", ["psrnet", "mfci"])
@pytest.mark.parametrize("split", ["train", "validation"])
def test_prerendered_examples_equal_rendered(data_dir, name, split):
  rendered = _examples(name, "", split, 2)
  read = _examples(name, data_dir, split, 2)
  assert len(read) == len(rendered) > 0
  for got, want in zip(read, rendered):
    assert sorted(got) == sorted(want)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_source_reads_the_dataset(data_dir):
  config = _config("psrnet", data_dir)
  src = prerendered.clips(config.data, "train", 4)
  assert isinstance(src, prerendered.PrerenderedClips)
  assert src.path.startswith(data_dir)


def test_mismatch_names_the_build_command(data_dir):
  config = _config("psrnet", data_dir)
  config.data.resolution = 48
  with pytest.raises(ValueError, match=r"resolution=48.*build\.py --config custom "
                                       r"--resolution 48 --num_frames 4 --num_views 3 --rooms 17"):
    prerendered.clips(config.data, "train", 4)


def test_too_few_clips_is_an_error(data_dir):
  path = prerendered.find(data_dir, PSRNET, 4)
  with pytest.raises(ValueError, match=r"holds 4 train clips .* reads 9 .* --num_train 9"):
    prerendered.PrerenderedClips(path, "train", num_views=3, num_frames=4, resolution=32,
                                 num_clips=9, rooms=17)


def test_paper_settings_name_their_builder_config():
  assert prerendered.build_command(
      dict(resolution=112, num_frames=16, num_views=3, rooms=17), {"train": 100_000}, "D") == (
          "python datasets/synthetic_humans/build.py --config psrnet --data_dir D")


def test_auto_renders_on_cpu(data_dir, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", data_dir)
  monkeypatch.setattr(prerendered, "_platform", lambda: "cpu")
  src = prerendered.clips(_config("psrnet", "auto").data, "train", 4)
  assert type(src) is synthetic_clips.SyntheticClips


def test_auto_reads_the_built_dataset_on_an_accelerator(data_dir, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", data_dir)
  monkeypatch.setattr(prerendered, "_platform", lambda: "gpu")
  for name, settings in (("psrnet", PSRNET), ("mfci", MFCI)):
    src = prerendered.clips(_config(name, "auto").data, "train", 4)
    assert isinstance(src, prerendered.PrerenderedClips)
    assert src.path == prerendered.find(data_dir, settings, 4)


def test_auto_without_a_build_stops_with_the_command(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
  monkeypatch.setattr(prerendered, "_platform", lambda: "tpu")
  with pytest.raises(ValueError, match=r"found no built synthetic_humans.*`python datasets/"
                                       r"synthetic_humans/build.py --config custom"):
    prerendered.clips(_config("psrnet", "auto").data, "train", 4)


def test_paper_configs_default_to_auto_and_small_variants_render():
  for name in ("psrnet", "mfci", "fomm"):
    path = os.path.join(_ROOT, "configs", f"{name}.py")
    assert train_harness.config_with(path).data.prerendered == "auto"
    for variant in ("runlocal", "tiny"):
      assert train_harness.config_with(f"{path}:{variant}").data.prerendered == ""


def test_clip_is_render_clip(data_dir):
  """Every modality of a read clip, values and dtypes, is render_clip's."""
  from psrjax.data import synthetic
  path = prerendered.find(data_dir, PSRNET, 4)
  src = prerendered.PrerenderedClips(path, "validation", num_views=3, num_frames=4,
                                     resolution=32, num_clips=4, rooms=17)
  seed = synthetic.split_seed("validation", 3)
  clip, ref = src._clip(seed), synthetic.render_clip(seed, **PSRNET)
  assert sorted(clip) == sorted(ref)
  for key in ref:
    np.testing.assert_array_equal(clip[key], ref[key], err_msg=key)
    assert clip[key].dtype == np.asarray(ref[key]).dtype, key


def test_a_path_may_be_the_data_config_or_version_dir(data_dir):
  version = prerendered.find(data_dir, PSRNET, 4)
  for path in (data_dir, os.path.dirname(version), version):
    assert prerendered.resolve(_config("psrnet", path).data) == version


def test_source_pickles_without_its_reader(data_dir):
  """grain workers get a copy that opens its own reader and reads the same clip."""
  import pickle
  path = prerendered.find(data_dir, MFCI, 4)
  src = prerendered.PrerenderedClips(path, "train", num_views=1, num_frames=9, resolution=16,
                                     num_clips=4, rooms=0)
  video = src.take(2)[0]
  want = src.frames(video, [0, 5], ("rgb", "flow_bwd"))
  copy = pickle.loads(pickle.dumps(src))
  assert copy._reader is None and copy._cached == (None, None)
  got = copy.frames(video, [0, 5], ("rgb", "flow_bwd"))
  for key in want:
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_frames_of_every_modality_equal_rendered_ones(data_dir):
  """Any frames (repeats, any order) of every modality: values, dtypes and shapes of rendering."""
  path = prerendered.find(data_dir, PSRNET, 4)
  kwargs = dict(num_views=3, num_frames=4, resolution=32, num_clips=4, rooms=17)
  read = prerendered.PrerenderedClips(path, "train", **kwargs)
  rendered = synthetic_clips.SyntheticClips("train", **kwargs)
  for index, view, frames in ((1, 0, [3, 0, 0]), (2, 2, [1]), (2, 1, [0, 1, 2, 3])):
    got = read.frames(read.take(index)[view], frames, synthetic_clips.MODALITIES)
    want = rendered.frames(rendered.take(index)[view], frames, synthetic_clips.MODALITIES)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key], err_msg=key)
      assert (got[key].dtype, got[key].shape) == (want[key].dtype, want[key].shape), key
      assert got[key].flags.writeable, key


@pytest.mark.parametrize("frame", [
    np.pad(np.arange(12, dtype=np.float32).reshape(3, 2, 2), ((2, 3), (4, 1), (0, 0))),
    np.full((5, 4), -1, np.int16),                                   # nothing but the fill
    np.where(np.eye(6, dtype=bool), 7, -1).astype(np.int16),         # the box is the frame
    np.array([[np.nan, 0.0], [0.0, 0.0]], np.float32),             # a NaN first pixel
    np.array([[0, 0, 0], [0, 0, 9]], np.uint8)[..., None],
])
def test_crop_chunks_round_trip(frame):
  chunk = prerendered.encode_crop(frame)
  for dtype in (frame.dtype, np.float64):
    out = np.empty(frame.shape, dtype)
    prerendered.decode_crop(chunk, frame.dtype, out)
    np.testing.assert_array_equal(out, frame.astype(dtype))


def test_a_crop_inflates_only_the_box():
  import zlib
  frame = np.zeros((64, 64, 2), np.float32)
  frame[10:14, 20:23] = np.random.default_rng(0).normal(size=(4, 3, 2))
  chunk = prerendered.encode_crop(frame)
  header = prerendered._HEADER.size + frame.itemsize   # the box, the fill value
  assert prerendered._HEADER.unpack_from(chunk) == (10, 14, 20, 23)
  assert zlib.decompress(chunk[header:], -15) == frame[10:14, 20:23].tobytes()


def test_storage_refuses_values_it_would_change():
  from psrjax.data import synthetic
  clip = synthetic.render_clip(5, resolution=16, num_frames=2, num_views=1)
  clip["face"][0, 0, 0, 0] = 40_000
  with pytest.raises(ValueError, match="face holds values that int16 storage would change"):
    prerendered.encode_clip(clip)


def _as_old_format(version_dir: str, where: str) -> str:
  """A copy of a built dataset whose metadata is a 1.2.0 build's (no storage format)."""
  import json
  import shutil
  old = os.path.join(where, prerendered.BUILDER, os.path.basename(os.path.dirname(version_dir)),
                     "1.2.0")
  shutil.copytree(version_dir, old)
  meta = os.path.join(old, "metadata.json")
  with open(meta) as f:
    settings = {k: v for k, v in json.load(f).items() if k != "format"}
  with open(meta, "w") as f:
    json.dump(settings, f)
  return old


def test_an_old_format_dataset_is_a_one_line_rebuild_error(data_dir, tmp_path):
  old = _as_old_format(prerendered.find(data_dir, MFCI, 4), str(tmp_path))
  rebuild = (r"older storage format .* rebuild it with `python datasets/synthetic_humans/"
             r"build.py --config custom --resolution 16 --num_frames 9 --num_views 1 --rooms 0 "
             rf"--num_train 4 --data_dir {tmp_path}`$")
  with pytest.raises(ValueError, match=rebuild):
    prerendered.PrerenderedClips(old, "train", num_views=1, num_frames=9, resolution=16,
                                 num_clips=4, rooms=0)
  with pytest.raises(ValueError, match=rebuild):   # a data dir holding only that build
    prerendered.clips(_config("mfci", str(tmp_path)).data, "train", 4)


def test_a_current_build_beside_an_old_one_is_read(data_dir, tmp_path):
  import shutil
  current = prerendered.find(data_dir, MFCI, 4)
  old = _as_old_format(current, str(tmp_path))
  beside = os.path.join(os.path.dirname(old), os.path.basename(current))
  shutil.copytree(current, beside)
  assert prerendered.find(str(tmp_path), MFCI, 4) == beside


def test_a_travelling_world_is_read_as_rendered_and_its_drift_is_checked(data_dir, tmp_path):
  """A dataset built with `travel` holds the drifting clips; a config without it is told to build
  its own (the settings' `travel` named)."""
  build = importlib.import_module("build")   # on sys.path since the data_dir fixture
  settings = dict(resolution=16, num_frames=3, num_views=1, rooms=0, travel=0.5)
  path = build.build(build.custom_config(**settings, num_train=2, num_validation=1, num_test=1),
                     str(tmp_path))
  assert "_travel0.5_" in path and prerendered.find(str(tmp_path), settings, 2) == path
  kwargs = dict(num_views=1, num_frames=3, resolution=16, num_clips=2)
  read = prerendered.PrerenderedClips(path, "train", travel=0.5, **kwargs)
  rendered = synthetic_clips.SyntheticClips("train", travel=0.5, **kwargs)
  video, same = read.take(1)[0], rendered.take(1)[0]
  np.testing.assert_array_equal(read.keypoints(video), rendered.keypoints(same))
  np.testing.assert_array_equal(read.frames(video, [0, 2], ("rgb",))["rgb"],
                                rendered.frames(same, [0, 2], ("rgb",))["rgb"])
  with pytest.raises(ValueError, match=r"travel=0\.5 but the config reads .*travel=0\.0; build "
                                       r"a matching one with `.*--rooms 0 --num_train 2"):
    prerendered.PrerenderedClips(path, "train", **kwargs)
