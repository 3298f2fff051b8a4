"""grain input pipelines around `System.dataset`: the shuffled, repeated train stream and the
padded, masked evaluation batches.

Each process reads only its data shard of the train split: the rows of the global batch that
its devices hold (`partitioning.data_shard`; one shard per process unless some processes'
devices hold the same rows, and then those processes read the same examples).
The train iterator is a checkpointable `grain.DatasetIterator`; with `train.data_workers > 0`
(or "auto", see `resolve_workers`) examples are produced in that many worker processes
(`mp_prefetch`).

Compact transfer. Batches travel from the host to the devices in compact dtypes chosen by
batch-contract key name (the key's last `_`-separated part, so `src_rgb`, `tgt_mask`, `bg_rgb`
follow `rgb` and `mask`), and are converted back on the device (`decode_batch`, at the start of
the train step and of every evaluation batch):

- `rgb` (float32 in [-1, 1]) -> uint8 `round((x + 1) * 127.5)`; device: `u / 127.5 - 1`
  (exact for frames that were 8-bit; otherwise within 1/255; values outside [-1, 1] clip);
- `mask` (float32 in [0, 1]) -> uint8 `round(255 x)`; device: `u / 255` (exact for {0, 1});
- `face`, `part` (int32 index maps) -> int16 (a value outside int16 is an error); device: int32;
- an example whose `rgb` / `mask` keys hold NaN/Inf is flagged (`NONFINITE_KEY`) and those
  keys decode to NaN, so non-finite data still stops training.

Every other key (depth, flow, uv, keypoints, cameras, ...) travels unchanged: those need the
precision. Encoding runs in the pipeline (in the workers when there are any).
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

import grain
import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from psrjax.evals.common import VALID_KEY  # the validity flag of padded evaluation batches
# Key of the per-example flag of non-finite frames/masks in compact batches (`encode_batch`).
NONFINITE_KEY = "_nonfinite"
AUTO_WORKERS = "auto"
# Cap of "auto" workers per local device: rendering the synthetic world costs 0.1-0.6 CPU
# seconds per example at 128²-256², so an accelerator stepping tens of examples per second
# needs ~10-25 host cores; the cap bounds the worker processes (and memory) on hosts with many
# cores per device.
WORKERS_PER_DEVICE = 16
_INT16 = np.iinfo(np.int16)


def resolve_workers(value, *, local_devices: int | None = None, cores: int | None = None) -> int:
  """`train.data_workers` as a count: an int >= 0, or "auto" = max(0, min(cores - 1,
  WORKERS_PER_DEVICE x local devices)), cores being the CPUs this process may run on (one is
  left to the main process, which transfers batches and drives the devices)."""
  if value == AUTO_WORKERS:
    local_devices = jax.local_device_count() if local_devices is None else local_devices
    if cores is None:
      cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(int(cores or 1) - 1, WORKERS_PER_DEVICE * local_devices))
  if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0:
    return int(value)
  raise ValueError(f"train.data_workers={value!r} is not a worker count; use an int >= 0 or "
                   f"{AUTO_WORKERS!r}")


def _compact_kind(key: str, dtype) -> str | None:
  """"signed_unit" | "unit" | "index" for a key that travels compact in `dtype`'s place
  (the float32/int32 contract dtype on the host, the compact dtype on the device), else None."""
  name, dtype = key.rsplit("_", 1)[-1], np.dtype(dtype)
  if name == "rgb" and dtype in (np.float32, np.uint8):
    return "signed_unit"
  if name == "mask" and dtype in (np.float32, np.uint8):
    return "unit"
  if name in ("face", "part") and dtype in (np.int32, np.int16):
    return "index"
  return None


def _encode_leaf(key: str, x: np.ndarray, kind: str | None, out: np.ndarray | None = None,
                 scratch: np.ndarray | None = None) -> np.ndarray:
  """`x` in the compact dtype of `kind` (a new array, or written into `out`); `scratch`: a
  float32 array of x's shape the rounding may use."""
  if kind in ("signed_unit", "unit"):
    # round(clip((x + 1) * 127.5)) or round(clip(255 x)), in one float32 scratch array.
    scaled = (np.add(x, 1.0, out=scratch) if kind == "signed_unit"
              else np.multiply(x, 255.0, out=scratch))
    with np.errstate(invalid="ignore"):  # NaN/Inf: flagged by encode_batch, decoded as NaN.
      if kind == "signed_unit":
        np.multiply(scaled, 127.5, out=scaled)
      np.clip(scaled, 0.0, 255.0, out=scaled)
      np.rint(scaled, out=scaled)
      if out is None:
        return scaled.astype(np.uint8)
      np.copyto(out, scaled, casting="unsafe")
      return out
  if kind == "index":
    if x.size and (x.min() < _INT16.min or x.max() > _INT16.max):
      raise ValueError(f"batch key {key!r} holds indices outside int16 "
                       f"[{x.min()}, {x.max()}]; such maps cannot travel compact")
    if out is None:
      return x.astype(np.int16)
    np.copyto(out, x, casting="unsafe")
    return out
  return x


