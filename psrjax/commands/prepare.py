"""Prepare real videos for training: `psrjax prepare --videos DIR --out DATASET [options]`.

Reads every video of DIR (files .mp4/.avi/.mov/.mkv/.webm or folders of images), takes keypoints
from --keypoints (OpenPose JSON folders, COCO JSON or NumPy files named after the videos) or
estimates them with MediaPipe (`pip install 'psrjax[pose]'`), crops the person, estimates the
background, person masks, optical flow and face boxes, and writes the dataset DATASET with a
preview sheet DATASET/preview.png (see psrjax/data/prepare.py). Train on it with e.g.

  psrjax train --config configs/mfci.py:runlocal,data=DATASET --workdir DIR

An interrupted run resumes when started again with the same arguments; an existing DATASET is
never overwritten.
"""
from __future__ import annotations

import sys


def add_arguments(parser) -> None:
  parser.add_argument("--videos", required=True, help="folder of videos (or of image folders)")
  parser.add_argument("--out", required=True, help="new folder for the prepared dataset")
  parser.add_argument("--keypoints", default=None,
                      help="folder with each video's keypoints: <name>/ (OpenPose JSON per "
                           "frame, BODY_25 or COCO-18), <name>.json (COCO) or <name>.npy; "
                           "default: estimate them with MediaPipe")
  parser.add_argument("--masks", default=None,
                      help="folder with each video's person masks: <name>.npy / .npz ([T, H, W], "
                           "> 0 = person) or <name>/ (one image per frame); default: MediaPipe's "
                           "segmentation, or background differencing with imported keypoints")
  parser.add_argument("--resolution", type=int, default=256, help="output frame size R (R x R)")
  parser.add_argument("--test-videos", default="",
                      help="comma-separated names of held-out videos (default: the last 10%%)")
  parser.add_argument("--smooth", type=float, default=0.0,
                      help="temporal Gaussian std (frames) for the keypoints; 0 = none")
  parser.add_argument("--flow-preset", default="medium", choices=("ultrafast", "fast", "medium"),
                      help="OpenCV DIS optical flow preset")
  parser.add_argument("--keep-work", action="store_true",
                      help="keep the per-video cache (DATASET/work) after a successful run")


def run(args) -> int:
  from psrjax.data import prepare  # pylint: disable=g-import-not-at-top
  if args.resolution < 16:
    raise ValueError(f"--resolution must be >= 16 pixels, got {args.resolution}")
  if args.smooth < 0:
    raise ValueError(f"--smooth must be >= 0 frames, got {args.smooth}")
  settings = prepare.Settings(resolution=args.resolution, smooth=args.smooth,
                              flow_preset=args.flow_preset)
  tests = tuple(n for n in args.test_videos.split(",") if n)
  log = lambda msg: print(msg, file=sys.stderr, flush=True)
  try:
    index = prepare.prepare(args.videos, args.out, keypoints_dir=args.keypoints,
                            masks_dir=args.masks, settings=settings, test_videos=tests, keep_work=args.keep_work,
                            log=log)
  except ImportError as e:   # the optional pose estimator is not installed
    raise ValueError(str(e)) from e
  print(f"wrote {args.out}: " + ", ".join(f"{n} {s} frames" for s, n in index["splits"].items())
        + f" of {len(index['videos'])} videos; check {args.out}/preview.png")
  return 0
