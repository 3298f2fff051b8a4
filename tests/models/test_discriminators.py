"""MoCoGAN-style conditional video discriminator and train-mode batch norm."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrjax.models.discriminators import VideoDiscriminator
from psrjax.nn import BatchStatNorm


@pytest.mark.parametrize("t,size,logit_t,logit_hw", [(8, 64, 1, 4), (8, 112, 1, 7), (16, 128, 4, 8)])
def test_shapes_at_the_paper_and_runlocal_sizes(t, size, logit_t, logit_hw):
  video = jax.ShapeDtypeStruct((2, t, size, size, 3), jnp.float32)
  disc = VideoDiscriminator()
  params = jax.eval_shape(disc.init, jax.random.key(0), video, video)
  logits, features = jax.eval_shape(disc.apply, params, video, video)
  assert logits.shape == (2, logit_t, logit_hw, logit_hw, 1)
  t_in = max(t, 13)                                       # short clips are padded to 13 frames
  assert [f.shape for f in features] == [
      (2, t_in - 3, size // 2, size // 2, 64), (2, t_in - 6, size // 4, size // 4, 128),
      (2, t_in - 9, size // 8, size // 8, 256)]
  kernels = [params["params"][f"conv{i}"]["kernel"].shape for i in range(4)]
  assert kernels == [(4, 4, 4, 6, 64), (4, 4, 4, 64, 128), (4, 4, 4, 128, 256), (4, 4, 4, 256, 1)]
  assert "bias" not in params["params"]["conv0"] and "norm0" not in params["params"]
  assert {"norm1", "norm2"} <= set(params["params"])


@pytest.fixture(scope="module")
def tiny():
  disc = VideoDiscriminator(ndf=4)
  k = jax.random.split(jax.random.key(0, impl="rbg"), 3)     # rbg: fast to compile on CPU
  video = jax.random.uniform(k[0], (2, 8, 32, 32, 3), minval=-1, maxval=1)
  cond = jax.random.uniform(k[1], (2, 8, 32, 32, 3), minval=-1, maxval=1)
  params = jax.jit(disc.init)(k[2], video, cond)
  return disc, params, video, cond


def test_runs_and_depends_on_the_condition(tiny):
  disc, params, video, cond = tiny
  apply = jax.jit(disc.apply)
  logits, features = apply(params, video, cond)
  assert logits.shape == (2, 1, 2, 2, 1) and logits.dtype == jnp.float32
  assert np.all(np.isfinite(np.asarray(logits)))
  assert len(features) == 3
  other, _ = apply(params, video, -cond)
  assert not np.allclose(np.asarray(logits), np.asarray(other))


def test_grad_smoke(tiny):
  disc, params, video, cond = tiny
  grads = jax.jit(jax.grad(lambda p: jnp.mean(disc.apply(p, video, cond)[0])))(params)
  leaves = jax.tree.leaves(grads)
  assert all(np.all(np.isfinite(np.asarray(g))) for g in leaves)
  assert float(jnp.abs(grads["params"]["conv0"]["kernel"]).sum()) > 0


def test_batch_stat_norm_uses_batch_statistics():
  rng = np.random.default_rng(0)
  x = (rng.normal(size=(3, 2, 4, 4, 5)) * 2 + 1).astype(np.float32)
  module = BatchStatNorm()
  params = module.init(jax.random.key(0), x)
  assert set(params["params"]) == {"scale", "bias"}
  params = {"params": {"scale": jnp.arange(1.0, 6.0), "bias": jnp.full((5,), 0.5)}}
  got = np.asarray(module.apply(params, x))
  mean, var = x.mean(axis=(0, 1, 2, 3)), x.var(axis=(0, 1, 2, 3))
  want = (x - mean) / np.sqrt(var + 1e-5) * np.arange(1.0, 6.0) + 0.5
  np.testing.assert_allclose(got, want, atol=1e-4)
  # statistics are the whole batch's: changing one example changes the others' outputs
  x2 = x.copy()
  x2[0] += 3.0
  assert not np.allclose(np.asarray(module.apply(params, x2))[1], got[1])


@pytest.mark.parametrize("bad", ["cond_shape", "too_small", "rank"])
def test_bad_inputs(bad):
  video = jnp.zeros((1, 8, 32, 32, 3))
  cond = video
  if bad == "cond_shape":
    cond = jnp.zeros((1, 8, 16, 16, 3))
  elif bad == "too_small":
    video = cond = jnp.zeros((1, 8, 8, 8, 3))
  else:
    video = cond = jnp.zeros((8, 32, 32, 3))
  with pytest.raises(ValueError):
    jax.eval_shape(VideoDiscriminator(ndf=2).init, jax.random.key(0), video, cond)
