"""Surface maps of a prepared video predicted by D²G-Net's pre-trained UV generator
(`psrjax.data.sources.predicted_surface`), and Liquid Warping GAN trained and driven on them:
the monocular path from a real video to an animated one."""
import os
import pickle

import cv2
import imageio.v3 as iio
import jax
import numpy as np
import pytest

import conformance
import recordings
import train_harness
from psrjax import cli
from psrjax.data.preparation import pose_estimator
from psrjax.data.samplers import body_transfer, per_person, same_video
from psrjax.data.sources import base as sources
from psrjax.data.sources import predicted_surface
from psrjax.data.sources import still_image
from psrjax.geometry import liquid_warp
from psrjax.systems import registry
from psrjax.systems.tasks import person_video
from psrjax.train import loop

pytestmark = pytest.mark.xdist_group("lwgan")   # LWGAN's tiny programs, compiled once
RES = 32   # configs/lwgan.py:tiny's and configs/d2gnet.py:tiny's frame size


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
  """(the recording prepared at 16 px, a 2-step G_uv pre-training with the 2D label at 32 px)."""
  root = tmp_path_factory.mktemp("surface")
  dataset = recordings.prepared_carphone(root, 16)
  uv = str(root / "uv")
  loop.train(conformance.tiny_config("d2gnet", "tiny,pretrain,label2d"), uv)
  return dataset, uv


def _direct(uv: str, keypoints: np.ndarray, mask: np.ndarray, frame: int):
  """G_uv's maps of one frame from D²G-Net's own label (its pre-training system's `prepare`) of
  frames (frame - 2, frame - 1, frame) of its video, the first repeated before the start."""
  system = registry.get_system(conformance.tiny_config("d2gnet", "tiny,pretrain,label2d"))
  window = [max(frame - 2, 0), max(frame - 1, 0), frame]
  label = system.prepare({"keypoints": keypoints[window][None]})["label"]
  coords, logits = predicted_surface.UVPredictor(uv)._apply(person_video.fold(label))
  return predicted_surface.maps_from_outputs(coords, logits, mask[None])


def test_maps_follow_the_keypoints_and_the_mask_and_are_cached_whole(recording, tmp_path,
                                                                      monkeypatch):
  dataset, uv = recording
  cache = tmp_path / "cache"
  src = predicted_surface.open_prepared(dataset, RES, surface_from=uv, surface_cache=str(cache))
  assert [e for e in os.listdir(cache) if "partial" not in e] == os.listdir(cache)
  assert {src.modalities[k] for k in ("face", "part", "uv")} == {sources.ESTIMATED}
  tail = src.videos("test")[0]   # the held-out tail: its maps are stored after the head's
  frames = np.array([0, 1, 16, 17])   # the first frames repeat frame 0 in their labels
  got = src.frames(tail, frames, ("mask", "face", "part", "uv"))
  on = got["part"] > 0
  assert on.mean() > 0.2 and np.all(got["mask"][..., 0][on] == 1)
  np.testing.assert_array_equal(got["face"], np.where(on, got["part"] - 1, -1))
  assert np.all(got["uv"][~on] == 0) and 0 <= got["uv"].min() and got["uv"].max() <= 1
  keypoints = src.keypoints(tail)
  for i, frame in enumerate(frames):
    part, uv_map = _direct(uv, keypoints, got["mask"][i], frame)
    np.testing.assert_array_equal(got["part"][i], part[0])
    np.testing.assert_allclose(got["uv"][i], uv_map[0], atol=1e-3)   # kept as float16
  # Opened again, or in a data worker, the maps are read from the cache, not predicted.
  monkeypatch.setattr(predicted_surface, "UVPredictor", None)
  again = pickle.loads(pickle.dumps(
      predicted_surface.open_prepared(dataset, RES, surface_from=uv, surface_cache=str(cache))))
  np.testing.assert_array_equal(again.frames(tail, frames, ("part",))["part"], got["part"])


