"""Throughput of the per-frame image metrics: SSIM + PSNR + LPIPS on 256 frames of 128x128.

    python benchmarks/bench_metrics.py [--frames 256] [--size 128] [--batch 64] [--runs 5]
                                       [--net alexnet]

One jitted function computes SSIM, PSNR and LPIPS (real heads and backbone) of a batch of frame
pairs; the frames go through it `--batch` at a time. After a compile / warm-up pass, the wall
time of `--runs` full passes is measured and the median reported as frames/s (with each
metric's own frames/s). Runs on JAX's default device (the CPU here; no fake devices).
"""
import argparse
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from psrjax import metrics  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.metrics import perceptual  # noqa: E402  pylint: disable=g-import-not-at-top

FUNCTIONS = {
    "ssim": lambda v, a, b, net: metrics.ssim(a, b),
    "psnr": lambda v, a, b, net: metrics.psnr(a, b),
    "lpips": lambda v, a, b, net: metrics.lpips(a, b, net=net, variables=v),
}


def _frames(count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.RandomState(0)
  a = rng.uniform(-1, 1, (count, size, size, 3)).astype(np.float32)
  b = np.clip(a + rng.normal(scale=0.2, size=a.shape), -1, 1).astype(np.float32)
  return a, b


def median_seconds(fn, variables, a, b, *, batch: int, runs: int) -> float:
  """Median wall time of one pass over all frames (after a warm-up pass that compiles)."""
  def one_pass():
    out = [fn(variables, a[i:i + batch], b[i:i + batch]) for i in range(0, len(a), batch)]
    jax.block_until_ready(out)
  one_pass()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    one_pass()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--frames", type=int, default=256)
  parser.add_argument("--size", type=int, default=128)
  parser.add_argument("--batch", type=int, default=64, help="frames per jitted call")
  parser.add_argument("--runs", type=int, default=5)
  parser.add_argument("--net", default="alexnet", choices=tuple(perceptual.LAYERS))
  args = parser.parse_args(argv)
  if args.frames % args.batch:
    parser.error(f"--frames={args.frames} must be a multiple of --batch={args.batch}")
  a, b = _frames(args.frames, args.size)
  variables = perceptual.load_variables(args.net)
  combined = jax.jit(lambda v, x, y: {k: f(v, x, y, args.net) for k, f in FUNCTIONS.items()})
  print(f"{args.frames} frames of {args.size}x{args.size}, batches of {args.batch}, LPIPS "
        f"{args.net}, {jax.devices()[0].platform} ({jax.device_count()} device(s)), "
        f"median of {args.runs} runs")
  seconds = median_seconds(combined, variables, a, b, batch=args.batch, runs=args.runs)
  print(f"ssim+psnr+lpips: {args.frames / seconds:8.1f} frames/s ({seconds:.3f} s per pass)")
  for name, f in FUNCTIONS.items():
    alone = jax.jit(lambda v, x, y, f=f: f(v, x, y, args.net))
    s = median_seconds(alone, variables, a, b, batch=args.batch, runs=args.runs)
    print(f"{name:>15}: {args.frames / s:8.1f} frames/s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
