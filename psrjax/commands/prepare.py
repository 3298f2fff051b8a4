"""Prepare real videos for training: `psrjax prepare --videos DIR --out DATASET [options]`, or
calibrated multi-camera recordings: `psrjax prepare multiview --videos cam*.mp4 --calibration
CALIB --out DATASET [options]`.

Single view: reads every video of DIR (files .mp4/.avi/.mov/.mkv/.webm or folders of images), takes
keypoints from --keypoints (OpenPose JSON folders, COCO JSON or NumPy files named after the videos)
or estimates them with MediaPipe (`pip install 'psrjax[pose]'`), crops the person, estimates the
background, person masks, optical flow and face boxes, and writes the dataset DATASET with a preview
sheet DATASET/preview.png (see psrjax/data/preparation/prepare.py). Train on it with e.g.

  psrjax train --config configs/mfci.py:runlocal,data=DATASET --workdir DIR

Multi-view: one video per camera (named after its camera in the calibration: Pose2Sim / anipose
TOML or OpenCV YAML), 2D keypoints per camera from --keypoints (<cam>/, <cam>.json, <cam>.npy or
Pose2Sim's pose/<cam>_json/), triangulated, a body fitted and rendered in every camera (see
psrjax/data/preparation/multiview_prepare.py); the reprojection report is printed and stored. Repeat
--videos (and --keypoints) for several takes. Train PSR-Net on it with

  psrjax train --config configs/psrnet.py:runlocal,data=DATASET --workdir DIR

An interrupted run resumes when started again with the same arguments; an existing DATASET is
never overwritten. DATASET may be a bucket URL (`gs://bucket/dataset`): the dataset is built in
a local folder named after the URL (under $PSRJAX_PREPARE_DIR, default ~/.cache/psrjax/prepare),
then uploaded, its index (videos.json, multiview.json) last since a dataset counts as finished
once its index exists, and the local copy removed.
"""
from __future__ import annotations

import hashlib
import os
import sys

from psrjax import paths

PREPARE_DIR_ENV = "PSRJAX_PREPARE_DIR"


def add_arguments(parser) -> None:
  parser.add_argument("kind", nargs="?", choices=("multiview",),
                      help="'multiview' for calibrated multi-camera recordings (PSR-Net); "
                           "omit for a folder of single-camera videos")
  parser.add_argument("--videos", required=True, nargs="+", action="append",
                      help="folder of videos (or of image folders); multiview: one video per "
                           "camera of a take (repeat --videos for each further take)")
  parser.add_argument("--out", required=True, help="new folder for the prepared dataset")
  parser.add_argument("--keypoints", default=None, action="append",
                      help="folder with each video's keypoints: <name>/ (OpenPose JSON per "
                           "frame, BODY_25 or COCO-18), <name>.json (COCO) or <name>.npy; "
                           "multiview also <name>_json/ and pose/<name>_json/ (Pose2Sim), once "
                           "per --videos; default: estimate them with MediaPipe")
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
  group = parser.add_argument_group("multiview")
  group.add_argument("--calibration", default=None,
                     help="multiview: the cameras' calibration (.toml: Pose2Sim / anipose; "
                          ".yml / .yaml / .xml / .json: OpenCV FileStorage)")
  group.add_argument("--test-takes", default="",
                     help="multiview: comma-separated held-out takes (the videos' folder names); "
                          "default: the last 10%% of the takes, or a lone take's last 15%%")
  group.add_argument("--fit-steps", type=int, default=600,
                     help="multiview: Adam steps of the body fit")
  group.add_argument("--reprojection-threshold", type=float, default=15.0,
                     help="multiview: RANSAC and person-association threshold in pixels")


def local_build_dir(url: str) -> str:
  """The local folder a bucket dataset `url` is built in (the same for the same URL, so that an
  interrupted run resumes)."""
  root = os.environ.get(PREPARE_DIR_ENV) or os.path.join(
      os.path.expanduser("~"), ".cache", "psrjax", "prepare")
  digest = hashlib.sha1(url.encode()).hexdigest()[:16]
  return os.path.join(root, digest, os.path.basename(url.rstrip("/")) or "dataset")


def _upload(local: str, url: str, index_file: str) -> None:
  """Copies the finished dataset `local` to `url`, its index file last, then removes `local`."""
  files = [f for f in paths.walk_files(local) if os.path.relpath(f, local) != index_file]
  for path in files + [os.path.join(local, index_file)]:
    with open(path, "rb") as f:
      paths.write_bytes(paths.join(url, os.path.relpath(path, local)), f.read())
  paths.remove(os.path.dirname(local))