def encode_batch(batch: Mapping[str, Any]) -> dict[str, Any]:
  """The host batch (batch axis first) with its contract keys in their compact transfer dtypes
  (module docstring), plus `NONFINITE_KEY`: bool [B], examples whose uint8-encoded keys held
  NaN/Inf (their decoded values are NaN again, so the trainer's NaN guard still sees them)."""
  out, bad = {}, None
  for key, value in batch.items():
    x = np.asarray(value)
    kind = _compact_kind(key, x.dtype) if x.dtype in (np.float32, np.int32) else None
    if kind in ("signed_unit", "unit"):
      finite = np.isfinite(x).reshape(len(x), -1).all(axis=1)
      bad = ~finite if bad is None else bad | ~finite
    out[key] = _encode_leaf(key, x, kind)
  if bad is not None:
    out[NONFINITE_KEY] = bad
  return out


def encode_examples(examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  """`encode_batch` of `examples` stacked (the same arrays), as grain's `batch_fn`: each example
  is encoded on its own and only the compact arrays are stacked, so the batch never exists in
  the contract's float32 / int32 dtypes."""
  out, flags = {}, []
  for key in examples[0]:
    xs = [np.asarray(e[key]) for e in examples]
    first = xs[0]
    kind = _compact_kind(key, first.dtype) if first.dtype in (np.float32, np.int32) else None
    if len({(x.dtype, x.shape) for x in xs}) > 1:   # stacking promotes dtypes or fails
      encoded = encode_batch({key: np.stack(xs)})
      out[key] = encoded[key]
      flags.append(encoded.get(NONFINITE_KEY))
      continue
    if kind is None:
      out[key] = np.stack(xs)
      continue
    rows = np.empty((len(xs),) + first.shape, np.int16 if kind == "index" else np.uint8)
    scratch = None if kind == "index" else np.empty(first.shape, np.float32)
    for row, x in zip(rows, xs):
      _encode_leaf(key, x, kind, row, scratch)
    if kind != "index":
      flags.append(np.array([not np.isfinite(x).all() for x in xs]))
    out[key] = rows
  flags = [f for f in flags if f is not None]
  if flags:
    out[NONFINITE_KEY] = np.logical_or.reduce(flags)
  return out


def decode_batch(batch: Mapping[str, Any], xp=jnp) -> dict[str, Any]:
  """Inverse of `encode_batch` (on the device with `xp=jnp`, the default; numpy with `xp=np`).

  Decodes exactly the keys whose name and compact dtype `encode_batch` produces and removes
  `NONFINITE_KEY`; float batches pass through unchanged.
  """
  out = dict(batch)
  bad = out.pop(NONFINITE_KEY, None)
  for key, x in out.items():
    dtype = np.dtype(x.dtype)
    kind = _compact_kind(key, dtype) if dtype in (np.uint8, np.int16) else None
    if kind in ("signed_unit", "unit"):
      x = (x.astype(xp.float32) / xp.float32(127.5) - xp.float32(1.0) if kind == "signed_unit"
           else x.astype(xp.float32) / xp.float32(255.0))
      if bad is not None:
        x = xp.where(bad.reshape((-1,) + (1,) * (x.ndim - 1)), xp.float32(np.nan), x)
    elif kind == "index":
      x = x.astype(xp.int32)
    out[key] = x
  return out


def batch_bytes(batch: Mapping[str, Any]) -> int:
  """Bytes of every array of `batch`."""
  return int(sum(np.asarray(v).nbytes for v in batch.values()))


def read_options(config) -> grain.ReadOptions:
  """`train.prefetch` batches are read ahead, each by its own thread (0 = synchronous)."""
  return grain.ReadOptions(num_threads=config.train.prefetch,
                           prefetch_buffer_size=config.train.prefetch)


class TrainBatches(grain.MapDataset):
  """Batches of `examples` (`batch_size` each, the last partial one dropped) in the batch
  contract's dtypes; `compact` holds the same batches encoded for transfer, batched from the
  examples directly (`encode_examples`)."""

  def __init__(self, examples: grain.MapDataset, batch_size: int):
    self.contract = examples.batch(batch_size, drop_remainder=True)
    super().__init__(self.contract)
    self.compact = examples.batch(batch_size, drop_remainder=True, batch_fn=encode_examples)

  def __len__(self) -> int:
    return len(self.contract)

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    return self.contract[index]

  def __str__(self) -> str:
    return "TrainBatches"


def train_dataset(system, config, *, local_batch: int,
                  shard: tuple[int, int] | None = None) -> TrainBatches:
  """This process's batched train split: shuffled per epoch with `config.seed`, repeated.

  `shard`: (index, count) of the data shard to read (`partitioning.data_shard(mesh)`);
  default (process index, process count).
  """
  index, count = shard or (jax.process_index(), jax.process_count())
  ds = system.dataset("train", seed=config.seed, shard_index=index, shard_count=count)
  if len(ds) == 0:
    raise ValueError(f"system {config.system!r} has an empty train split for this process")
  return TrainBatches(ds.shuffle(seed=config.seed).repeat(), local_batch)


def train_iterator(batched: grain.MapDataset, config, offset: int = 0) -> grain.DatasetIterator:
  """A checkpointable iterator over `batched` from batch `offset`, encoded for transfer
  (`encode_batch`; `TrainBatches` are encoded per example, `encode_examples`), in worker
  processes when `train.data_workers` resolves to > 0."""
  compact = (batched.compact if isinstance(batched, TrainBatches)
             else batched.map(encode_batch))
  if offset:
    compact = compact.slice(slice(offset, None))
  ds = compact.to_iter_dataset(read_options(config))
  workers = resolve_workers(config.train.data_workers)
  if workers > 0:
    if not flags.FLAGS.is_parsed():  # grain's workers read absl flags (defaults in a notebook).
      flags.FLAGS.mark_as_parsed()
    ds = ds.mp_prefetch(grain.multiprocessing.MultiprocessingOptions(num_workers=workers))
  return iter(ds)


class TrainStream:
  """This process's train batches: a checkpointable grain iterator over `batched` (the process's
  data shard `shard` = (index, count)) that starts at batch `offset`.

  A run starts at offset 0; its position in the stream is what the grain iterator state in each
  checkpoint records. Resumed with another data layout (process or shard count) and
  `resume_data="reshard"`, each new shard's stream starts at the checkpoint's step (each step
  reads one batch per shard), and that offset is saved with every later checkpoint so resumes in
  the new layout are exact (`psrjax.train.checkpoint`).
  """

  def __init__(self, batched: grain.MapDataset, config, shard: tuple[int, int], offset: int = 0):
    self.batched, self.config, self.shard = batched, config, tuple(shard)
    self.offset, self.iterator = 0, None
    self.restart_at(offset)

  def restart_at(self, offset: int) -> None:
    """A fresh iterator whose first batch is batch `offset` of `batched`."""
    self.close()
    self.offset = int(offset)
    self.iterator = train_iterator(self.batched, self.config, self.offset)

  def layout(self) -> dict[str, int]:
    """What a checkpoint records of the stream (see `psrjax.train.checkpoint`)."""
    return {"processes": jax.process_count(), "shards": self.shard[1], "offset": self.offset}

  def __iter__(self):
    return self

  def __next__(self):
    return next(self.iterator)

  def close(self) -> None:
    if self.iterator is not None and hasattr(self.iterator, "close"):
      self.iterator.close()
    self.iterator = None


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
