"""A long video rendered window by window (`System.synthesis_windows`, `generate_window`): the
video systems' temporal state carried from window to window, and `psrjax synthesize --driving`
writing every requested frame of a driving video."""
import functools
import os
import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train"))

import train_harness  # noqa: E402
from psrjax import cli  # noqa: E402
from psrjax.data import video  # noqa: E402
from psrjax.systems import base  # noqa: E402
from psrjax.systems import registry  # noqa: E402
from psrjax.systems.tasks import windows  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


def _window(batch, length: int, lo: int, hi: int) -> dict:
  """Frames [lo, hi) of every time-major key of a batch of runs of `length` frames."""
  return {k: v[:, lo:hi] if v.ndim >= 2 and v.shape[1] == length else v for k, v in batch.items()}


@pytest.mark.parametrize("name", [
    pytest.param("edn", marks=pytest.mark.xdist_group("edn")),
    # CoCosNet video's generator compiles for minutes on a 2-core CPU.
    pytest.param("cocovid", marks=[pytest.mark.xdist_group("cocovid"), pytest.mark.slow])])
def test_windows_continue_the_video_from_the_state_they_carry(name):
  system = registry.get_system(train_harness.config_with(os.path.join(CONFIGS, f"{name}.py:tiny")))
  batch = train_harness.eval_batch(system, size=1)
  params = train_harness.init_params(system, batch, 0)
  # Away from the initialisation, where CoCosNet's weights on the previous frames start at 0.
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda p: p + 0.02 * rng.standard_normal(p.shape).astype(p.dtype)
                        if np.issubdtype(p.dtype, np.floating) else p, params)
  length = batch["keypoints"].shape[1]
  half = length // 2
  whole = np.asarray(jax.jit(functools.partial(base.generate, system))(params, batch)["frames"])
  step = jax.jit(functools.partial(base.generate_window, system))
  first, second = _window(batch, length, 0, half), _window(batch, length, half, length)
  start = base.window_state(system, first)
  out1, state = step(params, first, start)
  out2, _ = step(params, second, state)
  joined = np.concatenate([np.asarray(out1["frames"]), np.asarray(out2["frames"])], axis=1)
  np.testing.assert_allclose(joined, whole, atol=2e-5)
  fresh, _ = step(params, second, base.window_state(system, second))
  assert not np.allclose(np.asarray(fresh["frames"]), whole[:, half:], atol=1e-4)


def test_frame_ranges_parse_and_bad_ones_name_the_fix():
  assert windows.frame_range("") == (0, None)
  assert windows.frame_range("3:14") == (3, 14)
  assert windows.frame_range("5:") == (5, None)
  assert windows.frame_range(":9") == (0, 9)
  for bad in ("7", "a:b", "9:3", "-1:4"):
    with pytest.raises(ValueError, match="--frames"):
      windows.frame_range(bad)


@pytest.mark.xdist_group("pix2pixhd")
def test_synthesize_renders_every_requested_frame_of_the_driving_video(system_runs, tmp_path):
  workdir = system_runs("pix2pixhd").straight.workdir
  system = registry.get_system(train_harness.config_with(
      os.path.join(CONFIGS, "pix2pixhd.py:tiny")))
  window = system.config.data.eval_run_frames
  count = 2 * window + 3                  # two full windows and a padded one
  out = str(tmp_path / "driven.mp4")
  assert cli.main(["synthesize", "--workdir", workdir, "--driving", "cross", "--frames",
                   f"1:{1 + count}", "--out", out]) == 0
  frames, _ = video.read_video(out)
  h = system.config.data.resolution
  assert frames.shape[0] == count and frames.shape[2] == 3 * h
  with pytest.raises(ValueError, match="--frames"):
    list(system.synthesis_windows(seed=0, driving="test", frames="0:4"))
  with pytest.raises(ValueError, match="--seed 5 names no driving video"):
    next(system.synthesis_windows(seed=5, driving="cross"))
