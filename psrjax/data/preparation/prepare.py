"""`psrjax prepare`: a folder of real videos -> a prepared dataset (`psrjax.data.sources.prepared`).

Per video (a file .mp4/.avi/.mov/.mkv/.webm, or a sub-folder of images):

1. keypoints (and, optionally, person masks from `--masks DIR`: DIR/<stem>.npy / .npz [T, H, W] or
   DIR/<stem>/ with one image per frame): imported from `--keypoints DIR` (DIR/<stem>/ with OpenPose
   JSON per frame, DIR/<stem>.json in COCO keypoint format, or DIR/<stem>.npy / .npz;
   `psrjax.data.preparation.keypoint_io`) or, without DIR, estimated by MediaPipe Pose
   (`psrjax.data.preparation.pose_estimator`, the `pose` extra); optionally smoothed in time;
2. one person-centred square crop for the whole video (static camera; `video.person_box`),
   resized to R x R, keypoints mapped into it;
3. estimated modalities (`psrjax.data.preparation.estimate`): the background plate by masked
   temporal median; person masks from MediaPipe's segmentation when it ran, else by background
   differencing with keypoint-guided cleanup; forward and backward optical flow by OpenCV DIS; face
   boxes from the head keypoints. videos.json records, per video, which estimator produced each
   modality.

The video is held in memory only at R x R (T x R x R x 3 bytes; 1,000 frames at 256 x 256 are
197 MB), frames stream from the decoder.

Held-out videos (split "test"): `--test-videos NAME,...`, else the last ceil(10 %) of the
sorted videos; a folder with a single video holds out the last `tail_fraction` of its frames as a
separate test video "<name>:tail".

Resume and atomicity: everything is built in DATASET.partial/ and renamed to DATASET at the end.
Each processed video is cached in DATASET.partial/work/ (written atomically, keyed by the video's
size, mtime and the settings), so an interrupted run that is started again skips the videos it
finished. A DATASET that already exists is never touched: prepare refuses.
"""

from __future__ import annotations

import json
import os
import shutil

import imageio.v3 as iio
import numpy as np

from psrjax.data.preparation import keypoint_io, pose_estimator
from psrjax.data.preparation.preprocess import (Settings, check_person, keypoint_path,
                                                list_videos, load_cached, load_masks, make_index,
                                                mask_path, probe, process_all, split_videos,
                                                video_name)
from psrjax.data.sources import prepared
from psrjax.data.synthetic import visualize


# ----------------------------------------------------------------------------------------------
# Preview sheet and the command's body.


def preview_sheet(entries: list[dict], *, max_videos: int = 6, columns: int = 4) -> np.ndarray:
  """uint8 image: per video (row) `columns` frames spread over it, each as frame + skeleton,
  frame with the mask tinted red, and the forward flow's colour code, side by side."""
  rows = []
  for entry in entries[:max_videos]:
    data = load_cached(entry["cache"])
    last = max(entry["start"], entry["stop"] - 2)      # the last frame has no forward flow
    picks = np.linspace(entry["start"], last, columns).round().astype(int)
    cells = []
    for t in picks:
      rgb = data["rgb"][t]
      tint = np.where(data["mask"][t][..., None] > 0, (0.5 * rgb + [127, 0, 0]), 0.6 * rgb)
      flow = visualize.flow_colors(data["flow_fwd"][t].astype(np.float32))
      cells.append(np.concatenate([visualize.draw_skeleton(rgb, data["keypoints"][t]),
                                   tint.astype(np.uint8), flow], axis=1))
    rows.append(np.concatenate(cells, axis=1))
  return np.concatenate(rows, axis=0)


def _check_inputs(paths, keypoints_dir, masks_dir=None) -> tuple[dict, dict]:
  """Fails before anything is written: every video decodes (checked first, so an unreadable
  file is named as such whatever else is missing), has keypoints (and masks, when their folder
  is given) for each of its frames, with a person in them; or the estimator is installed;
  and TensorFlow, which writes the records, is installed.
  Returns ({video: keypoint path or None}, {video: mask path})."""
  infos = {path: probe(path) for path in paths}
  prepared.check_tensorflow()
  if keypoints_dir is None:
    pose_estimator.check_installed()
  for flag, folder in (("--keypoints", keypoints_dir), ("--masks", masks_dir)):
    if folder is not None and not os.path.isdir(folder):
      raise FileNotFoundError(f"{flag} {folder!r} is not a folder")
  keypoints, masks = {}, {}
  for path in paths:
    info = infos[path]
    size = dict(height=info.height, width=info.width)
    keypoints[path] = keypoint_path(keypoints_dir, video_name(path)) if keypoints_dir else None
    if keypoints[path] is not None:
      check_person(keypoint_io.load_keypoints(keypoints[path], num_frames=info.num_frames,
                                               **size), path)
    if masks_dir is not None:
      masks[path] = mask_path(masks_dir, video_name(path))
      load_masks(masks[path], num_frames=info.num_frames, **size)
  return keypoints, masks


def prepare(videos_dir: str, out: str, *, keypoints_dir: str | None = None,
            masks_dir: str | None = None, settings: Settings = Settings(),
            test_videos: tuple[str, ...] = (), keep_work: bool = False, log=print) -> dict:
  """Builds the prepared dataset `out` from the videos of `videos_dir` (module docstring);
  returns its index (videos.json)."""
  out = os.path.abspath(os.path.expanduser(out))
  if os.path.exists(out):
    raise ValueError(f"--out {out} already exists; choose a new folder (prepare never "
                     "overwrites a dataset) or delete it first")
  paths = list_videos(videos_dir)
  splits = split_videos(paths, tuple(test_videos))
  keypoints, masks = _check_inputs(paths, keypoints_dir, masks_dir)
  partial = out + ".partial"
  entries = process_all(paths, splits, keypoints, settings, os.path.join(partial, "work"), log,
                        masks=masks)
  index = _write(partial, entries, settings, log)
  if not keep_work:
    shutil.rmtree(os.path.join(partial, "work"))
  os.rename(partial, out)
  return index


def _write(partial: str, entries: list[dict], settings: Settings, log) -> dict:
  """The TFDS records, the preview sheet and, last, videos.json into `partial`."""
  shutil.rmtree(os.path.join(partial, prepared.BUILDER_NAME), ignore_errors=True)
  log(f"writing {sum(e['stop'] - e['start'] for e in entries)} frame records ...")
  from psrjax.data.builders import video_builder  # pylint: disable=g-import-not-at-top  # TFDS: heavy.
  video_builder.from_entries(entries, settings, data_dir=partial).download_and_prepare()
  shutil.rmtree(os.path.join(partial, "downloads"), ignore_errors=True)   # TFDS's, unused here
  iio.imwrite(os.path.join(partial, "preview.png"), preview_sheet(entries))
  keypoints = [load_cached(e["cache"])["keypoints"][e["start"]:e["stop"]] for e in entries]
  np.save(os.path.join(partial, prepared.KEYPOINTS_FILE), np.concatenate(keypoints))
  index = make_index(entries, settings)
  index["builder_dir"] = os.path.relpath(prepared.builder_dir(partial, settings.resolution), partial)
  with open(os.path.join(partial, prepared.INDEX_FILE), "w") as f:
    json.dump(index, f, indent=1)
  return index
