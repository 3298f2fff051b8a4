"""Render a trained model's result as a video a person can watch.

  psrjax synthesize --workdir DIR --seed 7 --source-view 1 --target-view 2 --out out.mp4

Loads the workdir's config and latest checkpoint, renders synthetic test clip `--seed`, and writes
the system's side-by-side strip (for PSR-Net: input view | texture transfer | each layer | target)
as MP4 or GIF (by the extension of --out). Views are numbered from 1, as in the paper.
"""
from __future__ import annotations

import os


def add_arguments(parser) -> None:
  parser.add_argument("--workdir", required=True, help="directory written by psrjax train")
  parser.add_argument("--out", required=True, help="output video (.mp4 or .gif)")
  parser.add_argument("--seed", type=int, default=0, help="synthetic test clip to render")
  parser.add_argument("--source-view", type=int, default=1, help="input view i (1-based)")
  parser.add_argument("--target-view", type=int, default=2, help="target view j (1-based)")
  parser.add_argument("--fps", type=int, default=8, help="frames per second of the video")


def run(args) -> int:
  ext = os.path.splitext(args.out)[1].lower()
  if ext not in (".mp4", ".gif"):
    raise ValueError(f"--out must end in .mp4 or .gif, got {args.out!r}")
  out_dir = os.path.dirname(os.path.abspath(args.out))
  if not os.path.isdir(out_dir):
    raise ValueError(f"output folder {out_dir!r} does not exist; create it first")
  from psrjax.train import inference  # pylint: disable=g-import-not-at-top  # JAX after parsing.
  system, params, step = inference.load_trained(args.workdir, args.config_overrides)
  example = system.synthesis_example(seed=args.seed, source_view=args.source_view,
                                     target_view=args.target_view)
  frames = inference.sample_frames(system, params, example)
  inference.write_video(args.out, frames, fps=args.fps)
  print(f"wrote {args.out} ({frames.shape[0]} frames, checkpoint step {step})")
  return 0
