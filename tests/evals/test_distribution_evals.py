"""FVD / KID evals: padded batches streamed over 8 devices equal one big batch; real statistics
are cached on disk and read back."""
import functools
import os

import jax
import numpy as np
import pytest

import toy_system
from psrjax import metrics
from psrjax.evals import stats_cache
from psrjax.models import pretrained
from psrjax.train import context
from psrjax.train import data as data_lib
from psrjax.train import evaluator as evaluator_lib
from psrjax.train import state as state_lib

NUM_EXAMPLES = 13   # two global batches of 8, the second padded with 3 copies


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  config = toy_system.toy_config(**{"toy.eval_clips": 16, "toy.frames": 4, "toy.res": 16,
                                    "eval.batch_size": 8})
  ctx = context.build_context(config, str(tmp_path_factory.mktemp("dist") / "run"))
  batch = ctx.global_batch(ctx.first_batch)
  params = state_lib.create_state(ctx.init_fn, ctx.base_key, batch, ctx.state_shardings,
                                  ctx.mesh)["params"]
  return config, ctx, params


@pytest.fixture(scope="module")
def one_batch_features(setup):
  """I3D logits (32x32 FVD resize) of all real and generated clips, in one unsharded batch
  (frames rounded to 8 bits, as the evaluator transfers them)."""
  config, ctx, params = setup
  examples = [ctx.system.dataset("validation", seed=0, shard_index=0, shard_count=1)[i]
              for i in range(NUM_EXAMPLES)]
  batch = {k: np.stack([e[k] for e in examples]) for k in examples[0]}
  # The evaluator sends frames to the devices as uint8 (data.encode_batch): the same rounding.
  batch = data_lib.decode_batch(data_lib.encode_batch(batch), xp=np)
  host_params = jax.device_get(params)
  module, variables = pretrained.load("i3d")
  embed = lambda x: metrics.fvd_features(functools.partial(module.apply, variables), x, resolution=32)
  fake = jax.jit(ctx.system.generate)(host_params, batch)["fake"]
  return np.asarray(jax.jit(embed)(batch["rgb"]), np.float64), np.asarray(jax.jit(embed)(fake), np.float64)


def _build(setup, name, tmp_path, **fields):
  config, ctx, _ = setup
  entry = {"num_examples": NUM_EXAMPLES, "prediction": "fake", "target": "rgb", "resolution": 32,
           "cache_dir": str(tmp_path), **fields}
  return evaluator_lib.build_one(name, entry, config=config, system=ctx.system, mesh=ctx.mesh,
                                 workdir=None).evaluator


def test_fvd_streamed_equals_one_batch_and_uses_the_cache(setup, one_batch_features, tmp_path):
  _, _, params = setup
  real_rows, fake_rows = one_batch_features
  evaluator = _build(setup, "fvd", tmp_path, type="fvd")
  results = evaluator.run(params)
  real, fake = metrics.FeatureStats.of(real_rows), metrics.FeatureStats.of(fake_rows)
  assert results["num_examples"] == results["num_features"] == NUM_EXAMPLES
  assert results["fvd"] == pytest.approx(metrics.fvd(real, fake), rel=1e-4)
  assert results["fvd"] > 0
  cached = metrics.FeatureStats.load(evaluator.cache_file)
  assert os.path.basename(evaluator.cache_file).startswith(f"i3d_logits-validation-{NUM_EXAMPLES}-")
  assert cached.count == NUM_EXAMPLES
  # The features themselves differ by float32 rounding between the sharded padded batches and
  # one unsharded batch (XLA convolutions per device); the accumulation is exact to 1e-6
  # (tests/metrics/test_frechet.py).
  np.testing.assert_allclose(cached.mean, real.mean, rtol=0, atol=1e-5 * np.abs(real.mean).max())
  np.testing.assert_allclose(cached.covariance, real.covariance, rtol=0,
                             atol=3e-5 * np.abs(real.covariance).max())
  # A new evaluator with the same key reads the file: cached generated statistics give ~0.
  stats_cache.save(evaluator.cache_file, fake)
  again = _build(setup, "fvd", tmp_path, type="fvd").run(params)
  assert abs(again["fvd"]) < 1e-6 * np.trace(fake.covariance)
  other = _build(setup, "fvd", tmp_path, type="fvd", resolution=48)
  assert other.cache_file != evaluator.cache_file


