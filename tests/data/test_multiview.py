"""`psrjax prepare multiview` on a synthetic calibrated 4-camera recording written as a real one
(portrait H.264 videos through a lens with barrel distortion, a Pose2Sim TOML, OpenPose JSON
with noise, left/right swaps on some frames of two cameras and a decoy person): the
reprojection report, the fitted body's maps against the truth, the crop cameras against the
stored keypoints, bad input, resume, and PSR-Net trained on the dataset and synthesizing."""
import glob
import json
import os
import shutil
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from scipy import ndimage

from psrjax import cli
from psrjax.data.preparation import multiview_process
from psrjax.data.sources import multiview
from psrjax.data.synthetic.recording import Recording, agreement
from psrjax.geometry import calibration

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train"))
import train_harness  # noqa: E402

PSRNET_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "psrnet.py")
SEED, VIEWS, FRAMES, WIDTH, HEIGHT = 3, 4, 30, 144, 256
RES, FIT_STEPS = 64, 300
TAIL = round(0.15 * FRAMES)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
  root = tmp_path_factory.mktemp("recording")
  rec = Recording(SEED, num_views=VIEWS, num_frames=FRAMES, width=WIDTH, height=HEIGHT,
                  distortion=-0.08)
  written = rec.write(str(root), noise_px=1.5, swap_rate=0.2, swap_views=2)
  return rec, root, written


def _args(root, out, *extra, videos=None, calib=None, res=RES):
  videos = videos or sorted(glob.glob(str(root / "videos" / "*.mp4")))
  return ["prepare", "multiview", "--videos", *videos, "--calibration",
          str(calib or root / "calibration.toml"), "--keypoints", str(root), "--out", str(out),
          "--resolution", str(res), "--fit-steps", str(FIT_STEPS), *extra]


@pytest.fixture(scope="module")
def built(recording, tmp_path_factory):
  rec, root, written = recording
  out = tmp_path_factory.mktemp("prepared") / "dataset"
  assert cli.main(_args(root, out)) == 0
  return rec, out, written


def test_dataset_index_and_reprojection_report(built, capsys):
  rec, out, written = built
  assert sorted(os.listdir(out)) == ["keypoints.npy", "multiview.json", "preview.png",
                                     "psrjax_multiview"]
  assert not os.path.exists(str(out) + ".partial")
  index = json.load(open(out / "multiview.json"))
  assert [(t["name"], t["num_frames"]) for t in index["takes"]] == [
      (os.path.basename(os.path.dirname(written["videos"])), FRAMES - TAIL),
      (os.path.basename(os.path.dirname(written["videos"])) + ":tail", TAIL)]
  assert index["splits"] == {"train": VIEWS * (FRAMES - TAIL), "test": VIEWS * TAIL}
  report = index["recordings"][0]["reprojection"]
  print(f"\nreprojection (px, at {WIDTH}x{HEIGHT}): median {report['overall']['median']:.2f}, "
        + ", ".join(f"{c} {s['median']:.2f}" for c, s in report["per_camera"].items()))
  assert report["overall"]["median"] <= 20 and report["overall"]["median"] < 3
  assert set(report["per_camera"]) == set(rec.names) and len(report["per_joint"]) == 18
  swaps = [report["per_camera"][n]["swapped_frames"] for n in rec.names]
  assert swaps[0] > 0 and swaps[1] > 0            # the injected swaps, found and repaired
  assert index["estimated"]["face"] == "fitted body" and "pose/cam01_json" in json.dumps(
      index["recordings"][0]["sources"])
  preview = iio.imread(out / "preview.png")
  assert preview.shape[0] == VIEWS * 128 and preview.std() > 10
  import tensorflow_datasets as tfds
  source = tfds.builder_from_directory(multiview.builder_dir(str(out), RES)).as_data_source("test")
  assert len(source) == VIEWS * TAIL and source[0]["face"].shape == (RES, RES)


