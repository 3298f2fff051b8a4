"""The training loop: `train(config, workdir)`.

Start: the workdir's latest checkpoint, else `config.resume` (a workdir, checkpoints dir or
step dir; state and data iterator), else fresh parameters, with the groups of
`config.init_from` loaded over them. Then one jitted step per stage (fed batches in their
compact transfer dtypes, `data.encode_batch`), metrics fetched only on
log / checkpoint steps (where every pending step's values are checked for NaN/Inf),
checkpoints every `train.checkpoint_every` steps and at the end, samples every
`train.sample_every`, each `config.evals` entry on its own cadence (`psrjax.evals`; the
system's own metrics are the `system` entry, every `train.eval_every` steps unless declared
otherwise, 0: only at the end), and a `jax.profiler` trace of the steps `train.profile_steps`
names in `<workdir>/profile`.
`train.keep_best = (metric, mode)` (e.g. `("system/l1", "min")`, `("fvd/fvd", "min")`,
`("system/m_ssim/fused", "max")`) keeps the best-validation snapshot: whenever that entry runs
(the final evaluation included), a strictly better value saves the step's whole train state to
`<workdir>/best/<step>/` with `<workdir>/best/best.json` = {"step", "metric", "mode", "value"}
(crash-safe: the new snapshot is written completely before best.json names it; a resumed run
keeps it unless beaten; see `psrjax.train.best`). `psrjax eval --best` / `psrjax synthesize --best` use it.
SIGTERM finishes the current step, saves and returns.

The workdir may be local (created with its missing parents) or a bucket URL such as
`gs://bucket/run` (`psrjax.paths`): checkpoints, best snapshot, metrics, TensorBoard events,
samples, evaluation results and config.json all go there.
"""
from __future__ import annotations

import dataclasses
import logging
import tempfile
from typing import Any

import jax
import numpy as np

from psrjax import config_utils
from psrjax import evals as evals_lib
from psrjax import paths
from psrjax.evals import common as evals_common
from psrjax.train import best as best_lib
from psrjax.train import checkpoint as checkpoint_lib
from psrjax.train import context as context_lib
from psrjax.train import data as data_lib
from psrjax.train import memory as memory_lib
from psrjax.train import partitioning
from psrjax.train import platform as platform_lib
from psrjax.train import preemption
from psrjax.train import progress as progress_lib
from psrjax.train import samples as samples_lib
from psrjax.train import state as state_lib
from psrjax.train import writers as writers_lib

class NonFiniteLossError(RuntimeError):
  """A loss or statistic became NaN/Inf; the state of that step is never saved."""


@dataclasses.dataclass
class TrainResult:
  workdir: str  # absolute workdir of the run
  step: int  # completed steps
  state: Any  # final train state (device arrays)
  history: list[dict[str, float]]  # metrics of every log step, with "step"
  # The last results of the `system` entry of config.evals (System.evaluate's means, see
  # psrjax.evals), None if it did not run in this call (e.g. a finished run resumed).
  eval_results: dict[str, float] | None
  preempted: bool  # stopped by SIGTERM (or `stop_after`) before the end
  # The last results of each config.evals entry that ran in this call, `system` included.
  evals: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
  # `train.keep_best`: the content of <workdir>/best/best.json ({"step", "metric", "mode",
  # "value"}) after this call, None when keep_best is off or nothing was kept yet.
  best: dict[str, Any] | None = None


PROFILE_DIR = "profile"