def test_kid_rows_match_one_batch(setup, one_batch_features, tmp_path):
  _, _, params = setup
  real_rows, fake_rows = one_batch_features
  results = _build(setup, "kid", tmp_path, type="kid", features="i3d_logits", kid_subsets=4,
                   kid_subset_size=6, cache=False).run(params)
  mean, std = metrics.kid(real_rows, fake_rows, subsets=4, subset_size=6)
  assert results["kid"] == pytest.approx(mean, rel=1e-4)
  assert results["kid_std"] == pytest.approx(std, rel=1e-3)
  assert not os.listdir(tmp_path)   # cache=False writes nothing


def _he_initialised(module, x, seed: int) -> dict:
  """Random variables of `module` drawn on the host (He-normal kernels, zero biases, unit scales
  and running variances): the same kind of network `module.init` gives, without compiling its
  hundreds of random draws."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if "kernel" in name:
      std = np.sqrt(2.0 / np.prod(leaf.shape[:-1]))
      return (rng.standard_normal(leaf.shape) * std).astype(leaf.dtype)
    fill = 1.0 if ("scale" in name or "var" in name) else 0.0
    return np.full(leaf.shape, fill, leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, jax.eval_shape(module.init, jax.random.key(0), x))


@pytest.mark.slow   # InceptionV3 compiled twice (the eval's and the reference's): ~45 s
def test_inception_score_reads_the_generated_frames_only(setup, tmp_path):
  """The Inception Score of the generated frames (every frame of every clip) with a randomly
  initialised FID InceptionV3 written as a .msgpack: the eval's value is metrics'
  inception_score of the logits computed directly; no real statistics are cached."""
  from psrjax.models.pretrained import weights as weights_lib  # pylint: disable=g-import-not-at-top
  config, ctx, params = setup
  module = pretrained.make_module("inception_v3_fid")
  variables = _he_initialised(module, np.zeros((1, 75, 75, 3), np.float32), seed=3)
  path = tmp_path / "inception.msgpack"
  weights_lib.write_msgpack(variables, path)
  entry = {"type": "inception_score", "num_examples": NUM_EXAMPLES, "prediction": "fake",
           "weights": str(path), "is_splits": 4}
  results = evaluator_lib.build_one("is", entry, config=config, system=ctx.system, mesh=ctx.mesh,
                                    workdir=str(tmp_path / "run")).evaluator.run(params)
  examples = [ctx.system.dataset("validation", seed=0, shard_index=0, shard_count=1)[i]
              for i in range(NUM_EXAMPLES)]
  batch = {k: np.stack([e[k] for e in examples]) for k in examples[0]}
  batch = data_lib.decode_batch(data_lib.encode_batch(batch), xp=np)
  fake = jax.jit(ctx.system.generate)(jax.device_get(params), batch)["fake"]
  frames = np.asarray(fake).reshape((-1,) + fake.shape[-3:])
  logits = np.asarray(jax.jit(lambda x: module.apply(variables, x)["logits"])(frames))
  mean, std = metrics.inception_score(logits, splits=4)
  assert results["num_features"] == len(frames) == NUM_EXAMPLES * fake.shape[1]
  assert results["is"] == pytest.approx(mean, rel=1e-4)
  assert results["is_std"] == pytest.approx(std, rel=1e-3, abs=1e-6)
  assert not (tmp_path / "run").exists()   # no real statistics cached
