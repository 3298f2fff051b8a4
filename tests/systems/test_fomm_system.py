"""The First Order Motion Model system (psrjax/systems/fomm.py) beyond the shared system checks:
the equivariance losses' zeros (psrjax/systems/tasks/keypoint_motion.py), the examples, animating
an image file, and bad configs."""
import functools
import shutil

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import conformance
from benchmarks import seeds
from psrjax import cli
from psrjax import config_utils
from psrjax.data import synthetic
from psrjax.geometry import motion
from psrjax.nn import population_norm
from psrjax.systems import base, registry
from psrjax.systems.tasks import keypoint_motion
from psrjax.train import inference
from psrjax.train import offline_eval

GROUP = pytest.mark.xdist_group("fomm")
tiny_config = functools.partial(conformance.tiny_config, "fomm")


def _keypoints(seed, batch=2, k=3):
  rng = np.random.default_rng(seed)
  jac = np.eye(2) + 0.2 * rng.normal(size=(batch, k, 2, 2))
  return {"value": jnp.asarray(rng.uniform(-1, 1, (batch, k, 2)), jnp.float32),
          "jacobian": jnp.asarray(jac, jnp.float32)}


def test_equivariance_losses_vanish_for_equivariant_keypoints():
  """With the identity transform and equal keypoints both terms are 0; moving the warped
  frame's keypoints by the transform's inverse affine part keeps the value term at 0."""
  kp = _keypoints(3)
  identity = motion.tps_parameters(jnp.tile(jnp.eye(2, 3)[None], (2, 1, 1)))
  value, jacobian = keypoint_motion.equivariance(identity, kp, kp)
  assert float(value) < 1e-7 and float(jacobian) < 1e-6
  theta = jnp.asarray([[[1.1, 0.1, 0.05], [-0.05, 0.9, -0.1]]] * 2, jnp.float32)
  affine = motion.tps_parameters(theta)
  a, t = np.asarray(theta[0, :, :2]), np.asarray(theta[0, :, 2])
  warped_value = (np.asarray(kp["value"]) - t) @ np.linalg.inv(a).T       # T^-1(p)
  warped_jac = np.linalg.inv(a) @ np.asarray(kp["jacobian"])               # J_T^-1 J
  warped = {"value": jnp.asarray(warped_value, jnp.float32),
            "jacobian": jnp.asarray(warped_jac, jnp.float32)}
  value, jacobian = keypoint_motion.equivariance(affine, kp, warped)
  assert float(value) < 1e-6 and float(jacobian) < 1e-5
  value, _ = keypoint_motion.equivariance(affine, kp, kp)
  assert float(value) > 1e-2


def test_background_dropout_draws_the_share_of_examples_and_rejects_bad_values():
  assert keypoint_motion.keep_background(jax.random.key(0), 4, 0.0) is None
  keep = keypoint_motion.keep_background(jax.random.key(1), 20_000, 0.25)
  assert keep.shape == (20_000,) and abs(1.0 - float(jnp.mean(keep)) - 0.25) < 0.02
  for bad in (-0.1, 1.0):
    with pytest.raises(ValueError, match="background_dropout"):
      registry.get_system(tiny_config(**{"loss.background_dropout": bad}))


def test_training_pairs_are_two_frames_of_one_clip_and_evaluation_starts_at_the_source():
  system = registry.get_system(tiny_config())
  train = system.dataset("train", seed=0, shard_index=0, shard_count=1)
  example = train[0]
  assert example["src_rgb"].shape[0] == 1 and example["tgt_rgb"].shape[0] == 1
  assert not np.array_equal(example["src_rgb"][0], example["tgt_rgb"][0])
  evaluation = system.dataset("test", seed=0, shard_index=0, shard_count=1)[0]
  np.testing.assert_array_equal(evaluation["init_rgb"], evaluation["src_rgb"][0])
  d = system.config.data
  assert evaluation["tgt_rgb"].shape[0] == d.eval_targets
  # The clips are the world's drifting people (data.travel), evaluation and training alike.
  assert d.travel == 0.5
  kp = synthetic.clip_keypoints(synthetic.split_seed("test", 0), num_views=1,
                                num_frames=d.num_frames, resolution=d.resolution, travel=d.travel)
  np.testing.assert_array_equal(evaluation["src_keypoints"][0], kp[0, 0])


