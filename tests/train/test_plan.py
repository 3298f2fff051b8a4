"""`psrjax plan`: per-device memory of a config's step on device kinds it is not run on, and
`model.remat="auto"`, which the trainer resolves from the same plan."""
import dataclasses
import math
import os

import jax
import numpy as np
import pytest

import toy_system
from psrjax import cli
from psrjax import config_utils
from psrjax.train import context as context_lib
from psrjax.train import footprint
from psrjax.train import options as options_lib
from psrjax.train import plan

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TOY_CONFIG = os.path.join(HERE, "toy_config.py")


@pytest.fixture(scope="module")
def toy():
  config = toy_system.toy_config(**{"sharding.min_size": 1})
  return config, footprint.of_config(config)


@pytest.fixture(scope="module")
def pix2pix():
  """pix2pix's tiny config with `model.remat="auto"` (a system with remat modes), its footprint
  in this host's compute dtype (what a context built here traces) and each mode's planned total
  on one device."""
  config = config_utils.load_config(os.path.join(REPO, "configs", "pix2pix.py") + ":tiny")
  config.model.remat = "auto"
  fp = footprint.of_config(config, platform="cpu")
  totals = {m: plan.plan(fp, config, "sim", 1, remat=m, capacity=2 ** 40).total
            for m in plan.REMAT_MODES}
  return config, fp, totals


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


def test_remat_shrinks_the_planned_activations(pix2pix):
  """A system with `model.remat` (pix2pix, tiny): "blocks" and "full" keep less than "none"."""
  _, fp, totals = pix2pix
  saved = fp.activations_per_example
  assert saved["full"] < saved["blocks"] < saved["none"], saved
  assert totals["full"] < totals["blocks"] < totals["none"], totals


def test_activations_are_the_largest_stages(monkeypatch):
  """A schedule whose later stage reads longer clips (vid2vid's 4- then 8-frame stages) plans
  the later stage: the activations of a one-stage config of 8-frame clips, above 4-frame
  clips'."""
  spec = os.path.join(REPO, "configs", "vid2vid.py") + ":tiny"
  def context(doublings: int):
    config = config_utils.load_config(spec)
    config.data.frames_per_example, config.schedule.clip_doublings = 8, doublings
    config.model.n_scales_temporal = 1
    return footprint._context(config, "none")   # pylint: disable=protected-access
  staged, single = context(1), context(0)
  first, second = (plan._stage_residual_bytes(staged, s, 1) for s in staged.stages)
  assert first < second == plan._residual_bytes(staged, 1) == plan._residual_bytes(single, 1)


def test_plan_command_prints_a_row_per_device_kind_and_count(capsys):
  assert cli.main(["plan", "--config", TOY_CONFIG, "--device", "h100,v5e",
                   "--devices", "1,8"]) == 0
  rows = capsys.readouterr().out.strip().splitlines()[2:]
  assert [r.split()[:3] for r in rows] == [["h100", "1", "1"], ["h100", "8", "8"],
                                          ["v5e", "1", "1"], ["v5e", "8", "8"]]
  assert all(r.split()[12] == "yes" for r in rows), rows
  assert cli.main(["plan", "--config", TOY_CONFIG, "--device", "h800"]) == 2
  assert "unknown --device h800; use h100" in capsys.readouterr().err


def test_plan_command_says_what_auto_remat_resolves_to(pix2pix, capsys, monkeypatch):
  config, fp, totals = pix2pix
  roomy = plan.plan(fp, config, "h100", 1)
  assert (roomy.remat, roomy.auto, roomy.verdict) == ("none", True, "yes")
  # A device where only "blocks" or lighter fits comfortably: "auto" plans "blocks".
  monkeypatch.setitem(plan.DEVICES, "small", ("a small chip", _capacity(totals, "blocks")))
  small = plan.plan(fp, config, "small", 1)
  assert (small.remat, small.auto, small.verdict, small.fix) == ("blocks", True, "yes", "")
  assert plan.plan(fp, config, "small", 1, remat="none").fix == "model.remat=blocks"
  assert cli.main(["plan", "--config", os.path.join(REPO, "configs", "pix2pix.py") + ":tiny",
                   "--config.model.remat=auto", "--device", "h100", "--devices", "1"]) == 0
  header, row = capsys.readouterr().out.strip().splitlines()[1:]
  assert header.split()[12:14] == ["fits", "remat"] and row.split()[12:14] == ["yes", "auto:none"]


