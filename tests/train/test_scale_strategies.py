"""Scale options give the default run's losses: FSDP, a model axis, bfloat16, gradient
accumulation and EMA; bad options fail before anything compiles.

This file is also the system module of its runs (`config.system = __file__`): the toy system
without input noise, so microbatches see exactly the inputs of the whole batch.
"""
import dataclasses
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import toy_system  # noqa: E402  pylint: disable=g-import-not-at-top
import train_harness  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.systems import base  # noqa: E402
from psrjax.train import context as context_lib  # noqa: E402
from psrjax.train import options as options_lib  # noqa: E402
from psrjax.train import step as step_lib  # noqa: E402
from psrjax.train import loop  # noqa: E402
from psrjax.train import state as state_lib  # noqa: E402

STEPS = 4  # two per stage of the toy system (warmup, gan)


@dataclasses.dataclass
class NoiselessToy(toy_system.ToySystem):
  """The toy system with its generator input noise removed."""
  input_noise: float = 0.0


def make_system(config):
  return NoiselessToy(config)


def scale_config(**overrides):
  """The toy config on this file's system, 8 hidden channels, every leaf shardable."""
  config = toy_system.toy_config(**{"train.steps": STEPS, "toy.features": 8,
                                    "sharding.min_size": 1, **overrides})
  config.system = os.path.abspath(__file__)
  return config


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
  return loop.train(scale_config(), str(tmp_path_factory.mktemp("default")))


def _specs(state, group):
  return {jax.tree_util.keystr(path): leaf.sharding.spec
          for path, leaf in jax.tree_util.tree_flatten_with_path(state["params"][group])[0]}


def test_fsdp_shards_parameters_and_optimizer_and_matches(default_run, tmp_path):
  result = loop.train(scale_config(**{"sharding.params": "fsdp"}), str(tmp_path))
  specs = _specs(result.state, "g")
  assert specs["['Conv_0']['kernel']"] == P(None, None, None, "data")  # [3, 3, 3, 8]
  assert specs["['Conv_1']['kernel']"] == P(None, None, "data", None)  # [3, 3, 8, 3]
  assert specs["['Conv_1']['bias']"] == P()  # [3]: no axis divisible by 8
  adam_mu = result.state["opt"]["g"][0].mu["Conv_0"]["kernel"]
  assert adam_mu.sharding.spec == P(None, None, None, "data")
  assert len(adam_mu.addressable_shards) == 8 and adam_mu.addressable_shards[0].data.shape[-1] == 1
  train_harness.assert_same_losses(result.history, default_run.history, rtol=1e-5,
                                   steps=range(1, STEPS + 1))


def test_model_axis_splits_output_channels_and_matches(default_run, tmp_path):
  config = scale_config(**{"sharding.params": "fsdp"})
  config.mesh.data, config.mesh.model = 4, 2
  result = loop.train(config, str(tmp_path))
  specs = _specs(result.state, "g")
  assert specs["['Conv_0']['kernel']"] == P(None, None, None, "model")  # [3, 3, 3, 8]
  assert specs["['Conv_0']['bias']"] == P("data")  # 1-D: never split along model
  assert specs["['Conv_1']['kernel']"] == P(None, None, "data", None)  # 3 outputs: not by 2
  train_harness.assert_same_losses(result.history, default_run.history, rtol=1e-5,
                                   steps=range(1, STEPS + 1))


def test_gradient_accumulation_matches_big_batch(default_run, tmp_path):
  config = scale_config(**{"train.grad_accum": 2})
  config.mesh.data = 4  # 8 rows = 4 devices x 2 microbatches x 1 row
  result = loop.train(config, str(tmp_path))
  train_harness.assert_same_losses(result.history, default_run.history, rtol=1e-5,
                                   steps=range(1, STEPS + 1))
  for key in ("l2_grads/g", "l2_grads/d", "l2_params/g"):
    np.testing.assert_allclose(result.history[-1][key], default_run.history[-1][key], rtol=1e-4)


def test_bfloat16_compute_keeps_float32_params_and_close_losses(default_run, tmp_path):
  result = loop.train(scale_config(**{"train.compute_dtype": "bfloat16"}), str(tmp_path))
  leaves = jax.tree.leaves(result.state["params"]) + jax.tree.leaves(result.state["opt"]["g"])
  assert {x.dtype for x in leaves if jnp.issubdtype(x.dtype, jnp.floating)} == {np.dtype("float32")}
  train_harness.assert_same_losses(result.history, default_run.history, rtol=3e-2,
                                   steps=range(1, STEPS + 1))
  # ...but not identical: the losses were computed in bfloat16.
  assert result.history[0]["g/l1"] != default_run.history[0]["g/l1"]


def test_ema_is_the_average_and_feeds_evaluation(default_run, tmp_path):
  config = scale_config(**{"train.ema.decay": 0.5, "train.ema.groups": ("g",)})
  start = loop.train(config, str(tmp_path / "a"), stop_after=0).state
  one = loop.train(config.copy_and_resolve_references(), str(tmp_path / "b"), stop_after=1)
  assert set(one.state) == {"params", "opt", "step", "ema"} and set(one.state["ema"]) == {"g"}
  # Debiased: the first update is the trained parameters (the initial ones never weigh in).
  jax.tree.map(np.testing.assert_array_equal, one.state["ema"]["g"], one.state["params"]["g"])
  assert start["ema"]["g"] is not None
  full = loop.train(config.copy_and_resolve_references(), str(tmp_path / "b"))  # resumes
  train_harness.assert_same_losses(one.history + full.history, default_run.history, rtol=1e-5,
                                   steps=range(1, STEPS + 1))
  ctx = context_lib.build_context(config, str(tmp_path / "c"))
  system_eval = ctx.evals["system"].evaluator
  with_ema = system_eval.run(ctx.eval_params(full.state))
  raw = system_eval.run(ctx.with_constants(full.state["params"]))
  assert full.eval_results["l1"] == pytest.approx(with_ema["l1"], rel=1e-6)
  assert with_ema["l1"] != pytest.approx(raw["l1"], rel=1e-4)
  assert state_lib.eval_params(full.state)["g"] is full.state["ema"]["g"]