@GROUP
def test_synthesize_animates_an_image_file(system_runs, tmp_path, capsys):
  runs = system_runs("fomm")
  size = runs.system.config.data.resolution
  image = np.zeros((3 * size, 2 * size, 3), np.uint8)       # not square: centre-cropped
  image[:, :, 0] = 200
  path = tmp_path / "person.png"
  iio.imwrite(path, image)
  out = tmp_path / "animated.gif"
  assert cli.main(["synthesize", "--workdir", runs.straight.workdir, "--source", str(path),
                   "--out", str(out)]) == 0, capsys.readouterr().err
  frames = iio.imread(out)
  assert frames.shape[0] == runs.system.config.data.eval_targets
  assert "population statistics" in capsys.readouterr().err
  assert cli.main(["synthesize", "--workdir", runs.straight.workdir, "--source",
                   str(tmp_path / "missing.png"), "--out", str(out)]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "--source" in err[0], err


@GROUP
def test_population_statistics_make_a_batch_of_one_generate_as_in_a_batch(system_runs):
  runs = system_runs("fomm")
  system, params, _ = inference.load_trained(runs.straight.workdir)
  moments = system.batch_norm_moments(params)
  assert {k.split("/")[0] for k in moments} == {"KeypointDetector", "OcclusionAwareGenerator"}
  examples = [system.synthesis_example(seed=s) for s in (0, 1)]
  pair = {k: np.stack([e[k] for e in examples]) for k in examples[0]}
  one = {k: v[:1] for k, v in pair.items()}
  generate = functools.partial(base.generate, system)
  fixed = jax.jit(population_norm.with_moments(moments, generate))
  plain = jax.jit(generate)
  np.testing.assert_allclose(fixed(params, one)["frames"], fixed(params, pair)["frames"][:1],
                             atol=2e-4)
  gap = np.abs(np.asarray(plain(params, one)["frames"])
               - np.asarray(plain(params, pair)["frames"][:1])).max()
  assert gap > 1e-3   # the batch's own statistics depend on the batch


@GROUP
def test_population_evaluation_does_not_depend_on_the_evaluation_batch(system_runs, tmp_path,
                                                                       monkeypatch):
  """`psrjax eval --batch-norm population`: the held-out scores are the same whether the two
  examples are evaluated together or one by one; with each batch's own statistics they are not."""
  workdir = tmp_path / "run"
  shutil.copytree(system_runs("fomm").straight.workdir, workdir)

  def scores(batch_size, batch_norm):
    config = config_utils.load_workdir_config(str(workdir))
    config.eval.batch_size = batch_size
    _, results = offline_eval.evaluate_checkpoint(config, str(workdir), devices=jax.devices()[:1],
                                                  only=("system",), batch_norm=batch_norm)
    return results

  together, alone = scores(2, "population"), scores(1, "population")
  assert "system-population/lpips" in together
  for key, value in together.items():
    np.testing.assert_allclose(alone[key], value, rtol=1e-4, atol=1e-5, err_msg=key)
  own = scores(2, "batch"), scores(1, "batch")
  assert abs(own[0]["system/l1"] - own[1]["system/l1"]) > 1e-4
  # The tables' --batch-norm population reads the written scores back instead of evaluating.
  def no_evaluation(*args, **kwargs):
    raise AssertionError("evaluated again")
  monkeypatch.setattr(offline_eval, "evaluate_checkpoint", no_evaluation)
  read = seeds.population_results(str(workdir), {})
  assert read == {k.split("/", 1)[1]: v for k, v in alone.items()}


@pytest.mark.parametrize("overrides,match", [
    ({"data.num_targets": 2}, "num_targets"),
    ({"data.eval_targets": 1}, "eval_targets"),
    ({"loss.perceptual": 10.0, "loss.scales": (1.0, 0.25)}, "relu5_1"),
    ({"loss.perceptual_layers": (1.0, 1.0)}, "perceptual_layers"),
])
def test_bad_configs_fail_with_one_line_errors(overrides, match):
  with pytest.raises(ValueError, match=match):
    registry.get_system(tiny_config(**overrides))
