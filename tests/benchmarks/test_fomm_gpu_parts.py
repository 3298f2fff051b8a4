"""benchmarks/fomm_gpu_parts.py: its parts compile, run and are recorded (tiny sizes, CPU)."""
import json

import pytest

import fomm_gpu_parts


def test_parts_are_timed_and_written(tmp_path, capsys):
  out = tmp_path / "parts.json"
  assert fomm_gpu_parts.main(["--tiny", "--batch", "2", "--runs", "2", "--parts",
                              "discriminator,sample_features,resize_flow,max_pool",
                              "--out", str(out)]) == 0
  report = json.loads(out.read_text())
  assert report["platform"] == "cpu" and report["size"] == 32 and report["dtype"] == "bfloat16"
  assert list(report["parts"]) == ["discriminator", "sample_features", "resize_flow", "max_pool"]
  for part in report["parts"].values():
    assert "error" not in part, part
    assert part["compile_s"] > 0 and part["step_s"] > 0 and 1 <= len(part["times_s"]) <= 2
  assert "sample_features" in capsys.readouterr().out


def test_a_failing_part_is_recorded_and_the_others_run(tmp_path, monkeypatch):
  class Broken:
    def lower(self, *args):
      raise RuntimeError("no such kernel")
  parts = fomm_gpu_parts._op_parts
  monkeypatch.setattr(fomm_gpu_parts, "_op_parts", lambda *a: {
      **parts(*a), "max_pool": (Broken(), ())})
  out = tmp_path / "parts.json"
  fomm_gpu_parts.main(["--tiny", "--batch", "1", "--runs", "1", "--parts",
                       "max_pool,resize_flow", "--out", str(out)])
  report = json.loads(out.read_text())["parts"]
  assert report["max_pool"]["error"] == "RuntimeError: no such kernel"
  assert report["resize_flow"]["step_s"] > 0


def test_unknown_parts_are_refused():
  with pytest.raises(SystemExit):
    fomm_gpu_parts.main(["--tiny", "--parts", "nosuch"])
