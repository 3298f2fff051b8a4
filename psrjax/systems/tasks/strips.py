"""Sample strips: generated and real videos side by side under a caption row naming each column
(what `System.sample_video` returns and `psrjax synthesize` writes)."""
from __future__ import annotations

import numpy as np


def side_by_side(columns, names=None) -> np.ndarray:
  """Videos in [-1, 1] (each [T, H, W, 3]) side by side: one uint8 strip [T, H', ΣW, 3].

  With `names` (one per column) a caption row naming each column sits above the frames
  (`caption_height(H)` rows, H' = H + that); without, H' = H.
  """
  strip = np.concatenate([np.asarray(c, np.float32) for c in columns], axis=-2)
  strip = np.clip((strip + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
  if names is None:
    return strip
  names = tuple(names)
  if len(names) != len(columns):
    raise ValueError(f"side_by_side got {len(columns)} columns but {len(names)} names {names}")
  widths = [np.shape(c)[-2] for c in columns]
  band = caption_row(names, widths, height=caption_height(strip.shape[1]))
  band = np.broadcast_to(band, (strip.shape[0],) + band.shape)
  return np.concatenate([band, strip], axis=1)


def caption_height(frame_height: int) -> int:
  """Rows of the caption band above frames of `frame_height` rows."""
  return max(11, round(frame_height / 6))


def caption_row(names, widths, *, height: int) -> np.ndarray:
  """uint8 [height, Σwidths, 3]: each name in white on black, centred over its column, the font
  shrunk (down to 6 px) to fit the column's width and clipped to it."""
  from PIL import Image, ImageDraw, ImageFont  # pylint: disable=g-import-not-at-top
  cells = []
  for name, width in zip(names, widths):
    cell = Image.new("RGB", (int(width), height))
    draw = ImageDraw.Draw(cell)
    size = height - 2
    font = ImageFont.load_default(size=size)
    while size > 6 and draw.textlength(name, font=font) > width - 2:
      size -= 1
      font = ImageFont.load_default(size=size)
    left = max(1.0, (width - draw.textlength(name, font=font)) / 2)
    draw.text((left, height / 2), name, fill=(255, 255, 255), font=font, anchor="lm")
    cells.append(np.asarray(cell))
  return np.concatenate(cells, axis=1)
