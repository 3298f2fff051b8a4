"""`psrjax render-synthetic` writes a viewable preview; bad input is one line and exit code 2."""
import argparse
import os

import imageio.v2 as imageio
import numpy as np
import pytest

import psrjax.data.synthetic as S
from psrjax.commands import render_synthetic
from psrjax.data.synthetic import preview, visualize


def _run(argv):
  parser = argparse.ArgumentParser()
  render_synthetic.add_arguments(parser)
  return render_synthetic.run(parser.parse_args(argv))


def test_writes_gif_grid_and_variety_sheet(tmp_path, capsys):
  out = tmp_path / "prev"
  assert _run(["--out", str(out), "--seed", "3", "--count", "2", "--views", "2", "--frames", "3",
               "--resolution", "16"]) == 0
  names = sorted(os.listdir(out))
  assert names == ["synthetic_seed3.gif", "synthetic_seed4.gif", "variety.png"]
  frames = imageio.mimread(out / "synthetic_seed3.gif")
  scale = 128 // 16
  assert 1 <= len(frames) <= 3
  assert frames[0].shape[:2] == (2 * 16 * scale, len(preview.MODALITIES) * 16 * scale)
  sheet = imageio.imread(out / "variety.png")
  assert sheet.shape[:2] == (2 * 16 * scale, 2 * 16 * scale)
  assert str(out / "variety.png") in capsys.readouterr().out


def test_writes_mp4(tmp_path):
  assert _run(["--out", str(tmp_path), "--count", "1", "--views", "1", "--frames", "2",
               "--resolution", "24", "--format", "mp4"]) == 0
  assert os.path.getsize(tmp_path / "synthetic_seed0.mp4") > 0


@pytest.mark.parametrize("argv, word", [
    (["--views", "0"], "num_views"), (["--resolution", "-4"], "resolution"),
    (["--action", "fly"], "walk_in_place"), (["--format", "avi"], "gif"),
    (["--frames", "0"], "num_frames"), (["--count", "0"], "count")])
def test_bad_input_is_one_line(tmp_path, capsys, argv, word):
  assert _run(["--out", str(tmp_path)] + argv) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and word in err and "Traceback" not in err


def test_dispatch_through_cli(tmp_path, capsys):
  from psrjax import cli
  assert cli.main(["render-synthetic", "--out", str(tmp_path), "--count", "1", "--views", "1",
                   "--frames", "1", "--resolution", "8"]) == 0
  assert cli.main(["render-synthetic", "--out", str(tmp_path), "--views", "0"]) == 2
  assert capsys.readouterr().err.count("\n") == 1


def test_colour_codings():
  assert visualize.PART_COLORS.shape == (25, 3) and len({tuple(c) for c in visualize.PART_COLORS}) == 25
  face = np.array([[-1, 0], [1, S.NUM_FACES - 1]])
  col = visualize.face_colors(face)
  assert (col[0, 0] == 0).all() and len({tuple(c) for c in col.reshape(-1, 3)[1:]}) == 3
  flow = np.array([[[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
  fc = visualize.flow_colors(flow)
  assert (fc[0, 3] == 255).all() and len({tuple(c) for c in fc[0]}) == 4
  depth = np.array([[0.0, 2.0, 3.0]])
  dc = visualize.depth_colors(depth)
  assert (dc[0, 0] == 0).all() and dc[0, 1].sum() > dc[0, 2].sum()
