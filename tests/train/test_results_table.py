"""benchmarks/results_table.py: the README tables' generator."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import results_table  # noqa: E402

RESULTS = {"ssim/copy": 0.3, "ssim/layer1": 0.5, "psnr/copy": 17.08, "psnr/layer1": 19.36,
           "fid/copy": 40.0, "fid/layer1": 30.0, "num_examples": 6.0}


def test_table_marks_the_best_of_each_column():
  text = results_table.table(RESULTS, [("copy", "copy the input"), ("layer1", "layer 1")],
                             [("ssim", "SSIM"), ("psnr", "PSNR"), ("fid", "FID")], lower=("fid",))
  assert text.splitlines() == [
      "| output | SSIM | PSNR | FID |", "|---|---|---|---|",
      "| copy the input | 0.3000 | 17.08 | 40.00 |",
      "| layer 1 | **0.5000** | **19.36** | **30.00** |"]


def test_missing_metrics_name_what_the_evaluation_has():
  with pytest.raises(ValueError, match=r"has no m_ssim/copy, m_ssim/layer1; it has .*ssim/copy"):
    results_table.table(RESULTS, [("copy", "copy"), ("layer1", "l1")], [("m_ssim", "M")])


def test_machine_names_the_vector_extensions():
  assert "cores" in results_table.machine()
