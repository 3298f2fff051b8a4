"""config.evals entries: cadence in training, JSON + metric writers, psrjax eval, bad fields,
entries added on the command line, and no import of psrjax.train from psrjax.evals."""
import ast
import glob
import json
import os
import subprocess
import sys

import pytest

import toy_system
from psrjax import cli
from psrjax import evals
from psrjax.train import context
from psrjax.train import evaluator as evaluator_lib
from psrjax.train import loop
from psrjax.train import writers

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TOY_CONFIG = os.path.join(REPO, "tests", "train", "toy_config.py")


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
  # The system's own metrics are the `system` entry added from train.eval_every=0: at the end.
  assert sorted(os.listdir(folder)) == ["per_example", "system"]
  assert sorted(os.listdir(os.path.join(folder, "system"))) == ["4.json"]
  assert set(trained.evals) == {"per_example", "system"}
  assert trained.eval_results == trained.evals["system"]
  assert trained.eval_results["num_examples"] == 10   # the config.eval block: every example
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
  assert {k.split("/")[0] for k in printed if k != "step"} == {"offline"}
  assert os.path.isfile(os.path.join(trained.workdir, "eval", "offline", "4.json"))
  assert cli.main(["eval", "--workdir", trained.workdir, "--evals", "fvd"]) == 2
  assert ("no eval named fvd in config.evals (declared: offline, per_example, system)"
          in capsys.readouterr().err)


def test_psrjax_eval_runs_everything_and_only_system(trained, capsys):
  assert cli.main(["eval", "--workdir", trained.workdir]) == 0
  printed = json.loads(capsys.readouterr().out)
  assert printed["step"] == 4
  assert {k.split("/")[0] for k in printed if k != "step"} == {"offline", "per_example", "system"}
  assert printed["system/num_examples"] == 10
  assert printed["system/l1"] == pytest.approx(trained.eval_results["l1"], rel=1e-6)
  assert cli.main(["eval", "--workdir", trained.workdir, "--evals", "system"]) == 0
  printed = json.loads(capsys.readouterr().out)
  assert {k.split("/")[0] for k in printed if k != "step"} == {"system"}
  saved = json.loads(open(os.path.join(trained.workdir, "eval", "system", "4.json")).read())
  assert saved == {"step": 4, **{k[len("system/"):]: v for k, v in printed.items() if k != "step"}}


def test_psrjax_eval_adds_an_entry_from_the_command_line(trained, capsys):
  assert cli.main(["eval", "--workdir", trained.workdir, "--evals", "extra",
                   "--config.evals.extra=dict(type='system', num_examples=2, split='test')"]) == 0
  printed = json.loads(capsys.readouterr().out)
  assert printed["extra/num_examples"] == 2 and printed["extra/index"] == pytest.approx(0.5)
  assert os.path.isfile(os.path.join(trained.workdir, "eval", "extra", "4.json"))


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
    evaluator_lib.build_one("bad", entry, config=config, system=ctx.system, mesh=ctx.mesh,
                            workdir=None)
  # Declared in the config, the same entry fails in build_context, before anything is written.
  config.evals.bad = entry
  with pytest.raises((ValueError, FileNotFoundError), match=message):
    context.build_context(config, str(tmp_path / "other"))
  assert not (tmp_path / "other").exists()


def _train(workdir, *extra, arg="train.steps=2"):
  return cli.main(["train", "--config", f"{TOY_CONFIG}:{arg}", "--workdir", str(workdir), *extra])


def test_cli_adds_evals_and_overrides_system_fields(tmp_path, capsys):
  workdir = tmp_path / "run"
  assert _train(workdir, "--config.evals.small=dict(type='system', every=1, num_examples=3)",
                '--config.evals.tiny={"type": "system", "every": -1, "num_examples": 1}',
                "--config.evals.system.every=1", "--config.evals.system.num_examples=4",
                "--config.evals.small.batch_size=2") == 0
  folder = workdir / "eval"
  assert sorted(os.listdir(folder)) == ["small", "system"]
  assert sorted(os.listdir(folder / "small")) == ["1.json", "2.json"]
  assert sorted(os.listdir(folder / "system")) == ["1.json", "2.json"]
  assert json.loads((folder / "system" / "2.json").read_text())["num_examples"] == 4
  assert json.loads((folder / "small" / "2.json").read_text())["num_examples"] == 3
  saved = json.loads((workdir / "config.json").read_text())["evals"]
  assert saved == {"small": {"type": "system", "every": 1, "num_examples": 3, "batch_size": 2},
                   "tiny": {"type": "system", "every": -1, "num_examples": 1},
                   "system": {"type": "system", "every": 1, "num_examples": 4}}


@pytest.mark.parametrize("extra,match", [
    (("--config.evals.fid=fid",),
     "config key 'evals.fid' adds an eval: expected dict(type='<type>'"),
    (("--config.evals.fid=dict(type=fid)",), "config key 'evals.fid' adds an eval: expected"),
    (("--config.evals.fid=dict(type=__import__('os').getcwd())",), "adds an eval: expected"),
    (("--config.evals.fid=dict(**{'type': 'fid'})",), "adds an eval: expected"),
    (("--config.evals.fid=[1, 2]",), "adds an eval: expected"),
    (("--config.evals.fid.every=3",), "config.evals has no entry 'fid' (declared: none); add one"),
    (("--config.evals.fid=dict(type='fvdd')",), "config.evals.fid.type='fvdd' is not an eval type"),
    (("--config.evals.system.resolution=3",),
     r"config.evals.system: unknown field(s) resolution for type 'system'"),
    (("--config.evals.fid=dict(type='fid', every='often')",),
     "config.evals.fid.every must be an int"),
])
def test_cli_bad_evals_are_one_line_and_write_nothing(tmp_path, capsys, extra, match):
  workdir = tmp_path / "run"
  assert _train(workdir, *extra) == 2
  line = capsys.readouterr().err.strip().splitlines()[-1]
  assert line.startswith("psrjax train: error: ") and match in line, line
  assert not workdir.exists()


def _imports(node, package: list[str]) -> list[str]:
  """Modules an import statement of a module of `package` names (relative ones resolved)."""
  if isinstance(node, ast.Import):
    return [a.name for a in node.names]
  if isinstance(node, ast.ImportFrom):
    base = package[:len(package) - node.level + 1] if node.level else []
    module = ".".join(base + ([node.module] if node.module else []))
    return [module] + [f"{module}.{a.name}" for a in node.names]
  return []


def test_evals_never_import_the_trainer():
  """psrjax.train imports psrjax.evals, never the reverse: no import cycle."""
  paths = glob.glob(os.path.join(REPO, "psrjax", "evals", "*.py"))
  assert len(paths) >= 10
  for path in paths:
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
      bad = [n for n in _imports(node, ["psrjax", "evals"])
             if n == "psrjax.train" or n.startswith("psrjax.train.")]
      assert not bad, f"{os.path.relpath(path, REPO)}:{node.lineno} imports {bad}"
  code = ("import importlib, pkgutil, sys, psrjax.evals as e\n"
          "for m in pkgutil.iter_modules(e.__path__):\n"
          "  importlib.import_module('psrjax.evals.' + m.name)\n"
          "print(sorted(m for m in sys.modules if m.startswith('psrjax.train')))")
  out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=REPO),
                       capture_output=True, text=True, check=True).stdout
  assert out.strip().splitlines()[-1] == "[]"
