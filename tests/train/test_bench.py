"""`psrjax bench`: every figure present and positive (no timing assertions), bad input."""
import json
import os

import pytest

from psrjax import cli
from psrjax.train import benchmark

HERE = os.path.dirname(os.path.abspath(__file__))
TOY_CONFIG = os.path.join(HERE, "toy_config.py")


def _bench(capsys, *extra):
  code = cli.main(["bench", "--config", TOY_CONFIG, "--steps", "2", "--probe-size", "128",
                   *extra])
  captured = capsys.readouterr()
  return code, captured.out, captured.err


def test_json_has_every_figure(capsys):
  code, out, err = _bench(capsys, "--json")
  assert code == 0, err
  result = json.loads(out.strip().splitlines()[-1])
  for key in benchmark.JSON_KEYS:
    assert result[key] > 0, (key, result)
  assert result["stage"] == "warmup" and result["num_devices"] == 8
  assert result["examples_per_s"] == pytest.approx(8 / result["step_time_s"])
  assert result["achieved_flops"] == pytest.approx(
      result["flops_per_step"] / result["step_time_s"])
  assert result["mfu"] == pytest.approx(result["achieved_flops"] / result["peak_flops"])
  assert result["compute_dtype"] == "float32" and result["data_workers"] == 0
  assert result["transfer_bytes_per_example"] < result["contract_bytes_per_example"]


def test_text_report_and_stage_choice(capsys):
  code, out, err = _bench(capsys, "--stage", "gan", "--config.train.grad_accum=2",
                          "--config.mesh.data=4", "--config.train.compute_dtype=bfloat16")
  assert code == 0, err
  assert "stage 'gan'" in out and "compute bfloat16" in out
  for label in ("compile", "step time", "examples/s", "input pipeline", "transfer",
                "FLOPs/step", "achieved", "peak (matmul)", "MFU", "memory", "temp", "arguments",
                "outputs"):
    assert label in out, out
  assert "FLOP/s (bfloat16)" in out


def test_flops_count_every_device(capsys):
  figures = []
  for data in ("1", "8"):
    code, out, err = _bench(capsys, "--json", f"--config.mesh.data={data}")
    assert code == 0, err
    figures.append(json.loads(out.strip().splitlines()[-1])["flops_per_step"])
  # One device computes the whole batch; eight compute an eighth each (plus the reductions).
  assert figures[1] == pytest.approx(figures[0], rel=0.05)


@pytest.mark.parametrize("extra,match", [
    (("--stage", "nosuch"), "--stage 'nosuch' is not a stage of this config; stages: warmup, gan"),
    (("--steps", "0"), "must be >= 1"),
    (("--pipeline-batches", "0"), "must be >= 1"),
    (("--config.train.data_workers=-2",), "train.data_workers=-2 is not a worker count"),
    (("--config.sharding.params=zero",), "sharding.params='zero' is not a strategy"),
])
def test_bad_input(capsys, extra, match):
  code, _, err = _bench(capsys, *extra)
  assert code == 2
  assert match in err.strip().splitlines()[-1]


def test_flops_of_library_calls_come_from_the_jaxpr(monkeypatch):
  """On a GPU the compiled program's convolutions and matrix products are cuDNN / cuBLAS calls
  its cost analysis counts as 0 FLOPs (here: a compiled program reporting none); the jaxpr's
  count stands in, and it agrees with XLA:CPU's count of a conv + dense step with gradients."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from psrjax.nn import jaxprs  # pylint: disable=import-outside-toplevel

  def loss(w, v, x):
    y = jax.lax.conv_general_dilated(x, w, (2, 2), "VALID", feature_group_count=2,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.sum(jnp.tanh(y.reshape(y.shape[0], -1) @ v))

  step = jax.jit(jax.grad(loss, argnums=(0, 1)))
  args = (jnp.ones((3, 3, 4, 16)), jnp.ones((4 * 4 * 16, 32)), jnp.ones((2, 10, 10, 8)))
  traced = step.trace(*args)
  compiled = traced.lower().compile()
  counted = jaxprs.matmul_flops(traced.jaxpr.jaxpr)
  assert counted == pytest.approx(benchmark._flops(compiled), rel=0.05)  # pylint: disable=protected-access
  assert benchmark.library_flops(traced, compiled) == 0.0   # the CPU counts them itself
  no_calls = type("Compiled", (), {"cost_analysis": lambda self: {"flops": 0.0}})()
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert benchmark.library_flops(traced, no_calls) == counted
