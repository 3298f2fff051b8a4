"""Two processes on 127.0.0.1 (2 CPU devices each) train like one process with the same global
batch (the toy system with FSDP and collective checkpoints, and `psrnet:runlocal`);
process-group flags are checked before JAX starts."""
import json
import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import toy_system
import train_harness
from psrjax import cli
from psrjax import config_utils
from psrjax.train import checkpoint as checkpoint_lib
from psrjax.train import context as context_lib
from psrjax.train import data as data_lib
from psrjax.train import distributed
from psrjax.train import loop
from psrjax.train import writers

# The tests of one test process (`--dist loadgroup`): they read the two-process runs made once.
SHARES_RUNS = pytest.mark.xdist_group("multiprocess")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TOY_CONFIG = os.path.join(HERE, "toy_config.py")
STEPS = 4
SETTINGS = f"train.steps={STEPS},sharding.params='fsdp',sharding.min_size=1"
PSRNET_CONFIG = os.path.join(REPO, "configs", "psrnet.py") + ":runlocal,layers=1"
PSRNET_STEPS = 2
PSRNET_OVERRIDES = {  # runlocal, shortened: layer 1 only (with the I3D loss), 2 steps, batch 4
    "train.steps": PSRNET_STEPS, "train.batch_size": 4, "train.log_every": 1,
    "train.checkpoint_every": PSRNET_STEPS, "train.sample_every": 0, "train.data_workers": 0,
    "eval.batch_size": 4, "eval.num_examples": 6}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch_two_processes(workdir, tmp_path, config_spec, overrides=(), *, devices=2,
                          command=None):
  """Runs `psrjax train` (or `command + [--coordinator ...]`) as 2 processes of `devices`
  CPU devices each; returns their logs."""
  port = _free_port()
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu",
             XLA_FLAGS=train_harness.xla_flags(devices))
  procs = []
  for index in range(2):
    log = open(tmp_path / f"process{index}.log", "w")  # pylint: disable=consider-using-with
    # No persistent compilation cache: one process reading a cached program while the other
    # compiles would reach the first collective far apart (gloo's connect timeout).
    cmd = command or [sys.executable, "-m", "psrjax.cli", "train", "--config", config_spec,
                      "--workdir", str(workdir), "--compilation-cache", "off"]
    cmd = [*cmd, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
           "--process-id", str(index), *overrides]
    procs.append((subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), log))
  try:
    codes = [p.wait(timeout=900) for p, _ in procs]
  finally:
    for p, log in procs:
      if p.poll() is None:
        p.kill()
      log.close()
  logs = [(tmp_path / f"process{i}.log").read_text() for i in range(2)]
  assert codes == [0, 0], "\n".join(text[-3000:] for text in logs)
  return logs


_TRAIN_DATASET = data_lib.train_dataset


def _two_shard_batches(system, config, *, local_batch, shard=None):
  """One process's view of what two processes read: shard 0's rows, then shard 1's."""
  del shard
  half = local_batch // 2
  shards = [_TRAIN_DATASET(system, config, local_batch=half, shard=(i, 2))
            for i in range(2)]
  return shards[0].map_with_index(
      lambda i, first: {k: np.concatenate([first[k], shards[1][i][k]]) for k in first})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """(two-process run's workdir, one-process run on 4 devices with the same global batches)."""
  tmp = tmp_path_factory.mktemp("multiprocess")
  _launch_two_processes(tmp / "two", tmp, f"{TOY_CONFIG}:{SETTINGS}",
                        ["--config.train.keep_best=('system/l1', 'min')"])
  config = toy_system.toy_config(**{"train.steps": STEPS, "sharding.params": "fsdp",
                                    "sharding.min_size": 1})
  config.mesh.data = 4
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(data_lib, "train_dataset", _two_shard_batches)
    one = loop.train(config, str(tmp / "one"), devices=jax.devices()[:4])
  return tmp / "two", one, config


