"""Workdirs an earlier version wrote (tests/data/data/old_workdirs, see its README) still resume,
evaluate and synthesize: the resumed steps train as the earlier version trained them, and the
final evaluation reports the same metrics (names and values)."""
import json
import os
import shutil

import numpy as np
import pytest

import train_harness
from psrjax import cli
from psrjax import config_utils
from psrjax.train import loop
from psrjax.train import writers

OLD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "data",
                   "old_workdirs")
NAMES = [pytest.param(n, marks=pytest.mark.xdist_group(n), id=n) for n in ("pix2pixhd", "edn", "mfci")]


@pytest.mark.parametrize("name", NAMES)
def test_old_workdir_resumes_evaluates_and_synthesizes(name, system_runs, tmp_path, capsys):
  system_runs(name).straight   # the 8-device programs of the same config, in the compilation cache
  workdir = tmp_path / name
  shutil.copytree(os.path.join(OLD, name), workdir)
  before = {r["step"]: r for r in writers.read_metrics(str(workdir)) if "g/total" in r}
  with open(workdir / "eval" / "system" / "4.json") as f:
    old_eval = {k: v for k, v in json.load(f).items() if k != "step"}
  result = loop.train(config_utils.load_workdir_config(str(workdir)), str(workdir))
  assert result.step == 4 and not result.preempted
  # Steps 3 and 4 from the step-2 checkpoint, as the earlier version trained them (on 1 device,
  # maybe another CPU: to float tolerance).
  for record in result.history:
    want = {k: v for k, v in train_harness.losses(before[record["step"]]).items()
            if not k.startswith("perf/")}
    got = train_harness.losses(record)
    assert got.keys() == want.keys()
    for key, value in want.items():
      train_harness.assert_close(got[key], value, rtol=1e-4, err_msg=f"{key} {record['step']}")
  assert set(result.eval_results) == set(old_eval)
  for key, value in old_eval.items():
    np.testing.assert_allclose(result.eval_results[key], value, rtol=1e-3, atol=1e-6, err_msg=key)
  assert cli.main(["eval", "--workdir", str(workdir)]) == 0, capsys.readouterr().err
  out = tmp_path / "out.gif"
  assert cli.main(["synthesize", "--workdir", str(workdir), "--out", str(out)]) == 0, \
      capsys.readouterr().err
  assert out.stat().st_size > 0
