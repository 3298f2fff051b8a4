"""The TFDS builders of datasets/iper, datasets/fashion_videos and datasets/video_folder.

Each builds a tiny fake download in the release's on-disk layout (synthetic clips written as H.264
MP4 files or PNG frame folders, OpenPose COCO-18 JSON per frame from the clips' exact keypoints,
the release's split files) at 32 x 32, and `PreparedVideos` reads it back: splits, names, frame
counts, keypoints and pixels. Listing and wrong-layout tests need no build.
"""
import importlib
import json
import os
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from psrjax.data.builders import video_builder
from psrjax.data.sources import prepared
import psrjax.data.synthetic as S

_DATASETS = os.path.join(os.path.dirname(__file__), "..", "..", "datasets")
_FRAMES = 6


def _module(name: str):
  sys.path.insert(0, os.path.abspath(_DATASETS))
  try:
    return importlib.import_module(f"{name}.{name}_dataset_builder")
  finally:
    sys.path.pop(0)


def _clip(seed: int):
  c = S.render_clip(seed, num_views=1, num_frames=_FRAMES, resolution=48)
  return c["rgb"][0], c["keypoints"][0]


def _write_mp4(path, frames):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  iio.imwrite(path, frames, extension=".mp4", fps=8, codec="libx264", macro_block_size=1)


def _write_frames(folder, frames):
  os.makedirs(folder, exist_ok=True)
  for t, frame in enumerate(frames):
    iio.imwrite(os.path.join(folder, f"frame_{t:08d}.png"), frame)


def _write_openpose(folder, name, keypoints):
  """OpenPose --write_json files (COCO-18; hidden joints as 0, 0, 0, as OpenPose writes them)."""
  os.makedirs(folder, exist_ok=True)
  for t, kp in enumerate(keypoints):
    kp = np.where(kp[:, 2:] > 0, kp, 0.0)
    person = {"person_id": [-1], "pose_keypoints_2d": [round(float(v), 4) for v in kp.ravel()]}
    with open(os.path.join(folder, f"{name}_{t:012d}_keypoints.json"), "w") as f:
      json.dump({"version": 1.3, "people": [person]}, f)


def _write_lines(path, lines):
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")


def _build(module, manual_dir, data_dir) -> prepared.PreparedVideos:
  import tensorflow_datasets as tfds
  config = video_builder.VideoFramesConfig(name="r32", resolution=32, description="32x32 crops")
  builder = module.Builder(config=config, data_dir=str(data_dir))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  assert not os.path.exists(os.path.join(str(data_dir), "downloads", "psrjax_work", "r32"))
  return prepared.PreparedVideos(str(builder.data_dir))


def _summary(videos: prepared.PreparedVideos) -> dict:
  return {v.name: (v.split, v.num_frames) for s in prepared.SPLITS for v in videos.videos(s)}


def _check_round_trip(videos: prepared.PreparedVideos, originals: dict, lossless: set):
  """Every video's records hold its keypoints and pixels, cropped to its box."""
  from psrjax.data import video
  boxes = {v["name"]: v["crop_box"] for v in videos.index["videos"]}
  for split in prepared.SPLITS:
    for v in videos.videos(split):
      frames, kp = originals[v.name]
      got = videos.frames(v, np.arange(v.num_frames))
      box = boxes[v.name]
      want_kp = video.crop_keypoints(kp, box, 32)
      seen = kp[..., 2] > 0
      np.testing.assert_allclose(got["keypoints"][..., :2][seen], want_kp[..., :2][seen],
                                 atol=0.05, err_msg=v.name)
      assert np.all(got["keypoints"][..., 2][~seen] == 0), v.name
      want = video.crop_resize(frames, box, 32).astype(np.float32)
      err = np.abs(got["rgb"].astype(np.float32) - want).mean()
      assert err < (1.0 if v.name in lossless else 12.0), (v.name, err)
      assert got["mask"].shape == (v.num_frames, 32, 32)


# ----------------------------------------------------------------------------------------------
# iPER: train.txt / val.txt, iPER_1024_video_release/AAA_C_M.mp4, images_HD/AAA/C/M/*.png.


@pytest.fixture(scope="module")
def iper(tmp_path_factory):
  root = tmp_path_factory.mktemp("iper")
  manual = root / "manual"
  originals = {}
  for seed, name in enumerate(["001_1_1", "001_1_2", "002_1_1"]):
    frames, kp = _clip(seed)
    originals[name] = (frames, kp)
    if name == "002_1_1":
      _write_frames(str(manual / "images_HD" / "002" / "1" / "1"), frames)
    else:
      _write_mp4(str(manual / "iPER_1024_video_release" / f"{name}.mp4"), frames)
    _write_openpose(str(manual / "keypoints" / name), name, kp)
  _write_lines(manual / "train.txt", ["001/1/1", "001/1/2"])
  _write_lines(manual / "val.txt", ["002/1/1"])
  return _build(_module("iper"), manual, root / "tfds"), originals


