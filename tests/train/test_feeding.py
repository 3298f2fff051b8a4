"""Feeding the devices: compact transfer dtypes, `train.data_workers="auto"`, step profiles,
the persistent compilation cache of the CLI."""
import glob
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toy_system
from psrjax import cli
from psrjax import commands
from psrjax import config_utils
from psrjax.train import context as context_lib
from psrjax.train import data as data_lib
from psrjax.train import state as state_lib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TOY_CONFIG = os.path.join(HERE, "toy_config.py")


def _contract_batch(rng, batch=3, frames=2, res=6):
  """A batch in the batch contract's dtypes: 8-bit frames, a soft-free mask, index maps."""
  video = (batch, frames, res, res)
  u8 = rng.integers(0, 256, video + (3,), dtype=np.uint8)
  return {
      "src_rgb": u8.astype(np.float32) / 127.5 - 1.0,
      "tgt_rgb": rng.uniform(-1, 1, video + (3,)).astype(np.float32),  # not 8-bit
      "tgt_mask": (rng.uniform(size=video + (1,)) > 0.5).astype(np.float32),
      "tgt_face": rng.integers(-1, 13_000, video).astype(np.int32),
      "tgt_part": rng.integers(0, 25, video).astype(np.int32),
      "tgt_depth": rng.uniform(0, 5, video + (1,)).astype(np.float32),
      "tgt_flow_bwd": rng.normal(size=video + (2,)).astype(np.float32),
      "tgt_keypoints": rng.uniform(0, res, (batch, frames, 18, 3)).astype(np.float32),
      "pair": np.arange(batch, dtype=np.int32),
  }


def test_encode_dtypes_and_bytes():
  batch = _contract_batch(np.random.default_rng(0))
  compact = data_lib.encode_batch(batch)
  want = {"src_rgb": np.uint8, "tgt_rgb": np.uint8, "tgt_mask": np.uint8, "tgt_face": np.int16,
          "tgt_part": np.int16, "tgt_depth": np.float32, "tgt_flow_bwd": np.float32,
          "tgt_keypoints": np.float32, "pair": np.int32, data_lib.NONFINITE_KEY: np.bool_}
  assert {k: v.dtype for k, v in compact.items()} == {k: np.dtype(v) for k, v in want.items()}
  # float32 -> uint8 frames and masks (4x fewer bytes), int32 -> int16 maps (2x).
  frames = sum(batch[k].nbytes for k in ("src_rgb", "tgt_rgb", "tgt_mask"))
  maps = batch["tgt_face"].nbytes + batch["tgt_part"].nbytes
  saved = data_lib.batch_bytes(batch) - data_lib.batch_bytes(compact)
  assert saved == frames * 3 // 4 + maps // 2 - 3  # minus the 3-byte non-finite flag


@pytest.mark.parametrize("where", ["host", "device"])
def test_round_trip(where):
  batch = _contract_batch(np.random.default_rng(1))
  compact = data_lib.encode_batch(batch)
  if where == "host":
    back = data_lib.decode_batch(compact, xp=np)
  else:
    back = jax.device_get(jax.jit(data_lib.decode_batch)(compact))
  assert back.keys() == batch.keys()
  for key, value in batch.items():
    assert back[key].dtype == value.dtype, key
  # 8-bit frames and {0, 1} masks come back (up to float rounding of u / 127.5 - 1).
  np.testing.assert_allclose(back["src_rgb"], batch["src_rgb"], rtol=0, atol=1e-6)
  np.testing.assert_array_equal(back["tgt_mask"], batch["tgt_mask"])
  # Any frame in [-1, 1]: within half a quantisation step, 1 / 255.
  assert np.abs(back["tgt_rgb"] - batch["tgt_rgb"]).max() <= 1 / 255 + 1e-6
  for key in ("tgt_face", "tgt_part", "tgt_depth", "tgt_flow_bwd", "tgt_keypoints", "pair"):
    np.testing.assert_array_equal(back[key], batch[key], err_msg=key)