def run(args) -> int:
  if args.resolution < 16:
    raise ValueError(f"--resolution must be >= 16 pixels, got {args.resolution}")
  if not paths.is_url(args.out):
    return _run_local(args)
  url = paths.resolve(args.out)
  if paths.exists(url):
    raise ValueError(f"--out {url} already exists; choose a new folder (prepare never "
                     "overwrites a dataset)")
  index_file = "multiview.json" if args.kind == "multiview" else "videos.json"
  local = local_build_dir(url)
  if not os.path.isfile(os.path.join(local, index_file)):  # else: only the upload is left
    os.makedirs(os.path.dirname(local), exist_ok=True)
    args.out = local
    try:
      _run_local(args, quiet=True)
    finally:
      args.out = url
  _upload(local, url, index_file)
  print(f"wrote {url}; check {url}/preview.png")
  return 0


def _run_local(args, quiet: bool = False) -> int:
  """`psrjax prepare` into a local folder (`quiet`: without the closing line)."""
  if args.kind == "multiview":
    return _run_multiview(args, quiet)
  if args.calibration or args.test_takes:
    raise ValueError("--calibration and --test-takes are options of `psrjax prepare multiview`")
  if len(args.videos) != 1 or len(args.videos[0]) != 1 or len(args.keypoints or [None]) != 1:
    raise ValueError("--videos (and --keypoints) take one folder; for calibrated cameras use "
                     "`psrjax prepare multiview`")
  from psrjax.data.preparation import prepare  # pylint: disable=g-import-not-at-top
  if args.smooth < 0:
    raise ValueError(f"--smooth must be >= 0 frames, got {args.smooth}")
  settings = prepare.Settings(resolution=args.resolution, smooth=args.smooth,
                              flow_preset=args.flow_preset)
  tests = tuple(n for n in args.test_videos.split(",") if n)
  log = lambda msg: print(msg, file=sys.stderr, flush=True)
  try:
    index = prepare.prepare(args.videos[0][0], args.out,
                            keypoints_dir=(args.keypoints or [None])[0], masks_dir=args.masks,
                            settings=settings, test_videos=tests, keep_work=args.keep_work,
                            log=log)
  except ImportError as e:   # the optional pose estimator is not installed
    raise ValueError(str(e)) from e
  if not quiet:
    print(f"wrote {args.out}: " + ", ".join(f"{n} {s} frames" for s, n in index["splits"].items())
          + f" of {len(index['videos'])} videos; check {args.out}/preview.png")
  return 0


def _run_multiview(args, quiet: bool = False) -> int:
  """`psrjax prepare multiview` (psrjax/data/preparation/multiview_prepare.py)."""
  if not args.calibration:
    raise ValueError("psrjax prepare multiview needs --calibration CALIB (Pose2Sim / anipose "
                     "TOML or OpenCV YAML)")
  if args.masks or args.test_videos or args.smooth:
    raise ValueError("--masks, --test-videos and --smooth are options of the single-view "
                     "`psrjax prepare`; multiview takes --test-takes")
  if args.fit_steps < 1 or args.reprojection_threshold <= 0:
    raise ValueError("--fit-steps must be >= 1 and --reprojection-threshold > 0")
  from psrjax.data.preparation import multiview_prepare, multiview_process  # pylint: disable=g-import-not-at-top
  settings = multiview_process.Settings(resolution=args.resolution, fit_steps=args.fit_steps)
  log = lambda msg: print(msg, file=sys.stderr, flush=True)
  try:
    index = multiview_prepare.prepare_multiview(
        args.videos, args.calibration, args.out, keypoints=args.keypoints, settings=settings,
        test_takes=tuple(n for n in args.test_takes.split(",") if n),
        threshold_px=args.reprojection_threshold, keep_work=args.keep_work, log=log)
  except ImportError as e:   # the optional pose estimator is not installed
    raise ValueError(str(e)) from e
  medians = [r["reprojection"]["overall"]["median"] for r in index["recordings"]]
  if quiet:
    return 0
  print(f"wrote {args.out}: " + ", ".join(f"{n} {s} records" for s, n in index["splits"].items())
        + f" of {len(index['takes'])} takes; reprojection error median "
        + ", ".join(f"{m:.2f}" for m in medians) + f" px; check {args.out}/preview.png")
  return 0
