"""Using a trained workdir: restoring its latest checkpoint, evaluating it (`psrjax eval`)."""
from __future__ import annotations

import os
from typing import Any

from psrjax import evals as evals_lib
from psrjax.train import checkpoint as checkpoint_lib
from psrjax.train import context as context_lib
from psrjax.train import evaluator as evaluator_lib
from psrjax.train import writers as writers_lib


def load_latest(config, workdir: str, *,
                devices=None) -> tuple[context_lib.TrainContext, int, Any]:
  """(context, step, state) of the newest restorable checkpoint of `workdir`.

  Read-only: an unreadable newest checkpoint is skipped with a warning, never moved.
  """
  ctx = context_lib.build_context(config, workdir, devices=devices)
  directory = os.path.join(ctx.workdir, checkpoint_lib.CHECKPOINT_DIR)
  if not os.path.isdir(directory):
    raise ValueError(f"no checkpoints in {directory!r}; train first (psrjax train)")
  checkpoints = checkpoint_lib.Checkpoints(directory, read_only=True)
  try:
    found = checkpoints.restore_latest(ctx.restore_target())
  finally:
    checkpoints.close()
  if found is None:
    raise ValueError(f"no checkpoints in {directory!r}; train first (psrjax train)")
  return ctx, found[0], found[1]


def evaluate_checkpoint(config, workdir: str, *, devices=None,
                        only: tuple[str, ...] | None = None) -> tuple[int, dict[str, float]]:
  """Evaluates the latest restorable checkpoint of `workdir`.

  Runs the `config.eval` block (-> `<workdir>/eval/<step>.json`, `eval/*` scalars) and every
  `config.evals` entry (-> `<workdir>/eval/<name>/<step>.json`, `eval/<name>/*` scalars).
  `only`: run just these `config.evals` entries (not the `config.eval` block).
  Returns (step, results): the `config.eval` metrics and `"<name>/<metric>"` of the others.
  """
  ctx, step, state = load_latest(config, workdir, devices=devices)
  declared = evals_lib.build(ctx.config, ctx.system, ctx.mesh, workdir=ctx.workdir,
                             only=tuple(only or ()))
  params = ctx.eval_params(state)
  writer = writers_lib.make_writer(ctx.workdir)
  try:
    results = {}
    if only is None:
      results = ctx.evaluator.run(params)
      evaluator_lib.write_results(ctx.workdir, step, results, writer)
    named = evals_lib.run_and_write(declared, params, workdir=ctx.workdir, step=step,
                                    writer=writer, final=True, everything=True)
  finally:
    writer.close()
  for name, values in named.items():
    results.update({f"{name}/{k}": v for k, v in values.items()})
  return step, results