def test_soft_mask_and_clipping():
  rng = np.random.default_rng(2)
  mask = rng.uniform(size=(2, 4, 4, 1)).astype(np.float32)
  rgb = np.full((2, 4, 4, 3), 1.7, np.float32)  # outside the contract's range: clipped
  back = data_lib.decode_batch(data_lib.encode_batch({"mask": mask, "rgb": rgb}), xp=np)
  assert np.abs(back["mask"] - mask).max() <= 0.5 / 255 + 1e-7
  np.testing.assert_array_equal(back["rgb"], np.ones_like(rgb))


def test_non_finite_frames_stay_non_finite():
  batch = _contract_batch(np.random.default_rng(3))
  batch["tgt_mask"][1, 0, 0, 0, 0] = np.inf
  batch["src_rgb"][2, 1, 3, 3, 2] = np.nan
  compact = data_lib.encode_batch(batch)
  np.testing.assert_array_equal(compact[data_lib.NONFINITE_KEY], [False, True, True])
  back = jax.device_get(jax.jit(data_lib.decode_batch)(compact))
  for key in ("src_rgb", "tgt_rgb", "tgt_mask"):
    assert np.isnan(back[key][1:]).all() and np.isfinite(back[key][0]).all(), key


def test_index_map_outside_int16_is_an_error():
  with pytest.raises(ValueError, match="batch key 'face' holds indices outside int16"):
    data_lib.encode_batch({"face": np.array([[40_000]], np.int32)})


def test_jitted_step_receives_the_decoded_host_batch(monkeypatch):
  """The train step decodes the compact batch before `System.prepare`: what prepare sees is
  the host pipeline's float batch (within 1/255 for frames that are not 8-bit)."""
  # A config no other test builds: its system (patched below) and jitted step are this test's
  # own (contexts of equal configs share them: psrjax.train.context).
  config = toy_system.toy_config(**{"train.log_every": 17})
  ctx = context_lib.build_context(config, None)
  seen = {}

  def prepare(batch):
    jax.debug.callback(lambda b: seen.update(jax.tree.map(np.asarray, b)), batch)
    return batch

  monkeypatch.setattr(ctx.system, "prepare", prepare)
  state = state_lib.create_state(ctx.init_fn, ctx.base_key, ctx.global_batch(ctx.first_batch),
                                 ctx.state_shardings, ctx.mesh)
  compact = data_lib.encode_batch(ctx.first_batch)
  assert compact["rgb"].dtype == np.uint8 and compact["src"].dtype == np.float32
  step = ctx.jit_step(ctx.stages[0])
  jax.block_until_ready(step(state, ctx.global_batch(compact), ctx.base_key, ctx.constants))
  assert seen.keys() == ctx.first_batch.keys()
  for key, value in ctx.first_batch.items():
    assert seen[key].dtype == value.dtype, key
  assert np.abs(seen["rgb"] - ctx.first_batch["rgb"]).max() <= 1 / 255 + 1e-6
  np.testing.assert_array_equal(seen["src"], ctx.first_batch["src"])
  np.testing.assert_array_equal(seen["index"], ctx.first_batch["index"])


@pytest.mark.parametrize("value,devices,cores,want", [
    ("auto", 8, 2, 1), ("auto", 1, 64, 16), ("auto", 8, 64, 63), ("auto", 4, 1, 0), (3, 8, 2, 3),
    (0, 1, 1, 0)])
def test_resolve_workers(value, devices, cores, want):
  assert data_lib.resolve_workers(value, local_devices=devices, cores=cores) == want


@pytest.mark.parametrize("text", ["-1", "many", "2.5", "True"])
def test_bad_data_workers_is_one_line(tmp_path, capsys, text):
  workdir = tmp_path / "run"
  code = cli.main(["train", "--config", TOY_CONFIG, "--workdir", str(workdir),
                   f"--config.train.data_workers={text}"])
  assert code == 2
  line = capsys.readouterr().err.strip().splitlines()[-1]
  assert "is not a worker count; use an int >= 0 or 'auto'" in line, line
  assert not workdir.exists()


