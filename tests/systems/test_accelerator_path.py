"""The readers behind the accelerator-path checks of every system (test_conformance.py): the
convolutions' and matrix products' dtypes of a lowered module, its custom calls, and a float32
step that they report as float32 (the bfloat16 checks are not vacuous)."""
import jax
import jax.numpy as jnp

import conformance
from psrjax.train import context, lowering, partitioning


def test_float32_steps_are_float32():
  config = conformance.tiny_config("pix2pixhd", **{"model.conv_impl": "xla"})
  ctx = context.build_context(config, None, devices=jax.devices()[:1], evals=())
  batch = partitioning.abstract_batch(ctx.first_batch, ctx.batch_sharding, config.train.batch_size)
  traced = ctx.jit_step(ctx.stages[0]).trace(ctx.restore_target(), batch, ctx.base_key,
                                             ctx.constants)
  ops = lowering.compute_dtypes(traced.lower(lowering_platforms=("tpu",)).as_text())
  assert ops and all(set(types) == {"f32"} for _, types in ops)


def test_hlo_readers_on_a_known_module():
  x = jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.bfloat16)
  k = jax.ShapeDtypeStruct((3, 3, 3, 4), jnp.float32)
  conv = lambda x, k: jax.lax.conv_general_dilated(
      x.astype(jnp.float32), k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  text = lowering.lower_text(jax.jit(conv), (x, k), "cuda")
  assert lowering.compute_dtypes(text) == [("stablehlo.convolution", ("f32", "f32"))]
  assert lowering.custom_call_targets(text) == set()
