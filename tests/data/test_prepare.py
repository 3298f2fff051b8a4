"""`psrjax prepare` on lossy-encoded synthetic videos (exact keypoints imported as NumPy files):
the dataset's contents, resume and refusal, bad input, and MFCI training on it."""
import json
import os
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from psrjax import cli
from psrjax.data import synthetic, video
from psrjax.data.preparation import prepare, preprocess
from psrjax.data.sources import prepared
from psrjax.systems import registry

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train"))
import train_harness  # noqa: E402

MFCI_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "mfci.py")
RES = 16          # configs/mfci.py:tiny's frame size
FRAMES = 12
SEEDS = (3, 5, 8)


def _encode(path, frames, fps=8):
  iio.imwrite(path, frames, extension=".mp4", fps=fps, codec="libx264", macro_block_size=1,
              output_params=["-crf", "18"])


def write_videos(folder, seeds=SEEDS, frames=FRAMES, resolution=48):
  """Synthetic clips as MP4 in folder/videos and their exact keypoints in folder/keypoints."""
  clips = {}
  os.makedirs(folder / "videos"), os.makedirs(folder / "keypoints")
  for s in seeds:
    clip = synthetic.render_clip(s, num_views=1, num_frames=frames, resolution=resolution)
    _encode(folder / "videos" / f"clip{s}.mp4", clip["rgb"][0])
    np.save(folder / "keypoints" / f"clip{s}.npy", clip["keypoints"][0])
    clips[f"clip{s}"] = clip
  return clips


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp("prepare")
  clips = write_videos(root)
  out = root / "dataset"
  code = cli.main(["prepare", "--videos", str(root / "videos"), "--keypoints",
                   str(root / "keypoints"), "--out", str(out), "--resolution", str(RES)])
  assert code == 0
  return root, out, clips


def test_dataset_is_complete_and_tfds_readable(built):
  root, out, clips = built
  index = json.load(open(out / "videos.json"))
  assert [(v["name"], v["split"], v["num_frames"]) for v in index["videos"]] == [
      ("clip3", "train", FRAMES), ("clip5", "train", FRAMES), ("clip8", "test", FRAMES)]
  assert index["splits"] == {"train": 2 * FRAMES, "test": FRAMES}
  assert index["videos"][0]["estimated"]["mask"] == "background-difference"
  assert os.path.isfile(out / "preview.png") and not os.path.exists(str(out) + ".partial")
  assert sorted(os.listdir(out)) == ["keypoints.npy", "preview.png", "psrjax_videos", "videos.json"]
  import tensorflow_datasets as tfds
  source = tfds.builder_from_directory(prepared.builder_dir(str(out), RES)).as_data_source("train")
  assert len(source) == 2 * FRAMES
  assert [(int(source[i]["video"]), int(source[i]["frame"])) for i in (0, FRAMES - 1, FRAMES)] == [
      (0, 0), (0, FRAMES - 1), (1, 0)]


def test_frames_are_the_crops_of_the_video_and_its_keypoints(built):
  root, out, clips = built
  videos = prepared.PreparedVideos(str(out))
  v = videos.videos("validation")[0]                      # "validation" reads the held-out set
  assert v.name == "clip8" and v.split == "test"
  got = videos.frames(v, np.arange(FRAMES))
  clip = clips["clip8"]
  box = json.load(open(out / "videos.json"))["videos"][2]["crop_box"]
  want_kp = video.crop_keypoints(clip["keypoints"][0], box, RES)
  want_kp = np.where(want_kp[..., 2:] > 0, want_kp, 0.0)      # missing ones are (0, 0, 0)
  np.testing.assert_allclose(got["keypoints"], want_kp, atol=1e-5)
  np.testing.assert_array_equal(videos.keypoints(v), got["keypoints"])   # without decoding
  old = prepared.PreparedVideos(str(out))
  old._keypoints = {}                  # a dataset prepared before keypoints.npy: from records
  np.testing.assert_array_equal(old.keypoints(v), got["keypoints"])
  want_rgb = video.crop_resize(clip["rgb"][0], box, RES).astype(np.float64)
  mse = np.mean((got["rgb"] - want_rgb) ** 2)
  assert 10 * np.log10(255 ** 2 / mse) > 28            # lossy H.264 (crf 18) round trip
  assert got["mask"].shape == (FRAMES, RES, RES) and set(np.unique(got["mask"])) <= {0, 1}
  assert got["flow_fwd"].dtype == np.float32 and np.all(got["flow_fwd"][-1] == 0)
  assert np.all(got["flow_bwd"][0] == 0)
  assert got["background"].shape == (FRAMES, RES, RES, 3)


def test_an_existing_dataset_is_never_overwritten(built, capsys):
  root, out, _ = built
  before = sorted(os.listdir(out))
  code = cli.main(["prepare", "--videos", str(root / "videos"), "--keypoints",
                   str(root / "keypoints"), "--out", str(out), "--resolution", str(RES)])
  assert code == 2 and "already exists" in capsys.readouterr().err
  assert sorted(os.listdir(out)) == before