def test_iper_splits_follow_train_and_val_txt(iper):
  videos, _ = iper
  assert _summary(videos) == {"001_1_1": ("train", 6), "001_1_2": ("train", 6),
                              "002_1_1": ("test", 6)}
  assert videos.resolution == 32
  assert [v.offset for v in videos.videos("train")] == [0, 6]


def test_iper_records_hold_keypoints_and_pixels(iper):
  videos, originals = iper
  _check_round_trip(videos, originals, lossless={"002_1_1"})


def _touch(path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  open(path, "wb").close()


def test_iper_lists_frame_folders_and_prefers_the_largest_release(tmp_path):
  module = _module("iper")
  _write_lines(tmp_path / "train.txt", ["001/1/1", "001/1/2"])
  _write_lines(tmp_path / "val.txt", ["002/1/1"])
  for name in ("001/1/1", "001/1/2", "002/1/1"):
    _touch(str(tmp_path / "images_HD" / name / "000.jpg"))
  listed = module.list_iper(str(tmp_path))
  assert [(s, n) for s, n, _, _ in listed] == [("train", "001_1_1"), ("train", "001_1_2"),
                                              ("test", "002_1_1")]
  assert listed[2][2] == str(tmp_path / "images_HD" / "002" / "1" / "1")
  assert listed[0][3] is None                                   # no keypoints/: estimated
  _touch(str(tmp_path / "iPER_256_video_release" / "001_1_1.mp4"))
  _touch(str(tmp_path / "iPER_1024_video_release" / "001_1_1.mp4"))
  assert module.list_iper(str(tmp_path))[0][2] == str(
      tmp_path / "iPER_1024_video_release" / "001_1_1.mp4")


def test_iper_wrong_layouts_say_what_is_missing(tmp_path):
  module = _module("iper")
  _touch(str(tmp_path / "iPER_1024_video_release" / "001_1_1.mp4"))
  _write_lines(tmp_path / "train.txt", ["001/1/1"])
  with pytest.raises(FileNotFoundError, match=r"val\.txt is missing"):
    module.list_iper(str(tmp_path))
  _write_lines(tmp_path / "val.txt", ["002/1/1"])
  with pytest.raises(FileNotFoundError, match=r"1 video\(s\) .* missing .*first: 002_1_1"):
    module.list_iper(str(tmp_path))
  _write_lines(tmp_path / "val.txt", ["002-1-1"])
  with pytest.raises(ValueError, match=r"not an iPER video id"):
    module.list_iper(str(tmp_path))
  _write_lines(tmp_path / "val.txt", ["001/1/1"])
  with pytest.raises(ValueError, match=r"both train\.txt and val\.txt"):
    module.list_iper(str(tmp_path))


# ----------------------------------------------------------------------------------------------
# Fashion videos: fashion_train.txt / fashion_test.txt (URLs), train/*.mp4, test/*.mp4.

_URL = "https://m.media-amazon.com/images/I/{}.mp4"


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
  root = tmp_path_factory.mktemp("fashion")
  manual = root / "manual"
  originals = {}
  layout = {"91D23ZVV6NS": "train", "A1P+0ZhMAiS": "train", "91hECpvrRSS": "test"}
  for seed, (name, split) in enumerate(layout.items()):
    frames, kp = _clip(10 + seed)
    originals[name] = (frames, kp)
    _write_mp4(str(manual / split / f"{name}.mp4"), frames)
    _write_openpose(str(manual / "keypoints" / name), name, kp)
  # One train URL is dead: the crawler saved nothing for it.
  _write_lines(manual / "fashion_train.txt",
               [_URL.format(n) for n in ("91D23ZVV6NS", "A1P+0ZhMAiS", "81xDeadLink")])
  _write_lines(manual / "fashion_test.txt", [_URL.format("91hECpvrRSS")])
  return _build(_module("fashion_videos"), manual, root / "tfds"), originals


def test_fashion_splits_follow_the_url_lists(fashion):
  videos, _ = fashion
  assert _summary(videos) == {"91D23ZVV6NS": ("train", 6), "A1P+0ZhMAiS": ("train", 6),
                              "91hECpvrRSS": ("test", 6)}


def test_fashion_records_hold_keypoints_and_pixels(fashion):
  videos, originals = fashion
  _check_round_trip(videos, originals, lossless=set())


def test_fashion_lists_decide_over_folders_and_read_a_flat_folder(tmp_path):
  module = _module("fashion_videos")
  _touch(str(tmp_path / "train" / "aaa.mp4"))
  _touch(str(tmp_path / "train" / "bbb.mp4" / "0000000.png"))  # FOMM-style frame folder
  _touch(str(tmp_path / "videos" / "ccc.mp4"))
  _write_lines(tmp_path / "fashion_train.txt", [_URL.format("aaa")])
  _write_lines(tmp_path / "fashion_test.txt", [_URL.format(n) for n in ("bbb", "ccc")])
  listed = module.list_fashion(str(tmp_path))
  assert [(s, n) for s, n, _, _ in listed] == [("train", "aaa"), ("test", "bbb"), ("test", "ccc")]
  assert listed[1][2] == str(tmp_path / "train" / "bbb.mp4")


def test_fashion_wrong_layouts_say_what_is_missing(tmp_path):
  module = _module("fashion_videos")
  with pytest.raises(FileNotFoundError, match=r"no videos in .*data_crowler\.py"):
    module.list_fashion(str(tmp_path))
  _touch(str(tmp_path / "videos" / "ccc.mp4"))
  with pytest.raises(FileNotFoundError, match=r"needs fashion_train\.txt and fashion_test\.txt"):
    module.list_fashion(str(tmp_path))
  _write_lines(tmp_path / "fashion_train.txt", [_URL.format("aaa")])
  with pytest.raises(FileNotFoundError, match=r"fashion_test\.txt is missing"):
    module.list_fashion(str(tmp_path))
  _write_lines(tmp_path / "fashion_test.txt", [_URL.format("bbb")])
  with pytest.raises(ValueError, match=r"on neither URL list \(first: ccc\)"):
    module.list_fashion(str(tmp_path))


# ----------------------------------------------------------------------------------------------
# A video folder: videos/NAME.mp4 or videos/NAME/*.png, openpose/NAME/*.json, test.txt.


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  root = tmp_path_factory.mktemp("folder")
  manual = root / "manual"
  originals = {}
  for seed, name in enumerate(["dance_a", "dance_b", "dance_c"]):
    frames, kp = _clip(20 + seed)
    originals[name] = (frames, kp)
    if name == "dance_c":
      _write_frames(str(manual / "videos" / name), frames)
    else:
      _write_mp4(str(manual / "videos" / f"{name}.mp4"), frames)
    _write_openpose(str(manual / "openpose" / name), name, kp)
  _write_lines(manual / "test.txt", ["dance_b.mp4"])
  return _build(_module("video_folder"), manual, root / "tfds"), originals


def test_folder_holds_out_the_videos_of_test_txt(folder):
  videos, _ = folder
  assert _summary(videos) == {"dance_a": ("train", 6), "dance_b": ("test", 6),
                              "dance_c": ("train", 6)}


def test_folder_records_hold_keypoints_and_pixels(folder):
  videos, originals = folder
  _check_round_trip(videos, originals, lossless={"dance_c"})


def test_folder_without_test_txt_holds_out_the_last_tenth(tmp_path):
  module = _module("video_folder")
  for name in ("a", "b", "c"):
    _touch(str(tmp_path / "videos" / f"{name}.mp4"))
  listed = module.list_folder(str(tmp_path))
  assert [(s, n, os.path.basename(p), k) for s, n, p, k in listed] == [
      ("train", "a", "a.mp4", None), ("train", "b", "b.mp4", None), ("test", "c", "c.mp4", None)]


def test_folder_wrong_layouts_say_what_is_missing(tmp_path):
  module = _module("video_folder")
  with pytest.raises(FileNotFoundError, match=r"videos is missing"):
    module.list_folder(str(tmp_path))
  _touch(str(tmp_path / "videos" / "a.mp4"))
  _touch(str(tmp_path / "videos" / "b.mp4"))
  _write_lines(tmp_path / "test.txt", ["c"])
  with pytest.raises(ValueError, match=r"test\.txt names 'c', which is not in videos/"):
    module.list_folder(str(tmp_path))
  _write_lines(tmp_path / "test.txt", ["b"])
  os.makedirs(tmp_path / "openpose" / "a")
  with pytest.raises(FileNotFoundError, match=r"no keypoints for video 'b'"):
    module.list_folder(str(tmp_path))


def test_build_videos_script_builds_a_config(tmp_path):
  """datasets/build_videos.py builds and prints the folder `PreparedVideos` reads."""
  import subprocess
  for seed, name in enumerate(["a", "b"]):
    frames, kp = _clip(30 + seed)
    _write_frames(str(tmp_path / "manual" / "videos" / name), frames)
    _write_openpose(str(tmp_path / "manual" / "openpose" / name), name, kp)
  script = os.path.join(_DATASETS, "build_videos.py")
  res = subprocess.run([sys.executable, script, "video_folder", "--manual_dir",
                        str(tmp_path / "manual"), "--data_dir", str(tmp_path / "tfds"),
                        "--config", "r64"], capture_output=True, text=True, check=True)
  path = res.stdout.strip().splitlines()[-1]
  assert path == str(tmp_path / "tfds" / "video_folder" / "r64" / "1.0.0")
  videos = prepared.PreparedVideos(path)
  assert videos.resolution == 64 and _summary(videos) == {"a": ("train", 6), "b": ("test", 6)}
