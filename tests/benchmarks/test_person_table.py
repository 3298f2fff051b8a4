"""benchmarks/person_table.py's `--runs`: config args may hold commas (a prepared dataset)."""
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from benchmarks import person_table  # noqa: E402  pylint: disable=g-import-not-at-top


def test_runs_split_where_a_label_and_config_file_follow():
  runs = person_table.parse_runs(
      "p:configs/pix2pixhd.py:runlocal,data=/d/carphone:runs/p,"
      "v:configs/vid2vid.py:runlocal,data=/d/carphone,batch=1:runs/v, r:configs/edn.py:runs/r")
  assert runs == [("p", "configs/pix2pixhd.py:runlocal,data=/d/carphone", "runs/p"),
                  ("v", "configs/vid2vid.py:runlocal,data=/d/carphone,batch=1", "runs/v"),
                  ("r", "configs/edn.py", "runs/r")]


def test_a_run_without_a_workdir_is_refused():
  with pytest.raises(ValueError, match="label:config.py"):
    person_table.parse_runs("p:configs/pix2pixhd.py")