class StepProfile:
  """A `jax.profiler` trace of the `count` steps after step `start` (`train.profile_steps`).

  The trace lands in `<workdir>/profile/plugins/profile/<run>/` (TensorBoard's profile tab with
  `--logdir <workdir>`); the traced steps are waited for before the trace stops. In a bucket
  workdir the profiler writes into a local temporary folder, uploaded when the trace stops.
  """

  def __init__(self, workdir: str, steps):
    steps = tuple(steps or ())
    if steps and (len(steps) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                             for v in steps) or steps[0] < 0 or steps[1] < 1):
      raise ValueError(f"train.profile_steps={steps!r} must be () or (start, count) with "
                       "start >= 0 and count >= 1")
    self.directory = paths.join(workdir, PROFILE_DIR)
    self.start, self.end = (steps[0], steps[0] + steps[1]) if steps else (-1, -1)
    self.active = False
    self._local = None  # the local folder traced into for a bucket workdir

  def before(self, step: int) -> None:
    """Starts the trace when `step` (completed steps) is the first one traced."""
    if step == self.start:
      if paths.is_url(self.directory):
        self._local = tempfile.mkdtemp(prefix="psrjax_profile_")
      jax.profiler.start_trace(self._local or self.directory)
      self.active = True

  def after(self, step: int, state) -> None:
    """Stops the trace once `step` steps are complete and the last traced one has run."""
    if self.active and step >= self.end:
      jax.block_until_ready(state)
      self.stop()

  def stop(self) -> None:
    if self.active:
      jax.profiler.stop_trace()
      self.active = False
      if self._local is not None:
        paths.copy_tree(self._local, self.directory)
        paths.remove(self._local)
        self._local = None


def _due(step: int, every: int) -> bool:
  return every > 0 and step % every == 0


def _fetch_checked(pending, last_saved: int | None) -> list[tuple[int, dict[str, float]]]:
  """Host values of the pending steps' metrics; raises on the first non-finite value."""
  host = jax.device_get([m for _, m in pending])
  out = []
  for (step, _), metrics in zip(pending, host):
    metrics = {k: float(v) for k, v in metrics.items()}
    bad = [k for k in sorted(metrics, key=lambda k: (k.startswith("l2_"), k))
           if not np.isfinite(metrics[k])]
    if bad:
      kind = "value" if bad[0].startswith("l2_") else "loss"
      good = ("no checkpoint was saved before it" if last_saved is None
              else f"last good checkpoint is step {last_saved}")
      raise NonFiniteLossError(f"non-finite {kind} {bad[0]!r} at step {step}; {good} (lower "
                               "optim.lr, or train again to resume from that checkpoint)")
    out.append((step, metrics))
  return out


def _fresh_state(ctx: context_lib.TrainContext) -> Any:
  batch = ctx.global_batch(ctx.first_batch)
  state = state_lib.create_state(ctx.init_fn, ctx.base_key, batch, ctx.state_shardings, ctx.mesh)
  if not ctx.config.init_from:
    return state
  target = ctx.restore_target()["params"]
  groups = context_lib.init_groups(ctx.config, target)
  loaded = checkpoint_lib.restore_params(ctx.config.init_from,
                                         {g: p for g, p in target.items() if g in groups},
                                         ema=ctx.config.get("init_from_ema", False))
  params = {**state["params"], **loaded}
  shardings = {k: v for k, v in ctx.state_shardings.items() if k != "params"}
  reinit = jax.jit(lambda p: {k: v for k, v in state_lib.from_params(
      p, ctx.optimizers, ctx.options.ema_groups).items() if k != "params"},
                   out_shardings=shardings)
  return {"params": params, **reinit(params)}


def _initial_state(ctx, checkpoints, stream) -> tuple[int, Any, str]:
  """(step, state, description of where it came from)."""
  resume_data = ctx.config.get("resume_data", "restore")
  found = checkpoints.restore_latest(ctx.restore_target(), stream, resume_data=resume_data)
  if found is not None:
    return found[0], found[1], f"resumed from {checkpoints.directory}/{found[0]}"
  if ctx.config.resume:
    step, state = checkpoint_lib.restore_from_path(ctx.config.resume, ctx.restore_target(),
                                                   stream, resume_data=resume_data)
    return step, state, f"resumed from config.resume={ctx.config.resume} (step {step})"
  origin = f"init_from={ctx.config.init_from}" if ctx.config.init_from else "scratch"
  return 0, _fresh_state(ctx), f"initialised from {origin}"