def test_data_workers_override_accepts_auto_and_ints():
  config = toy_system.toy_config()
  config_utils.apply_override(config, "train.data_workers", "auto")
  assert config.train.data_workers == "auto"
  config_utils.apply_override(config, "train.data_workers", "2")
  assert config.train.data_workers == 2


def test_bench_pipeline_with_a_worker(capsys):
  """The measured pipeline runs the transfer encoding in a grain worker process."""
  code = cli.main(["bench", "--config", TOY_CONFIG, "--steps", "1", "--probe-size", "64",
                   "--pipeline-batches", "2", "--json", "--config.train.data_workers=1"])
  out = capsys.readouterr()
  assert code == 0, out.err
  result = __import__("json").loads(out.out.strip().splitlines()[-1])
  assert result["data_workers"] == 1 and result["pipeline_examples_per_s"] > 0
  assert 0 < result["transfer_bytes_per_example"] < result["contract_bytes_per_example"]


def test_profile_steps_write_a_trace(tmp_path, capsys):
  workdir = tmp_path / "run"
  code = cli.main(["train", "--config", f"{TOY_CONFIG}:train.steps=3", "--workdir", str(workdir),
                   "--config.train.profile_steps=(1, 1)"])
  assert code == 0, capsys.readouterr().err
  traces = glob.glob(str(workdir / "profile" / "plugins" / "profile" / "*" / "*.xplane.pb"))
  assert len(traces) == 1 and os.path.getsize(traces[0]) > 0


@pytest.mark.parametrize("value", ["(3,)", "(-1, 2)", "(0, 0)"])
def test_bad_profile_steps(tmp_path, capsys, value):
  workdir = tmp_path / "run"
  code = cli.main(["train", "--config", TOY_CONFIG, "--workdir", str(workdir),
                   f"--config.train.profile_steps={value}"])
  assert code == 2
  assert "must be () or (start, count)" in capsys.readouterr().err.strip().splitlines()[-1]
  assert not workdir.exists()


@pytest.fixture
def jax_cache_config():
  """Restores the test session's compilation-cache settings afterwards."""
  saved = (jax.config.jax_compilation_cache_dir, jax.config.jax_enable_compilation_cache)
  yield
  jax.config.update("jax_compilation_cache_dir", saved[0])
  jax.config.update("jax_enable_compilation_cache", saved[1])


def test_cache_resolution(jax_cache_config, monkeypatch, tmp_path):
  monkeypatch.delenv(commands.CACHE_ENV, raising=False)
  jax.config.update("jax_compilation_cache_dir", None)
  host = commands.cache_namespace()
  default = os.path.join(os.path.expanduser("~"), ".cache", "psrjax", "jax", host)
  assert commands.configure_compilation_cache() == default
  assert jax.config.jax_compilation_cache_dir == default
  assert jax.config.jax_enable_compilation_cache
  assert commands.configure_compilation_cache() == default     # JAX's directory: not nested
  monkeypatch.setenv(commands.CACHE_ENV, str(tmp_path / "env"))
  assert commands.configure_compilation_cache() == str(tmp_path / "env" / host)
  flag = str(tmp_path / "flag" / host)
  assert commands.configure_compilation_cache(str(tmp_path / "flag")) == flag
  monkeypatch.setenv(commands.CACHE_ENV, "off")
  assert commands.configure_compilation_cache() is None
  assert not jax.config.jax_enable_compilation_cache


@pytest.mark.parametrize("verb", ["train", "bench"])
def test_cli_configures_the_cache(jax_cache_config, tmp_path, capsys, verb):
  extra = (["--workdir", str(tmp_path / "run")] if verb == "train"
           else ["--steps", "1", "--probe-size", "64", "--pipeline-batches", "1"])
  config = f"{TOY_CONFIG}:train.steps=1"
  # The session's cache (its programs are compiled once per session, not once per test).
  base = os.path.dirname(jax.config.jax_compilation_cache_dir)
  assert cli.main([verb, "--config", config, *extra, "--compilation-cache", base]) == 0, \
      capsys.readouterr().err
  assert jax.config.jax_compilation_cache_dir == os.path.join(base, commands.cache_namespace())
  assert jax.config.jax_enable_compilation_cache
  extra = ["--workdir", str(tmp_path / "run2")] if verb == "train" else extra
  assert cli.main([verb, "--config", config, *extra, "--compilation-cache", "off"]) == 0
  assert not jax.config.jax_enable_compilation_cache


