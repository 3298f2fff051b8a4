"""Compute dtype: float32 parameters, computation in float32 or bfloat16.

With `train.compute_dtype = "bfloat16"` the train step casts, at the system boundary, every
floating parameter (trained and frozen groups and the system's constants) and every floating
batch input to bfloat16 before calling the stage's forward and phase losses. Gradients flow back through the casts
into the float32 parameters, the optimizers update float32 values, and the loss terms are
reported in float32. bfloat16 has float32's exponent range, so no loss scaling is needed
(float16, which would need it, is not offered). Evaluation, samples and inference run in float32.

What the layers do (`psrjax.nn.policy`): every psrjax model and layer computes in its explicit
`dtype` when one is given and otherwise in the dtype of its input, creates its parameters in
float32 and casts them where they are used, keeps normalisation statistics in float32, and returns
its outputs in the compute dtype. So under bfloat16 every convolution, transposed convolution and
matrix product of the bundled systems runs in bfloat16 (`tests/systems/test_accelerator_path.py`
checks the traced and the lowered steps). On the CPU, psrjax's oneDNN convolutions use bfloat16
kernels where the CPU has them and otherwise compute in float32 and round
(`psrjax.nn.cpu.onednn.bf16_native`).

What a system's own code should do:

- Build its modules with `dtype=None` (the default) so they follow the cast inputs. Arrays the
  system creates itself (noise, grids, constants) should take the dtype of an input
  (`jax.random.normal(key, x.shape, x.dtype)`); a float32 array promotes a whole expression back
  to float32.
- Name batch keys whose values need float32 precision (pixel coordinates, flow, camera matrices)
  in the optional attribute `float32_inputs: tuple[str, ...]`; they are not cast. Coordinate
  arithmetic inside the step goes under `psrjax.nn.policy.float32_geometry`.
- Reduce losses in float32: `x.astype(jnp.float32).mean()`.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import jax
import jax.numpy as jnp

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
AUTO = "auto"  # bfloat16 on GPU and TPU, float32 on the CPU


def compute_dtype(config, platform: str | None = None) -> Any:
  """The jnp dtype named by `config.train.compute_dtype` (one-line error if unknown); "auto" is
  bfloat16 on accelerators and float32 on the CPU (`platform`, default JAX's default backend),
  where bfloat16 has no fast kernels on most CPUs and float32 keeps CPU runs as they were."""
  name = config.train.compute_dtype
  if name == AUTO:
    name = "float32" if (platform or jax.default_backend()) == "cpu" else "bfloat16"
  if name not in COMPUTE_DTYPES:
    raise ValueError(f"train.compute_dtype={name!r} is not supported; use one of "
                     f"{', '.join(map(repr, (*COMPUTE_DTYPES, AUTO)))}")
  return COMPUTE_DTYPES[name]


def cast_floats(tree: Any, dtype: Any) -> Any:
  """`tree` with every floating-point leaf cast to `dtype` (integer/bool leaves unchanged)."""

  def cast(x):
    if jnp.issubdtype(jnp.result_type(x), jnp.floating):
      return jnp.asarray(x).astype(dtype)
    return x

  return jax.tree.map(cast, tree)


def cast_batch(batch: Mapping[str, Any], dtype: Any, *,
               keep: Iterable[str] = ()) -> dict[str, Any]:
  """The batch with its floating inputs cast to `dtype`, except the keys in `keep`."""
  keep = frozenset(keep)
  return {k: v if k in keep else cast_floats(v, dtype) for k, v in batch.items()}
