"""config.evals entries: cadence in training, JSON + metric writers, psrjax eval, bad fields."""
import json
import os

import pytest

import toy_system
from psrjax import cli
from psrjax import evals
from psrjax.train import context
from psrjax.train import loop
from psrjax.train import writers


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  config = toy_system.toy_config(**{"toy.eval_clips": 10})
  config.evals.per_example = dict(type="system", every=2, num_examples=6, batch_size=16)
  config.evals.offline = dict(type="system", every=-1, num_examples=3, split="test")
  workdir = tmp_path_factory.mktemp("declared") / "run"
  return loop.train(config, str(workdir))


def test_runs_every_n_steps_and_at_the_end(trained):
  folder = os.path.join(trained.workdir, "eval")
  assert sorted(os.listdir(os.path.join(folder, "per_example"))) == ["2.json", "4.json"]
  assert not os.path.exists(os.path.join(folder, "offline"))
  assert os.path.isfile(os.path.join(folder, "4.json"))   # the config.eval block still runs
  results = trained.evals["per_example"]
  assert results["num_examples"] == 6 and results["index"] == pytest.approx(2.5)
  assert results["index/even"] == pytest.approx(2.0) and results["index/odd"] == pytest.approx(3.0)
  saved = json.loads(open(os.path.join(folder, "per_example", "4.json")).read())
  assert saved == {"step": 4, **results}
  scalars = {r["step"]: r for r in writers.read_metrics(trained.workdir) if "eval/per_example/index" in r}
  assert sorted(scalars) == [2, 4]
  assert scalars[4]["eval/per_example/l1"] == pytest.approx(results["l1"])


def test_psrjax_eval_runs_selected_entries(trained, capsys):
  assert cli.main(["eval", "--workdir", trained.workdir, "--evals", "offline"]) == 0
  printed = json.loads(capsys.readouterr().out)
  assert printed["offline/num_examples"] == 3 and printed["offline/index"] == pytest.approx(1.0)
  assert "l1" not in printed   # the config.eval block was not asked for
  assert os.path.isfile(os.path.join(trained.workdir, "eval", "offline", "4.json"))
  assert cli.main(["eval", "--workdir", trained.workdir, "--evals", "fvd"]) == 2
  assert "no eval named fvd in config.evals (declared: offline, per_example)" in capsys.readouterr().err


@pytest.mark.parametrize("entry,message", [
    (dict(type="psnr"), r"type='psnr' is not an eval type; use one of system, fid"),
    (dict(type="system", every=-2), r"every must be an int >= -1"),
    (dict(type="system", resolution=3), r"unknown field\(s\) resolution for type 'system'; allowed: "),
    (dict(type="fvd", resolution=32), r"set prediction=<the generate\(\) output to score> or declare ToySystem.eval_prediction"),
    (dict(type="fvd", prediction="fake", target="video"), r"target 'video' is not a batch key; keys: index, rgb, src"),
    (dict(type="system", batch_size=-1), r"evals.bad.batch_size=-1 must be a positive multiple"),
    (dict(type="fid", prediction="fake", target="rgb"), r"inception_v3_fid weights not found"),
])
def test_bad_fields_are_one_line_errors(tmp_path, entry, message):
  config = toy_system.toy_config()
  ctx = context.build_context(config, str(tmp_path / "run"))
  with pytest.raises((ValueError, FileNotFoundError), match=message):
    evals.build_one("bad", entry, config=config, system=ctx.system, mesh=ctx.mesh, workdir=None)
