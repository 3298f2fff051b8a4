"""Every system's train step on the accelerator path, checked on the CPU.

- Lowered for TPU and for CUDA (`lowering_platforms`, no hardware needed) with the convolution
  implementation GPUs and TPUs run (`model.conv_impl="xla"`, a field of every system): the
  module makes no CPU-only call, and under `train.compute_dtype="bfloat16"` every convolution and
  matrix product is bfloat16 (but the float32 coordinate geometry,
  `psrjax.nn.policy.float32_geometry`).
- Traced on the CPU path (psrjax's oneDNN calls where built) under bfloat16: the same holds for
  every convolution, matrix product and CPU convolution call in the step's jaxpr.
"""
import functools
import glob
import os
import sys

import jax
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train"))

import train_harness  # noqa: E402
from psrjax.train import context, lowering, partitioning  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
SYSTEMS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(CONFIGS, "*.py")))
# What each system's tiny variant leaves out but the check must cover (pretrained perceptual nets).
EXTRA = {"psrnet": {"loss.perceptual": 0.01}, "mfci": {"loss.vgg": 0.2},
         "pix2pixhd": {"loss.vgg": 10.0}, "edn": {"loss.vgg": 10.0, "loss.warp": 1.0}}


def _config(name: str, **overrides):
  config = train_harness.config_with(os.path.join(CONFIGS, f"{name}.py:tiny"))
  for key, value in {**EXTRA.get(name, {}), **overrides}.items():
    train_harness.config_utils.apply_override(config, key, str(value))
  return config


@functools.cache
def _traced(name: str, conv_impl: str | None, dtype: str):
  """(stage name, traced step) for every stage of system `name` on one device; `conv_impl`
  None keeps the config's `model.conv_impl`."""
  overrides = {"train.compute_dtype": dtype}
  if conv_impl is not None:
    overrides["model.conv_impl"] = conv_impl
  config = _config(name, **overrides)
  ctx = context.build_context(config, None, devices=jax.devices()[:1])
  batch = partitioning.abstract_batch(ctx.first_batch, ctx.batch_sharding, config.train.batch_size)
  args = (ctx.restore_target(), batch, ctx.base_key, ctx.constants)
  return tuple((stage.name, ctx.jit_step(stage).trace(*args)) for stage in ctx.stages)


def test_every_shipped_system_is_checked():
  assert {"psrnet", "mfci", "pix2pixhd", "edn"} <= set(SYSTEMS)


@pytest.mark.parametrize("platform", ["tpu", "cuda"])
@pytest.mark.parametrize("name", SYSTEMS)
def test_train_step_lowers_for_accelerators_in_bfloat16(name, platform):
  for stage, traced in _traced(name, "xla", "bfloat16"):
    text = traced.lower(lowering_platforms=(platform,)).as_text()
    cpu_calls = {t for t in lowering.custom_call_targets(text)
                 if t.startswith(lowering.CPU_CONV_TARGET_PREFIX)}
    assert not cpu_calls, (stage, cpu_calls)
    convs = [types for op, types in lowering.compute_dtypes(text) if op == "stablehlo.convolution"]
    assert convs, stage
    wide = [types for types in convs if set(types) != {"bf16"}]
    assert not wide, (stage, wide[:5])
    # Matrix products (outside the float32 coordinate geometry) are checked on the jaxpr.
    products = [d for op, d in lowering.jaxpr_compute_dtypes(traced.jaxpr) if op == "dot_general"]
    assert all(set(d) == {"bfloat16"} for d in products), (stage, products[:5])


@pytest.mark.parametrize("name", SYSTEMS)
def test_bfloat16_reaches_every_convolution_on_the_cpu_path(name):
  for stage, traced in _traced(name, None, "bfloat16"):
    ops = lowering.jaxpr_compute_dtypes(traced.jaxpr)
    assert ops, stage
    wide = [(op, dtypes) for op, dtypes in ops if set(dtypes) != {"bfloat16"}]
    assert not wide, (stage, wide[:5])


def test_float32_steps_are_float32():
  """The check is not vacuous: the default float32 step has float32 convolutions."""
  (_, traced), *_ = _traced("psrnet", "xla", "float32")
  ops = lowering.compute_dtypes(traced.lower(lowering_platforms=("tpu",)).as_text())
  assert ops and all(set(types) == {"f32"} for _, types in ops)


def test_hlo_readers_on_a_known_module():
  import jax.numpy as jnp
  x = jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.bfloat16)
  k = jax.ShapeDtypeStruct((3, 3, 3, 4), jnp.float32)
  conv = lambda x, k: jax.lax.conv_general_dilated(
      x.astype(jnp.float32), k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  text = lowering.lower_text(jax.jit(conv), (x, k), "cuda")
  assert lowering.compute_dtypes(text) == [("stablehlo.convolution", ("f32", "f32"))]
  assert lowering.custom_call_targets(text) == set()
