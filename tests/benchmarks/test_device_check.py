"""benchmarks/device_check.py: its tiny mode end to end (the CPU run of the GPU check's code
paths), its HLO convolution reader, the datasheet peaks, the placeholder weights, and the
wheelhouse list it is installed from."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

import device_check

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "benchmarks", "device_check.py")



def _run(tmp_path, *args, timeout=600):
  out = tmp_path / "device_check.json"
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
  env.pop("OUT", None)
  proc = subprocess.run([sys.executable, SCRIPT, "--tiny", "--out", str(out), *args], env=env,
                        cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  return json.loads(out.read_text()), proc.stdout


def test_tiny_run_reports_every_figure_and_records_failures(tmp_path):
  # A missing config and a config that fails inside the child (a batch of 4 cannot be split
  # into 3 microbatches) are recorded; the system between them is measured all the same.
  report, stdout = _run(tmp_path, "--systems", "nosuch,pix2pixhd,pix2pix",
                        "--set", "pix2pix:train.grad_accum=3")
  assert report["platform"] == "cpu" and report["tiny"] and report["jax"] == jax.__version__
  systems = report["systems"]
  assert list(systems) == ["nosuch", "pix2pixhd", "pix2pix"]
  for figures in systems.values():
    assert set(device_check.FIELDS) <= set(figures)
  assert "nosuch.py" in systems["nosuch"]["error"]
  assert "grad_accum" in systems["pix2pix"]["error"] or "microbatch" in systems["pix2pix"]["error"]
  assert systems["pix2pix"]["log_tail"]
  good = systems["pix2pixhd"]
  assert "error" not in good, good
  assert good["compute_dtype"] == "bfloat16" and good["batch_size"] == 4
  assert good["compile_s"] > 0 and good["step_s"] > 0 and len(good["step_times_s"]) == 1
  assert good["flops_per_step"] > 0 and good["tflops"] == pytest.approx(
      good["flops_per_step"] / good["step_s"] / 1e12)
  assert good["peak_fraction"] is None and good["datasheet_peak_tflops"] is None  # CPU
  assert "peak_bytes_in_use" in good and good["compiled_memory_bytes"] > 0
  assert sum(good["conv_dtypes"].values()) > 0 and "unknown" not in good["conv_dtypes"]
  assert good["f32_convs"] == sum(n for k, n in good["conv_dtypes"].items() if "f32" in k)
  assert good["pipeline_examples_per_s"] > 0 and good["pipeline_batches_timed"] == 2
  assert good["pipeline_first_batches_s"] > 0
  assert good["phase"] == "done"
  # The traced step: its time by part of the step, and the slowest instructions named.
  assert good["profile_step_s"] > 0 and any("forward" in p for p in good["profile_parts_s"])
  assert good["profile_top"] and all(len(row) == 4 and row[0] >= 0 for row in good["profile_top"])
  assert "pix2pixhd" in stdout and "ERROR" in stdout  # the table


def test_budget_and_timeout_are_recorded(tmp_path):
  report, _ = _run(tmp_path, "--systems", "pix2pixhd,pix2pix", "--budget", "1",
                   "--min-system", "5")
  assert all(r["error"] == "skipped: time budget exhausted" for r in report["systems"].values())
  report, _ = _run(tmp_path, "--systems", "pix2pixhd", "--pipeline-seconds", "0")
  assert report["systems"]["pix2pixhd"]["pipeline_batches_timed"] == 1  # stopped after 0 s
  report, _ = _run(tmp_path, "--systems", "pix2pixhd", "--steps", "5", "--step-seconds", "0",
                   "--profile-steps", "0", "--pipeline-batches", "1")
  figures = report["systems"]["pix2pixhd"]
  assert len(figures["step_times_s"]) == 1 and figures["profile_top"] is None  # cut short
  report, _ = _run(tmp_path, "--systems", "pix2pixhd", "--system-timeout", "2")
  assert report["systems"]["pix2pixhd"]["error"].startswith("timed out after 2 s")


GPU_HLO = """\
  %p1 = bf16[4,3,3,3]{3,2,1,0} parameter(1)
  %cudnn-conv.1 = (bf16[1,8,8,4]{3,2,1,0}, u8[0]{0}) custom-call(bf16[1,8,8,3]{3,2,1,0} %p0, bf16[4,3,3,3]{3,2,1,0} %p1), window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_o01i->b01f, custom_call_target="__cudnn$convForward", backend_config={"a":1}
  %cublas.1 = (bf16[8,8]{1,0}, s8[4]{0}) custom-call(bf16[8,8]{1,0} %a, bf16[8,8]{1,0} %b), custom_call_target="__cublas$lt$matmul"
  %p2 = f32[1,8,8,3]{3,2,1,0} parameter(2)
  %cudnn-conv.2 = (f32[3,3,3,4]{3,2,1,0}, u8[0]{0}) custom-call(%p2, %p1), window={size=3x3}, custom_call_target="__cudnn$convBackwardFilter", metadata={op_name="jit(step)/warp/conv"}
  ROOT %convolution.3 = bf16[1,8,8,4]{3,2,1,0} convolution(%p0, %p1), window={size=3x3}
