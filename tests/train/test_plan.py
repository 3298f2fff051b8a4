"""`psrjax plan`: per-device memory of a config's step on device kinds it is not run on."""
import math
import os

import jax
import numpy as np
import pytest

import toy_system
from psrjax import cli
from psrjax import config_utils
from psrjax.train import context as context_lib
from psrjax.train import plan

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TOY_CONFIG = os.path.join(HERE, "toy_config.py")


@pytest.fixture(scope="module")
def toy():
  config = toy_system.toy_config(**{"sharding.min_size": 1})
  return config, plan.footprint(config)


def _trainer_bytes(config, devices, group="params") -> int:
  """Per-device bytes of a state group as the trainer shards it on `devices` CPU devices."""
  ctx = context_lib.build_context(config, None, devices=jax.devices()[:devices], evals=())
  state, shardings = ctx.abstract_state[group], ctx.state_shardings[group]
  return sum(math.prod(s.shard_shape(x.shape)) * x.dtype.itemsize
             for x, s in zip(jax.tree.leaves(state), jax.tree.leaves(shardings)))


@pytest.mark.parametrize("strategy", ["replicated", "fsdp"])
def test_state_bytes_are_the_trainers_shards(toy, strategy):
  """Parameters and optimizer state per device equal what the trainer places on 2 devices
  (the toy's kernels have 4 output channels: a data axis of 2 splits them)."""
  config, fp = toy
  config = config.copy_and_resolve_references()
  config.sharding.params = strategy
  p = plan.plan(fp, config, "h100", 2)
  assert p.data == 2 and p.rows == 4
  assert p.params == _trainer_bytes(config, 2, "params")
  assert p.opt == _trainer_bytes(config, 2, "opt")
  if strategy == "fsdp":
    assert p.params < plan.plan(fp, config, "h100", 1).params


def test_activations_scale_with_the_rows_and_the_verdict_names_a_fix(toy, monkeypatch):
  config, fp = toy
  one, eight = plan.plan(fp, config, "h100", 8), plan.plan(fp, config, "h100", 1)
  assert fp.activations_per_example["none"] > 0
  fixed = fp.activations_fixed["none"]
  assert eight.activations - fixed == 8 * (one.activations - fixed)
  # A device too small for the replicated state but not for its FSDP shards.
  replicated = plan.plan(fp, config, "h100", 2)
  fsdp = plan.plan(fp, config, "h100", 2, strategy="fsdp")
  assert fsdp.total < replicated.total
  capacity = int(fsdp.total / plan.COMFORTABLE) + 1
  assert replicated.total > plan.COMFORTABLE * capacity
  monkeypatch.setitem(plan.DEVICES, "small", ("a small chip", capacity))
  small = plan.plan(fp, config, "small", 2)
  assert small.verdict == "tight" and small.fix == "sharding.params=fsdp"
  monkeypatch.setitem(plan.DEVICES, "tiny", ("a tiny chip", 16))
  assert plan.plan(fp, config, "tiny", 8).verdict == "no"
  assert plan.plan(fp, config, "tiny", 8).fix == "more devices, or a smaller batch or resolution"


def test_remat_shrinks_the_planned_activations():
  """A system with `model.remat` (pix2pix, tiny): "blocks" and "full" keep less than "none"."""
  config = config_utils.load_config(os.path.join(REPO, "configs", "pix2pix.py") + ":tiny")
  saved = plan.footprint(config).activations_per_example
  assert saved["full"] < saved["blocks"] < saved["none"], saved


def test_plan_command_prints_a_row_per_device_kind_and_count(capsys):
  assert cli.main(["plan", "--config", TOY_CONFIG, "--device", "h100,v5e",
                   "--devices", "1,8"]) == 0
  rows = capsys.readouterr().out.strip().splitlines()[2:]
  assert [r.split()[:3] for r in rows] == [["h100", "1", "1"], ["h100", "8", "8"],
                                          ["v5e", "1", "1"], ["v5e", "8", "8"]]
  assert all(r.split()[12] == "yes" for r in rows), rows
  assert cli.main(["plan", "--config", TOY_CONFIG, "--device", "h800"]) == 2
  assert "unknown --device h800; use h100" in capsys.readouterr().err
