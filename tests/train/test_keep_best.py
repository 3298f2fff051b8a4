"""`train.keep_best`: the best-validation snapshot in <workdir>/best/, resume, errors, --best."""
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

import toy_system
from psrjax import cli
from psrjax.evals import common as evals_common
from psrjax.train import best as best_lib
from psrjax.train import checkpoint as checkpoint_lib
from psrjax.train import context as context_lib
from psrjax.train import loop

HERE = os.path.dirname(os.path.abspath(__file__))
TOY_CONFIG = os.path.join(HERE, "toy_config.py")
STEPS = 6
# lr 0.2: the validation l1 falls, then rises at the last step, so the best is not the end.
SETTINGS = {"train.steps": STEPS, "toy.lr": 0.2, "train.eval_every": 1,
            "train.checkpoint_every": 1, "train.max_to_keep": STEPS, "train.log_every": 3}
MIN_L1 = ("system/l1", "min")
# The commands that configure JAX's compilation cache keep the test session's.
_SAME_CACHE = ("--compilation-cache", jax.config.jax_compilation_cache_dir or "off")


def _config(keep_best=MIN_L1, **overrides):
  return toy_system.toy_config(**{**SETTINGS, "train.keep_best": keep_best, **overrides})


def _recorded(workdir, metric="l1", name="system"):
  """{step: value} of every eval/<name>/<step>.json of the run."""
  directory = os.path.join(workdir, evals_common.EVAL_DIR, name)
  steps = sorted(int(f[:-5]) for f in os.listdir(directory) if f.endswith(".json"))
  return {s: evals_common.read_results(str(workdir), name, s)[metric] for s in steps}


def _best_json(workdir):
  with open(os.path.join(workdir, best_lib.BEST_DIR, best_lib.BEST_JSON), encoding="utf-8") as f:
    return json.load(f)


def _restore(directory, step, config, workdir):
  ctx = context_lib.build_context(config, str(workdir))
  checkpoints = checkpoint_lib.Checkpoints(str(directory), read_only=True)
  try:
    state = checkpoints.restore(step, ctx.restore_target())
  finally:
    checkpoints.close()
  return jax.tree.map(np.asarray, jax.device_get(state["params"]))


def _snapshot(directory):
  out = {}
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, directory)] = f.read()
  return out


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """STEPS steps keeping the lowest validation l1, every step evaluated and checkpointed."""
  workdir = tmp_path_factory.mktemp("keep_best_straight")
  return loop.train(_config(), str(workdir))


def test_kept_snapshot_is_the_best_step(straight, tmp_path):
  values = _recorded(straight.workdir)
  assert sorted(values) == list(range(1, STEPS + 1))
  best_step = min(values, key=values.get)
  assert best_step < STEPS  # the kept snapshot is not simply the final state
  expected = {"step": best_step, "metric": "system/l1", "mode": "min",
              "value": values[best_step]}
  assert _best_json(straight.workdir) == expected
  assert straight.best == expected
  best_dir = os.path.join(straight.workdir, best_lib.BEST_DIR)
  assert sorted(os.listdir(best_dir)) == sorted([best_lib.BEST_JSON, str(best_step)])
  assert not any(n.startswith(("best.tmp", "best.old")) for n in os.listdir(straight.workdir))
  # The snapshot's parameters are those of the regular checkpoint of that step.
  config = _config()
  kept = _restore(best_dir, best_step, config, straight.workdir)
  regular = _restore(os.path.join(straight.workdir, "checkpoints"), best_step, config,
                     straight.workdir)
  jax.tree.map(np.testing.assert_array_equal, kept, regular)
  final = jax.tree.map(np.asarray, jax.device_get(straight.state["params"]))
  assert not np.array_equal(kept["g"]["Conv_0"]["kernel"], final["g"]["Conv_0"]["kernel"])
  # Another run can start from it (config.init_from=<workdir>/best).
  config = _config(())
  config.init_from = best_dir
  started = loop.train(config, str(tmp_path), stop_after=0)
  jax.tree.map(np.testing.assert_array_equal, kept,
               jax.tree.map(np.asarray, jax.device_get(started.state["params"])))