def test_an_interrupted_run_leaves_no_dataset_and_resumes(tmp_path, monkeypatch):
  write_videos(tmp_path, seeds=(3, 5), frames=4)
  real, calls = preprocess.process_video, []

  def crash_on_second(path, *args):
    calls.append(os.path.basename(path))
    if len(calls) == 2:
      raise KeyboardInterrupt
    return real(path, *args)

  monkeypatch.setattr(preprocess, "process_video", crash_on_second)
  # 64: also the name of a builder config of the real-video builders (r64).
  out, args = tmp_path / "ds", dict(keypoints_dir=str(tmp_path / "keypoints"),
                                    settings=prepare.Settings(resolution=64))
  with pytest.raises(KeyboardInterrupt):
    prepare.prepare(str(tmp_path / "videos"), str(out), **args)
  assert not out.exists()
  with pytest.raises(FileNotFoundError, match="interrupted"):
    prepared.PreparedVideos(str(out))
  calls.clear()
  monkeypatch.setattr(preprocess, "process_video", lambda *a: calls.append(a) or real(*a))
  log = []
  prepare.prepare(str(tmp_path / "videos"), str(out), log=log.append, **args)
  assert len(calls) == 1 and any("resumed" in line for line in log)
  assert [v.num_frames for v in prepared.PreparedVideos(str(out)).videos("train")] == [4]


def _bad_case(case, folder):
  """A videos folder (and keypoints folder or None) with one defect; returns the name the error
  must mention."""
  clip = synthetic.render_clip(3, num_views=1, num_frames=4, resolution=32)
  (folder / "videos").mkdir(), (folder / "keypoints").mkdir()
  kp = clip["keypoints"][0]
  if case.startswith("corrupt_video"):
    # Fixed bytes: random ones sometimes parse as a container without a video stream.
    (folder / "videos" / "a.mp4").write_bytes(np.random.default_rng(0).bytes(2000))
  else:
    _encode(folder / "videos" / "a.mp4", clip["rgb"][0])
  if case == "count_mismatch":
    kp = kp[:3]
  if case == "no_person":
    kp = np.zeros_like(kp)
  np.save(folder / "keypoints" / "a.npy", kp)
  if case == "corrupt_json":
    os.remove(folder / "keypoints" / "a.npy")
    (folder / "keypoints" / "a").mkdir()
    for t in range(4):
      (folder / "keypoints" / "a" / f"a_{t:012d}_keypoints.json").write_text('{"people": [')
  if case == "mixed_resolution":
    (folder / "videos" / "b").mkdir()
    iio.imwrite(folder / "videos" / "b" / "0.png", clip["rgb"][0, 0])
    iio.imwrite(folder / "videos" / "b" / "1.png", clip["rgb"][0, 1, :16])
    np.save(folder / "keypoints" / "b.npy", kp)
    return "1.png"
  if case == "missing_keypoints":
    os.remove(folder / "keypoints" / "a.npy")
  if case == "no_estimator":
    os.remove(folder / "keypoints" / "a.npy")
    return "pip install 'psrjax[pose]'"
  if case == "corrupt_video_no_estimator":   # the unreadable file is named, not the estimator
    os.remove(folder / "keypoints" / "a.npy")
    return "a.mp4 is not a readable video"
  if case == "empty_folder":
    os.remove(folder / "videos" / "a.mp4")
    return "no videos"
  return "a"


@pytest.mark.parametrize("case", ["corrupt_video", "count_mismatch", "no_person", "corrupt_json",
                                  "mixed_resolution", "missing_keypoints", "empty_folder",
                                  "no_estimator", "corrupt_video_no_estimator"])
def test_bad_input_is_a_one_line_error_and_writes_nothing(case, tmp_path, capsys, monkeypatch):
  name = _bad_case(case, tmp_path)
  out = tmp_path / "ds"
  keypoints = ["--keypoints", str(tmp_path / "keypoints")]
  if case.endswith("no_estimator"):
    keypoints = []
    monkeypatch.setitem(sys.modules, "mediapipe", None)   # import mediapipe -> ImportError
  code = cli.main(["prepare", "--videos", str(tmp_path / "videos"), *keypoints, "--out", str(out),
                   "--resolution", str(RES)])
  errors = [l for l in capsys.readouterr().err.splitlines() if "error" in l]
  assert code == 2 and len(errors) == 1 and name in errors[0], errors
  assert not out.exists() and not (tmp_path / "ds.partial").exists()   # checked before writing


def test_mfci_evaluates_held_out_runs_of_prepared_videos(built):
  _, out, _ = built
  config = train_harness.config_with(f"{MFCI_CONFIG}:tiny,res={RES},data={out}")
  assert config.data.dataset == str(out) and config.data.resolution == RES
  system = registry.get_system(config)
  examples = list(system.dataset("validation", seed=0, shard_index=0, shard_count=1))
  assert len(examples) == 1                       # clip8: one run of L = 7 from its end
  ex = examples[0]
  assert ex["tgt_rgb"].shape == (7, RES, RES, 3) and ex["src_rgb"].shape == (2, RES, RES, 3)
  train = system.dataset("train", seed=0, shard_index=0, shard_count=1)
  assert len(train) == 2 * (FRAMES - 7 + 1)       # every (video, target start) of 2 videos