def _stored_cameras(index, take):
  return [calibration.Camera(c["name"], c["size"], c["K"], [], c["R"], c["t"])
          for c in (index["videos"][v]["camera"] for v in index["takes"][take]["videos"])]


def test_stored_cameras_project_the_3d_keypoints_onto_the_stored_2d_ones(built):
  rec, out, _ = built
  data = multiview.MultiViewVideos(str(out))
  for take in (0, 1):
    start = data.index["takes"][take]["first_frame"]
    frames = np.arange(data.index["takes"][take]["num_frames"])
    for cam, v in zip(_stored_cameras(data.index, take), data.index["takes"][take]["videos"]):
      got = data.frames(v, frames)
      seen = got["keypoints"][..., 2] > 0
      truth = cam.project(rec.points3d()[start + frames])        # the true body's keypoints
      stored = cam.project(got["points3d"])                      # the triangulated ones
      scale = RES / data.index["videos"][v]["crop_box"][2]       # crop pixels per video pixel
      for projected in (truth, stored):
        err = np.linalg.norm(projected - got["keypoints"][..., :2], axis=-1)[seen]
        assert np.median(err) < 2.0 * 1.5 * scale + 0.3, (v, np.median(err))   # noise 1.5 px
  np.testing.assert_array_equal(data.keypoints(0), data.frames(0, np.arange(FRAMES - TAIL))["keypoints"])


def test_the_fitted_body_and_undistorted_frames_agree_with_the_truth(built):
  rec, out, _ = built
  data = multiview.MultiViewVideos(str(out))
  truth = rec.truth(_stored_cameras(data.index, 0))
  n = FRAMES - TAIL
  for v, video in enumerate(data.index["takes"][0]["videos"]):
    got = data.frames(video, np.arange(n))
    exact = {k: truth[k][v][:n] for k in ("face", "part", "depth", "rgb", "mask")}
    agree = agreement(got, exact)
    inner = exact["face"] >= 0
    inner &= ndimage.binary_erosion(inner, np.ones((1, 3, 3), bool))   # not next to the room
    error = np.abs(got["rgb"].astype(float) - exact["rgb"])[inner].mean()
    print(f"\n{rec.names[v]}: " + ", ".join(f"{k} {x:.3f}" for k, x in agree.items())
          + f", rgb error on the person {error:.1f}")
    assert agree["silhouette IoU"] > 0.75 and agree["part within 1 px"] > 0.8
    assert agree["face within 1 px"] > 0.7 and agree["depth error (m)"] < 0.1
    assert agree["mask IoU"] > 0.7        # background differencing around the fitted body
    assert error < 25        # undistorted, cropped and resized like the truth (H.264: 6-10)


def test_psrnet_examples_come_from_the_dataset(built):
  from psrjax.systems import registry
  _, out, _ = built
  config = train_harness.config_with(f"{PSRNET_CONFIG}:tiny,data={out}")
  assert (config.data.num_views, config.data.depth, config.data.dataset) == (VIEWS, "person",
                                                                             str(out))
  system = registry.get_system(config)
  t = config.data.num_frames
  train = system.dataset("train", seed=0, shard_index=0, shard_count=1)
  assert len(train) == FRAMES - TAIL - t + 1          # a window per start frame
  evals = system.dataset("validation", seed=0, shard_index=0, shard_count=1)
  assert len(evals) == TAIL // t * VIEWS * (VIEWS - 1)   # every pair of the tail's window
  ex = evals[1]
  assert ex["src_rgb"].shape == (t, 32, 32, 3) and int(ex["pair"]) == 1
  src = multiview.open_windows(str(out), "test", resolution=32, length=t, stride=t)
  want = src.frames(src.take(0)[2], np.arange(t), ("depth", "rgb"))     # pair 1 is 1 -> 3
  np.testing.assert_array_equal(ex["tgt_depth"][..., 0], want["depth"])
  np.testing.assert_array_equal(ex["tgt_rgb"], want["rgb"])
  config.data.depth = "scene"
  with pytest.raises(ValueError, match="empty room's depth"):
    registry.get_system(config).dataset("train", seed=0, shard_index=0, shard_count=1)


