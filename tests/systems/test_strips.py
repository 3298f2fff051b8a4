"""Sample strips: columns side by side under a caption row naming them."""
from __future__ import annotations

import numpy as np
import pytest

from psrjax.systems.tasks import strips


def _video(value, t=2, h=48, w=40):
  return np.full((t, h, w, 3), value, np.float32)


def test_caption_row_names_each_column_over_the_frames():
  columns = [_video(-1.0), _video(0.0), _video(1.0)]
  strip = strips.side_by_side(columns, ["input", "", "target"])
  band = strips.caption_height(48)
  assert strip.shape == (2, band + 48, 120, 3) and strip.dtype == np.uint8
  np.testing.assert_array_equal(strip[:, band:], strips.side_by_side(columns))
  np.testing.assert_array_equal(strip[0, :band], strip[1, :band])  # the same over time
  lit = strip[0, :band].max(axis=(0, 2))  # per pixel column: any text drawn
  assert lit[:40].max() > 200 and lit[80:].max() > 200  # "input", "target"
  assert lit[40:80].max() == 0  # the unnamed column stays black
  assert not np.array_equal(strip[0, :band, :40], strip[0, :band, 80:])


def test_long_names_shrink_and_stay_in_their_column():
  strip = strips.side_by_side([_video(0.0, w=16), _video(0.0, w=16)],
                            ["a very long column name", ""])
  band = strips.caption_height(48)
  assert strip[0, :band, :16].max() > 100 and strip[0, :band, 16:].max() == 0


def test_names_must_match_the_columns():
  with pytest.raises(ValueError, match="2 columns but 1 names"):
    strips.side_by_side([_video(0.0), _video(0.0)], ["one"])