@SHARES_RUNS
def test_two_processes_match_one_process(runs):
  two, one, _ = runs
  history = [{k: v for k, v in r.items() if not k.startswith("perf/")}
             for r in writers.read_metrics(two) if "g/total" in r]
  assert [r["step"] for r in history] == list(range(1, STEPS + 1))
  train_harness.assert_same_losses(history, one.history, rtol=1e-5, steps=range(1, STEPS + 1))
  evals = json.loads((two / "eval" / "system" / f"{STEPS}.json").read_text())
  assert evals["num_examples"] == 10
  assert evals["l1"] == pytest.approx(one.eval_results["l1"], rel=1e-5)
  assert (two / "samples" / f"{STEPS}.gif").is_file()


@pytest.fixture(scope="module")
def psrnet_runs(tmp_path_factory):
  """The same comparison for PSR-Net's runlocal config (shortened)."""
  tmp = tmp_path_factory.mktemp("multiprocess_psrnet")
  _launch_two_processes(tmp / "two", tmp, PSRNET_CONFIG,
                        [f"--config.{k}={v}" for k, v in PSRNET_OVERRIDES.items()])
  config = config_utils.load_config(PSRNET_CONFIG, [(k, str(v)) for k, v in PSRNET_OVERRIDES.items()])
  config.mesh.data = 4
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(data_lib, "train_dataset", _two_shard_batches)
    one = loop.train(config, str(tmp / "one"), devices=jax.devices()[:4])
  return tmp / "two", one


@pytest.mark.slow  # the suite's longest test (~3.5 min on 2 cores): two PSR-Net compiles at once
def test_two_processes_train_psrnet_like_one_process(psrnet_runs):
  two, one = psrnet_runs
  history = [{k: v for k, v in r.items() if not k.startswith("perf/")}
             for r in writers.read_metrics(two) if "g/total" in r]
  assert [r["step"] for r in history] == list(range(1, PSRNET_STEPS + 1))
  assert {"g/rec", "g/perc", "g/adv", "d/adv"} <= set(history[0])
  # Same parameters at step 1: only the order of float32 all-reduces differs. After one Adam
  # update (which rescales near-zero gradients, e.g. of zero-initialised output convolutions,
  # to full-size steps) such differences grow to ~1e-4 relative.
  train_harness.assert_same_losses(history, one.history, rtol=2e-5, steps=[1])
  train_harness.assert_same_losses(history, one.history, rtol=2e-3, steps=[2])
  evals = json.loads((two / "eval" / "system" / f"{PSRNET_STEPS}.json").read_text())
  assert evals["num_examples"] == 6
  for name in ("ssim/layer1", "m_ssim/layer1", "psnr/texture"):
    assert evals[name] == pytest.approx(one.eval_results[name], rel=2e-3), name


def _assert_restores_like_one_process(directory, config, one, tmp_path):
  """Step STEPS of the collective checkpoints in `directory`, restored by one process, holds
  the parameters of the one-process run `one`."""
  ctx = context_lib.build_context(config, str(tmp_path), devices=jax.devices()[:4])
  checkpoints = checkpoint_lib.Checkpoints(str(directory), read_only=True)
  try:
    restored = checkpoints.restore(STEPS, ctx.restore_target())
  finally:
    checkpoints.close()
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               jax.device_get(restored["params"]), train_harness.host_params(one))


@SHARES_RUNS
def test_collective_checkpoint_restores_in_one_process(runs, tmp_path):
  two, one, config = runs
  step_dir = two / "checkpoints" / str(STEPS)
  assert sorted(os.listdir(step_dir / "data")) == [
      "commit_success.txt", "process_0-of-2.json", "process_1-of-2.json"]
  _assert_restores_like_one_process(two / "checkpoints", config, one, tmp_path)


@SHARES_RUNS
def test_collective_best_snapshot_restores_in_one_process(runs, tmp_path):
  """train.keep_best on two processes: a collective orbax save, best.json from process 0."""
  two, one, config = runs
  best = json.loads((two / "best" / "best.json").read_text())
  evals = json.loads((two / "eval" / "system" / f"{STEPS}.json").read_text())
  assert best == {"step": STEPS, "metric": "system/l1", "mode": "min", "value": evals["l1"]}
  assert sorted(os.listdir(two / "best")) == sorted(["best.json", str(STEPS)])
  assert sorted(os.listdir(two / "best" / str(STEPS) / "data")) == [
      "commit_success.txt", "process_0-of-2.json", "process_1-of-2.json"]
  _assert_restores_like_one_process(two / "best", config, one, tmp_path)


