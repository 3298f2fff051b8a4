"""The CoCosNet-based video pose transfer system (psrjax/systems/cocovid.py) beyond the shared
system checks: exemplar sampling, G_1's start as G, the temporal window, two-pass inference, the
Eq. 1 driving normalisation, the spectral state and bad configs."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import conformance
import train_harness
from psrjax import nn as pnn
from psrjax.data.samplers import per_person
from psrjax.systems import registry

GROUP = pytest.mark.xdist_group("cocovid")
tiny_config = functools.partial(conformance.tiny_config, "cocovid")


def test_training_exemplars_are_other_frames_of_the_same_video_beyond_the_gap():
  config = tiny_config()
  data = config.data
  videos = per_person.source(data).videos("train")
  rng = np.random.default_rng(0)
  for start in (0, 10, 40):
    for _ in range(20):
      p = per_person.exemplar_position(videos, videos[0], start, 2, data.exemplar_gap, rng)
      assert p < start - data.exemplar_gap or p >= start + 2 + data.exemplar_gap, (start, p)
  ds = per_person.exemplar_train_dataset(data, seed=3, shard_index=0, shard_count=1)
  first, again = ds[0], per_person.exemplar_train_dataset(data, seed=3, shard_index=0,
                                                          shard_count=1)[0]
  np.testing.assert_array_equal(first["exemplar_rgb"], again["exemplar_rgb"])   # deterministic
  frames = per_person.training_appearance(data, first["frame_index"])["rgb"]
  assert not any(np.array_equal(f, first["exemplar_rgb"]) for f in frames)
  draws = {ds[i]["exemplar_rgb"].tobytes() for i in range(0, len(ds), len(ds) // 4)}
  assert len(draws) > 1
  with pytest.raises(ValueError, match="outside the example's window"):
    per_person.exemplar_position(videos[:1], videos[0], 0, videos[0].num_frames, 0, rng)


@GROUP
def test_per_frame_inference_exemplars_are_each_frames_nearest_training_frame():
  """data.inference_exemplar="nearest": the held-out examples carry each frame's nearest
  training frame in pose."""
  config = tiny_config(**{"data.inference_exemplar": "nearest"})
  system = registry.get_system(config)
  example = system.dataset("test", seed=0, shard_index=0, shard_count=1)[0]
  t = example["rgb"].shape[0]
  assert example["exemplar_rgb"].shape == (t,) + example["rgb"].shape[1:]
  index = system._pose_index()[0]
  found = index.nearest(example["keypoints"])[0]
  np.testing.assert_array_equal(
      example["exemplar_rgb"], per_person.training_appearance(config.data, found)["rgb"])
  spec = system.example_spec("test")
  assert spec["exemplar_keypoints"].shape == (t, 18, 3)


@pytest.mark.slow   # two generators compiled: over a minute of a test worker
@GROUP
def test_per_frame_exemplars_equal_to_the_fixed_one_draw_what_the_fixed_one_draws():
  """G (two-pass, G_1, faces) given the fixed exemplar once per frame draws what it draws from
  the fixed exemplar alone."""
  config = tiny_config(**{"data.inference_exemplar": "nearest"})
  system = registry.get_system(config)
  t = config.data.eval_run_frames
  fixed = registry.get_system(tiny_config())
  batch = fixed.prepare(train_harness.eval_batch(fixed))
  params = conformance.initial_params("cocovid")
  tile = lambda v: jnp.repeat(v[:, None], t, axis=1)
  per_frame = system.prepare({**train_harness.eval_batch(fixed),
                              "exemplar_rgb": tile(batch["exemplar_rgb"]),
                              "exemplar_keypoints": tile(batch["exemplar_keypoints"])})
  one = jax.jit(fixed.generate)(params, batch)["frames"]
  each = jax.jit(system.generate)(params, per_frame)["frames"]
  np.testing.assert_allclose(each, one, atol=1e-5)


@GROUP
def test_temporal_generator_starts_as_the_frame_generator():
  """The previous-frame channels' weights start at 0: G_1 = G at initialisation, whatever the
  previous frames; after the temporal stage they are trained."""
  system = registry.get_system(tiny_config())
  batch = system.prepare(train_harness.eval_batch(system))
  params = conformance.initial_params("cocovid")
  label, exemplar = batch["label"][:, 0], batch["exemplar_rgb"]
  zeros = system._previous_zeros(exemplar)
  noise = jax.random.normal(jax.random.key(1), zeros.shape)
  frame = jax.jit(lambda previous: system._frame(params, label, exemplar, previous)["out"])
  np.testing.assert_array_equal(frame(zeros), frame(noise))
  seq = jax.eval_shape(lambda: system._sequence(params, batch["label"], exemplar)["out"])
  assert seq.shape == batch["rgb"].shape


@GROUP
def test_two_pass_inference_uses_the_refined_exemplar():
  config = tiny_config()
  system = registry.get_system(config)
  batch = system.prepare(train_harness.eval_batch(system))
  params = conformance.initial_params("cocovid")
  refined = jax.jit(system._refined_exemplar)(params, batch)
  one_pass = registry.get_system(tiny_config(**{"model.two_pass": False}))
  direct = jax.jit(functools.partial(one_pass._generate, True, True))(
      params, {**batch, "exemplar_rgb": refined})
  two = jax.jit(system.generate)(params, batch)
  np.testing.assert_allclose(two["frames"], direct["frames"], atol=1e-6)
  assert not np.allclose(refined, batch["exemplar_rgb"])


def test_evaluation_exemplar_is_a_typical_training_frame():
  config = tiny_config()
  system = registry.get_system(config)
  index = system.exemplar_index()
  assert 0 <= index < len(per_person.train_keypoints(config.data))
  assert registry.get_system(tiny_config(**{"data.exemplar": 5})).exemplar_index() == 5
  example = system.synthesis_example(seed=0)
  np.testing.assert_array_equal(example["exemplar_rgb"],
                                per_person.exemplar(config.data, index)["exemplar_rgb"])


def test_driving_poses_are_translated_vertically_by_eq_1():
  system = registry.get_system(tiny_config())
  normalize = system.normalizer("cross")
  kp = per_person.driving_keypoints(system.config.data)
  out = normalize(kp)
  np.testing.assert_array_equal(out[..., 0], kp[..., 0])           # x unchanged
  shift = out[..., 1] - kp[..., 1]
  np.testing.assert_allclose(shift, shift[:, :1].repeat(18, 1), atol=1e-4)   # one shift a frame


@GROUP
def test_spectral_layers_advance_their_power_iteration_with_the_optimizer():
  system = registry.get_system(tiny_config())
  params = conformance.initial_params("cocovid")
  opt = system.optimizers()["d"]
  grads = jax.tree.map(jnp.zeros_like, params["d"])
  updates, _ = opt.update(grads, opt.init(params["d"]), params["d"])
  moved = [jax.tree_util.keystr(p) for p, u in jax.tree_util.tree_leaves_with_path(updates)
           if np.any(np.asarray(u) != 0)]
  assert moved and all(pnn.SN_PARAM in m for m in moved), moved


@pytest.mark.parametrize("overrides,match", [
    ({"data.frames_per_example": 1}, "frames_per_example"),
    ({"data.resolution": 48}, "multiple of 32"),
    ({"pose.label": "heatmaps"}, "pose.label"),
    ({"optim.update_order": "x"}, "update_order"),
    ({"data.inference_exemplar": "x"}, "inference_exemplar"),
])
def test_bad_configs_fail_with_one_line_errors(overrides, match):
  with pytest.raises(ValueError, match=match):
    registry.get_system(tiny_config(**overrides))
