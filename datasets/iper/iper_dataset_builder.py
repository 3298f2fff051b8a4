"""TFDS builder `iper`: the iPER dataset (Impersonator, Liu et al., ICCV 2019) as psrjax records.

iPER has 206 videos of 30 people filmed by a static camera, two per outfit (an A-pose turn and
random actions), named `AAA_C_M` (actor, clothes, motion); the release's `train.txt` / `val.txt`
list the official split (`val.txt` is psrjax's "test"). The builder reads what the iPER
downloads unpack to (https://github.com/svip-lab/impersonator, OneDrive / BaiduPan links in its
README; the same files as https://github.com/iPERDance/iPERCore's
docs/manually_download_datasets.md), in MANUAL_DIR:

  train.txt, val.txt                 the split files, one video per line as `001/1/1`
                                     (also read: `001_1_1`, `001_1_1.mp4`)
  and the videos, one of (per video, the first found is read):
  iPER_1024_video_release/001_1_1.mp4
                                     `unzip iPER_1024_video_release.zip` (also
                                     iPER_256_video_release/ or any iPER_<size>_video_release/;
                                     the largest size wins when several are present)
  images_HD/001/1/1/*.png|jpg        the frames: `cat splits/images_HD.tar.gz.* > images_HD.tar.gz;
                                     tar -xzf images_HD.tar.gz` (iPERCore's download), or
  images/001/1/1/*.png               frames impersonator's tools/unzip_iPER.py extracted from the
                                     video release
  keypoints/001_1_1/*.json           optional: OpenPose JSON per frame (BODY_25 or COCO-18) for
                                     every video, or keypoints/001_1_1.json (COCO keypoints) /
                                     .npy / .npz; without keypoints/, MediaPipe Pose estimates
                                     them (the `pose` extra)

iPER's own `smpls/` (HMR SMPL fits and their 19 projected joints) are not read: their joints are not
COCO-18. Every video of both split files must be present. Processing is cached per video
(`psrjax.data.builders.video_builder`), so an interrupted build resumes. See README.md beside this
file.
"""
from __future__ import annotations

import os
import re

from psrjax.data.builders import video_builder
from psrjax.data.preparation import preprocess

SPLIT_FILES = (("train", "train.txt"), ("test", "val.txt"))
FRAME_DIRS = ("images_HD", "images")
_RELEASE = re.compile(r"^iPER_(\d+)_video_release$")
_ID = re.compile(r"^\d+_\d+_\d+$")


def video_id(line: str) -> str:
  """`001_1_1` from a split-file line `001/1/1` (or `001_1_1`, `001_1_1.mp4`)."""
  name = line.strip().strip("/")
  if name.lower().endswith(".mp4"):
    name = name[:-4]
  return name.replace("/", "_")


def read_split_file(path: str) -> list[str]:
  with open(path) as f:
    names = [video_id(line) for line in f if line.strip()]
  bad = [n for n in names if not _ID.match(n)]
  if bad:
    raise ValueError(f"{path} lists {bad[0]!r}, not an iPER video id like 001/1/1; use the "
                     "train.txt / val.txt of the iPER release")
  return names


def read_splits(manual_dir: str) -> dict[str, str]:
  """{video id: "train" | "test"} from MANUAL_DIR/train.txt and val.txt."""
  splits = {}
  for split, filename in SPLIT_FILES:
    path = os.path.join(manual_dir, filename)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"iPER: {path} is missing; put the release's train.txt and val.txt "
                              f"in {manual_dir}")
    for name in read_split_file(path):
      if splits.setdefault(name, split) != split:
        raise ValueError(f"iPER: {name} is in both train.txt and val.txt of {manual_dir}; use the "
                         "release's split files")
  return splits


def release_dir(manual_dir: str) -> str | None:
  """MANUAL_DIR/iPER_<size>_video_release with the largest size, if any."""
  found = [(int(m.group(1)), n) for n in os.listdir(manual_dir)
           if (m := _RELEASE.match(n)) and os.path.isdir(os.path.join(manual_dir, n))]
  return os.path.join(manual_dir, max(found)[1]) if found else None


def _has_images(path: str) -> bool:
  return os.path.isdir(path) and any(f.lower().endswith(preprocess.IMAGE_EXTENSIONS)
                                     for f in os.listdir(path))


def find_video(manual_dir: str, release: str | None, name: str) -> str | None:
  """The video file or frame folder of video `name`, if present."""
  if release and os.path.isfile(os.path.join(release, name + ".mp4")):
    return os.path.join(release, name + ".mp4")
  for frames in FRAME_DIRS:
    path = os.path.join(manual_dir, frames, *name.split("_"))
    if _has_images(path):
      return path
  return None


def list_iper(manual_dir: str) -> list[tuple[str, str, str, str | None]]:
  """[(split, video id, video path, keypoint path or None)], train then test, by id."""
  splits = read_splits(manual_dir)
  release = release_dir(manual_dir)
  if release is None and not any(os.path.isdir(os.path.join(manual_dir, d)) for d in FRAME_DIRS):
    raise FileNotFoundError(f"iPER: {manual_dir} has neither iPER_1024_video_release/ nor "
                            "images_HD/; unzip iPER_1024_video_release.zip there")
  names = sorted(splits, key=lambda n: (splits[n] != "train", n))
  paths = {n: find_video(manual_dir, release, n) for n in names}
  missing = [n for n in names if paths[n] is None]
  if missing:
    where = os.path.basename(release) if release else "/".join(FRAME_DIRS)
    raise FileNotFoundError(f"iPER: {len(missing)} video(s) of the split files are missing from "
                            f"{manual_dir} (first: {missing[0]}, looked in {where}); unpack the "
                            "complete release")
  kp_dir = os.path.join(manual_dir, "keypoints")
  kp = ({n: preprocess.keypoint_path(kp_dir, n) for n in names} if os.path.isdir(kp_dir)
        else dict.fromkeys(names))
  return [(splits[n], n, paths[n], kp[n]) for n in names]


class Builder(video_builder.VideoFramesBuilder):
  """iPER videos as per-frame records (person crop, keypoints, masks, flow, background)."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Download iPER (links in https://github.com/svip-lab/impersonator's README): train.txt, val.txt
  and iPER_1024_video_release.zip (or the images_HD.tar.gz.* parts). In MANUAL_DIR: train.txt,
  val.txt and `unzip iPER_1024_video_release.zip` (-> iPER_1024_video_release/001_1_1.mp4 ...),
  or `cat images_HD.tar.gz.* > images_HD.tar.gz && tar -xzf images_HD.tar.gz`
  (-> images_HD/001/1/1/*.png). Optional: keypoints/001_1_1/ with OpenPose JSON per frame.
  """

  def _list_videos(self, manual_dir: str) -> list[tuple[str, str, str, str | None]]:
    return list_iper(manual_dir)