def test_ema_of_a_group_the_stage_does_not_train_is_kept():
  """A generator frozen after its stage keeps the average over its training: its EMA does not
  decay towards its final raw weights while later stages train other groups."""
  system = NoiselessToy(scale_config())
  batch = {"src": jnp.full((2, 2, 8, 8, 3), 0.1), "rgb": jnp.full((2, 2, 8, 8, 3), -0.2),
           "index": jnp.arange(2)}
  params = system.init(jax.random.key(0), batch)
  optimizers = system.optimizers()
  state = state_lib.from_params(params, optimizers, ema_groups=("g", "d"))
  state["ema"] = jax.tree.map(lambda p: p + 1.0, state["ema"])   # averages != current weights
  stage = base.Stage("d_only", 2, (base.Phase("d", ("d",), system.d_loss),),
                     forward=system.forward)
  options = options_lib.ScaleOptions(params_sharding="replicated", min_shard_size=1,
                                     compute_dtype=jnp.float32, grad_accum=1, ema_decay=0.5,
                                     ema_groups=("g", "d"))
  step = step_lib.make_train_step(system, optimizers, stage, options)
  new, _ = jax.jit(step)(state, batch, jax.random.key(1), {})
  jax.tree.map(np.testing.assert_array_equal, new["ema"]["g"], state["ema"]["g"])
  # The debiased EMA's first update is the trained parameters themselves; the second weighs
  # them (1 - decay) / (1 - decay^2) = 2/3 against the average so far.
  jax.tree.map(np.testing.assert_array_equal, new["ema"]["d"], new["params"]["d"])
  newer, _ = jax.jit(step)(new, batch, jax.random.key(2), {})
  jax.tree.map(lambda e, e0, p: train_harness.assert_close(e, e0 + (p - e0) * 2 / 3, rtol=1e-6),
               newer["ema"]["d"], new["ema"]["d"], newer["params"]["d"])


def test_checkpoint_without_ema_is_incompatible_with_ema(default_run, tmp_path):
  config = scale_config(**{"train.ema.decay": 0.9, "train.ema.groups": ("g",)})
  config.resume = default_run.workdir
  with pytest.raises(ValueError, match=r"keeps EMAs of groups \[\] but the config's train.ema "
                                       r"keeps \['g'\]"):
    loop.train(config, str(tmp_path / "run"))


@pytest.mark.parametrize("overrides,match", [
    ({"sharding.params": "zero3"}, "sharding.params='zero3' is not a strategy; use one of "
                                   "'replicated', 'fsdp'"),
    ({"train.compute_dtype": "float16"}, "train.compute_dtype='float16' is not supported"),
    ({"train.grad_accum": 3}, r"train.batch_size=8 must be a multiple of mesh.data x "
                              r"train.grad_accum = 1 x 3 = 3"),
    ({"train.grad_accum": 3, "mesh.data": 8}, r"train.batch_size=8 must be a multiple of "
                                              r"mesh.data x train.grad_accum = 8 x 3 = 24"),
    ({"train.grad_accum": 0}, "train.grad_accum=0 must be an integer >= 1"),
    ({"train.ema.decay": 0.9}, "train.ema.decay > 0 needs train.ema.groups"),
    ({"train.ema.decay": 0.9, "train.ema.groups": ("gen",)},
     r"train.ema.groups \['gen'\] are not parameter groups of the system"),
    ({"train.ema.decay": 1.0, "train.ema.groups": ("g",)}, "must be in \\[0, 1\\)"),
])
def test_bad_options_fail_before_compiling(tmp_path, overrides, match, monkeypatch):
  def no_compile(*args, **kwargs):
    raise AssertionError("compiled before validating the options")
  monkeypatch.setattr(jax, "jit", no_compile)
  with pytest.raises(ValueError, match=match):
    loop.train(scale_config(**overrides), str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_batch_smaller_than_the_devices_replicates_and_matches(tmp_path):
  """Global batch 2 on 8 devices (mesh.data=-1): data axis 2, a replica axis of 4, FSDP along
  data; the losses are those of the same batch on 2 devices."""
  config = scale_config(**{"train.batch_size": 2, "sharding.params": "fsdp"})
  eight = loop.train(config, str(tmp_path / "eight"))
  kernel = eight.state["params"]["g"]["Conv_0"]["kernel"]
  assert dict(kernel.sharding.mesh.shape) == {"data": 2, "replica": 4, "model": 1}
  assert kernel.sharding.spec == P(None, None, None, "data")
  two = loop.train(config.copy_and_resolve_references(), str(tmp_path / "two"),
                   devices=jax.devices()[:2])
  assert dict(two.state["step"].sharding.mesh.shape) == {"data": 2, "replica": 1, "model": 1}
  train_harness.assert_same_losses(eight.history, two.history, rtol=1e-5,
                                   steps=range(1, STEPS + 1))
  assert eight.eval_results["l1"] == pytest.approx(two.eval_results["l1"], rel=1e-5)
