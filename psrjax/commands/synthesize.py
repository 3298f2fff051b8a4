"""Render a trained model's result as a video a person can watch.

  psrjax synthesize --workdir DIR --seed 7 --out out.mp4 [the system's options]
  psrjax synthesize --workdir DIR --help      (lists the options of the system DIR holds)

Loads the workdir's config and latest checkpoint, asks the system for its synthesis windows
(`System.synthesis_windows`: example `--seed`, or every window of a whole driving video) and
writes the system's side-by-side strips, window after window, as MP4 or GIF (by the extension
of --out), or, with --out FILE.png, a still: the frames --still picks, stacked top to bottom.
The other options are the system's own, declared by its `synthesis_options` (e.g. which views,
which driving video, which frames of it). `--best` renders the
best-validation snapshot `train.keep_best` kept in DIR/best/ instead of the latest checkpoint.
Models with batch norm (FOMM, INTERnet) normalise with the population statistics of the
workdir's training split (`--batch-norm population`, the default; read from the training data),
not with the one window being rendered (`--batch-norm batch`).
DIR and --out may be local or bucket URLs (`gs://bucket/run`, `gs://bucket/out.mp4`: the video
is encoded in a local temporary file, then uploaded).
"""
from __future__ import annotations

import itertools
import os
import sys
import tempfile

from psrjax import paths
from psrjax.systems import registry


def add_arguments(parser) -> None:
  parser.add_argument("--workdir", required=True,
                      help="directory written by psrjax train (with --help: also lists the "
                           "options of its system)")
  parser.add_argument("--out", required=True,
                      help="output video (.mp4 or .gif), or still image (.png, see --still)")
  parser.add_argument("--seed", type=int, default=0,
                      help="the system's synthesis example (e.g. the synthetic clip) to render")
  parser.add_argument("--fps", type=int, default=8, help="frames per second of the video")
  parser.add_argument("--still", default="", metavar="I,J,...",
                      help="with --out FILE.png: the frames to stack top to bottom (0-based; "
                           "negative counts from the end; default: the first, middle and last)")
  parser.add_argument("--best", action="store_true",
                      help="use the snapshot train.keep_best kept in WORKDIR/best/ instead of "
                           "the latest checkpoint")
  parser.add_argument("--batch-norm", choices=("population", "batch"), default="population",
                      help="models with batch norm (FOMM, INTERnet): normalise with the "
                           "training data's population statistics, measured from the workdir's "
                           "training split (default), or with each window's own frames' "
                           "(a batch of one: no training data needed)")


def add_dynamic_arguments(parser, known) -> None:
  """The options of the system the workdir holds (`System.synthesis_options`); none when the
  workdir has no config yet (`run` then reports it)."""
  from psrjax import config_utils  # pylint: disable=g-import-not-at-top
  workdir = getattr(known, "workdir", None)
  if not workdir or not paths.isfile(paths.join(workdir, config_utils.WORKDIR_CONFIG)):
    return
  system = registry.get_system(config_utils.load_workdir_config(workdir))
  group = parser.add_argument_group(f"options of system {system.config.system!r} "
                                    f"({type(system).__name__})")
  for option in system.synthesis_options:
    group.add_argument(option.flag, dest=option.name, type=option.type, default=option.default,
                       choices=option.choices, help=f"{option.help} (default: {option.default})")


def example_options(system, args) -> dict:
  """Keyword arguments for `system.synthesis_example` from the parsed options."""
  options = {"seed": args.seed}
  for option in system.synthesis_options:
    options[option.name] = getattr(args, option.name, option.default)
  return options


def _write(path: str, frames, fps: int) -> int:
  """Writes the frames (any iterable, consumed as they come) to a local path, or encodes them
  locally and uploads the video to a bucket URL; returns how many were written."""
  from psrjax.train import inference  # pylint: disable=g-import-not-at-top
  count = 0

  def counted():
    nonlocal count
    for frame in frames:
      count += 1
      yield frame

  if not paths.is_url(path):
    inference.write_video(path, counted(), fps=fps)
    return count
  with tempfile.TemporaryDirectory() as tmp:
    local = os.path.join(tmp, "video" + os.path.splitext(path)[1].lower())
    inference.write_video(local, counted(), fps=fps)
    with open(local, "rb") as f:
      paths.write_bytes(path, f.read())
  return count


STILL_GAP = 4   # white rows between the frames of a still


def still_picks(text: str) -> list[int] | None:
  """--still's frame indices; None (the default picks) for ''."""
  if not text:
    return None
  try:
    return [int(i) for i in text.split(",")]
  except ValueError:
    raise ValueError(f"--still takes comma-separated frame indices such as 0,8,-1; got "
                     f"{text!r}") from None


def still(frames, picks: list[int] | None):
  """uint8 [H', W, 3]: the frames `picks` selects (default: first, middle, last), top to bottom
  with white rows between them."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  frames = list(frames)
  count = len(frames)
  picks = sorted({0, count // 2, count - 1}) if picks is None else picks
  bad = [i for i in picks if not -count <= i < count]
  if bad:
    raise ValueError(f"--still frames {bad} are outside the {count} frames synthesized; pick "
                     f"indices in {-count}..{count - 1}")
  gap = np.full((STILL_GAP,) + frames[0].shape[1:], 255, np.uint8)
  rows = [part for i in picks for part in (gap, np.asarray(frames[i], np.uint8))][1:]
  return np.concatenate(rows, axis=0)


def _write_still(path: str, image) -> None:
  import io  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG", optimize=True)
  paths.write_bytes(path, buffer.getvalue())


def run(args) -> int:
  ext = os.path.splitext(args.out)[1].lower()
  if ext not in (".mp4", ".gif", ".png"):
    raise ValueError(f"--out must end in .mp4, .gif or .png, got {args.out!r}")
  if args.still and ext != ".png":
    raise ValueError(f"--still makes a still image: give --out FILE.png, not {args.out!r}")
  picks = still_picks(args.still)
  out_dir = os.path.dirname(paths.resolve(args.out))
  if not paths.is_url(out_dir) and not os.path.isdir(out_dir):
    raise ValueError(f"output folder {out_dir!r} does not exist; create it first")
  from psrjax.train import inference  # pylint: disable=g-import-not-at-top  # JAX after parsing.
  system, params, step = inference.load_trained(args.workdir, args.config_overrides,
                                                best=args.best)
  windows = iter(system.synthesis_windows(**example_options(system, args)))
  first = next(windows, None)   # bad inputs fail here, before the population statistics
  windows = itertools.chain([first] if first is not None else [], windows)
  moments = system.batch_norm_moments(params) if args.batch_norm == "population" else {}
  if moments:
    print(f"synthesize: batch norms use population statistics of the training split "
          f"({len(moments)} layers)", file=sys.stderr)
  frames = inference.window_frames(system, params, windows, moments=moments)
  which = "best snapshot" if args.best else "checkpoint"
  if ext == ".png":
    image = still(frames, picks)
    _write_still(args.out, image)
    print(f"wrote {args.out} ({image.shape[1]} x {image.shape[0]} still, {which} step {step})")
    return 0
  written = _write(args.out, frames, args.fps)
  print(f"wrote {args.out} ({written} frames, {which} step {step})")
  return 0
