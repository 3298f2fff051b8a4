"""Examples/s per host core of a paper config's train pipeline, rendered vs pre-rendered.

    python benchmarks/pipeline_rate.py [--configs psrnet,mfci,fomm] [--clips 256] [--batch 2]

For each config (its paper settings: resolution, frames, views, rooms), builds `--clips` train
clips of the matching `synthetic_humans` dataset into a temporary TFDS data dir (or reuses
`--data_dir`), then times the real train pipeline (`psrjax.train.data.train_dataset` +
`train_iterator`: shuffle, batch, transfer encoding) in this process, pinned to one core with
one thread (`train.data_workers=0`, `train.prefetch=0`), once rendering every clip
(`data.prerendered=""`) and once reading the built dataset (`data.prerendered=DIR`; the files
sit in the page cache after the first pass, as a dataset in training does). Both read the same
clips, so the examples are the same. A split of a few clips would mostly time grain's shuffle
(its index permutation costs ~2 ms an example on 12 clips, ~0.1 ms on 256, microseconds on the
paper configs' 100,000), hence the 256 clips. Prints examples per CPU second (the figure per
core; the wall figure beside it depends on what else the core runs), their ratio, the stored
size per clip, and the pre-rendered examples per CPU second of the system's sampler alone (what
the shuffle, batching and transfer encoding of the train pipeline leave of it).
"""
import argparse
import os
import sys
import tempfile
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
  os.environ[_var] = "1"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, _ROOT)
sys.path.insert(0, os.path.join(_ROOT, "datasets", "synthetic_humans"))

import cv2  # noqa: E402  pylint: disable=g-import-not-at-top

import build  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax import config_utils  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.data.sources import prerendered  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.train import data as data_lib  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.systems import registry

cv2.setNumThreads(1)


def config_of(name: str, clips: int, batch: int, value: str):
  """The paper config `name` reading `clips` train clips, in-process, one batch of `batch`."""
  config = config_utils.load_config(os.path.join(_ROOT, "configs", f"{name}.py"))
  config.data.update(train_clips=clips, prerendered=value)
  config.train.update(batch_size=batch, data_workers=0, prefetch=0)
  return config


def rate(config, batches: int) -> tuple[float, float]:
  """(examples per wall second, examples per CPU second) of `batches` batches after one."""
  system = registry.get_system(config)
  batched = data_lib.train_dataset(system, config, local_batch=config.train.batch_size,
                                   shard=(0, 1))
  iterator = data_lib.train_iterator(batched, config)
  next(iterator)   # warm-up: identity textures, readers, code paths
  wall, cpu = time.perf_counter(), time.process_time()
  for _ in range(batches):
    next(iterator)
  wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
  examples = batches * config.train.batch_size
  return examples / wall, examples / cpu


def sampler_rate(config, passes: int) -> float:
  """Examples per CPU second of the system's train examples alone (no shuffle, batching or
  transfer encoding), `passes` times over the clips after one example."""
  ds = registry.get_system(config).dataset("train", seed=config.seed, shard_index=0, shard_count=1)
  ds[0]
  cpu = time.process_time()
  for i in range(1, passes * len(ds) + 1):
    ds[i % len(ds)]
  return passes * len(ds) / (time.process_time() - cpu)


def ensure_built(config, data_dir: str, clips: int) -> str:
  """A built dataset of the config's settings with `clips` train clips under `data_dir`."""
  settings = prerendered.wanted(config.data)
  config = build.custom_config(**settings, num_train=clips, num_validation=1, num_test=1)
  version = str(build.shb.Builder.VERSION)
  path = os.path.join(data_dir, prerendered.BUILDER, config.name, version)
  if not os.path.isdir(path):
    start = time.perf_counter()
    path = build.build(config, data_dir)
    print(f"  built {path} in {time.perf_counter() - start:.1f} s", flush=True)
  return path


def _megabytes_per_clip(path: str, clips: int) -> float:
  """The dataset's array_record bytes per clip, in MB."""
  files = [os.path.join(d, f) for d, _, names in os.walk(path) for f in names
           if ".array_record" in f]
  return sum(os.path.getsize(f) for f in files) / clips / 1e6


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--configs", default="psrnet,mfci,fomm")
  parser.add_argument("--clips", type=int, default=256, help="train clips built and read")
  parser.add_argument("--batch", type=int, default=2, help="examples per batch")
  parser.add_argument("--read_passes", type=int, default=2,
                      help="passes over the clips when reading pre-rendered ones")
  parser.add_argument("--data_dir", default="", help="TFDS data dir (default: a temporary one)")
  args = parser.parse_args(argv)
  data_dir = args.data_dir or tempfile.mkdtemp(prefix="pipeline_rate_")
  rendered_batches = (args.clips - args.batch) // args.batch   # every timed clip rendered once
  read_batches = args.read_passes * args.clips // args.batch
  print("examples per CPU second (per wall second), one core; ratio: per CPU second")
  print(f"{'config':8} {'res x frames x views':>20} {'rendered':>15} {'pre-rendered':>17} "
        f"{'ratio':>6} {'MB/clip':>8} {'examples alone':>15}")
  for name in args.configs.split(","):
    config = config_of(name, args.clips, args.batch, "")
    path = ensure_built(config, data_dir, args.clips)
    r_wall, r_cpu = rate(config, rendered_batches)
    read = config_of(name, args.clips, args.batch, path)
    p_wall, p_cpu = rate(read, read_batches)
    alone = sampler_rate(read, args.read_passes)
    d = config.data
    shape = f"{d.resolution} x {d.num_frames} x {d.num_views}"
    print(f"{name:8} {shape:>20} {r_cpu:6.2f} ({r_wall:6.2f}) {p_cpu:7.1f} ({p_wall:7.1f}) "
          f"{p_cpu / r_cpu:5.1f}x {_megabytes_per_clip(path, args.clips + 2):8.2f} "
          f"{alone:15.1f}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