def test_psrnet_trains_on_the_recording_and_synthesizes_a_target_view(built, tmp_path):
  from psrjax.train import loop
  _, out, _ = built
  config = train_harness.config_with(f"{PSRNET_CONFIG}:tiny,layers=1,data={out}", **{
      "train.steps": 1, "eval.num_examples": 4})
  result = loop.train(config, str(tmp_path / "run"))
  assert result.step == 1 and result.eval_results["num_examples"] == 4
  assert np.isfinite(result.eval_results["ssim/layer1"])
  movie = tmp_path / "view2.mp4"
  assert cli.main(["synthesize", "--workdir", result.workdir, "--source-view", "1",
                   "--target-view", "2", "--out", str(movie)]) == 0
  frames = iio.imread(movie)
  assert frames.shape[0] == config.data.num_frames and frames.std() > 5


def _defect(case, root, tmp_path):
  """The command's arguments with one defect; returns (args, what the error must say)."""
  videos = sorted(glob.glob(str(root / "videos" / "*.mp4")))
  cams = calibration.read_toml(root / "calibration.toml")
  bad = tmp_path / "bad"
  bad.mkdir()
  out = tmp_path / "ds"
  if case == "missing_camera":
    calibration.write_toml(cams[:3], bad / "calib.toml")
    return _args(root, out, calib=bad / "calib.toml"), "'cam04' has no camera"
  if case == "camera_facing_away":
    turn = np.diag([-1.0, 1.0, -1.0])            # 180 degrees about its own y, in place
    cams[1] = calibration.Camera(cams[1].name, cams[1].size, cams[1].K, cams[1].dist,
                                 turn @ cams[1].R, turn @ cams[1].t)
    calibration.write_toml(cams, bad / "calib.toml")
    return _args(root, out, calib=bad / "calib.toml"), "do not face the scene"
  if case == "millimetres":
    cams = [calibration.Camera(c.name, c.size, c.K, c.dist, c.R, 1000 * c.t) for c in cams]
    calibration.write_toml(cams, bad / "calib.toml")
    return _args(root, out, calib=bad / "calib.toml"), "in metres"
  if case == "unreadable_video":
    shutil.copy(videos[0], bad / "cam01.mp4")
    (bad / "cam02.mp4").write_bytes(os.urandom(3000))
    return _args(root, out, videos=[str(bad / "cam01.mp4"), str(bad / "cam02.mp4")]), "cam02.mp4"
  shutil.copytree(root / "pose", bad / "pose")
  args = _args(root, out)
  args[args.index("--keypoints") + 1] = str(bad)
  files = sorted(glob.glob(str(bad / "pose" / "cam02_json" / "*.json")))
  if case == "keypoint_count":
    os.remove(files[-1])
    return args, f"has {FRAMES - 1} keypoint files but the video has {FRAMES} frames"
  if case == "no_person":
    for f in glob.glob(str(bad / "pose" / "*" / "*.json")):
      json.dump({"version": 1.3, "people": []}, open(f, "w"))
    return args, "no person found"
  if case == "no_estimator":          # without --keypoints MediaPipe estimates them
    del args[args.index("--keypoints"):args.index("--keypoints") + 2]
    return args, "pip install 'psrjax[pose]'"
  raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing_camera", "keypoint_count", "no_person",
                                  "unreadable_video", "camera_facing_away", "millimetres",
                                  "no_estimator"])
def test_bad_input_is_a_one_line_error_and_writes_nothing(case, recording, tmp_path, capsys,
                                                          monkeypatch):
  _, root, _ = recording
  monkeypatch.setitem(sys.modules, "mediapipe", None)     # import mediapipe -> ImportError
  args, message = _defect(case, root, tmp_path)
  assert cli.main(args) == 2
  errors = [l for l in capsys.readouterr().err.splitlines() if "error" in l]
  assert len(errors) == 1 and message in errors[0], errors
  assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()


