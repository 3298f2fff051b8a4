"""TFDS builder `video_folder`: a folder of single-person videos with OpenPose keypoints.

For dance videos like those MFCI and CoCosNet's video pose transfer use (one person, static
camera), laid out as pose-transfer code commonly keeps them, in MANUAL_DIR:

  videos/NAME.mp4                    the videos (.mp4 .avi .mov .mkv .webm), or videos/NAME/ with
                                     one image per frame (.png .jpg .jpeg .bmp .webp, sorted by
                                     file name)
  openpose/NAME/*.json               optional: OpenPose's `--write_json` output for each video, one
                                     file per frame (BODY_25 or COCO-18; NAME_000000000000_keypoints
                                     .json ...), or openpose/NAME.json (COCO keypoints) / .npy /
                                     .npz; without openpose/, MediaPipe Pose estimates them (the
                                     `pose` extra). With openpose/, every video needs its keypoints.
  test.txt                           optional: the held-out video NAMEs, one per line (`NAME` or
                                     `NAME.mp4`); without it the last ceil(10 %) of the videos by
                                     name are held out, and a lone video holds out the last 15 % of
                                     its frames as video `NAME:tail`

Processing is cached per video
(`psrjax.data.builders.video_builder`), so an interrupted build resumes. See
README.md beside this file.
"""
from __future__ import annotations

import os

from psrjax.data.builders import video_builder
from psrjax.data.preparation import preprocess

VIDEOS_DIR = "videos"
KEYPOINTS_DIR = "openpose"
TEST_FILE = "test.txt"


def listed_name(line: str) -> str:
  """`NAME` from a line `NAME`, `NAME.mp4` or `NAME/`."""
  base = os.path.basename(line.strip().rstrip("/"))
  stem, ext = os.path.splitext(base)
  return stem if ext.lower() in preprocess.VIDEO_EXTENSIONS else base


def read_test_file(path: str, names: list[str]) -> tuple[str, ...]:
  """The held-out video names of `path` (one per line), checked against the folder's videos."""
  with open(path) as f:
    held = [listed_name(line) for line in f if line.strip()]
  unknown = sorted(set(held) - set(names))
  if unknown:
    raise ValueError(f"video_folder: {path} names {unknown[0]!r}, which is not in "
                     f"{VIDEOS_DIR}/; list names of its videos (e.g. {names[0]})")
  if set(held) >= set(names):
    raise ValueError(f"video_folder: {path} holds out every video; leave at least one for training")
  return tuple(held)


def list_folder(manual_dir: str) -> list[tuple[str, str, str, str | None]]:
  """[(split, video path, keypoint path or None)] of MANUAL_DIR, by name."""
  videos_dir = os.path.join(manual_dir, VIDEOS_DIR)
  if not os.path.isdir(videos_dir):
    raise FileNotFoundError(f"video_folder: {videos_dir} is missing; put the videos (or frame "
                            f"folders) in {VIDEOS_DIR}/ inside the manual dir")
  paths = preprocess.list_videos(videos_dir)
  names = [preprocess.video_name(p) for p in paths]
  test_file = os.path.join(manual_dir, TEST_FILE)
  held = read_test_file(test_file, names) if os.path.isfile(test_file) else ()
  splits = preprocess.split_videos(paths, held)
  kp_dir = os.path.join(manual_dir, KEYPOINTS_DIR)
  if not os.path.isdir(kp_dir):
    return [(splits[p], n, p, None) for p, n in zip(paths, names)]
  return [(splits[p], n, p, preprocess.keypoint_path(kp_dir, n)) for p, n in zip(paths, names)]


class Builder(video_builder.VideoFramesBuilder):
  """A folder of person videos as per-frame records (person crop, keypoints, masks, flow, ...)."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Put the videos in MANUAL_DIR/videos/ (NAME.mp4, or NAME/ with one image per frame), OpenPose's
  --write_json output per video in MANUAL_DIR/openpose/NAME/ (optional: else MediaPipe Pose
  estimates keypoints) and, optionally, the held-out video names in MANUAL_DIR/test.txt.
  """

  def _list_videos(self, manual_dir: str) -> list[tuple[str, str, str, str | None]]:
    return list_folder(manual_dir)
