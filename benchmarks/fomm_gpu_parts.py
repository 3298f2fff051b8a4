r"""FOMM's train step taken apart on one device: forward + backward of each of its networks at
the paper's sizes, and of the few operations in them that no other system's step has, each
compiled and timed alone, so that a step far off its FLOP count (30 s for 9.5 TFLOP on an
H200; docs/benchmarks.md) is traced to its part without a profiler.

  python3 benchmarks/fomm_gpu_parts.py [--batch 4] [--dtype bfloat16] [--out parts.json]
  python3 benchmarks/fomm_gpu_parts.py --tiny          # the same code on the CPU, small sizes

Parts (each `jax.grad` of the sum of its outputs' squares with respect to its parameters and its float
inputs, in `--dtype` with float32 parameters, as the train step computes them):

- `detector`: the keypoint detector on the 256² frame (values and Jacobians);
- `generator`: the occlusion-aware generator with its dense-motion network, keypoints given;
- `discriminator`: the discriminator on the frame with the keypoints' heatmaps;
- `sample_features`: bilinear sampling of the encoder's 64 x 64 x 256 features at a
  near-identity deformation, the generator's warp, whose gradient with respect to the features
  is a scatter-add;
- `sample_features_f32`: the same in float32 (a float32 scatter-add, which jaxlib 0.10.2-0.11.x
  compile to a compare-and-swap loop on NVIDIA GPUs unless told
  `--xla_backend_extra_options=-nvptx-allow-ftz-atomics`);
- `resize_flow`: the deformation resized from 64 to 256 px (`resize_bilinear`, gathers whose
  gradient is a scatter-add);
- `max_pool`: a 2 x 2 max pool of 256 x 256 x 64 features, VGG's (its gradient a
  select-and-scatter, which XLA:GPU expands into a scatter).

Each part: compile time, then `--runs` timed runs after one untimed (median), within
`--part-seconds`; a part that fails is recorded with its error and the others go on. Writes
one JSON (device, jax version, XLA_FLAGS, the parts) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import linen as nn  # noqa: E402

from psrjax.geometry import sampler  # noqa: E402
from psrjax.models import fomm  # noqa: E402

PARTS = ("detector", "generator", "discriminator", "sample_features", "sample_features_f32",
         "resize_flow", "max_pool")
# Sizes of the small variant (--tiny), run on the CPU by the tests.
TINY = dict(kp_block_expansion=4, kp_max_features=16, kp_num_blocks=2, block_expansion=4,
            max_features=16, num_bottleneck_blocks=1, dm_block_expansion=4, dm_max_features=16,
            dm_num_blocks=2, d_block_expansion=4, d_max_features=16, d_num_blocks=2)


def _grad_fn(apply, params, *inputs):
  """(jitted function of (params, *inputs) -> gradients of the outputs' sum, its arguments)."""
  def loss(p, *xs):
    out = apply(p, *xs)
    # Squares, so that no gradient is a constant XLA could fold away.
    return sum(jnp.sum(jnp.square(leaf.astype(jnp.float32)))
               for leaf in jax.tree_util.tree_leaves(out))
  argnums = (0,) + tuple(i + 1 for i, x in enumerate(inputs)
                         if jnp.issubdtype(x.dtype, jnp.floating))
  return jax.jit(jax.grad(loss, argnums=argnums)), (params, *inputs)


def _network_parts(batch: int, size: int, dtype, settings: dict, key, names) -> dict:
  """{name: (function, args)} of the networks among `names` at `settings` (the detector's
  keypoints feed the other two)."""
  detector, generator, discriminator = fomm.networks(settings, dtype=dtype)
  k1, k2, k3 = jax.random.split(key, 3)
  frame = jax.random.uniform(k1, (batch, size, size, 3), dtype)
  kp_params = detector.init(k2, frame)
  kp = jax.tree_util.tree_map(jax.lax.stop_gradient, detector.apply(kp_params, frame))
  parts = {"detector": _grad_fn(detector.apply, kp_params, frame)}
  if "generator" in names:
    parts["generator"] = _grad_fn(lambda p, x: generator.apply(p, x, kp, kp)["prediction"],
                                  generator.init(k3, frame, kp, kp), frame)
  if "discriminator" in names:
    parts["discriminator"] = _grad_fn(lambda p, x: discriminator.apply(p, x, kp),
                                      discriminator.init(k3, frame, kp), frame)
  return parts


def _op_parts(batch: int, size: int, dtype, key):
  """{name: (function, args)} of the single operations (module docstring)."""
  side, channels = size // 4, 256 if size >= 256 else 16
  k1, k2 = jax.random.split(key)
  grid = sampler.pixel_grid(side, side)
  positions = jnp.broadcast_to(grid, (batch, side, side, 2)) + 0.3 * jax.random.normal(
      k1, (batch, side, side, 2))
  features = jax.random.normal(k2, (batch, side, side, channels), dtype)
  def sample(_, x, pos):
    return sampler.bilinear_sample(x, pos, padding="zeros")
  flow = jnp.tanh(positions / side)
  pool_in = jax.random.normal(k2, (batch, size, size, 64 if size >= 256 else 8), dtype)
  return {
      "sample_features": _grad_fn(sample, {}, features, positions),
      "sample_features_f32": _grad_fn(sample, {}, features.astype(jnp.float32), positions),
      "resize_flow": _grad_fn(lambda _, f: fomm.resize_bilinear(f, (size, size)), {}, flow),
      "max_pool": _grad_fn(lambda _, x: nn.max_pool(x, (2, 2), strides=(2, 2)), {}, pool_in),
  }


def time_part(fn, args, runs: int, seconds: float) -> dict:
  """Compile time and the median of up to `runs` timed runs after one untimed."""
  start = time.perf_counter()
  compiled = fn.lower(*args).compile()
  out = {"compile_s": time.perf_counter() - start}
  jax.block_until_ready(compiled(*args))
  times = []
  while len(times) < runs and sum(times) <= seconds:
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - start)
  cost = (compiled.cost_analysis() or {})
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  out.update(step_s=statistics.median(times), times_s=times, flops=cost.get("flops"))
  return out


