"""Inference from a trained workdir: restore its parameters, generate, write videos."""
from __future__ import annotations

import functools
import os
from typing import Any, Mapping, Sequence

import imageio.v3 as iio
import jax
import numpy as np

from psrjax import config_utils
from psrjax.systems import base
from psrjax.train import offline_eval


def load_trained(workdir: str, overrides: Sequence[tuple[str, str]] = (), *,
                 best: bool = False) -> tuple[Any, dict, int]:
  """(system, params with the system's constants, step) of the latest checkpoint of `workdir`
  (`best`: of the snapshot `train.keep_best` kept in `<workdir>/best/`)."""
  if not os.path.isdir(workdir):
    raise ValueError(f"workdir {workdir!r} does not exist; train first (psrjax train)")
  config = config_utils.load_workdir_config(workdir)
  for key, text in overrides:
    config_utils.apply_override(config, key, text)
  ctx, step, state = offline_eval.load_latest(config, workdir, best=best)
  return ctx.system, ctx.eval_params(state), step


def sample_frames(system, params, example: Mapping[str, np.ndarray]) -> np.ndarray:
  """uint8 [T, H, W', 3]: `System.sample_video` of one example (no batch axis)."""
  batch = {k: np.asarray(v)[None] for k, v in example.items()}
  outputs = jax.device_get(jax.jit(functools.partial(base.generate, system))(params, batch))
  outputs = {k: np.asarray(v)[0] for k, v in outputs.items()}
  return np.asarray(system.sample_video(dict(example), outputs))


def write_video(path: str, frames: np.ndarray, *, fps: int = 8) -> None:
  """Writes uint8 [T, H, W, 3] frames as MP4 (H.264, sizes padded to even) or GIF."""
  frames = np.asarray(frames, np.uint8)
  if path.lower().endswith(".gif"):
    iio.imwrite(path, frames, extension=".gif", duration=int(1000 / fps), loop=0)
    return
  pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
  frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
  iio.imwrite(path, frames, extension=".mp4", fps=fps, codec="libx264", macro_block_size=1)
