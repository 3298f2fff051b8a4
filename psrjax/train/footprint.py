"""A config's memory footprint (`plan.Footprint`), traced on this host for the devices planned
for: the entry point of `psrjax plan` and `benchmarks/memory_plans.py` (`plan` itself reads a
built context, which `context.build_context` uses to resolve `model.remat="auto"`)."""
from __future__ import annotations

import jax

from psrjax.train import context as context_lib
from psrjax.train import plan
from psrjax.train import precision


def of_config(config, *, platform: str = "gpu") -> plan.Footprint:
  """The sizes `plan` scales, for every `model.remat` mode, traced on this host (nothing is
  compiled or run; one context is built, and the system once more per further mode).
  `platform` picks what an "auto" compute dtype resolves to (the devices planned for, not this
  host)."""
  config = config.copy_and_resolve_references()
  config.train.compute_dtype = jax.numpy.dtype(precision.compute_dtype(config, platform)).name
  return plan.from_context(_context(config, "none"),
                           plan.REMAT_MODES if plan.has_remat(config) else ("none",))


def _context(config, remat: str):
  """A one-device context of `config` with one example per batch and `model.remat=remat`."""
  config = config.copy_and_resolve_references()
  if plan.has_remat(config):
    config.model.remat = remat
  config.train.update(batch_size=1, grad_accum=1)
  config.eval.update(batch_size=1, num_examples=1)
  return context_lib.build_context(config, None, devices=jax.devices()[:1], evals=())