def test_lwgan_trains_on_the_recording_and_is_driven_by_it(recording, still, tmp_path):
  """Liquid Warping GAN (tiny) on the recording's predicted maps: pairs of its training head,
  the held-out tail animated from its first frame beside the copy's row; then a video of the
  recording driving its own first frame, and a still image of it."""
  dataset, uv = recording
  bare = f"tiny,data={dataset}"
  with pytest.raises(ValueError, match="surface_from=WORKDIR"):
    registry.get_system(conformance.tiny_config("lwgan", bare))   # no maps: how to predict them
  config = conformance.tiny_config("lwgan", bare, **{"data.surface_from": uv})
  result = loop.train(config, str(tmp_path / "run"))
  assert result.step == 4
  assert np.isfinite(result.eval_results["lpips"]) and "lpips/copy" in result.eval_results
  movie = tmp_path / "driven.mp4"
  assert cli.main(["synthesize", "--workdir", result.workdir, "--driving", str(dataset),
                   "--frames", "0:12", "--out", str(movie)]) == 0
  frames = iio.imread(movie)
  assert frames.shape[0] == 12 and frames.shape[2] >= 3 * RES and frames.std() > 5
  (image, kp_file, mask_file), _, _ = still
  assert cli.main(["synthesize", "--workdir", result.workdir, "--driving", str(dataset),
                   "--frames", "0:6", "--source", image, "--source-keypoints", kp_file,
                   "--source-mask", mask_file, "--out", str(movie)]) == 0
  assert iio.imread(movie).shape[0] == 6
  with pytest.raises(ValueError, match="not D²G-Net's UV pre-training"):
    predicted_surface.open_prepared(dataset, RES, surface_from=result.workdir, surface_cache="")


def test_lwgan_person_protocol_reads_the_recording_runs_with_predicted_maps(recording):
  """`person` on a prepared video: its held-out tail in runs, each driven from the first
  training frame, T matched part by part on G_uv's predicted maps."""
  dataset, uv = recording
  config = conformance.tiny_config("lwgan", f"tiny,person,data={dataset}",
                                   **{"data.surface_from": uv})
  system = registry.get_system(config)
  src, runs = per_person.source(system.config.data), per_person.eval_runs(system.config.data)
  held = system.dataset("test", seed=0, shard_index=0, shard_count=1)
  assert len(held) == len(runs) >= 1
  (video, start), example = runs[-1], held[len(runs) - 1]
  length = system.config.data.eval_run_frames
  maps = ("rgb",) + body_transfer.SURFACE
  tgt = src.frames(video, np.arange(start, start + length), maps)
  head = src.frames(src.videos("train")[0], np.array([0]), maps)
  np.testing.assert_array_equal(example["tgt_rgb"], tgt["rgb"])
  np.testing.assert_array_equal(example["src_rgb"], head["rgb"])
  expected = body_transfer.conditions(*(head[m] for m in body_transfer.SURFACE),
                                      *(tgt[m] for m in body_transfer.SURFACE), charts="part")
  for key, value in expected.items():
    np.testing.assert_array_equal(example[key], value)
  assert (example["transform"] > -2).mean() > 0.1   # the body maps onto the source


def test_the_synthetic_person_reads_predicted_maps_in_place_of_its_exact_ones(recording):
  """`data.surface_from` on the synthetic person (Liquid Warping GAN's `person` rows with
  G_uv's maps, as on a real video): its frames' maps are G_uv's of its keypoints and mask."""
  _, uv = recording
  config = conformance.tiny_config("lwgan", "tiny,person", **{"data.surface_from": uv})
  system = registry.get_system(config)
  assert system.charts == "part"
  src = per_person.source(system.config.data)
  assert {src.modalities[k] for k in body_transfer.SURFACE} == {sources.ESTIMATED}
  video = src.videos("test")[0]
  frames = np.array([0, 1, 5])
  got = src.frames(video, frames, ("mask", "part", "uv"))
  keypoints = src.keypoints(video)
  for i, frame in enumerate(frames):
    part, uv_map = _direct(uv, keypoints, got["mask"][i], frame)
    np.testing.assert_array_equal(got["part"][i], part[0])
    np.testing.assert_allclose(got["uv"][i], uv_map[0], atol=1e-3)
  example = system.dataset("test", seed=0, shard_index=0, shard_count=1)[0]
  exact = registry.get_system(conformance.tiny_config("lwgan", "tiny,person"))
  reference = exact.dataset("test", seed=0, shard_index=0, shard_count=1)[0]
  np.testing.assert_array_equal(example["tgt_rgb"], reference["tgt_rgb"])
  assert not np.array_equal(example["tgt_uvseg"], reference["tgt_uvseg"])


