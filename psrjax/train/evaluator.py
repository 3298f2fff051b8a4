"""The trainer's side of evaluation: eval splits, and building the `config.evals` entries.

`EvalSplit` yields a split's first `num_examples` examples as global batches of `batch_size`
rounded up to a multiple of the data-parallel size (`mesh.data`); the last batch and the
rounding's extra rows are padded with copies of a real example that the validity flag
(`psrjax.evals.common.VALID_KEY`) removes from every sum. Every evaluation reads its data
through one.

`build(config, system, mesh, workdir=...)` builds every `config.evals` entry (with the `system`
entry that `psrjax.evals` adds when absent: the means of `System.evaluate`): it validates all
entries first (one-line errors), then gives each one an `EvalSplit` on its split, size and
batch size (entries that agree share one) and calls `psrjax.evals.<type>.make_evaluator`.
"""
from __future__ import annotations

import logging
from typing import Iterable, Iterator

import jax
import numpy as np

from psrjax import evals as evals_lib
from psrjax.evals import common
from psrjax.train import data as data_lib
from psrjax.train import partitioning

_DECODE = jax.jit(data_lib.decode_batch)  # compact transfer dtypes -> the batch contract's


class EvalSplit:
  """Padded, masked global batches of the first `num_examples` (0 = all) examples of `split`.

  `batch_size` is rounded up to a multiple of the data-parallel size (`self.batch_size`).
  This is the `data` every eval type receives (`psrjax.evals.common`).
  """

  def __init__(self, system, mesh, *, split: str, batch_size: int, num_examples: int, seed: int,
               read_options=None, what: str = "eval.batch_size"):
    self.key = (split, batch_size, num_examples)  # as requested: entries that agree share it
    self.split, self.batch_size = split, partitioning.round_up_batch(batch_size, mesh)
    if self.batch_size != batch_size and jax.process_index() == 0:
      logging.info("%s=%d rounded up to %d (a multiple of mesh.data=%d; padding is masked)",
                   what, batch_size, self.batch_size, mesh.shape[partitioning.DATA])
    local = partitioning.check_batch_size(self.batch_size, mesh, what=what)
    self.base = system.dataset(split, seed=seed, shard_index=0, shard_count=1)
    self.dataset, self.num_examples = data_lib.eval_dataset(
        self.base, split=split, num_examples=num_examples, local_batch=local,
        shard=partitioning.data_shard(mesh))
    self.sharding = partitioning.batch_sharding(mesh)
    self.read_options = read_options

  def first_batch(self) -> dict[str, np.ndarray]:
    """The first local batch (without the validity flag)."""
    batch = dict(self.dataset[0])
    batch.pop(common.VALID_KEY)
    return batch

  def example(self, index: int = 0) -> dict[str, np.ndarray]:
    """Example `index` of the split with a batch axis of 1 (the same on every process)."""
    return {k: np.asarray(v)[None] for k, v in self.base[index].items()}

  def batches(self) -> Iterator[dict[str, jax.Array]]:
    """Global batches (sharded along `data`) with the boolean validity flag; they travel in
    compact dtypes and are decoded on the devices (`data.encode_batch` / `decode_batch`)."""
    ds = self.dataset.map(data_lib.encode_batch)
    ds = ds if self.read_options is None else ds.to_iter_dataset(self.read_options)
    for local in ds:
      yield _DECODE(partitioning.global_batch(local, self.sharding, self.batch_size))


def eval_split(system, config, mesh) -> EvalSplit:
  """The `config.eval` block's split (the defaults every `config.evals` entry inherits)."""
  return EvalSplit(system, mesh, split=config.eval.split, batch_size=config.eval.batch_size,
                   num_examples=config.eval.num_examples, seed=config.seed,
                   read_options=data_lib.read_options(config))


def build(config, system, mesh, *, workdir: str | None = None,
          only: Iterable[str] | None = None,
          splits: Iterable[EvalSplit] = ()) -> dict[str, evals_lib.DeclaredEval]:
  """Every `config.evals` entry (or the names in `only`), by name in name order.

  All entries are validated before any is built. `splits`: already built `EvalSplit`s that
  entries on the same split, batch size and number of examples reuse.
  """
  specs = evals_lib.specs(config, only)
  cache = {s.key: s for s in splits}
  built = {}
  for spec in specs:
    key = (spec.split, spec.batch_size, spec.num_examples)
    if key not in cache:
      cache[key] = _split(system, config, mesh, spec)
    context = {"name": spec.name, "config": config, "workdir": workdir}
    built[spec.name] = evals_lib.make(spec, system=system, mesh=mesh, data=cache[key],
                                      context=context)
  return built


def _split(system, config, mesh, spec: evals_lib.Spec) -> EvalSplit:
  return EvalSplit(system, mesh, split=spec.split, batch_size=spec.batch_size,
                   num_examples=spec.num_examples, seed=config.seed,
                   read_options=data_lib.read_options(config),
                   what=f"evals.{spec.name}.batch_size")


def build_one(name: str, entry, *, config, system, mesh,
              workdir: str | None = None) -> evals_lib.DeclaredEval:
  """Builds the entry `entry` (a dict of fields) as `config.evals.<name>` would be built."""
  spec = evals_lib.spec(name, entry, config)
  context = {"name": name, "config": config, "workdir": workdir}
  return evals_lib.make(spec, system=system, mesh=mesh,
                        data=_split(system, config, mesh, spec), context=context)
