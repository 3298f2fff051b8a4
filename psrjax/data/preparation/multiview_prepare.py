"""`psrjax prepare multiview`: calibrated multi-camera recordings -> a multi-view dataset
(`psrjax.data.sources.multiview`) that PSR-Net trains and evaluates on.

Per recording (take): one video per camera, the calibration file (Pose2Sim / anipose TOML or
OpenCV YAML) and per camera 2D keypoints, read and checked by `multiview_inputs.read_take`
(cameras matched to videos by name, synchronisation, the person chosen by cross-view
consistency, triangulation and its reprojection report, cameras facing the person, metres);
every take is checked before anything is written. Then `multiview_process.process_recording`
fits the synthetic world's body to the 3D keypoints, crops every camera around the person
(the crop and resize applied to its intrinsics), undistorts the frames and renders the fitted
body's face, part, uv, depth and flow maps in every camera; masks and background plates are
estimated from the pixels.

Held-out data (split "test"): with one take, the last `tail_fraction` (15 %) of its frames, in
every camera, is a take of its own ("<name>:tail"); with several, whole takes: the named ones
(`test_takes`), else the last ceil(10 %) in the order given.

Output: DATASET/multiview.json (the index: cameras after crop and resize, takes and their frame
counts, what is estimated and how, every recording's reprojection report and body fit),
DATASET/keypoints.npy, DATASET/preview.png (the fitted body's part map over every camera at a
few frames, to check by eye) and the TFDS records. Everything is built in DATASET.partial/ and
renamed to DATASET at the end; each camera's processing is cached in DATASET.partial/work/, so an
interrupted run resumes when started again with the same inputs; an existing DATASET is never
touched.
"""
from __future__ import annotations

import json
import math
import os
import shutil

import imageio.v3 as iio
import numpy as np

from psrjax.data.preparation import multiview_inputs, multiview_process, preprocess
from psrjax.data.sources import multiview, prepared
from psrjax.data.synthetic import visualize
from psrjax.geometry import calibration

ESTIMATED = {
    "rgb": "undistorted (calibration lens model), cropped and resized per camera",
    "keypoints": "imported 2D detections (or MediaPipe Pose), the recorded person chosen by "
                 "cross-view consistency, left/right swaps repaired, undistorted into the crop",
    "points3d": "triangulated: confidence-weighted DLT, RANSAC over views, Butterworth low-pass",
    "face": "fitted body", "part": "fitted body", "uv": "fitted body", "depth": "fitted body",
    "flow_fwd": "fitted body", "flow_bwd": "fitted body",
    "fitted body": "psrjax.data.preparation.body_fit: the synthetic world's body fitted to "
                   "points3d, rendered in each crop camera",
    "mask": "MediaPipe segmentation, else background differencing with keypoint cleanup",
    "background": "masked temporal median",
}


def take_name(videos, position: int) -> str:
  """A take's name: the folder its videos share (its parent for Pose2Sim's <take>/videos/),
  else "take<position>"."""
  folders = {os.path.dirname(os.path.abspath(v)) for v in videos}
  if len(folders) != 1:
    return f"take{position}"
  folder = folders.pop()
  if os.path.basename(folder) == "videos":
    folder = os.path.dirname(folder)
  return os.path.basename(folder) or f"take{position}"


def take_splits(names: list[str], test_takes=()) -> list:
  """Per take "tail" (a lone take) or "train" / "test" (module docstring)."""
  unknown = sorted(set(test_takes) - set(names))
  if unknown:
    raise ValueError(f"the held-out takes {', '.join(unknown)} are not takes given (they are "
                     f"{', '.join(names)})")
  if len(names) == 1:
    if test_takes:
      raise ValueError("a lone take holds out its tail; --test-takes needs several takes")
    return ["tail"]
  held = set(test_takes) or set(names[-math.ceil(0.1 * len(names)):])
  if held == set(names):
    raise ValueError("every take is held out; leave at least one for training")
  return ["test" if n in held else "train" for n in names]


def read_takes(takes, calibration_file: str, keypoints=None, *, threshold_px: float = 15.0):
  """Every take's checked `Recording` (`multiview_inputs.read_take`); `takes` is a list of video
  lists, `keypoints` one folder per take (or None: MediaPipe)."""
  if not os.path.isfile(calibration_file):
    raise FileNotFoundError(f"--calibration {calibration_file!r} is not a file")
  cameras = calibration.read_calibration(calibration_file)
  keypoints = list(keypoints or [None] * len(takes))
  if len(keypoints) != len(takes):
    raise ValueError(f"give --keypoints once per --videos group ({len(takes)}), or not at all; "
                     f"got {len(keypoints)}")
  names = [take_name(v, i) for i, v in enumerate(takes)]
  if len(set(names)) != len(names):
    names = [f"take{i}" for i in range(len(takes))]
  return [multiview_inputs.read_take(n, v, cameras, k, threshold_px=threshold_px)
          for n, v, k in zip(names, takes, keypoints)]


