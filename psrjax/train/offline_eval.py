"""Using a trained workdir: restoring its latest checkpoint (or its kept best snapshot,
`train.keep_best`), evaluating it (`psrjax eval`)."""
from __future__ import annotations

from typing import Any, Iterable

from psrjax import evals as evals_lib
from psrjax import paths
from psrjax.systems import base
from psrjax.train import best as best_lib
from psrjax.train import checkpoint as checkpoint_lib
from psrjax.train import context as context_lib
from psrjax.train import writers as writers_lib


def load_latest(config, workdir: str, *, devices=None, evals: Iterable[str] | None = (),
                best: bool = False) -> tuple[context_lib.TrainContext, int, Any]:
  """(context, step, state) of the newest restorable checkpoint of `workdir`.

  Read-only: an unreadable newest checkpoint is skipped with a warning, never moved.
  `evals`: the `config.evals` entries the context builds (default none; None: all).
  `best`: the snapshot `train.keep_best` kept in `<workdir>/best/` instead (a ValueError when
  there is none).
  """
  if best:
    best_lib.require(workdir)  # "no best snapshot" before the (slow) context is built.
  ctx = context_lib.build_context(config, workdir, devices=devices, evals=evals)
  if best:
    step, state, _ = best_lib.restore(ctx.workdir, ctx.restore_target())
    return ctx, step, state
  directory = paths.join(ctx.workdir, checkpoint_lib.CHECKPOINT_DIR)
  if not paths.isdir(directory):
    raise ValueError(f"no checkpoints in {directory!r}; train first (psrjax train)")
  checkpoints = checkpoint_lib.Checkpoints(directory, read_only=True)
  try:
    found = checkpoints.restore_latest(ctx.restore_target())
  finally:
    checkpoints.close()
  if found is None:
    raise ValueError(f"no checkpoints in {directory!r}; train first (psrjax train)")
  return ctx, found[0], found[1]


# The name suffixes of the entries `evaluate_checkpoint(raw=True)` and
# `evaluate_checkpoint(batch_norm="population")` write.
RAW_SUFFIX = "-raw"
POPULATION_SUFFIX = "-population"


def evaluate_checkpoint(config, workdir: str, *, devices=None, only: tuple[str, ...] | None = None,
                        best: bool = False, raw: bool = False,
                        batch_norm: str = "batch") -> tuple[int, dict[str, float]]:
  """Evaluates the latest restorable checkpoint of `workdir` (`best`: its kept best snapshot).
  `raw`: the trained parameters themselves, not their moving averages (`train.ema`), each
  entry's results named `<name>-raw`.

  Runs every `config.evals` entry, the `system` entry (the system's own metrics, added when
  absent: `psrjax.evals`) included, whatever its `every` (-> `<workdir>/eval/<name>/<step>.json`,
  `eval/<name>/*` scalars). `only`: run just these entries (e.g. ("system",): only the
  system's metrics). `batch_norm="population"`: every batch norm of the evaluated outputs
  normalises with the population statistics of the training split
  (`System.batch_norm_moments`), so that no example's output depends on the others in its
  evaluation batch (or on the padding of the last); entries named `<name>-population`.
  Returns (step, {"<name>/<metric>": value}).
  """
  if batch_norm not in ("batch", "population"):
    raise ValueError(f"batch_norm must be 'batch' or 'population', got {batch_norm!r}")
  ctx, step, state = load_latest(config, workdir, devices=devices,
                                 evals=None if only is None else tuple(only), best=best)
  params = ctx.with_constants(state["params"]) if raw else ctx.eval_params(state)
  suffix = RAW_SUFFIX if raw else ""
  if batch_norm == "population":
    params = base.with_population_moments(ctx.system, params)
    suffix += POPULATION_SUFFIX
  writer = writers_lib.make_writer(ctx.workdir)
  try:
    named = evals_lib.run_and_write(ctx.evals.values(), params, workdir=ctx.workdir, step=step,
                                    writer=writer, final=True, everything=True,
                                    suffix=suffix)
  finally:
    writer.close()
  return step, {f"{name}/{k}": v for name, values in named.items() for k, v in values.items()}
