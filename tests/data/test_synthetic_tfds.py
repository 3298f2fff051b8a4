"""The synthetic_humans TFDS builder writes array_record files that tfds.data_source reads."""
import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

import psrjax.data.synthetic as S
from psrjax.data.sources import prerendered

_DATASETS = os.path.join(os.path.dirname(__file__), "..", "..", "datasets")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  sys.path.insert(0, os.path.abspath(_DATASETS))
  try:
    module = importlib.import_module("synthetic_humans.synthetic_humans_dataset_builder")
  finally:
    sys.path.pop(0)
  path = tmp_path_factory.mktemp("tfds")
  builder = module.Builder(config="tiny", data_dir=str(path))
  builder.download_and_prepare()
  return str(path)


def test_data_source_reads_the_rendered_clips(data_dir):
  import tensorflow_datasets as tfds
  (version,) = os.listdir(os.path.join(data_dir, "synthetic_humans", "tiny"))
  files = os.listdir(os.path.join(data_dir, "synthetic_humans", "tiny", version))
  assert any(".array_record" in f for f in files)
  ds = tfds.data_source("synthetic_humans/tiny", data_dir=data_dir)
  assert {k: len(v) for k, v in ds.items()} == {"train": 4, "validation": 2, "test": 2}
  ex = ds["validation"][1]
  assert S.seed_split(int(ex["seed"])) == "validation"
  ref = S.render_clip(int(ex["seed"]), num_views=2, num_frames=2, resolution=16)
  clip = prerendered.decode_clip(ex, dict(resolution=16, num_frames=2, num_views=2))
  assert sorted(clip) == sorted([*ref, "seed"])
  for key in ref:
    np.testing.assert_array_equal(clip[key], ref[key], err_msg=key)
    assert clip[key].dtype == np.asarray(ref[key]).dtype, key


def test_data_source_without_the_builder_code(data_dir):
  """After a build, reading needs only the files (as `tfds.data_source` does for users)."""
  code = ("import tensorflow_datasets as tfds; "
          f"ds = tfds.data_source('synthetic_humans/tiny', data_dir={data_dir!r}); "
          "ex = ds['train'][3]; print(type(ex['rgb']).__name__, ex['face'].shape, len(ds['test']))")
  res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       cwd=data_dir, env={**os.environ, "PYTHONPATH": ""})
  # rgb raw, face one crop chunk per (view, frame) (`prerendered.STORAGE`)
  assert res.stdout.strip().splitlines()[-1] == "bytes (4,) 2"