def prepare_multiview(takes, calibration_file: str, out: str, *, keypoints=None,
                      settings: multiview_process.Settings = multiview_process.Settings(),
                      test_takes=(), threshold_px: float = 15.0, keep_work: bool = False,
                      log=print) -> dict:
  """Builds the multi-view dataset `out` (module docstring); returns its index."""
  out = os.path.abspath(os.path.expanduser(out))
  if os.path.exists(out):
    raise ValueError(f"--out {out} already exists; choose a new folder (prepare never "
                     "overwrites a dataset) or delete it first")
  prepared.check_tensorflow()
  recs = read_takes(takes, calibration_file, keypoints, threshold_px=threshold_px)
  splits = take_splits([r.name for r in recs], tuple(test_takes))
  for rec in recs:
    log(f"{rec.name}: {len(rec.cameras)} cameras, {rec.num_frames} frames; reprojection error "
        f"median {rec.report['overall']['median']:.2f} px (" + ", ".join(
            f"{c} {s['median']:.2f}" for c, s in rec.report["per_camera"].items()) + ")")
  partial = out + ".partial"
  work = os.path.join(partial, "work")
  recordings, all_takes = [], []
  for i, (rec, split) in enumerate(zip(recs, splits)):
    caches, entry = multiview_process.process_recording(rec, settings, work, index=i, log=log)
    recordings.append(entry)
    all_takes += multiview_process.takes_of(i, entry, caches, split, settings)
  index, entries = multiview_process.make_index(recordings, all_takes, settings, ESTIMATED)
  _write(partial, index, entries, log)
  if not keep_work:
    shutil.rmtree(work)
  os.rename(partial, out)
  return index


def _write(partial: str, index: dict, entries: list[dict], log) -> None:
  """The TFDS records, keypoints.npy, the preview sheet and, last, multiview.json."""
  shutil.rmtree(os.path.join(partial, multiview.BUILDER_NAME), ignore_errors=True)
  log(f"writing {sum(index['splits'].values())} records ...")
  from psrjax.data.builders import multiview_builder  # pylint: disable=g-import-not-at-top  # TFDS: heavy.
  multiview_builder.from_entries(index, entries, data_dir=partial).download_and_prepare()
  shutil.rmtree(os.path.join(partial, "downloads"), ignore_errors=True)   # TFDS's, unused here
  keypoints = [preprocess.load_cached(e["cache"])["keypoints"][e["start"]:e["stop"]]
               for e in entries]
  np.save(os.path.join(partial, multiview.KEYPOINTS_FILE), np.concatenate(keypoints))
  iio.imwrite(os.path.join(partial, "preview.png"), preview_sheet(index, entries))
  index = dict(index, builder_dir=os.path.relpath(
      multiview.builder_dir(partial, index["resolution"]), partial))
  with open(os.path.join(partial, multiview.INDEX_FILE), "w") as f:
    json.dump(index, f, indent=1)


def preview_sheet(index: dict, entries: list[dict], *, columns: int = 4,
                  max_recordings: int = 2) -> np.ndarray:
  """uint8 image: per recording, one row per camera of `columns` frames spread over it, each the
  frame with the fitted body's part map blended in, and the frame with the detections
  (upscaled to at least 128 pixels)."""
  rows, scale = [], max(1, 128 // int(index["resolution"]))
  up = lambda image: np.repeat(np.repeat(image, scale, 0), scale, 1)
  for rec, entry in enumerate(index["recordings"][:max_recordings]):
    caches = sorted({e["cache"] for e in entries if index["takes"][e["take"]]["recording"] == rec})
    for cache in caches:
      data = preprocess.load_cached(cache)
      picks = np.linspace(0, entry["num_frames"] - 1, columns).round().astype(int)
      cells = []
      for t in picks:
        rgb, part = data["rgb"][t], data["part"][t]
        blend = np.where(part[..., None] > 0, 0.45 * rgb + 0.55 * visualize.part_colors(part), rgb)
        cells += [up(blend.astype(np.uint8)),
                  visualize.draw_skeleton(rgb, data["keypoints"][t], scale=scale)]
      rows.append(np.concatenate(cells, axis=1))
  return np.concatenate(rows, axis=0)
