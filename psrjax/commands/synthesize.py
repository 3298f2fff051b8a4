"""Render a trained model's result as a video a person can watch.

  psrjax synthesize --workdir DIR --seed 7 --source-view 1 --target-view 2 --out out.mp4
  psrjax synthesize --workdir DIR --seed 9 --driving-seed 19 --background-seed 29 --out out.gif

Loads the workdir's config and latest checkpoint, renders synthetic clip `--seed` (and the other
clips the system's options name), and writes the system's side-by-side strip as MP4 or GIF (by
the extension of --out). The options the system's `synthesis_example` accepts are passed to it:
PSR-Net takes the views (numbered from 1, as in the paper: input view | texture transfer | each
layer | target); MFCI takes the driving clip (motion) and the background clip (background
substitution); pix2pixHD and EDN take `--driving test|cross` (run --seed of the held-out
segment with its ground truth, or another person's poses after Everybody Dance Now's global
normalisation). Giving an option the system does not take is an error. `--best` renders the
best-validation snapshot `train.keep_best` kept in DIR/best/ instead of the latest checkpoint.
"""
from __future__ import annotations

import inspect
import os

# Options passed to `System.synthesis_example` when its signature names them: {name: default}.
SYSTEM_OPTIONS = {"source_view": 1, "target_view": 2, "driving_seed": None, "background_seed": None,
                  "driving": "test"}


def add_arguments(parser) -> None:
  parser.add_argument("--workdir", required=True, help="directory written by psrjax train")
  parser.add_argument("--out", required=True, help="output video (.mp4 or .gif)")
  parser.add_argument("--seed", type=int, default=0, help="synthetic clip to render")
  parser.add_argument("--source-view", type=int, default=None,
                      help="PSR-Net: input view i (1-based, default 1)")
  parser.add_argument("--target-view", type=int, default=None,
                      help="PSR-Net: target view j (1-based, default 2)")
  parser.add_argument("--driving-seed", type=int, default=None,
                      help="MFCI: clip whose motion is transferred (default: --seed's own)")
  parser.add_argument("--background-seed", type=int, default=None,
                      help="MFCI: clip whose background replaces the source's")
  parser.add_argument("--driving", choices=("test", "cross"), default=None,
                      help="pix2pixHD / EDN: pose the learned person with run --seed of the "
                           "held-out segment ('test', default) or of another person's video, "
                           "normalised onto the learned person ('cross')")
  parser.add_argument("--fps", type=int, default=8, help="frames per second of the video")
  parser.add_argument("--best", action="store_true",
                      help="use the snapshot train.keep_best kept in WORKDIR/best/ instead of "
                           "the latest checkpoint")


def example_options(system, args) -> dict:
  """Keyword arguments for `system.synthesis_example` from the parsed options."""
  accepted = inspect.signature(system.synthesis_example).parameters
  options = {"seed": args.seed}
  for name, default in SYSTEM_OPTIONS.items():
    value = getattr(args, name)
    if name in accepted:
      options[name] = default if value is None else value
    elif value is not None:
      flag = "--" + name.replace("_", "-")
      raise ValueError(f"{flag} does not apply to system {type(system).__name__}; its options: "
                       + (", ".join("--" + n.replace("_", "-") for n in accepted if n != "seed")
                          or "none"))
  return options


def run(args) -> int:
  ext = os.path.splitext(args.out)[1].lower()
  if ext not in (".mp4", ".gif"):
    raise ValueError(f"--out must end in .mp4 or .gif, got {args.out!r}")
  out_dir = os.path.dirname(os.path.abspath(args.out))
  if not os.path.isdir(out_dir):
    raise ValueError(f"output folder {out_dir!r} does not exist; create it first")
  from psrjax.train import inference  # pylint: disable=g-import-not-at-top  # JAX after parsing.
  system, params, step = inference.load_trained(args.workdir, args.config_overrides,
                                                best=args.best)
  example = system.synthesis_example(**example_options(system, args))
  frames = inference.sample_frames(system, params, example)
  inference.write_video(args.out, frames, fps=args.fps)
  which = "best snapshot" if args.best else "checkpoint"
  print(f"wrote {args.out} ({frames.shape[0]} frames, {which} step {step})")
  return 0
