"""Evaluator: padded final batches count every example exactly once; per-group means."""
import json

import numpy as np
import pytest

import toy_system
from psrjax.train import context
from psrjax.train import evaluator as evaluator_lib
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
  results = evaluator_lib.Evaluator(ctx.system, config, ctx.mesh).run(_params(ctx))
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
  assert ctx.evaluator.data.batch_size == padded
  batches = list(ctx.evaluator.data.batches())
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
    evaluator_lib.Evaluator(system, config, ctx.mesh).run(_params(ctx))


def test_write_results(tmp_path):
  records = []

  class Writer:
    def write_scalars(self, step, scalars):
      records.append((step, dict(scalars)))

  path = evaluator_lib.write_results(str(tmp_path), 7, {"psnr": 20.5}, Writer())
  assert path.endswith("eval/7.json")
  assert records == [(7, {"eval/psnr": 20.5})]
  assert json.loads((tmp_path / "eval" / "7.json").read_text()) == {"step": 7, "psnr": 20.5}
