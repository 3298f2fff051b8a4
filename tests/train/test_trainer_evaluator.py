"""Eval splits and the `system` eval: padded final batches count every example exactly once;
per-group means; the `system` entry added from `train.eval_every` and the `config.eval` block."""
import json

import numpy as np
import pytest

import toy_system
from psrjax import evals
from psrjax.evals import common
from psrjax.evals import system as system_eval
from psrjax.train import context
from psrjax.train import state as state_lib


def _params(ctx):
  batch = ctx.global_batch(ctx.first_batch)
  return state_lib.create_state(ctx.init_fn, ctx.base_key, batch, ctx.state_shardings,
                                ctx.mesh)["params"]


@pytest.mark.parametrize("num_examples,batch_size,data", [(12, 8, -1), (12, 16, -1), (7, 2, 2),
                                                         (13, 6, -1), (5, 3, 2)])
def test_every_example_counts_once(tmp_path, num_examples, batch_size, data):
  config = toy_system.toy_config(**{"toy.eval_clips": 20, "eval.num_examples": num_examples,
                                    "eval.batch_size": batch_size, "mesh.data": data})
  ctx = context.build_context(config, str(tmp_path / "run"))
  assert list(ctx.evals) == ["system"]   # the alias of the config.eval block
  results = ctx.evals["system"].evaluator.run(_params(ctx))
  index = np.arange(num_examples)
  assert results["num_examples"] == num_examples
  np.testing.assert_allclose(results["index"], index.mean(), rtol=1e-6)
  np.testing.assert_allclose(results["index/even"], index[index % 2 == 0].mean(), rtol=1e-6)
  np.testing.assert_allclose(results["index/odd"], index[index % 2 == 1].mean(), rtol=1e-6)
  n_even, n_odd = (index % 2 == 0).sum(), (index % 2 == 1).sum()
  np.testing.assert_allclose(
      results["l1"], (n_even * results["l1/even"] + n_odd * results["l1/odd"]) / num_examples,
      rtol=1e-5)


@pytest.mark.parametrize("batch_size,data,padded", [(6, -1, 8), (3, 2, 4), (1, 4, 4), (16, -1, 16)])
def test_eval_batch_rounds_up_to_the_data_axis(tmp_path, batch_size, data, padded):
  config = toy_system.toy_config(**{"eval.batch_size": batch_size, "mesh.data": data,
                                    "eval.num_examples": 5})
  ctx = context.build_context(config, str(tmp_path / "run"))
  assert ctx.eval_data.batch_size == padded
  assert ctx.evals["system"].evaluator.data is ctx.eval_data   # same split, size and batch
  batches = list(ctx.eval_data.batches())
  assert [b["_valid"].shape for b in batches] == [(padded,)] * -(-5 // padded)
  assert int(sum(np.asarray(b["_valid"]).sum() for b in batches)) == 5


def test_eval_batch_below_one_is_an_error(tmp_path):
  config = toy_system.toy_config(**{"eval.batch_size": 0})
  with pytest.raises(ValueError, match=r"eval.batch_size=0 must be a positive multiple"):
    context.build_context(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_group_without_names_is_an_error(tmp_path):
  config = toy_system.toy_config()
  ctx = context.build_context(config, str(tmp_path / "run"))
  system = toy_system.ToySystem(config, eval_groups=())
  with pytest.raises(ValueError, match="defines no eval_groups"):
    system_eval.PerExampleEval(system, ctx.mesh, ctx.eval_data).run(_params(ctx))


def test_write_results(tmp_path):
  records = []

  class Writer:
    def write_scalars(self, step, scalars):
      records.append((step, dict(scalars)))

  path = common.write_results(str(tmp_path), 7, {"psnr": 20.5}, Writer(), name="system")
  assert path == str(tmp_path / "eval" / "system" / "7.json")
  assert records == [(7, {"eval/system/psnr": 20.5})]
  saved = json.loads((tmp_path / "eval" / "system" / "7.json").read_text())
  assert saved == {"step": 7, "psnr": 20.5}
  assert common.read_results(str(tmp_path), "system", 7) == {"step": 7, "psnr": 20.5}


def test_system_alias_inherits_eval_block_and_eval_every():
  config = toy_system.toy_config(**{"train.eval_every": 3, "eval.num_examples": 5,
                                    "eval.split": "test", "eval.batch_size": 4})
  assert evals.system_alias(config) == dict(type="system", every=3, split="test",
                                            num_examples=5, batch_size=4)
  config.evals.fid = dict(type="fid", every=2)
  fid, system = evals.specs(config)
  assert (system.name, system.type, system.every, system.split, system.num_examples,
          system.batch_size, system.options) == ("system", "system", 3, "test", 5, 4, {})
  # Every entry inherits the config.eval block; only `system` inherits train.eval_every.
  assert (fid.every, fid.split, fid.num_examples, fid.batch_size) == (2, "test", 5, 4)
  config.evals.system = dict(type="system", num_examples=2)
  system = evals.specs(config, only=["system"])[0]
  assert (system.every, system.split, system.num_examples) == (3, "test", 2)
  config.evals.system = dict(type="fid")
  with pytest.raises(ValueError, match=r"config.evals.system.type='fid': the entry named "
                                       r"'system' holds the system's own metrics"):
    evals.specs(config)


def test_train_eval_every_is_the_system_cadence(tmp_path):
  from psrjax.train import loop
  config = toy_system.toy_config(**{"train.eval_every": 2, "eval.num_examples": 4})
  result = loop.train(config, str(tmp_path / "run"))
  folder = tmp_path / "run" / "eval"
  assert sorted(p.name for p in folder.iterdir()) == ["system"]
  assert sorted(p.name for p in (folder / "system").iterdir()) == ["2.json", "4.json"]
  assert result.eval_results is result.evals["system"] and set(result.evals) == {"system"}
  assert result.eval_results["num_examples"] == 4
  saved = json.loads((folder / "system" / "4.json").read_text())
  assert saved == {"step": 4, **result.eval_results}