class _Run:
  """Mutable per-run pieces: the compiled steps, writers, evaluations and sampler."""

  def __init__(self, ctx, checkpoints, iterator, writer, progress, profile, keep_best):
    self.ctx, self.checkpoints, self.iterator = ctx, checkpoints, iterator
    self.keep_best = keep_best
    self.declared, self.declared_results = list(ctx.evals.values()), {}
    self.writer, self.progress, self.profile = writer, progress, profile
    self.history: list[dict[str, float]] = []
    self._steps: dict[str, Any] = {}
    self.first_compact = data_lib.encode_batch(ctx.first_batch)  # what the iterator yields
    # The sample example goes through the same transfer round trip as train and eval batches.
    example = data_lib.decode_batch(data_lib.encode_batch(ctx.eval_data.example(0)), xp=np)
    self.sampler = samples_lib.Sampler(ctx.system, ctx.mesh, example)

  def step_fn(self, stage, *args):
    """The stage's jitted step. The first time, it is compiled for `args` and its memory need
    checked against the devices' (`memory.check_fits`: one line with the fixes when it cannot
    fit), before it runs."""
    if stage.name not in self._steps:
      jitted = self.ctx.jit_step(stage)
      local = [d for d in self.ctx.mesh.devices.flat if d.process_index == jax.process_index()]
      memory_lib.check_fits(jitted.lower(*args).compile(), local,
                            what=f"the train step of stage {stage.name!r}")
      self._steps[stage.name] = jitted
    return self._steps[stage.name]

  def log(self, step: int, metrics: dict[str, float]) -> None:
    self.history.append({"step": step, **metrics})
    rate = self.progress.log(step, metrics)
    self.writer.write_scalars(step, {**metrics, "perf/steps_per_sec": rate})

  def sample(self, step: int, state) -> None:
    frames = self.sampler.frames(self.ctx.eval_params(state), self.ctx.stage_at(step - 1))
    path = writers_lib.write_sample_video(self.ctx.workdir, step, frames, self.writer)
    self.progress.message(f"sample written to {path}")

  @property
  def eval_results(self) -> dict[str, float] | None:
    """The last results of the `system` entry (TrainResult.eval_results)."""
    return self.declared_results.get(evals_lib.SYSTEM)

  def evaluate(self, step: int, state, *, final: bool) -> None:
    """The `config.evals` entries due at `step` (all with every >= 0 when `final`)."""
    if not any(d.due(step, final=final) for d in self.declared):
      return
    results = evals_lib.run_and_write(self.declared, self.ctx.eval_params(state),
                                      workdir=self.ctx.workdir, step=step, writer=self.writer,
                                      final=final)
    self.declared_results.update(results)
    for name, values in results.items():
      path = evals_common.results_path(self.ctx.workdir, name, step)
      self.progress.message(f"eval {name} at step {step}: {progress_lib.format_metrics(values)}"
                            f" -> {path}")
    if self.keep_best.update(step, results, state, self.iterator):
      info = self.keep_best.info
      self.progress.message(f"best {info['metric']}={info['value']:.6g} at step {step} -> "
                            f"{self.keep_best.directory}")


def _run_steps(run: _Run, state, step: int, end: int, flag) -> tuple[Any, int, bool]:
  """Trains from `step` to `end`; returns (state, step, stopped early)."""
  cfg = run.ctx.config.train
  pending = []
  while step < end:
    local = next(run.iterator)
    data_lib.check_same_structure(local, run.first_compact, step)
    batch = run.ctx.global_batch(local)
    run.profile.before(step)
    args = (state, batch, run.ctx.base_key, run.ctx.constants)
    state, metrics = run.step_fn(run.ctx.stage_at(step), *args)(*args)
    step += 1
    run.profile.after(step, state)
    pending.append((step, metrics))
    run.progress.update(step)
    log_due = _due(step, cfg.log_every) or step == end
    stop = flag.requested(sync_step=log_due) and step < end
    save_due = _due(step, cfg.checkpoint_every) or step == end or stop
    if log_due or save_due:
      host = _fetch_checked(pending, run.checkpoints.latest_step())
      pending = []
      if log_due or stop:
        run.log(*host[-1])
    if save_due:
      run.checkpoints.save(step, state, run.iterator)
      run.writer.flush()  # Metrics reach the workdir with each checkpoint.
    if stop:
      return state, step, True
    if _due(step, cfg.sample_every) and step < end:
      run.sample(step, state)
    if step < end:
      run.evaluate(step, state, final=False)
  return state, step, False