def test_bench_fills_the_cache_directory(tmp_path):
  """A fresh `psrjax bench` process writes its compiled programs into the cache directory."""
  env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu",
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", commands.CACHE_ENV: str(tmp_path)}
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  result = subprocess.run(
      [sys.executable, "-m", "psrjax.cli", "bench", "--config", TOY_CONFIG, "--steps", "1",
       "--probe-size", "64", "--pipeline-batches", "1"],
      env=env, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert os.listdir(tmp_path) == [commands.cache_namespace()]
  assert os.listdir(tmp_path / commands.cache_namespace()), "no compiled program was cached"


@pytest.mark.parametrize("key,formula", [
    ("rgb", lambda x: (x + np.float32(1)) * np.float32(127.5)),
    ("mask", lambda x: x * np.float32(255)),
])
def test_encoding_is_the_documented_rounding_and_leaves_the_batch(key, formula):
  """uint8 = round(clip(formula(x), 0, 255)) in float32, halfway cases included; the host batch
  is left as it was."""
  rng = np.random.default_rng(5)
  halves = (np.arange(256, dtype=np.float32) + 0.5)
  x = np.concatenate([rng.uniform(-1.5, 1.5, 4096).astype(np.float32),
                      halves / 127.5 - 1 if key == "rgb" else halves / 255]).reshape(2, -1)
  before = x.copy()
  got = data_lib.encode_batch({key: x})[key]
  np.testing.assert_array_equal(got, np.rint(np.clip(formula(x), 0, 255)).astype(np.uint8))
  np.testing.assert_array_equal(x, before)


def test_examples_encode_as_their_stacked_batch():
  """`encode_examples` (the train iterator's batching) gives `encode_batch` of the stacked
  examples: the same keys, dtypes, values and non-finite flags."""
  batch = _contract_batch(np.random.default_rng(6), batch=4)
  batch["tgt_rgb"][2, 0, 1, 1, 0] = np.nan
  batch["tgt_mask"][3, 1, 0, 0, 0] = -np.inf
  examples = [{k: v[i] for k, v in batch.items()} for i in range(4)]
  examples[1]["tgt_depth"] = examples[1]["tgt_depth"].astype(np.float64)   # promoted by stack
  want = data_lib.encode_batch({k: np.stack([e[k] for e in examples]) for k in batch})
  got = data_lib.encode_examples(examples)
  assert list(got) == list(want)
  for key in want:
    assert got[key].dtype == want[key].dtype, key
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)
  np.testing.assert_array_equal(got[data_lib.NONFINITE_KEY], [False, False, True, True])
  examples[3]["src_rgb"] = examples[3]["src_rgb"][:1]   # rows of other shapes do not stack
  with pytest.raises(ValueError, match="same shape"):
    data_lib.encode_examples(examples)


def test_train_batches_and_their_iterator_from_an_offset():
  import grain
  import ml_collections
  batch = _contract_batch(np.random.default_rng(7), batch=6)
  examples = grain.MapDataset.source([{k: v[i] for k, v in batch.items()} for i in range(6)])
  batched = data_lib.TrainBatches(examples, 2)
  config = ml_collections.ConfigDict({"train": {"prefetch": 0, "data_workers": 0}})
  assert len(batched) == 3
  np.testing.assert_array_equal(batched[1]["src_rgb"], batch["src_rgb"][2:4])
  for offset in (0, 1):
    iterator = data_lib.train_iterator(batched, config, offset)
    for i in range(offset, 3):
      got, want = next(iterator), data_lib.encode_batch(batched[i])
      for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
