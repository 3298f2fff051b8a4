"""Speed and memory of the synthetic world renderer and of a grain pipeline over it.

    python benchmarks/bench_synthetic.py [--repeats 10] [--workers 2] [--batch 8]

Reports, after warm-up, the median wall time of `render_clip` (3 views x 16 frames) at 128x128
and 256x256, the process's peak resident memory, and the throughput of a grain DataLoader with
worker processes at the default runlocal training size (3 views, 8 frames, 64x64).
Targets (issue 2): <= 0.3 s at 128, <= 4x that at 256, peak memory < 2 GB.
"""
import argparse
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from psrjax.data import synthetic  # noqa: E402  pylint: disable=g-import-not-at-top


def time_render(resolution: int, repeats: int, views: int = 3, frames: int = 16) -> np.ndarray:
  for seed in range(2):  # warm-up: identity textures and numpy code paths
    synthetic.render_clip(seed, num_views=views, num_frames=frames, resolution=resolution)
  times = []
  for i in range(repeats):
    start = time.perf_counter()
    synthetic.render_clip(1000 + i, num_views=views, num_frames=frames, resolution=resolution)
    times.append(time.perf_counter() - start)
  return np.array(times)


def grain_throughput(workers: int, batch: int, batches: int) -> float:
  import grain
  from absl import flags
  if not flags.FLAGS.is_parsed():
    flags.FLAGS(["bench_synthetic"])  # grain worker processes read absl flags
  source = synthetic.SyntheticSource("train", num_views=3, num_frames=8, resolution=64)
  loader = grain.DataLoader(
      data_source=source,
      sampler=grain.samplers.IndexSampler(len(source), shuffle=True, seed=0, num_epochs=1),
      operations=[grain.transforms.Batch(batch_size=batch, drop_remainder=True)],
      worker_count=workers)
  it = iter(loader)
  next(it)  # workers started and warm
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  return batches * batch / (time.perf_counter() - start)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--batches", type=int, default=10)
  args = parser.parse_args()
  print(f"cpus={os.cpu_count()} load_average={os.getloadavg()[0]:.2f}")
  medians = {}
  for res in (128, 256):
    t = time_render(res, args.repeats)
    medians[res] = float(np.median(t))
    print(f"render_clip 3 views x 16 frames @ {res}x{res}: median {medians[res]:.3f} s "
          f"(min {t.min():.3f}, max {t.max():.3f}, n={len(t)})")
  print(f"ratio 256/128: {medians[256] / medians[128]:.2f}x")
  peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(f"peak resident memory of the rendering process: {peak_mb:.0f} MB")
  if args.workers > 0:
    rate = grain_throughput(args.workers, args.batch, args.batches)
    print(f"grain DataLoader, {args.workers} workers, batch {args.batch} of 3x8x64x64 clips: "
          f"{rate:.1f} clips/s ({args.batch / rate:.3f} s per batch)")


if __name__ == "__main__":
  main()