def test_an_interrupted_run_leaves_no_dataset_resumes_and_never_overwrites(recording, tmp_path,
                                                                           monkeypatch, capsys):
  _, root, _ = recording
  real, calls = multiview_process.process_view, []

  def crash_on_third(rec, view, *args):
    calls.append(view)
    if len(calls) == 3:
      raise KeyboardInterrupt
    return real(rec, view, *args)

  monkeypatch.setattr(multiview_process, "process_view", crash_on_third)
  out = tmp_path / "ds"
  with pytest.raises(KeyboardInterrupt):
    cli.main(_args(root, out, res=32))
  assert not out.exists() and os.path.isdir(str(out) + ".partial")
  with pytest.raises(FileNotFoundError, match="interrupted"):
    multiview.MultiViewVideos(str(out))
  calls.clear()
  assert cli.main(_args(root, out, res=32)) == 0
  assert calls == [2, 3]                                # cameras 1 and 2 were kept
  assert multiview.MultiViewVideos(str(out)).index["splits"]["test"] == VIEWS * TAIL
  before = sorted(os.listdir(out))
  assert cli.main(_args(root, out, res=32)) == 2 and "already exists" in capsys.readouterr().err
  assert sorted(os.listdir(out)) == before


def test_an_opencv_yaml_calibration_with_other_camera_names_reads_the_same_take(recording,
                                                                                tmp_path):
  """Cameras named as Pose2Sim's calibration names them (int_cam01_img) in an OpenCV
  FileStorage YAML, matched to the videos cam01.mp4 ... by their number, at half the videos'
  size (scaled to them); the take triangulates as with the TOML."""
  import cv2
  from psrjax.data.preparation import multiview_inputs
  rec, root, _ = recording
  fs = cv2.FileStorage(str(tmp_path / "calib.yml"), cv2.FILE_STORAGE_WRITE)
  for cam in rec.cameras:
    half = cam.scaled(WIDTH // 2, HEIGHT // 2)
    fs.startWriteStruct(f"int_{cam.name}_img", cv2.FileNode_MAP)
    for key, value in (("image_width", half.width), ("image_height", half.height),
                       ("camera_matrix", half.K), ("distortion_coefficients", half.dist[None]),
                       ("R", half.R), ("T", half.t[:, None])):
      fs.write(key, value)
    fs.endWriteStruct()
  fs.release()
  videos = sorted(glob.glob(str(root / "videos" / "*.mp4")))
  cams = calibration.read_calibration(tmp_path / "calib.yml")
  got = multiview_inputs.read_take("take", videos, cams, str(root))
  want = multiview_inputs.read_take("take", videos, calibration.read_toml(root / "calibration.toml"),
                                    str(root))
  assert [c.name for c in got.cameras] == [f"int_{n}_img" for n in rec.names]
  for a, b in zip(got.cameras, want.cameras):
    np.testing.assert_allclose(a.K, b.K, atol=1e-6)
  np.testing.assert_allclose(got.points3d, want.points3d, atol=1e-6)
  names = [os.path.basename(v)[:-4] for v in videos[::-1]]          # any video order
  assert [c.name for c in multiview_inputs.match_cameras(names, cams)] == [
      f"int_{n}_img" for n in rec.names[::-1]]


def test_videos_a_few_frames_apart_are_synchronised_and_others_refused():
  from psrjax.data.preparation import multiview_inputs
  from psrjax.data.video import VideoInfo
  info = lambda n, fps=15.0: VideoInfo("v", n, fps, 256, 144)
  assert multiview_inputs.synchronise([info(300), info(303), info(298)], ["a", "b", "c"]) == 298
  with pytest.raises(ValueError, match="do not cover the same time"):
    multiview_inputs.synchronise([info(300), info(280)], ["a", "b"])
  with pytest.raises(ValueError, match="different frame rates"):
    multiview_inputs.synchronise([info(300), info(300, 30.0)], ["a", "b"])