def _capacity(totals, mode: str) -> int:
  """A device memory where `mode` is the lightest mode whose plan is a "yes"."""
  capacity = int(totals[mode] / plan.COMFORTABLE) + 1
  lighter = plan.REMAT_MODES[:plan.REMAT_MODES.index(mode)]
  assert all(totals[m] > plan.COMFORTABLE * capacity for m in lighter), totals
  return capacity


def _auto_context(config):
  return context_lib.build_context(config, None, devices=jax.devices()[:1], evals=())


def test_auto_remat_is_none_on_the_cpu_without_planning(pix2pix, monkeypatch, capsys):
  config, _, _ = pix2pix
  monkeypatch.setattr(plan, "resolve_remat", lambda ctx: pytest.fail("planned on the CPU"))
  ctx = _auto_context(config)
  assert ctx.config.model.remat == "none" and ctx.runtime["remat"] == "none"
  assert config.model.remat == "auto"  # the caller's config is left as it was
  assert capsys.readouterr().out == ""


@pytest.mark.parametrize("fits", ["none", "blocks", "full", "nothing"])
def test_auto_remat_on_an_accelerator_is_the_lightest_mode_that_fits(pix2pix, monkeypatch,
                                                                     capsys, fits):
  """A simulated accelerator of a given memory: "none" when there is room, "blocks" or "full"
  when only they fit, and "full" with one line naming the fix when nothing does."""
  config, _, totals = pix2pix
  capacity = 16 if fits == "nothing" else _capacity(totals, fits)
  monkeypatch.setattr(plan, "on_accelerator", lambda devices: True)
  monkeypatch.setattr(plan, "device_memory", lambda device: capacity)
  ctx = _auto_context(config)
  mode = "full" if fits == "nothing" else fits
  assert ctx.config.model.remat == mode and ctx.runtime["remat"] == mode
  line = capsys.readouterr().out
  assert line.count("\n") == 1 and line.startswith(f"model.remat=auto: {mode}"), line
  if fits == "nothing":
    assert "even it does not fit" in line and "to fit: more devices" in line, line


def test_auto_remat_stops_tracing_at_the_first_mode_that_fits(pix2pix, monkeypatch):
  config, _, _ = pix2pix
  traced = []
  activations = plan._activations  # pylint: disable=protected-access
  monkeypatch.setattr(plan, "_activations", lambda ctx, mode: traced.append(mode) or
                      activations(ctx, mode))
  monkeypatch.setattr(plan, "on_accelerator", lambda devices: True)
  monkeypatch.setattr(plan, "device_memory", lambda device: 2 ** 40)
  assert _auto_context(config).config.model.remat == "none"
  assert traced == ["none"]


def test_device_memory_from_memory_stats_else_the_device_kind():
  @dataclasses.dataclass
  class Device:
    device_kind: str
    stats: dict | None = None

    def memory_stats(self):
      return self.stats

  assert plan.device_memory(Device("NVIDIA H100 80GB HBM3", {"bytes_limit": 123})) == 123
  assert plan.device_memory(Device("NVIDIA H100 80GB HBM3")) == plan.DEVICES["h100"][1]
  assert plan.device_memory(Device("TPU v5 lite")) == plan.DEVICES["v5e"][1]
  assert plan.device_memory(Device("NVIDIA A100-SXM4-40GB")) == plan.DEVICES["a100-40"][1]
  assert plan.device_memory(Device("a new chip")) is None


def test_unknown_remat_mode_is_a_one_line_config_error(pix2pix):
  config, _, _ = pix2pix
  config = config.copy_and_resolve_references()
  config.model.remat = "most"
  with pytest.raises(ValueError) as error:
    _auto_context(config)
  assert str(error.value) == ("model.remat='most' is not a rematerialisation mode; use one of "
                              "'none', 'blocks', 'full', 'auto'")
  assert options_lib.remat_mode(toy_system.toy_config()) is None