FRAME = 5   # the recording's frame written as a still image


@pytest.fixture(scope="module")
def still(tmp_path_factory):
  """(a frame of the recording as a PNG, its keypoints .npy [1, 18, 3] and mask PNG, in the
  frame's 176 x 144 pixels; the keypoints and mask as arrays)."""
  root = tmp_path_factory.mktemp("still")
  keypoints = np.load(recordings.KEYPOINTS)[FRAME:FRAME + 1]
  mask = np.load(recordings.MASKS)["masks"][FRAME]
  paths = (str(root / "person.png"), str(root / "keypoints.npy"), str(root / "mask.png"))
  iio.imwrite(paths[0], iio.imread(recordings.carphone(), index=FRAME))
  np.save(paths[1], keypoints)
  iio.imwrite(paths[2], mask.astype(np.uint8) * 255)
  return paths, keypoints[0], mask


def test_a_still_image_gets_the_maps_of_its_keypoints_and_mask(recording, still):
  """The image's centred square at RES: keypoints moved and scaled with it, the mask area-resized
  and thresholded, and G_uv's maps of them those of D²G-Net's own label of a video's first
  frame (`_direct`)."""
  _, uv = recording
  (image, kp_file, mask_file), keypoints, mask = still
  person = still_image.read_person(image, RES, keypoints=kp_file, mask=mask_file)
  side, left = 144, (176 - 144) // 2
  want = keypoints.copy()
  want[:, 0] = (keypoints[:, 0] - left + 0.5) * RES / side - 0.5
  want[:, 1] = (keypoints[:, 1] + 0.5) * RES / side - 0.5
  want[keypoints[:, 2] <= 0] = 0.0
  np.testing.assert_allclose(person.keypoints, want, atol=1e-4)
  area = cv2.resize(mask[:, left:left + side].astype(np.float32), (RES, RES),
                    interpolation=cv2.INTER_AREA)
  np.testing.assert_array_equal(person.mask[..., 0], (area >= 0.5).astype(np.float32))
  frame = iio.imread(image)[:, left:left + side].astype(np.float32) / 127.5 - 1.0
  np.testing.assert_allclose(person.rgb, cv2.resize(frame, (RES, RES),
                                                    interpolation=cv2.INTER_AREA), atol=1e-5)
  maps = predicted_surface.image_maps(uv, person.keypoints, person.mask)
  part, uv_map = _direct(uv, person.keypoints[None], person.mask, 0)
  assert (maps["part"] > 0).mean() > 0.2
  np.testing.assert_array_equal(maps["part"], part)
  np.testing.assert_array_equal(maps["face"], np.where(part > 0, part - 1, -1))
  np.testing.assert_allclose(maps["uv"], uv_map, atol=1e-6)
  with pytest.raises(ValueError, match="is 10 x 10 but the image is 144 x 176"):
    iio.imwrite(os.path.join(os.path.dirname(mask_file), "small.png"), np.zeros((10, 10), np.uint8))
    still_image.read_person(image, RES, keypoints=kp_file,
                            mask=os.path.join(os.path.dirname(mask_file), "small.png"))


