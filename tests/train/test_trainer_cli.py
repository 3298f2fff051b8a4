"""`psrjax train` / `psrjax eval`: bad input, exit codes, SIGTERM (subprocess)."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import ml_collections
import pytest
from absl import flags

import toy_config
import train_harness
from benchmarks import seeds
from psrjax import cli
from psrjax.train import loop
from psrjax.systems import base
from psrjax.systems import registry

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TOY_CONFIG = os.path.join(HERE, "toy_config.py")


def _train(workdir, *extra, arg="train.steps=2"):
  return cli.main(["train", "--config", f"{TOY_CONFIG}:{arg}", "--workdir", str(workdir),
                   *extra])


def _error_line(capsys) -> str:
  err = capsys.readouterr().err.strip().splitlines()
  return err[-1]


def test_unknown_verb_lists_verbs(capsys):
  assert cli.main(["trian"]) == 2
  line = _error_line(capsys)
  assert "unknown verb 'trian'" in line and "train" in line and "eval" in line


def test_unknown_config_key(tmp_path, capsys):
  workdir = tmp_path / "run"
  assert _train(workdir, "--config.train.stpes=3") == 2
  line = _error_line(capsys)
  assert line.startswith("psrjax train: error: unknown config key 'train.stpes' (known: ")
  assert "train.steps" in line
  assert not workdir.exists()


@pytest.mark.parametrize("extra,match", [
    (("--config.system=nosuch",), "unknown system 'nosuch'"),
    (("--config.toy.source_res=6",), "train batch does not match the config: 'rgb'"),
    (("--config.train.batch_size=6", "--config.mesh.data=4"),
     "train.batch_size=6 must be a positive multiple of the data-parallel size 4 (mesh.data"),
    (("--config.train.steps=many",), "expects int"),
    # A required accelerator that JAX did not load (here: a CPU-only host) stops the run.
    (("--config.train.platform=gpu",), "train.platform='gpu' but JAX runs on cpu (8 x cpu): "
     "the CUDA plugin did not load: install psrjax[cuda12]"),
    (("--config.train.platform=tpu",), "train.platform='tpu' but JAX runs on cpu"),
    (("--config.train.platform=cuda",), "train.platform='cuda' is not a platform; use one of"),
    (("--config.resume_data=keep",), "resume_data='keep' is not an option; use one of"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, extra, match):
  workdir = tmp_path / "run"
  assert _train(workdir, *extra) == 2
  line = _error_line(capsys)
  assert match in line, line
  assert not workdir.exists()


def test_missing_workdir_parents_are_created(tmp_path):
  assert _train(tmp_path / "no" / "such" / "run") == 0
  assert (tmp_path / "no" / "such" / "run" / "checkpoints" / "2").is_dir()


def test_train_then_eval_then_nan(tmp_path, capsys):
  workdir = tmp_path / "run"
  assert _train(workdir, "--config.train.platform=cpu") == 0
  first = capsys.readouterr().out.splitlines()[0]
  assert first == ("training on cpu: 8 x cpu (8 on this process), 1 process, mesh data=8 x "
                   f"replica=1 x model=1, compute float32, jax {jax.__version__}"), first
  saved = json.loads((workdir / "config.json").read_text())
  assert saved["train"]["steps"] == 2
  assert saved["runtime"] == {
      "platform": "cpu", "device_kind": "cpu", "devices": 8, "local_devices": 8, "processes": 1,
      "process_index": 0, "mesh": {"data": 8, "replica": 1, "model": 1},
      "compute_dtype": "float32", "jax": jax.__version__}
  os.remove(workdir / "eval" / "system" / "2.json")
  capsys.readouterr()
  assert cli.main(["eval", "--workdir", str(workdir)]) == 0
  results = json.loads((workdir / "eval" / "system" / "2.json").read_text())
  assert results["step"] == 2 and results["num_examples"] == 10
  printed = json.loads(capsys.readouterr().out)
  assert printed == {"step": 2, **{f"system/{k}": v for k, v in results.items() if k != "step"}}
  # Continue to 4 steps on poisoned data: the NaN guard stops with exit code 1.
  capsys.readouterr()
  assert _train(workdir, "--config.toy.poison=true", arg="train.steps=4") == 1
  assert "non-finite loss" in _error_line(capsys)
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2"]


def test_eval_without_checkpoints(tmp_path, capsys):
  assert cli.main(["eval", "--config", TOY_CONFIG, "--workdir", str(tmp_path)]) == 2
  assert "no checkpoints" in _error_line(capsys)


def test_get_system_resolution():
  config = ml_collections.ConfigDict({"system": "psrjax.nosuch.module"})
  with pytest.raises(ValueError, match="unknown system 'psrjax.nosuch.module'"):
    registry.get_system(config)
  config.system = os.path.join(HERE, "missing_system.py")
  with pytest.raises(ValueError, match="does not exist"):
    registry.get_system(config)


def test_stage_and_phase_validation():
  loss = lambda params, batch, outputs, rng: (0.0, {})
  forward = lambda params, batch, rng: {}
  with pytest.raises(ValueError, match="trains must be a non-empty tuple"):
    base.Phase("g", "g", loss)
  with pytest.raises(ValueError, match="loss must be a function"):
    base.Phase("g", ("g",), None)
  g, d = base.Phase("g", ("g",), loss), base.Phase("d", ("d",), loss)
  with pytest.raises(ValueError, match="phase names must be unique"):
    base.Stage("s", 1, (g, base.Phase("g", ("d",), loss)))
  with pytest.raises(ValueError, match="steps must be >= 0"):
    base.Stage("s", -1, (g,))
  with pytest.raises(ValueError, match="forward_phase 'x' is not one of its phases"):
    base.Stage("s", 1, (d, g), forward=forward, forward_phase="x")
  with pytest.raises(ValueError, match="forward_phase='g' needs a forward"):
    base.Stage("s", 1, (d, g), forward_phase="g")
  with pytest.raises(ValueError, match=r"groups \['g'\] are trained by the forward's phase"):
    base.Stage("s", 1, (base.Phase("d", ("d", "g"), loss), g), forward=forward)
  assert base.Stage("s", 1, (d, g), forward=forward).generator_phase() is g
  assert base.Stage("s", 1, (d, g), forward=forward, forward_phase="d").generator_phase() is d
  assert base.Stage("s", 1, (d, g)).generator_phase() is None


def _wait_for_lines(path, count, proc, timeout):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if proc.poll() is not None:
      raise AssertionError(f"trainer exited early: {proc.communicate()}")
    if os.path.exists(path):
      with open(path) as f:
        if sum(1 for _ in f) >= count:
          return
    time.sleep(0.2)
  raise AssertionError("trainer did not log in time")


def test_sigterm_saves_and_exits_cleanly(tmp_path):
  workdir = tmp_path / "run"
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu",
             XLA_FLAGS=train_harness.xla_flags(2))
  cmd = [sys.executable, "-m", "psrjax.cli", "train", "--config",
         f"{TOY_CONFIG}:train.steps=100000,train.checkpoint_every=100000,train.log_every=5,"
         "train.data_workers=1,train.prefetch=1", "--workdir", str(workdir)]
  proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  try:
    _wait_for_lines(workdir / "metrics.jsonl", 2, proc, timeout=240)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 0, err[-2000:]
  steps = [int(s) for s in os.listdir(workdir / "checkpoints")]
  assert len(steps) == 1 and steps[0] >= 10
  assert f"stopped at step {steps[0]}" in out
  # The saved worker-process iterator state resumes (here in-process, two more steps).
  if not flags.FLAGS.is_parsed():
    flags.FLAGS(["pytest"])
  config = toy_config.get_config("train.steps=100000,train.data_workers=1,train.prefetch=1")
  config.mesh.data = 2
  result = loop.train(config, str(workdir), stop_after=steps[0] + 2)
  assert [r["step"] for r in result.history] == [steps[0] + 1, steps[0] + 2]


def test_eval_population_statistics_of_a_system_without_batch_norm_is_a_one_line_error(
    tmp_path, capsys):
  workdir = tmp_path / "run"
  assert _train(workdir) == 0
  capsys.readouterr()
  assert cli.main(["eval", "--workdir", str(workdir), "--batch-norm", "population"]) != 0
  line = _error_line(capsys)
  assert "no batch norm" in line and "without --batch-norm population" in line
  assert not (workdir / "eval" / "system-population").exists()
  # A results table's --batch-norm population keeps such a run's own scores.
  assert seeds.population_results(str(workdir), {"l1": 0.5}) == {"l1": 0.5}


def test_eval_raw_scores_the_trained_parameters_beside_their_average(tmp_path, capsys):
  """`psrjax eval --raw`: the parameters themselves, written as `system-raw`, not over the
  moving average's `system` results (which differ: the average lags the trained weights)."""
  workdir = tmp_path / "run"
  assert _train(workdir, "--config.train.ema.decay=0.9", "--config.train.ema.groups=('g',)",
                arg="train.steps=4") == 0
  averaged = json.loads((workdir / "eval" / "system" / "4.json").read_text())
  capsys.readouterr()
  assert cli.main(["eval", "--workdir", str(workdir), "--raw", "--evals", "system"]) == 0
  raw = json.loads((workdir / "eval" / "system-raw" / "4.json").read_text())
  printed = json.loads(capsys.readouterr().out)
  assert printed == {"step": 4, **{f"system-raw/{k}": v for k, v in raw.items() if k != "step"}}
  assert json.loads((workdir / "eval" / "system" / "4.json").read_text()) == averaged
  losses = [k for k in raw if k not in ("step", "num_examples")]
  assert losses and any(raw[k] != averaged[k] for k in losses), (raw, averaged)
