"""Trainer: sharding invariance, exact resume, NaN guard and corrupt-checkpoint fallback."""
import os

import jax
import numpy as np
import pytest

import toy_system
import train_harness
from psrjax.train import loop
from psrjax.train import writers

STEPS = 4  # two per stage of the toy system (warmup, gan)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """STEPS steps straight through on all 8 devices (shared by the tests below)."""
  workdir = tmp_path_factory.mktemp("straight")
  return loop.train(toy_system.toy_config(**{"train.steps": STEPS}), str(workdir))


def test_straight_run_writes_everything(straight):
  assert straight.step == STEPS and not straight.preempted
  workdir = straight.workdir
  records = writers.read_metrics(workdir)
  train_steps = [r["step"] for r in records if "g/total" in r]
  assert train_steps == list(range(1, STEPS + 1))
  assert {"d/real", "d/fake", "g/l1", "g/adv", "l2_grads/d", "l2_updates/g",
          "l2_params/d"} <= set(records[-2])
  assert os.path.isfile(os.path.join(workdir, "samples", f"{STEPS}.gif"))
  assert os.path.isfile(os.path.join(workdir, "eval", "system", f"{STEPS}.json"))
  assert os.listdir(os.path.join(workdir, "tensorboard"))
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]


def test_one_device_equals_eight_devices(straight, tmp_path):
  train_harness.check_sharding_invariance(
      toy_system.toy_config(**{"train.steps": STEPS}), straight, tmp_path, steps=2)


def test_resume_is_exact(straight, tmp_path):
  train_harness.check_exact_resume(
      toy_system.toy_config(**{"train.steps": STEPS}), straight, tmp_path, half=STEPS // 2)


def _snapshot(directory):
  out = {}
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, directory)] = f.read()
  return out


def test_nan_guard_keeps_last_good_checkpoint(tmp_path):
  config = toy_system.toy_config(**{"train.steps": STEPS})
  loop.train(config, str(tmp_path), stop_after=2)
  before = _snapshot(tmp_path / "checkpoints")
  poisoned = toy_system.toy_config(**{"train.steps": STEPS, "toy.poison": True})
  with pytest.raises(loop.NonFiniteLossError,
                     match=r"non-finite loss '.+' at step 3; last good checkpoint is step 2"):
    loop.train(poisoned, str(tmp_path))
  assert _snapshot(tmp_path / "checkpoints") == before


def test_nan_before_any_checkpoint_says_so(tmp_path):
  config = toy_system.toy_config(**{"train.steps": STEPS, "toy.poison": True})
  with pytest.raises(loop.NonFiniteLossError, match="at step 1; no checkpoint was saved before it"):
    loop.train(config, str(tmp_path))
  assert not os.listdir(tmp_path / "checkpoints")


def test_corrupt_latest_checkpoint_falls_back(straight, tmp_path, caplog):
  config = toy_system.toy_config(**{"train.steps": STEPS})
  loop.train(config, str(tmp_path), stop_after=2)
  loop.train(config.copy_and_resolve_references(), str(tmp_path), stop_after=3)
  data_file = tmp_path / "checkpoints" / "3" / "data" / "process_0-of-1.json"
  data_file.write_text("{not json")
  result = loop.train(config, str(tmp_path))
  assert "checkpoint step 3" in caplog.text and "unreadable" in caplog.text
  assert (tmp_path / "checkpoints_corrupt" / "3").is_dir()
  # Resumed from step 2, so the run reproduces the straight run exactly.
  np.testing.assert_array_equal(
      train_harness.host_params(result)["g"]["Conv_0"]["kernel"],
      train_harness.host_params(straight)["g"]["Conv_0"]["kernel"])
  assert result.history[0]["step"] == 3


def test_config_resume_continues_another_run(straight, tmp_path):
  config = toy_system.toy_config(**{"train.steps": STEPS})
  loop.train(config, str(tmp_path / "a"), stop_after=2)
  config.resume = str(tmp_path / "a")
  result = loop.train(config, str(tmp_path / "b"))
  assert result.history[0]["step"] == 3
  jax.tree.map(np.testing.assert_array_equal, train_harness.host_params(result),
               train_harness.host_params(straight))


def test_init_from_loads_parameter_groups(straight, tmp_path):
  config = toy_system.toy_config(**{"train.steps": STEPS, "seed": 1})
  config.init_from = os.path.join(straight.workdir, "checkpoints", str(STEPS))
  result = loop.train(config, str(tmp_path), stop_after=0)
  assert result.step == 0
  jax.tree.map(np.testing.assert_array_equal, train_harness.host_params(result),
               train_harness.host_params(straight))


def test_init_from_ema_loads_the_moving_average(tmp_path):
  config = toy_system.toy_config(**{"train.steps": 2, "train.ema.decay": 0.5})
  config.train.ema.groups = ("g",)
  source = loop.train(config, str(tmp_path / "source"))
  again = toy_system.toy_config(**{"train.steps": 2, "seed": 1})
  again.init_from, again.init_from_ema = source.workdir, True
  loaded = train_harness.host_params(loop.train(again, str(tmp_path / "again"), stop_after=0))
  saved = jax.device_get(source.state)
  jax.tree.map(np.testing.assert_array_equal, loaded["g"], saved["ema"]["g"])   # the average
  jax.tree.map(np.testing.assert_array_equal, loaded["d"], saved["params"]["d"])  # no EMA kept
  assert not np.array_equal(jax.tree.leaves(saved["ema"]["g"])[0],
                            jax.tree.leaves(saved["params"]["g"])[0])


def test_checkpoint_of_another_config_is_an_error(straight, tmp_path):
  config = toy_system.toy_config(**{"train.steps": STEPS, "toy.features": 6})
  config.resume = straight.workdir
  with pytest.raises(ValueError, match="parameters that do not match the config"):
    loop.train(config, str(tmp_path))
  assert sorted(os.listdir(os.path.join(straight.workdir, "checkpoints"))) == ["2", "4"]


def test_unusable_iterator_state_is_an_error_not_corruption(tmp_path):
  config = toy_system.toy_config(**{"train.steps": STEPS})
  loop.train(config, str(tmp_path), stop_after=2)
  (tmp_path / "checkpoints" / "2" / "data" / "process_0-of-1.json").write_text("{}")
  with pytest.raises(ValueError, match="data-iterator state this pipeline cannot use"):
    loop.train(config, str(tmp_path))
  assert os.listdir(tmp_path / "checkpoints") == ["2"]
