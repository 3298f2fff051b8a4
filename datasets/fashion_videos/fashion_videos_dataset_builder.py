"""TFDS builder `fashion_videos`: the fashion videos of DwNet (Zablotskaia et al., BMVC 2019).

600 short videos, each of one model turning and posing on a plain background (500 train, 100
test; INTERnet's fashion data), published as lists of .mp4 URLs at
https://vision.cs.ubc.ca/datasets/fashion/: `fashion_train.txt` and `fashion_test.txt`, one URL
per line (`https://.../91D23ZVV6NS.mp4`); a video's name is its URL's file name without `.mp4`.
The builder reads MANUAL_DIR in either layout the downloads produce:

  fashion_train.txt, fashion_test.txt  the URL lists (optional with train/ and test/; when
                                       present they decide every video's split)
  train/91D23ZVV6NS.mp4 ...            the site's data_crowler.py, run in MANUAL_DIR beside the
  test/A1P+0ZhMAiS.mp4 ...             lists, saves each list's videos there; a sub-folder of
                                       frames (train/91D23ZVV6NS[.mp4]/*.png, as FOMM's png
                                       frames) is read as that video too
  videos/91D23ZVV6NS.mp4 ...           or one flat folder (iPERCore's
                                       scripts/train/prepare_FashionVideo_dataset.py); the URL
                                       lists are then required
  keypoints/91D23ZVV6NS/*.json         optional: OpenPose JSON per frame (BODY_25 or COCO-18) for
                                       every video, or keypoints/<name>.json (COCO keypoints) /
                                       .npy / .npz; without keypoints/, MediaPipe Pose estimates
                                       them (the `pose` extra)

Listed videos that are not on disk (dead links) are skipped with a warning; a video on disk that the
lists do not name is an error. Processing is cached per video
(`psrjax.data.builders.video_builder`), so an interrupted build resumes. See README.md beside this
file.
"""
from __future__ import annotations

import os

from absl import logging

from psrjax.data.builders import video_builder
from psrjax.data.preparation import preprocess

LIST_FILES = (("train", "fashion_train.txt"), ("test", "fashion_test.txt"))
SPLIT_DIRS = (("train", "train"), ("test", "test"))
FLAT_DIR = "videos"


def video_name(entry: str) -> str:
  """`91D23ZVV6NS` from a URL, a file or a frame folder name (`.../91D23ZVV6NS.mp4`)."""
  base = os.path.basename(entry.strip().rstrip("/"))
  stem, ext = os.path.splitext(base)
  return stem if ext.lower() in preprocess.VIDEO_EXTENSIONS else base


def read_lists(manual_dir: str) -> dict[str, str] | None:
  """{video name: split} from the URL lists; None when neither is there. A name on both lists is
  held out (test)."""
  paths = {split: os.path.join(manual_dir, f) for split, f in LIST_FILES}
  present = [s for s, p in paths.items() if os.path.isfile(p)]
  if not present:
    return None
  if len(present) == 1:
    missing = next(f for s, f in LIST_FILES if s not in present)
    raise FileNotFoundError(f"fashion_videos: {os.path.join(manual_dir, missing)} is missing; put "
                            "both fashion_train.txt and fashion_test.txt there, or neither")
  splits = {}
  for split, _ in LIST_FILES:
    with open(paths[split]) as f:
      for line in f:
        if line.strip():
          splits[video_name(line)] = split   # test is read last: it wins
  return splits


def _videos_in(folder: str) -> dict[str, str]:
  """{video name: path} of the video files and frame folders of `folder` (none if empty)."""
  if not any(os.scandir(folder)):
    return {}
  return {video_name(p): p for p in preprocess.list_videos(folder)}


def find_videos(manual_dir: str) -> dict[str, tuple[str | None, str]]:
  """{video name: (split of its folder or None for videos/, path)}."""
  found = {}
  folders = [(s, os.path.join(manual_dir, d)) for s, d in SPLIT_DIRS]
  folders.append((None, os.path.join(manual_dir, FLAT_DIR)))
  for split, folder in folders:
    if not os.path.isdir(folder):
      continue
    for name, path in _videos_in(folder).items():
      if name in found:
        raise ValueError(f"fashion_videos: video {name} is both {found[name][1]} and {path}; "
                         "keep one copy")
      found[name] = (split, path)
  if not found:
    raise FileNotFoundError(f"fashion_videos: no videos in {manual_dir}/train, /test or /videos; "
                            "run the dataset's data_crowler.py in MANUAL_DIR")
  return found


def assign_splits(manual_dir: str, found: dict, lists: dict | None) -> dict[str, str]:
  """{video name: split}: by the URL lists when present, else by the train/ and test/ folders."""
  if lists is None:
    flat = sorted(n for n, (s, _) in found.items() if s is None)
    if flat:
      raise FileNotFoundError(f"fashion_videos: {manual_dir}/videos needs fashion_train.txt and "
                              f"fashion_test.txt beside it to split its videos (e.g. {flat[0]})")
    return {n: s for n, (s, _) in found.items()}
  unlisted = sorted(set(found) - set(lists))
  if unlisted:
    raise ValueError(f"fashion_videos: {len(unlisted)} video(s) in {manual_dir} are on neither URL "
                     f"list (first: {unlisted[0]}); remove them or use the dataset's lists")
  absent = sorted(set(lists) - set(found))
  if absent:
    logging.warning("fashion_videos: %d listed video(s) are not in %s (first: %s); building "
                    "without them", len(absent), manual_dir, absent[0])
  return {n: lists[n] for n in found}


def list_fashion(manual_dir: str) -> list[tuple[str, str, str, str | None]]:
  """[(split, video name, video path, keypoint path or None)], train then test, by name."""
  found = find_videos(manual_dir)
  splits = assign_splits(manual_dir, found, read_lists(manual_dir))
  names = sorted(splits, key=lambda n: (splits[n] != "train", n))
  kp_dir = os.path.join(manual_dir, "keypoints")
  kp = ({n: preprocess.keypoint_path(kp_dir, n) for n in names} if os.path.isdir(kp_dir)
        else dict.fromkeys(names))
  return [(splits[n], n, found[n][1], kp[n]) for n in names]


class Builder(video_builder.VideoFramesBuilder):
  """DwNet's fashion videos as per-frame records (person crop, keypoints, masks, flow, ...)."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  From https://vision.cs.ubc.ca/datasets/fashion/ download fashion_train.txt, fashion_test.txt
  and data_crowler.py into MANUAL_DIR and run `python data_crowler.py` there (-> train/*.mp4,
  test/*.mp4); or put all videos in MANUAL_DIR/videos/ beside the two lists. Optional:
  keypoints/<video name>/ with OpenPose JSON per frame.
  """

  def _list_videos(self, manual_dir: str) -> list[tuple[str, str, str, str | None]]:
    return list_fashion(manual_dir)