def test_a_config_at_another_resolution_reads_the_dataset_resized(built):
  import cv2
  _, out, _ = built
  example = lambda res: registry.get_system(train_harness.config_with(
      f"{MFCI_CONFIG}:tiny,res={res},data={out}")).dataset("validation", seed=0, shard_index=0,
                                                            shard_count=1)[0]
  full, half = example(RES), example(RES // 2)
  assert half["tgt_rgb"].shape == (7, RES // 2, RES // 2, 3)
  want = np.stack([cv2.resize(f, (RES // 2,) * 2, interpolation=cv2.INTER_AREA)
                   for f in full["tgt_rgb"]])
  np.testing.assert_allclose(half["tgt_rgb"], want, atol=1e-6)       # area-averaged frames
  kp = full["tgt_keypoints"]
  np.testing.assert_allclose(half["tgt_keypoints"][..., :2], (kp[..., :2] + 0.5) / 2 - 0.5,
                             atol=1e-6)                               # pixel centres kept
  np.testing.assert_array_equal(half["tgt_keypoints"][..., 2], kp[..., 2])
  assert set(np.unique(half["tgt_mask"])) <= {0.0, 1.0}
  flow = np.stack([cv2.resize(f, (RES // 2,) * 2, interpolation=cv2.INTER_AREA)
                   for f in full["tgt_flow_bwd"]]) / 2
  np.testing.assert_allclose(half["tgt_flow_bwd"], flow, atol=1e-5)   # flows in the new pixels




PIX2PIXHD_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "pix2pixhd.py")


def _copy_with_index(out, tmp_path, edit):
  """A copy of the dataset `out` whose videos.json `edit` changed."""
  import shutil
  copy = tmp_path / "edited"
  shutil.copytree(out, copy)
  index = json.load(open(copy / "videos.json"))
  edit(index)
  json.dump(index, open(copy / "videos.json", "w"))
  return copy


def test_per_person_examples_come_from_the_prepared_videos(built):
  from psrjax.data.samplers import per_person
  _, out, _ = built
  config = train_harness.config_with(f"{PIX2PIXHD_CONFIG}:tiny,res={RES},data={out}")
  data = config.data
  train = per_person.train_dataset(data, seed=0, shard_index=0, shard_count=1)
  assert len(train) == 2 * FRAMES                          # every frame of both training videos
  runs = per_person.eval_dataset(data, shard_index=0, shard_count=1)
  assert len(runs) == FRAMES // data.eval_run_frames       # the held-out video in runs
  videos = prepared.PreparedVideos(str(out))
  held = videos.videos("test")[0]
  got = videos.frames(held, np.arange(4, 8))
  run = runs[1]
  np.testing.assert_array_equal(run["frame_index"], 2 * FRAMES + np.arange(4, 8))
  np.testing.assert_array_equal(run["rgb"], got["rgb"] / np.float32(127.5) - 1)
  np.testing.assert_array_equal(run["keypoints"], got["keypoints"])
  np.testing.assert_array_equal(runs[0]["flow_bwd"][0], 0)  # nothing before the video's start
  assert per_person.train_keypoints(data).shape == (2 * FRAMES, 18, 3)
  assert per_person.background(data).shape == (RES, RES, 3)
  assert not per_person.novel_frames(data).any()


@pytest.mark.parametrize("case, match", [
    ("no_test", r"no held-out \(test\) video"),
    ("driving_resolution", "prepare the driving video with --resolution 16"),
    ("short_runs", "eval_run_frames must lie in 2..12"),
])
def test_per_person_bad_datasets_are_one_line_errors(case, match, built, tmp_path):
  from psrjax.data.samplers import per_person
  _, out, _ = built
  arg = f"{PIX2PIXHD_CONFIG}:tiny,res={RES},data={out}"
  data = train_harness.config_with(arg).data
  if case == "no_test":
    data.dataset = str(_copy_with_index(out, tmp_path, lambda i: [
        v.update(split="train") for v in i["videos"]]))
    call = lambda: per_person.train_dataset(data, seed=0, shard_index=0, shard_count=1)
  elif case == "driving_resolution":
    other = _copy_with_index(out, tmp_path, lambda i: i.update(resolution=2 * RES))
    call = lambda: per_person.synthesis_example(data, driving=str(other))
  else:
    data.eval_run_frames = 13
    call = lambda: per_person.eval_dataset(data, shard_index=0, shard_count=1)
  with pytest.raises(ValueError, match=match):
    call()


def test_a_source_without_a_needed_modality_names_it():
  from psrjax.data.samplers import per_person
  from psrjax.data.sources import base as sources, scripted_person
  driving = scripted_person.DrivingPerson(per_person.default_data_config())
  with pytest.raises(ValueError, match="needs the 'mask' modality"):
    sources.require(driving, per_person.MODALITIES, what="pix2pixhd")
