"""benchmarks/results_table.py: the README tables' generator."""
from __future__ import annotations

import os

import pytest

import results_table

RESULTS = {"ssim/copy": 0.3, "ssim/layer1": 0.5, "psnr/copy": 17.08, "psnr/layer1": 19.36,
           "fid/copy": 40.0, "fid/layer1": 30.0, "tempe/copy": 0.00101, "tempe/layer1": 0.000865,
           "num_examples": 6.0}


def test_table_marks_the_best_of_each_column():
  text = results_table.table(RESULTS, [("copy", "copy the input"), ("layer1", "layer 1")],
                             [("ssim", "SSIM"), ("psnr", "PSNR"), ("fid", "FID"), ("tempe", "E")],
                             lower=("fid", "tempe"))
  assert text.splitlines() == [
      "| output | SSIM | PSNR | FID | E |", "|---|---|---|---|---|",
      "| copy the input | 0.3000 | 17.08 | 40.00 | 0.00101 |",
      "| layer 1 | **0.5000** | **19.36** | **30.00** | **0.000865** |"]


def test_missing_metrics_name_what_the_evaluation_has():
  with pytest.raises(ValueError, match=r"has no m_ssim/copy, m_ssim/layer1; it has .*ssim/copy"):
    results_table.table(RESULTS, [("copy", "copy"), ("layer1", "l1")], [("m_ssim", "M")])


def test_machine_names_the_vector_extensions():
  assert "cores" in results_table.machine()


def test_final_results_add_the_evals_that_name_their_prediction(tmp_path):
  import json
  import ml_collections
  for name, content in (("system", {"psnr/fused": 21.0, "num_examples": 4.0}),
                        ("vfid", {"vfid": 12.5, "num_examples": 4.0}),
                        ("fvd", {"fvd": 99.0})):
    os.makedirs(tmp_path / "eval" / name)
    (tmp_path / "eval" / name / "7.json").write_text(json.dumps(content))
  config = ml_collections.ConfigDict({"evals": {
      "vfid": {"type": "vfid", "prediction": "fused"}, "fvd": {"type": "fvd"},
      "vfid_single": {"type": "vfid", "prediction": "single"}}})   # no results at step 7
  assert results_table.final_results(config, str(tmp_path), 7) == {
      "psnr/fused": 21.0, "num_examples": 4.0, "vfid/fused": 12.5}