SMALL_BATCH = f"train.steps={STEPS},train.batch_size=1"


def test_batch_smaller_than_the_devices_trains_like_one_process(tmp_path):
  """Global batch 1 on 2 processes x 4 devices: data axis 1, both processes read the same
  example (one shared data shard), and the run matches one process on 8 devices."""
  logs = _launch_two_processes(tmp_path / "two", tmp_path, f"{TOY_CONFIG}:{SMALL_BATCH}",
                               devices=4)
  assert "'data': 1, 'replica': 8, 'model': 1" in logs[0]
  config = toy_system.toy_config(**{"train.steps": STEPS, "train.batch_size": 1})
  one = loop.train(config, str(tmp_path / "one"))
  history = [{k: v for k, v in r.items() if not k.startswith("perf/")}
             for r in writers.read_metrics(tmp_path / "two") if "g/total" in r]
  train_harness.assert_same_losses(history, one.history, rtol=1e-5, steps=range(1, STEPS + 1))
  evals = json.loads((tmp_path / "two" / "eval" / "system" / f"{STEPS}.json").read_text())
  assert evals["num_examples"] == 10
  assert evals["l1"] == pytest.approx(one.eval_results["l1"], rel=1e-5)


@pytest.mark.slow   # every config's data and context in two processes: over a minute
def test_every_config_builds_on_two_processes_of_four_devices(tmp_path):
  """Each shipped config (and the toy with batches 1, 2 and 6) on 2 processes x 4 devices:
  the data axis divides the batch, processes on distinct data rows read distinct shards,
  processes on the same rows read the same examples, and the global batch holds on every
  device the rows it should."""
  import test_configs_scale  # pylint: disable=import-outside-toplevel
  specs = test_configs_scale.SPECS + [f"{TOY_CONFIG}@train.batch_size={b}" for b in (1, 2, 6)]
  _launch_two_processes(None, tmp_path, None, devices=4, command=[
      sys.executable, os.path.join(HERE, "scale_probe.py"), str(tmp_path), *specs])
  seen = [json.loads((tmp_path / f"process{i}.json").read_text()) for i in range(2)]
  for spec in specs:
    path, _, overrides = spec.partition("@")
    config = config_utils.load_config(path, [tuple(overrides.split("="))] if overrides else [])
    data = test_configs_scale.expected_data_axis(config, 8)
    a, b = seen[0][spec], seen[1][spec]
    assert a["mesh"] == b["mesh"] == {"data": data, "replica": 8 // data, "model": 1}, spec
    assert a["placed"] and b["placed"], spec
    assert a["global_batch"] == config.train.batch_size, spec
    assert a["eval_batch"] == -(-config.eval.batch_size // data) * data, spec
    if data == 1:
      assert a["shard"] == b["shard"] == [0, 1] and a["fingerprint"] == b["fingerprint"], spec
      assert a["local_batch"] == config.train.batch_size, spec
    else:
      assert (a["shard"], b["shard"]) == ([0, 2], [1, 2]), spec
      assert a["local_batch"] == config.train.batch_size // 2, spec
      assert a["fingerprint"] != b["fingerprint"], spec


@pytest.mark.parametrize("flags,env,match", [
    (("--num-processes", "2", "--process-id", "2", "--coordinator", "127.0.0.1:1234"), {},
     "--process-id 2 must be in 0..1 (--num-processes 2)"),
    (("--num-processes", "2"), {},
     "--coordinator, --num-processes and --process-id go together; missing --coordinator, "
     "--process-id"),
    (("--num-processes", "2", "--process-id", "0", "--coordinator", "localhost"), {},
     "--coordinator 'localhost' must be HOST:PORT"),
    (("--num-processes", "2", "--process-id", "0", "--coordinator", "node1:8476"),
     {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "node[1-4]", "SLURM_NTASKS": "4",
      "SLURM_PROCID": "0", "SLURM_LOCALID": "0"},
     "--num-processes 2 disagrees with SLURM_NTASKS=4"),
])
def test_inconsistent_process_flags_are_one_line_errors(tmp_path, capsys, monkeypatch, flags,
                                                        env, match):
  for key, value in env.items():
    monkeypatch.setenv(key, value)
  monkeypatch.setattr(jax.distributed, "initialize",
                      lambda **kw: pytest.fail("initialize called despite bad flags"))
  code = cli.main(["train", "--config", TOY_CONFIG, "--workdir", str(tmp_path / "run"), *flags])
  assert code == 2
  line = capsys.readouterr().err.strip().splitlines()[-1]
  assert line.startswith("psrjax train: error: ") and match in line, line
  assert not (tmp_path / "run").exists()


def test_process_group_from_environment():
  slurm = {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "gpu[01-02]", "SLURM_NTASKS": "8",
           "SLURM_PROCID": "3", "SLURM_LOCALID": "3"}
  assert distributed.resolve(env=slurm, tpu=False) == distributed.ProcessGroup("slurm")
  assert distributed.resolve(env={**slurm, "SLURM_NTASKS": "1"}, tpu=False) is None
  assert distributed.resolve(env={}, tpu=True) == distributed.ProcessGroup("tpu")
  assert distributed.resolve(env={}, tpu=False) is None
  assert distributed.resolve(coordinator="h:1", num_processes=8, process_id=3, env=slurm) == (
      distributed.ProcessGroup("flags", "h:1", 8, 3))


def _from_step(source, dest, step: int):
  """A copy of the workdir `source` whose latest checkpoint is `step`."""
  shutil.copytree(source, dest)
  for name in os.listdir(dest / "checkpoints"):
    if name.isdigit() and int(name) > step:
      shutil.rmtree(dest / "checkpoints" / name)
  return dest


def test_resume_on_fewer_devices_and_processes(tmp_path):
  """Saved by 2 processes x 4 devices, resumed by 1 process on 4 devices: by default one line
  says the data streams cannot continue and how to go on; with resume_data=reshard the
  parameters and optimizer state restore onto the new mesh and the new stream starts at the
  checkpoint's step, a position later checkpoints keep (a stop and resume in the new layout
  equals an uninterrupted run)."""
  _launch_two_processes(tmp_path / "two", tmp_path, f"{TOY_CONFIG}:{SETTINGS}", devices=4)
  config = toy_system.toy_config(**{"train.steps": STEPS, "sharding.params": "fsdp",
                                    "sharding.min_size": 1})
  devices = jax.devices()[:4]
  with pytest.raises(checkpoint_lib.IncompatibleCheckpointError) as error:
    loop.train(config, str(_from_step(tmp_path / "two", tmp_path / "strict", 2)), devices=devices)
  assert ("holds the data streams of 2 processes reading 2 data shards; this run has 1 process "
          "reading 1 data shard: rerun with --config.resume_data=reshard") in str(error.value)
  config.resume_data = "reshard"
  straight = loop.train(config, str(_from_step(tmp_path / "two", tmp_path / "a", 2)),
                        devices=devices)
  assert [r["step"] for r in straight.history] == [3, 4]
  layout = json.loads((tmp_path / "a" / "checkpoints" / "4" / "layout" / "metadata").read_text())
  assert layout == {"processes": 1, "shards": 1, "offset": 2}
  workdir = str(_from_step(tmp_path / "two", tmp_path / "b", 2))
  assert loop.train(config, workdir, devices=devices, stop_after=3).preempted
  config.resume_data = "restore"  # Same layout now: the exact stream position.
  resumed = loop.train(config, workdir, devices=devices)
  train_harness.assert_same_losses(resumed.history, straight.history, rtol=1e-6, steps=[4])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6),
               train_harness.host_params(resumed), train_harness.host_params(straight))
