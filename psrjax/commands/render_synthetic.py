"""Write a preview of the synthetic world: `psrjax render-synthetic --out DIR [--seed N ...]`.

One animated grid per clip (rows = views; columns = rgb, depth, part colours, face-id colours,
keypoint skeleton, forward flow) and `variety.png`, the first frame of every clip side by side.
"""
from __future__ import annotations

import sys

from psrjax.data.synthetic import preview


def add_arguments(parser) -> None:
  parser.add_argument("--out", required=True, help="output directory (created if missing)")
  parser.add_argument("--seed", type=int, default=0, help="first clip seed (>= 0)")
  parser.add_argument("--count", type=int, default=4, help="number of consecutive seeds to render")
  parser.add_argument("--views", type=int, default=3, help="number of cameras (>= 1)")
  parser.add_argument("--frames", type=int, default=16, help="frames per clip (>= 1)")
  parser.add_argument("--resolution", type=int, default=128, help="image size in pixels (> 0)")
  parser.add_argument("--action", default=None, help="action name (default: drawn from the seed)")
  parser.add_argument("--format", default="gif", help="gif or mp4")
  parser.add_argument("--fps", type=float, default=8.0, help="playback frames per second")


def run(args) -> int:
  try:
    paths = preview.render_preview(
        args.out, seed=args.seed, count=args.count, num_views=args.views, num_frames=args.frames,
        resolution=args.resolution, action=args.action, fmt=args.format, fps=args.fps)
  except ValueError as e:
    print(f"psrjax render-synthetic: error: {' '.join(str(e).split())}", file=sys.stderr)
    return 2
  for path in paths:
    print(path)
  return 0