def measure(args) -> dict:
  dtype = jnp.dtype(args.dtype)
  size = 32 if args.tiny else 256
  settings = TINY if args.tiny else {}
  key = jax.random.PRNGKey(0)
  networks = set(args.parts) & {"detector", "generator", "discriminator"}
  parts = {**(_network_parts(args.batch, size, dtype, settings, key, networks)
              if networks else {}),
           **_op_parts(args.batch, size, dtype, key)}
  results = {}
  for name in args.parts:
    try:
      fn, fn_args = parts[name]
      results[name] = time_part(fn, fn_args, args.runs, args.part_seconds)
    except Exception as e:  # pylint: disable=broad-except  # recorded, the other parts go on
      traceback.print_exc()
      results[name] = {"error": f"{type(e).__name__}: {str(e).strip()[:300]}"}
    print(f"[fomm_gpu_parts] {name}: {results[name]}", flush=True)
  device = jax.devices()[0]
  return dict(device_kind=device.device_kind, platform=device.platform, jax=jax.__version__,
              xla_flags=os.environ.get("XLA_FLAGS", ""), batch=args.batch, dtype=args.dtype,
              size=size, parts=results)


def format_table(report: dict) -> str:
  lines = [f"{report['device_kind']} ({report['platform']}), jax {report['jax']}, batch "
           f"{report['batch']}, {report['dtype']}, {report['size']}² "
           f"XLA_FLAGS={report['xla_flags']!r}",
           f"{'part':22s} {'compile s':>9s} {'ms/run':>10s} {'GFLOP':>9s}"]
  for name, r in report["parts"].items():
    if "error" in r:
      lines.append(f"{name:22s} ERROR {r['error']}")
      continue
    flops = r.get("flops")
    lines.append(f"{name:22s} {r['compile_s']:9.1f} {1e3 * r['step_s']:10.3f} "
                 f"{'-' if flops is None else format(flops / 1e9, '9.1f'):>9s}")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
  parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated, of " +
                      ", ".join(PARTS))
  parser.add_argument("--runs", type=int, default=5)
  parser.add_argument("--part-seconds", type=float, default=20.0,
                      help="stop timing a part after this many seconds of runs")
  parser.add_argument("--tiny", action="store_true", help="small sizes, for the CPU")
  parser.add_argument("--out", default=None,
                      help="the JSON (default $OUT/fomm_gpu_parts.json, else ./fomm_gpu_parts.json)")
  args = parser.parse_args(argv)
  args.parts = [p for p in args.parts.split(",") if p]
  unknown = sorted(set(args.parts) - set(PARTS))
  if unknown:
    parser.error(f"unknown parts {unknown}; known: {', '.join(PARTS)}")
  out = args.out or os.path.join(os.environ.get("OUT") or ".", "fomm_gpu_parts.json")
  report = measure(args)
  with open(out, "w") as f:
    json.dump(report, f, indent=1)
  print(format_table(report))
  print(f"wrote {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
