"""Inference from a trained workdir: restore its parameters, generate, write videos."""
from __future__ import annotations

import functools
import sys
from typing import Any, Iterable, Iterator, Mapping, Sequence

import jax
import numpy as np

from psrjax import config_utils
from psrjax import paths
from psrjax.data.video import write_video  # noqa: F401  (inference.write_video: psrjax synthesize)
from psrjax.systems import base
from psrjax.train import offline_eval
from psrjax.train import samples


def load_trained(workdir: str, overrides: Sequence[tuple[str, str]] = (), *,
                 best: bool = False) -> tuple[Any, dict, int]:
  """(system, params with the system's constants, step) of the latest checkpoint of `workdir`
  (`best`: of the snapshot `train.keep_best` kept in `<workdir>/best/`)."""
  if not paths.isdir(workdir):
    raise ValueError(f"workdir {workdir!r} does not exist; train first (psrjax train)")
  config = config_utils.load_workdir_config(workdir)
  for key, text in overrides:
    config_utils.apply_override(config, key, text)
  ctx, step, state = offline_eval.load_latest(config, workdir, best=best)
  return ctx.system, ctx.eval_params(state), step


def sample_frames(system, params, example: Mapping[str, np.ndarray]) -> np.ndarray:
  """uint8 [T, H, W', 3]: `System.sample_video` of one example (no batch axis), generated as
  the trainer's samples are (`samples.Sampler`, on the mesh the parameters live on) when the
  parameters are sharded arrays; otherwise by `generate` jitted on one device (replicated
  parameters: from their copies on this process's first device, `samples.local_copy`)."""
  batch = {k: np.asarray(v)[None] for k, v in example.items()}
  params = _on_one_device(params)
  sharding = getattr(jax.tree.leaves(params)[0], "sharding", None)
  if isinstance(sharding, jax.sharding.NamedSharding):
    return samples.Sampler(system, sharding.mesh, batch).frames(params, None)
  outputs = jax.device_get(jax.jit(functools.partial(base.generate, system))(params, batch))
  outputs = {k: np.asarray(v)[0] for k, v in outputs.items()}
  return np.asarray(system.sample_video(dict(example), outputs))


def _on_one_device(params):
  """Replicated `params` as their copies on this process's first device, else unchanged."""
  local = samples.local_copy(params)
  return params if local is None else local


def window_frames(system, params, windows: Iterable[Mapping[str, np.ndarray]], *,
                  stream=None, moments=None) -> Iterator[np.ndarray]:
  """uint8 frames [H, W', 3] of the `System.sample_video` strips of consecutive windows of one
  video (`System.synthesis_windows`), generated one after another with the system's temporal
  state carried from window to window (`System.generate_window`), each window's kept frames
  (`base.KEEP_FRAMES`) only. One program is compiled for every window of one length, for one
  device when the parameters are replicated (`samples.local_copy`). Progress goes to `stream`
  (default stderr): a line per window. `moments`: the batch norms' population statistics
  (`System.batch_norm_moments`) to normalise with instead of each window's own."""
  params = _on_one_device(params)
  if moments:
    params = {**params, base.MOMENTS_GROUP: moments}
  step = jax.jit(functools.partial(base.generate_window, system))
  stream = sys.stderr if stream is None else stream
  state, done = None, 0
  for number, example in enumerate(windows):
    example = dict(example)
    keep = int(example.pop(base.KEEP_FRAMES, 0)) or None
    batch = {k: np.asarray(v)[None] for k, v in example.items()}
    if state is None:
      state = jax.jit(functools.partial(base.window_state, system))(batch)
    outputs, state = step(params, batch, state)
    outputs = {k: np.asarray(v)[0] for k, v in jax.device_get(outputs).items()}
    strip = np.asarray(system.sample_video(example, outputs))[:keep]
    done += strip.shape[0]
    print(f"synthesize: window {number + 1}, {done} frames", file=stream, flush=True)
    yield from strip
