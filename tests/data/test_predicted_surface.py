"""Surface maps of a prepared video predicted by D²G-Net's pre-trained UV generator
(`psrjax.data.sources.predicted_surface`), and Liquid Warping GAN trained and driven on them:
the monocular path from a real video to an animated one."""
import os
import pickle

import imageio.v3 as iio
import jax
import numpy as np
import pytest

import conformance
import recordings
import train_harness
from psrjax import cli
from psrjax.data.sources import base as sources
from psrjax.data.sources import predicted_surface
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


def test_lwgan_trains_on_the_recording_and_is_driven_by_it(recording, tmp_path):
  """Liquid Warping GAN (tiny) on the recording's predicted maps: pairs of its training head,
  the held-out tail animated from its first frame beside the copy's row; then a video of the
  recording driving its own first frame."""
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
  with pytest.raises(ValueError, match="not D²G-Net's UV pre-training"):
    predicted_surface.open_prepared(dataset, RES, surface_from=result.workdir, surface_cache="")


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
