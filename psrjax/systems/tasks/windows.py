"""Rendering a long video window by window (`System.synthesis_windows`): the `--frames A:B`
option of `psrjax synthesize` and the frame numbers of each window."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from psrjax.systems import base

FRAMES = base.Option(
    "frames", str, "", "with a driving video (--driving cross or a prepared dataset): its frames "
    "A:B to render (A: or :B open-ended; default: every frame)")


def frame_range(text: str) -> tuple[int, int | None]:
  """`--frames` "A:B" / "A:" / ":B" / "" -> (start, stop or None)."""
  if not text:
    return 0, None
  first, sep, last = str(text).partition(":")
  try:
    if not sep:
      raise ValueError
    start, stop = int(first or 0), (int(last) if last else None)
  except ValueError:
    raise ValueError(f"--frames {text!r}: give A:B (frame numbers, B excluded), A: or :B") from None
  if start < 0 or (stop is not None and stop <= start):
    raise ValueError(f"--frames {text!r} selects no frame; give A:B with 0 <= A < B")
  return start, stop


def clip_range(text: str, num_frames: int) -> tuple[int, int]:
  """`--frames` as (start, stop) within a video of `num_frames` frames."""
  start, stop = frame_range(text)
  stop = num_frames if stop is None else min(stop, num_frames)
  if start >= stop:
    raise ValueError(f"--frames {text!r} selects no frame of the video's {num_frames} frames")
  return start, stop


def padded_windows(start: int, stop: int, length: int) -> Iterator[tuple[np.ndarray, int]]:
  """(frame numbers [length], how many of them to keep) of consecutive windows over frames
  [start, stop); the last is padded by repeating frame stop - 1, so that every window has one
  length and one compiled program serves them all."""
  for first in range(start, stop, length):
    yield np.minimum(np.arange(first, first + length), stop - 1), min(length, stop - first)
