"""The D²G-Net system (psrjax/systems/d2gnet.py) beyond the shared system checks: the pose label of
frames t, t-1, t-2, the initial texture and background, the synthesis options (background
replacement, MaskTex, driving with face maps), G_uv's pre-training as the start of a person run,
a prepared real video, and bad configs."""
import functools

import jax
import numpy as np
import pytest

import conformance
import recordings
import train_harness
from psrjax import cli
from psrjax.data.samplers import per_person
from psrjax.data.sources import scripted_person
from psrjax.systems import registry
from psrjax.train import inference
from psrjax.train import loop

GROUP = pytest.mark.xdist_group("d2gnet")
tiny_config = functools.partial(conformance.tiny_config, "d2gnet")


def test_pose_label_stacks_frames_t_t1_t2_with_the_surface_code():
  system = registry.get_system(tiny_config())
  batch = train_harness.eval_batch(system)
  label = np.asarray(jax.jit(system.prepare)(batch)["label"])
  assert label.shape == batch["rgb"].shape[:4] + (18,)
  # frame t's channels 6..11 are frame t-1's own (0..5); before the run, its context frames
  np.testing.assert_array_equal(label[:, 1:, ..., 6:12], label[:, :-1, ..., :6])
  np.testing.assert_array_equal(label[:, 2:, ..., 12:], label[:, :-2, ..., :6])
  # the 3D label: the face's code on the person, -1 on the background
  codes = system.codes[np.where(batch["face"] >= 0, batch["face"], -1)]
  np.testing.assert_array_equal(label[..., 3:6], codes)
  assert np.all(label[..., 3:6][batch["face"] < 0] == -1.0)
  flat = registry.get_system(tiny_config("tiny,label2d"))
  assert flat.channels == 9 and "face" not in flat.dataset("validation", seed=0, shard_index=0,
                                                            shard_count=1)[0]


def test_initial_texture_and_background_come_from_the_training_frames():
  config = tiny_config()
  system = registry.get_system(config)
  texture = system.initial_texture()
  assert texture.shape == (24, 8, 8, 18)
  assert np.all(texture[..., 3:] == 0) and 0 <= texture[..., :3].min() <= texture[..., :3].max() <= 1
  assert system.texture_observed > 0.1
  plate = system.initial_background()
  room = scripted_person.background(config.data)
  seen = np.abs(plate - room).max(-1) < 0.05
  assert seen.mean() > 0.8          # the room where the person moved away, inpainted elsewhere


@GROUP
def test_synthesis_replaces_the_background_masks_the_texture_and_follows_driving_faces(
    system_runs, tmp_path):
  result = system_runs("d2gnet").straight
  system, params, _ = inference.load_trained(result.workdir, [])
  generate = jax.jit(system.generate)
  batch = lambda ex: system.prepare({k: np.asarray(v)[None] for k, v in ex.items()})
  example = system.synthesis_example(seed=0)
  plain = generate(params, batch(example))
  image = tmp_path / "sky.png"
  import imageio.v3 as iio  # pylint: disable=g-import-not-at-top
  iio.imwrite(image, np.full((20, 30, 3), (40, 90, 250), np.uint8))
  swapped = system.synthesis_example(seed=0, background=str(image))
  other = generate(params, batch(swapped))
  p0 = 1.0 - np.asarray(plain["person"])
  sky = swapped["background_image"] - np.asarray(params["background"])
  np.testing.assert_allclose(np.asarray(other["static"]) - np.asarray(plain["static"]),
                             p0 * sky[None, None], atol=1e-5)      # Eq. 4 with a new I_bg
  masked = generate(params, batch(system.synthesis_example(seed=0, masktex="true")))
  np.testing.assert_allclose(masked["static"], plain["static"], atol=1e-6)  # RGB untouched
  assert not np.allclose(masked["frames"], plain["frames"])
  driven = system.synthesis_example(seed=0, driving="cross")
  assert driven["face"].shape == driven["driving_rgb"].shape[:3]
  assert (driven["face"] >= 0).any() and "context_face" in driven
  frames = inference.sample_frames(system, params, driven)
  assert frames.shape[0] == system.config.data.eval_run_frames
  with pytest.raises(ValueError, match="not an image file"):
    system.synthesis_example(seed=0, background=str(tmp_path / "none.png"))


def test_face_maps_follow_the_normalised_keypoints():
  maps = np.full((1, 20, 20), -1, np.int32)
  maps[0, 5:10, 4:8] = 7
  raw = np.zeros((1, 18, 3), np.float32)
  raw[0, :, 2] = 1
  raw[0, :, 0] = np.linspace(4, 7, 18)
  raw[0, :, 1] = np.linspace(5, 9, 18)
  moved = raw.copy()
  moved[0, :, :2] = 2.0 * raw[0, :, :2] + np.array([1.0, 0.0])   # x' = 2 x + 1, y' = 2 y
  out = per_person.follow_keypoints(maps, raw, moved)
  assert out[0, 2 * 6, 2 * 5 + 1] == 7 and out[0, 2 * 9, 2 * 7 + 1] == 7
  assert out[0, 2, 2] == -1 and 3 < (out == 7).sum() / (maps == 7).sum() < 5   # twice the size


def test_a_person_run_starts_from_the_pretrained_uv_generator(tmp_path):
  pre = loop.train(tiny_config("tiny,pretrain"), str(tmp_path / "uv"))
  assert pre.step == 2 and {"part_acc", "uv_err", "person_iou"} <= set(pre.eval_results)
  trained = train_harness.host_params(pre)
  assert set(trained) == {"uv"}
  # its one group is what `--config.init_from` gives a person run (shapes checked on restore),
  # and the texture is unwrapped through it
  config = tiny_config(**{"init_from": str(tmp_path / "uv"), "texture.init": "predicted"})
  system = registry.get_system(config)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(system.pretrained_uv()),
               trained["uv"])
  texture = system.initial_texture()
  assert texture.shape == (24, 8, 8, 18) and np.all(np.isfinite(texture))


@pytest.mark.slow  # ~70 s with a cold compilation cache: its 9-channel label compiles anew
def test_trains_and_synthesizes_on_a_prepared_real_video(tmp_path):
  dataset = recordings.prepared_carphone(tmp_path, 32)
  uv = str(tmp_path / "uv")
  loop.train(tiny_config("tiny,pretrain,label2d"), uv)
  config = tiny_config(f"tiny,data={dataset}", init_from=uv)
  assert config.loss.uv == 0 and config.texture.init == "predicted" and not config.pose.surface
  result = loop.train(config, str(tmp_path / "person"))
  assert np.isfinite(result.eval_results["person_iou"])
  out = tmp_path / "out.gif"
  assert cli.main(["synthesize", "--workdir", result.workdir, "--out", str(out)]) == 0
  assert out.exists()
  surface = registry.get_system(tiny_config())     # the 3D label needs the driver's face maps
  with pytest.raises(ValueError, match="'face' modality"):
    surface.synthesis_example(seed=0, driving=dataset)


@pytest.mark.parametrize("overrides,match", [
    ({"texture.init": "predicted"}, "init_from"),
    ({"texture.init": "mean"}, "texture.init"),
    ({"model.texture_channels": 2}, "texture_channels"),
    ({"pose.history": -1}, "pose.history"),
    ({"loss.gan": "wgan"}, "loss.gan"),
    ({"data.frames_per_example": 1}, "frames_per_example"),
])
def test_bad_configs_fail_with_one_line_errors(overrides, match):
  with pytest.raises(ValueError, match=match):
    registry.get_system(tiny_config(**overrides))