def _start(ctx) -> tuple[Any, Any]:
  """Creates the workdir (and its missing parents) and opens the checkpoints and the train
  iterator."""
  paths.makedirs(ctx.workdir)
  checkpoints = checkpoint_lib.Checkpoints(
      paths.join(ctx.workdir, checkpoint_lib.CHECKPOINT_DIR),
      max_to_keep=ctx.config.train.max_to_keep)
  stream = data_lib.TrainStream(ctx.batched, ctx.config, partitioning.data_shard(ctx.mesh))
  return checkpoints, stream


def train(config, workdir: str, *, stop_after: int | None = None, devices=None) -> TrainResult:
  """Trains `config.system` in `workdir` (resuming from its latest checkpoint if any).

  `stop_after`: stop (with a checkpoint) once this many steps are done, as a preemption would.
  Raises ValueError on bad input (before writing anything) and NonFiniteLossError on NaN/Inf.
  """
  keep_best = best_lib.parse(config)  # Config-only checks first.
  checkpoint_lib.check_resume_data(config.get("resume_data", "restore"))
  ctx = context_lib.build_context(config, workdir, devices=devices)
  if jax.process_index() == 0:
    print(f"training on {platform_lib.line(ctx.runtime)}", flush=True)
  best_lib.check_existing(keep_best, ctx.workdir)
  profile = StepProfile(ctx.workdir, ctx.config.train.get("profile_steps", ()))
  data_lib.resolve_workers(ctx.config.train.data_workers)
  end = ctx.total_steps if stop_after is None else min(stop_after, ctx.total_steps)
  checkpoints, iterator = _start(ctx)
  writer, progress = writers_lib.make_writer(ctx.workdir), None
  try:
    step, state, origin = _initial_state(ctx, checkpoints, iterator)
    if jax.process_index() == 0:  # Only once the config proved compatible with the state.
      _save_config(ctx)
    progress = progress_lib.Progress(ctx.total_steps, step)
    run = _Run(ctx, checkpoints, iterator, writer, progress, profile,
               best_lib.KeepBest(ctx.workdir, keep_best))
    progress.message(f"{ctx.config.system}: {origin}; training steps {step}..{end} of "
                     f"{ctx.total_steps} on mesh {dict(ctx.mesh.shape)}")
    with preemption.sigterm_stops(preemption.StopFlag()) as flag:
      state, step, stopped = _run_steps(run, state, step, end, flag)
    preempted = stopped or step < ctx.total_steps
    if preempted:
      progress.message(f"stopped at step {step}; checkpoint saved, rerun to resume")
    else:
      _finish(run, state, step)
    return TrainResult(ctx.workdir, step, state, run.history, run.eval_results,
                       preempted=preempted, evals=run.declared_results, best=run.keep_best.info)
  finally:
    profile.stop()
    if progress is not None:
      progress.close()
    checkpoints.close()
    writer.close()
    iterator.close()


def _save_config(ctx) -> None:
  """`<workdir>/config.json`: the run's config, with where it runs under `runtime`."""
  config = ctx.config.copy_and_resolve_references()
  with config.unlocked():
    config.runtime = dict(ctx.runtime)
  config_utils.save_config(config, paths.join(ctx.workdir, config_utils.WORKDIR_CONFIG))


def _finish(run: _Run, state, step: int) -> None:
  """Final sample and evaluation (after the final checkpoint is on disk)."""
  run.checkpoints.wait()
  run.sample(step, state)
  run.evaluate(step, state, final=True)
  logging.info("training finished at step %d", step)