def test_a_still_image_without_keypoints_needs_the_estimator(still, monkeypatch):
  """Without --source-keypoints / --source-mask the estimator runs; where it is not installed,
  a one-line error names both ways."""
  (image, kp_file, _), _, _ = still

  def missing():
    raise ImportError("no mediapipe")

  monkeypatch.setattr(pose_estimator, "check_installed", missing)
  with pytest.raises(ValueError, match=r"--source-keypoints and --source-mask, or .*psrjax\[pose\]"):
    still_image.read_person(image, RES, keypoints=kp_file)


def test_an_image_is_animated_by_a_synthetic_clip_part_by_part(recording, still, system_runs,
                                                                tmp_path):
  """Liquid Warping GAN trained on the synthetic world animates the still image with a held-out
  clip (the image's predicted parts and the clip's exact parts matched part by part, each part
  one chart on both sides), and with the prepared recording, whose maps the same G_uv predicts:
  `psrjax synthesize --source IMAGE --surface-from WORKDIR [--driving DATASET]`."""
  _, uv = recording
  (image, kp_file, mask_file), _, _ = still
  runs = system_runs("lwgan")
  options = dict(source=image, source_keypoints=kp_file, source_mask=mask_file, surface_from=uv)
  example = runs.system.synthesis_example(seed=0, **options)
  person = still_image.read_person(image, RES, keypoints=kp_file, mask=mask_file)
  maps = predicted_surface.image_maps(uv, person.keypoints, person.mask)
  np.testing.assert_array_equal(example["src_rgb"][0], person.rgb)
  np.testing.assert_array_equal(example["src_uvseg"][0], liquid_warp.uv_segment_map(
      maps["face"], maps["uv"], maps["part"])[0])
  clip = same_video.synthesis_example(runs.system.eval_data, seed=0, driving_seed=None,
                                      background_seed=None, extra=runs.system.eval_reads)
  part = clip["tgt_part"]
  want = body_transfer.conditions(maps["face"], maps["part"], maps["uv"],
                                  np.where(part > 0, part - 1, -1), part, clip["tgt_uv"],
                                  charts="part")
  np.testing.assert_array_equal(example["transform"], want["transform"])
  np.testing.assert_array_equal(example["tgt_uvseg"], want["tgt_uvseg"])
  found = (example["transform"] > -2).all(-1)   # driving body pixels whose part the image has
  assert found[part > 0].mean() > 0.1 and not found[part == 0].any()
  out = tmp_path / "animated.gif"
  assert cli.main(["synthesize", "--workdir", runs.straight.workdir, "--source", image,
                   "--source-keypoints", kp_file, "--source-mask", mask_file,
                   "--surface-from", uv, "--out", str(out)]) == 0
  assert iio.imread(out).shape[0] == example["tgt_rgb"].shape[0]
  # Driven by the recording too: its maps predicted by the same G_uv (--surface-from).
  dataset, _ = recording
  assert cli.main(["synthesize", "--workdir", runs.straight.workdir, "--source", image,
                   "--source-keypoints", kp_file, "--source-mask", mask_file,
                   "--surface-from", uv, "--driving", dataset, "--frames", "0:4",
                   "--out", str(out)]) == 0
  assert iio.imread(out).shape[0] == 4


def test_vid2vid_reads_the_predicted_maps_as_its_iuv_label(recording):
  """vid2vid (tiny) on the recording with `model.iuv`: its label's IUV channels are the
  predicted maps of the frames (the part index in the third channel, as a DensePose file)."""
  dataset, uv = recording
  config = conformance.tiny_config("vid2vid", f"tiny,data={dataset}", **{
      "model.iuv": True, "data.surface_from": uv, "data.surface_cache": ""})
  system = registry.get_system(config)
  batch = train_harness.eval_batch(system, size=1)
  assert (batch["part"] > 0).mean() > 0.2
  label = np.asarray(jax.jit(system.prepare)(batch)["label"])
  np.testing.assert_allclose(label[..., 2], 2.0 * batch["part"] / 24 - 1.0, atol=1e-6)