"""


def test_conv_dtypes_of_gpu_text():
  counts, f32_ops = device_check.conv_dtypes("  %p0 = bf16[1,8,8,3]{3,2,1,0} parameter(0)\n"
                                             + GPU_HLO)
  assert counts == {"bf16": 2, "bf16,f32": 1}
  assert f32_ops == ["jit(step)/warp/conv"]


def test_conv_dtypes_of_a_compiled_cpu_module():
  conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  x, k = jnp.zeros((1, 8, 8, 3)), jnp.zeros((3, 3, 3, 4))
  counts, f32_ops = device_check.conv_dtypes(jax.jit(conv).lower(x, k).compile().as_text())
  assert counts == {"f32": 1} and len(f32_ops) == 1


def test_datasheet_peaks():
  assert device_check.datasheet_peak("NVIDIA H100 80GB HBM3") == 989e12
  assert device_check.datasheet_peak("NVIDIA H100 PCIe") == 756e12
  assert device_check.datasheet_peak("NVIDIA H200") == 989e12
  assert device_check.datasheet_peak("NVIDIA A100-SXM4-80GB") == 312e12
  assert device_check.datasheet_peak("cpu") is None


def test_placeholder_weights_load_as_the_network(tmp_path):
  from psrjax.models import pretrained  # pylint: disable=g-import-not-at-top
  path = device_check.placeholder_file("vgg16", str(tmp_path))
  variables = pretrained.load_variables("vgg16", path)  # checks every key and shape
  kernels = [v for k, v in pretrained.weights_lib.flatten_dict(variables).items()
             if k[-1] == "kernel"]
  assert len(kernels) == 13 and all(0 < float(jnp.std(k)) < 1 for k in kernels)


def test_wheelhouse_has_no_tensorflow():
  with open(os.path.join(REPO, "benchmarks", "wheelhouse.txt")) as f:
    names = [line.split("==")[0].strip().lower() for line in f
             if line.strip() and not line.lstrip().startswith("#")]
  assert names and not [n for n in names if "tensorflow" in n or n in ("tf-nightly", "tfds")]
  assert all("==" in line for line in open(os.path.join(REPO, "benchmarks", "wheelhouse.txt"))
             if line.strip() and not line.lstrip().startswith("#"))


def test_batches_and_defaults():
  args = device_check.parse_args(["--out", "x.json"])
  assert args.systems == list(device_check.SYSTEMS) and args.steps == 5
  assert args.batch_for == {"internet": 8}  # 16 does not fit one H100 (psrjax plan)
  args = device_check.parse_args(["--batch", "internet=16", "--batch", "fomm=4", "--out", "x"])
  assert args.batch_for == {"internet": 16, "fomm": 4}
  args = device_check.parse_args(["--tiny", "--systems", "pix2pixhd"])
  assert args.batch_for == {} and args.steps == 1 and args.workers == 0


def test_paper_configs_render_on_the_device():
  config = device_check.system_config("psrnet", tiny=False, batch=None, workers=3, sets=[])
  assert config.data.prerendered == "" and config.train.compute_dtype == "bfloat16"
  assert config.train.data_workers == 3 and config.train.batch_size == 8
  config = device_check.system_config("psrnet", tiny=False, batch=2, workers=0,
                                      sets=[("data.prerendered", "/data/tfds")])
  assert config.data.prerendered == "/data/tfds" and config.train.batch_size == 2