def test_resumed_run_keeps_the_same_best(straight, tmp_path):
  first = loop.train(_config(), str(tmp_path), stop_after=STEPS // 2)
  assert first.preempted and first.best["step"] <= STEPS // 2
  second = loop.train(_config(), str(tmp_path))
  assert second.best == straight.best == _best_json(tmp_path)
  step = straight.best["step"]
  jax.tree.map(np.testing.assert_array_equal,
               _restore(tmp_path / "best", step, _config(), tmp_path),
               _restore(os.path.join(straight.workdir, "best"), step, _config(), tmp_path))


def test_resume_from_an_older_checkpoint_keeps_a_better_best(straight, tmp_path):
  """After a preemption the latest checkpoint may predate best/: its steps are trained again
  (here with a worse learning rate) and the better best survives."""
  workdir = tmp_path / "run"
  shutil.copytree(straight.workdir, workdir)
  for name in os.listdir(workdir / "checkpoints"):
    if int(name) > 2:
      shutil.rmtree(workdir / "checkpoints" / name)
  before = _snapshot(workdir / "best")
  worse = _config(**{"toy.lr": 0.5})
  result = loop.train(worse, str(workdir))
  assert result.step == STEPS and result.history[0]["step"] == 3
  values = _recorded(workdir)
  assert all(values[s] > straight.best["value"] for s in range(3, STEPS + 1))
  assert result.best == straight.best == _best_json(workdir)
  assert _snapshot(workdir / "best") == before


def test_a_worse_stored_best_is_replaced(straight, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(straight.workdir, workdir)
  for name in os.listdir(workdir / "checkpoints"):
    if int(name) > 2:
      shutil.rmtree(workdir / "checkpoints" / name)
  info = {**straight.best, "value": 10.0}
  (workdir / "best" / "best.json").write_text(json.dumps(info))
  result = loop.train(_config(), str(workdir))
  assert result.best == straight.best == _best_json(workdir)


def test_mode_max_and_a_grouped_metric(tmp_path):
  steps = 3
  result = loop.train(_config(("system/l1/odd", "max"), **{"train.steps": steps}), str(tmp_path))
  values = _recorded(tmp_path, "l1/odd")
  best_step = max(values, key=values.get)
  assert result.best == {"step": best_step, "metric": "system/l1/odd", "mode": "max",
                         "value": values[best_step]} == _best_json(tmp_path)


def test_nan_never_counts_and_ties_do_not_replace():
  target = best_lib.Target("system", "l1", "min")
  assert not target.better(float("nan"), None) and not target.better(float("nan"), 1.0)
  assert target.better(0.5, None) and target.better(0.5, 1.0) and not target.better(1.0, 1.0)
  high = best_lib.Target("system", "l1", "max")
  assert high.better(2.0, 1.0) and not high.better(1.0, 1.0) and not high.better(0.5, 1.0)


@pytest.mark.parametrize("value,match", [
    (("system/l1",), r"train.keep_best must be \(\) \(off\) or \(metric, mode\)"),
    (("system/l1", "min", "max"), r"train.keep_best must be \(\) \(off\) or \(metric, mode\)"),
    ((1, "min"), r"train.keep_best must be \(\) \(off\) or \(metric, mode\)"),
    (("system/l1", "lowest"), "train.keep_best mode 'lowest' must be 'min' or 'max'"),
    (("l1", "min"), "train.keep_best metric 'l1' must be '<eval entry>/<metric>'"),
    (("fvd/fvd", "min"), r"no eval entry 'fvd' in config.evals \(entries: system\)"),
])
def test_bad_values_are_one_line_errors_before_any_write(tmp_path, value, match):
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=match) as error:
    loop.train(_config(value), str(workdir))
  assert "\n" not in str(error.value)
  assert not workdir.exists()


def test_an_entry_that_never_runs_in_training_is_an_error(tmp_path):
  config = _config()
  config.evals.system = dict(type="system", every=-1)
  with pytest.raises(ValueError, match=r"config.evals.system.every=-1 never runs in training"):
    loop.train(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_unknown_metric_lists_the_entry_metrics(tmp_path):
  with pytest.raises(ValueError, match=r"eval entry 'system' returned no 'psnr' \(its metrics: "
                                       r"index, .*l1, l1/even, l1/odd, num_examples\)"):
    loop.train(_config(("system/psnr", "max"), **{"train.steps": 2}), str(tmp_path))


def test_another_metric_than_the_kept_one_is_an_error(straight, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(straight.workdir, workdir)
  before = _snapshot(workdir)
  with pytest.raises(ValueError, match=r"keeps the best 'system/l1' \(min\) but train.keep_best "
                                       r"is \('system/l1', 'max'\)"):
    loop.train(_config(("system/l1", "max")), str(workdir))
  assert _snapshot(workdir) == before


def test_bad_value_on_the_command_line(tmp_path, capsys):
  workdir = tmp_path / "run"
  code = cli.main(["train", "--config", f"{TOY_CONFIG}:train.steps=2", "--workdir", str(workdir),
                   "--config.train.keep_best=('system/l1', 'lowest')", *_SAME_CACHE])
  assert code == 2
  line = capsys.readouterr().err.strip().splitlines()[-1]
  assert line.startswith("psrjax train: error: train.keep_best mode 'lowest'"), line
  assert not workdir.exists()


def test_eval_and_synthesize_best(straight, tmp_path, capsys):
  best = straight.best
  capsys.readouterr()
  assert cli.main(["eval", "--workdir", straight.workdir, "--best", "--evals", "system",
                   *_SAME_CACHE]) == 0
  printed = json.loads(capsys.readouterr().out)
  assert printed["step"] == best["step"]
  assert printed["system/l1"] == pytest.approx(best["value"], rel=1e-6)
  out = tmp_path / "best.gif"
  assert cli.main(["synthesize", "--workdir", straight.workdir, "--best", "--seed", "3",
                   "--out", str(out)]) == 0
  assert f"best snapshot step {best['step']}" in capsys.readouterr().out
  assert out.stat().st_size > 0


def test_eval_and_synthesize_best_without_a_snapshot(straight, tmp_path, capsys):
  workdir = tmp_path / "run"
  workdir.mkdir()
  shutil.copy(os.path.join(straight.workdir, "config.json"), workdir)
  for argv in (["eval", "--workdir", str(workdir), "--best", *_SAME_CACHE],
               ["synthesize", "--workdir", str(workdir), "--best", "--out",
                str(tmp_path / "x.gif")]):
    capsys.readouterr()
    assert cli.main(argv) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"no best snapshot in {workdir / 'best'}" in line, line
    assert "train with --config.train.keep_best=" in line


# Crash safety, on a small state written by KeepBest directly.

def _state(value):
  return {"params": {"w": jnp.full((4,), value, jnp.float32)}}


def _results(value):
  return {"system": {"l1": value}}


def _kept_w(workdir):
  directory, info = best_lib.find(str(workdir))
  checkpoints = checkpoint_lib.Checkpoints(directory, read_only=True)
  try:
    restored = checkpoints.manager.restore(
        info["step"], args=ocp.args.Composite(state=checkpoint_lib.StateRestore()))["state"]
  finally:
    checkpoints.close()
  return info["step"], float(np.asarray(restored["params"]["w"])[0])


def test_a_crash_while_writing_keeps_the_previous_best(tmp_path, monkeypatch):
  keep = best_lib.KeepBest(str(tmp_path), best_lib.Target("system", "l1", "min"))
  assert keep.update(1, _results(0.5), _state(1.0))
  assert not keep.update(2, _results(0.7), _state(2.0))
  assert not keep.update(2, _results(float("nan")), _state(2.0))
  before = _snapshot(tmp_path / "best")

  def crash(path, info):
    raise KeyboardInterrupt("killed")
  monkeypatch.setattr(best_lib, "_write_json", crash)
  with pytest.raises(KeyboardInterrupt):
    keep.update(3, _results(0.1), _state(3.0))
  monkeypatch.undo()
  assert (tmp_path / "best" / "3").is_dir()  # the next best, saved but not committed
  assert {k: v for k, v in _snapshot(tmp_path / "best").items()
          if not k.startswith("3/")} == before
  assert _kept_w(tmp_path) == (1, 1.0)
  reopened = best_lib.KeepBest(str(tmp_path), best_lib.Target("system", "l1", "min"))
  assert not (tmp_path / "best" / "3").exists() and reopened.info["step"] == 1
  assert reopened.update(4, _results(0.2), _state(4.0))
  assert _kept_w(tmp_path) == (4, 4.0)
  assert sorted(os.listdir(tmp_path)) == ["best"]
  assert sorted(os.listdir(tmp_path / "best")) == ["4", "best.json"]


def test_a_crash_after_the_commit_keeps_the_new_best(tmp_path, monkeypatch):
  keep = best_lib.KeepBest(str(tmp_path), best_lib.Target("system", "l1", "min"))
  keep.update(1, _results(0.5), _state(1.0))

  real_remove = best_lib.paths.remove

  def crash(path):
    if path.endswith(os.sep + "1"):  # the previous best, deleted after the commit
      raise KeyboardInterrupt("killed")
    real_remove(path)
  monkeypatch.setattr(best_lib.paths, "remove", crash)
  with pytest.raises(KeyboardInterrupt):
    keep.update(2, _results(0.4), _state(2.0))  # killed while deleting the previous best
  monkeypatch.undo()
  assert sorted(os.listdir(tmp_path / "best")) == ["1", "2", "best.json"]
  assert _kept_w(tmp_path) == (2, 2.0)  # readers take what best.json names
  reopened = best_lib.KeepBest(str(tmp_path), best_lib.Target("system", "l1", "min"))
  assert sorted(os.listdir(tmp_path / "best")) == ["2", "best.json"]
  assert reopened.info["value"] == 0.4 and _kept_w(tmp_path) == (2, 2.0)


def test_a_better_value_at_the_kept_step_is_written_beside_it(tmp_path):
  """A resumed run may train the kept step again and beat its value: the snapshot in use is
  never overwritten."""
  target = best_lib.Target("system", "l1", "min")
  best_lib.KeepBest(str(tmp_path), target).update(3, _results(0.5), _state(1.0))
  again = best_lib.KeepBest(str(tmp_path), target)
  assert again.update(3, _results(0.4), _state(2.0))
  assert again.info == {"step": 3, "metric": "system/l1", "mode": "min", "value": 0.4,
                        "directory": "again"}
  assert sorted(os.listdir(tmp_path / "best")) == ["again", "best.json"]
  assert _kept_w(tmp_path) == (3, 2.0)
  assert checkpoint_lib.checkpoint_root(str(tmp_path / "best")) == (
      str(tmp_path / "best" / "again"), 3)
  assert again.update(3, _results(0.3), _state(3.0))  # and back again
  assert sorted(os.listdir(tmp_path / "best")) == ["3", "best.json"]
  assert _kept_w(tmp_path) == (3, 3.0)
  assert again.update(5, _results(0.2), _state(5.0))
  assert sorted(os.listdir(tmp_path / "best")) == ["5", "best.json"]


def test_best_json_naming_a_missing_snapshot_counts_as_none(tmp_path):
  keep = best_lib.KeepBest(str(tmp_path), best_lib.Target("system", "l1", "min"))
  keep.update(1, _results(0.5), _state(1.0))
  shutil.rmtree(tmp_path / "best" / "1")
  assert best_lib.find(str(tmp_path)) is None
  reopened = best_lib.KeepBest(str(tmp_path), best_lib.Target("system", "l1", "min"))
  assert reopened.info is None and os.listdir(tmp_path / "best") == []
