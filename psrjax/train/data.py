"""grain input pipelines around `System.dataset`: the shuffled, repeated train stream and the
padded, masked evaluation batches.

Each process reads only its data shard of the train split: the rows of the global batch that
its devices hold (`partitioning.data_shard`; one shard per process unless some processes'
devices hold the same rows, and then those processes read the same examples).
The train iterator is a checkpointable `grain.DatasetIterator`; with `train.data_workers > 0`
examples are produced in that many worker processes (`mp_prefetch`).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import grain
import jax
import numpy as np

# Key of the per-example validity flag added to padded evaluation batches.
VALID_KEY = "_valid"


def read_options(config) -> grain.ReadOptions:
  """`train.prefetch` batches are read ahead, each by its own thread (0 = synchronous)."""
  return grain.ReadOptions(num_threads=config.train.prefetch,
                           prefetch_buffer_size=config.train.prefetch)


def train_dataset(system, config, *, local_batch: int,
                  shard: tuple[int, int] | None = None) -> grain.MapDataset:
  """This process's batched train split: shuffled per epoch with `config.seed`, repeated.

  `shard`: (index, count) of the data shard to read (`partitioning.data_shard(mesh)`);
  default (process index, process count).
  """
  index, count = shard or (jax.process_index(), jax.process_count())
  ds = system.dataset("train", seed=config.seed, shard_index=index, shard_count=count)
  if len(ds) == 0:
    raise ValueError(f"system {config.system!r} has an empty train split for this process")
  return ds.shuffle(seed=config.seed).repeat().batch(local_batch, drop_remainder=True)


def train_iterator(batched: grain.MapDataset, config) -> grain.DatasetIterator:
  """A checkpointable iterator over `batched` (worker processes if `train.data_workers > 0`)."""
  ds = batched.to_iter_dataset(read_options(config))
  if config.train.data_workers > 0:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=config.train.data_workers))
  return iter(ds)


def eval_dataset(base: grain.MapDataset, *, split: str, num_examples: int, local_batch: int,
                 shard: tuple[int, int] | None = None) -> tuple[grain.MapDataset, int]:
  """Padded per-shard eval batches with a `VALID_KEY` mask, and the true example count.

  `base` is the whole (unsharded) split. Its first `num_examples` examples (all when <= 0)
  are dealt round-robin to the `shard` = (index, count) data shards (default: one per
  process); every shard yields the same number of batches, the last ones padded by repeating
  a real example whose `VALID_KEY` is False.
  """
  total = len(base) if num_examples <= 0 else min(num_examples, len(base))
  index, processes = shard or (jax.process_index(), jax.process_count())
  if total < processes:
    raise ValueError(f"eval split {split!r} has {total} examples; need >= {processes} "
                     "(data shards)")
  local = base.slice(slice(0, total)).slice(slice(index, None, processes))
  num_local = len(local)
  num_batches = math.ceil(math.ceil(total / processes) / local_batch)

  def padded(i: int) -> dict[str, Any]:
    example = dict(local[min(i, num_local - 1)])
    example[VALID_KEY] = np.bool_(i < num_local)
    return example

  ds = grain.MapDataset.range(num_batches * local_batch).map(padded)
  return ds.batch(local_batch), total


def check_example_spec(local_batch: Mapping[str, Any], spec, *, what: str) -> None:
  """One-line error when a batch disagrees with the system's per-example spec."""
  if spec is None:
    return
  problems = []
  for key, want in spec.items():
    if key not in local_batch:
      problems.append(f"missing {key!r}")
      continue
    got = np.asarray(local_batch[key])
    if got.shape[1:] != tuple(want.shape) or got.dtype != np.dtype(want.dtype):
      problems.append(f"{key!r} is {got.dtype}{list(got.shape[1:])}, config implies "
                      f"{np.dtype(want.dtype)}{list(want.shape)}")
  if problems:
    raise ValueError(f"{what} batch does not match the config: " + "; ".join(problems))


def check_same_structure(batch: Mapping[str, Any], first: Mapping[str, Any], step: int) -> None:
  """Every train batch must have the first batch's keys, shapes and dtypes."""
  if batch.keys() != first.keys() or any(
      np.shape(batch[k]) != np.shape(first[k]) or np.asarray(batch[k]).dtype != np.asarray(
          first[k]).dtype for k in first):
    desc = {k: (np.asarray(v).dtype.name, np.shape(v)) for k, v in batch.items()}
    raise ValueError(f"train batch at step {step} changed shape/dtype: {desc}")
