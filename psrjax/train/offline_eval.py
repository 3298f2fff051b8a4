"""Using a trained workdir: restoring its latest checkpoint, evaluating it (`psrjax eval`)."""
from __future__ import annotations

import os
from typing import Any

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


def evaluate_checkpoint(config, workdir: str, *, devices=None) -> tuple[int, dict[str, float]]:
  """Evaluates the latest restorable checkpoint of `workdir` on `config.eval.split`.

  Writes `<workdir>/eval/<step>.json` and the `eval/*` scalars; returns (step, results).
  """
  ctx, step, state = load_latest(config, workdir, devices=devices)
  results = ctx.evaluator.run(ctx.eval_params(state))
  writer = writers_lib.make_writer(ctx.workdir)
  try:
    evaluator_lib.write_results(ctx.workdir, step, results, writer)
  finally:
    writer.close()
  return step, results
