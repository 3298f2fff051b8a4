"""`psrjax synthesize --out FILE.png`: a still of chosen frames, and its input errors."""
import numpy as np
import pytest

from psrjax import cli
from psrjax.commands import synthesize


def _frames(count: int):
  """Frame i is filled with the value 10 i."""
  return (np.full((6, 9, 3), 10 * i, np.uint8) for i in range(count))


def test_a_still_stacks_the_picked_frames_with_white_rows_between():
  image = synthesize.still(_frames(7), [0, -1])
  gap = synthesize.STILL_GAP
  assert image.shape == (2 * 6 + gap, 9, 3)
  assert (image[:6] == 0).all() and (image[6:6 + gap] == 255).all() and (image[-6:] == 60).all()
  default = synthesize.still(_frames(7), None)          # first, middle, last
  assert default.shape[0] == 3 * 6 + 2 * gap and default[-1, 0, 0] == 60
  assert default[6 + gap, 0, 0] == 30


def test_still_frames_are_checked():
  assert synthesize.still_picks("0,8,-1") == [0, 8, -1] and synthesize.still_picks("") is None
  with pytest.raises(ValueError, match="--still takes comma-separated frame indices"):
    synthesize.still_picks("0,last")
  with pytest.raises(ValueError, match=r"--still frames \[7\] are outside the 7 frames"):
    synthesize.still(_frames(7), [0, 7])


def test_still_needs_a_png_and_png_is_the_only_image(tmp_path, capsys):
  for out, extra, message in ((tmp_path / "x.mp4", ["--still", "0"], "give --out FILE.png"),
                              (tmp_path / "x.jpg", [], "must end in .mp4, .gif or .png")):
    assert cli.main(["synthesize", "--workdir", str(tmp_path), "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err and not out.exists()
