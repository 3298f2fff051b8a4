"""The animation task (psrjax/systems/tasks/animation.py) that FOMM and INTERnet build on: the
relative motion of animation, MS-SSIM's scales, and the task's inference, evaluation and
examples around a motion model that keeps the source still."""
import jax
import jax.numpy as jnp
import numpy as np

import conformance
import train_harness
from psrjax.metrics import structural
from psrjax.systems.tasks import animation


def _keypoints(seed, batch=2, k=3):
  rng = np.random.default_rng(seed)
  jac = np.eye(2) + 0.2 * rng.normal(size=(batch, k, 2, 2))
  return {"value": jnp.asarray(rng.uniform(-1, 1, (batch, k, 2)), jnp.float32),
          "jacobian": jnp.asarray(jac, jnp.float32)}


def test_relative_motion_from_the_source_itself_is_the_driving_motion():
  """Reconstruction (the driving video starts at the source frame) is animation's special case:
  p(D) - p(S) + p(S) = p(D), J(D) J(S)^-1 J(S) = J(D)."""
  source, driving = _keypoints(0), _keypoints(1)
  out = animation.relative_keypoints(source, driving, source)
  np.testing.assert_allclose(out["value"], driving["value"], atol=1e-6)
  np.testing.assert_allclose(out["jacobian"], driving["jacobian"], atol=1e-5)
  initial = _keypoints(2)                      # the driving video's own first frame
  moved = animation.relative_keypoints(source, initial, initial)
  np.testing.assert_allclose(moved["value"], source["value"], atol=1e-6)   # no motion yet
  np.testing.assert_allclose(moved["jacobian"], source["jacobian"], atol=1e-5)


def test_ms_ssim_uses_the_scales_a_frame_holds():
  assert animation.ms_ssim_weights(256) == tuple(structural.MS_SSIM_WEIGHTS)
  assert len(animation.ms_ssim_weights(64)) == 3 and len(animation.ms_ssim_weights(32)) == 2


class _Still(animation.KeypointAnimationTask):
  """A motion model that shows the source unmoved: the task's part of a system alone."""

  def check_training_data(self, data):
    del data

  def train_dataset(self, *, seed, shard_index, shard_count):
    raise NotImplementedError

  def train_example_spec(self):
    raise NotImplementedError

  def stages(self):
    return ()

  def init(self, rng, batch):
    return {}

  def optimizers(self):
    return {}

  def keypoints(self, params, frames):
    return {"value": jnp.zeros((frames.shape[0], 2, 2))}

  def animate(self, params, source, kp_source, kp_driving):
    return {"prediction": source}


def test_the_task_animates_evaluates_and_samples_around_the_motion_model():
  system = _Still(conformance.tiny_config("fomm"))
  d = system.config.data
  batch = {k: jnp.asarray(v) for k, v in train_harness.eval_batch(system).items()}
  assert {k: (v.shape[1:], v.dtype) for k, v in batch.items()} == {
      k: (s.shape, s.dtype) for k, s in system.example_spec("test").items()}
  np.testing.assert_array_equal(batch["init_rgb"], batch["src_rgb"][:, 0])
  params = system.constants()
  out = jax.jit(system.generate)(params, batch)
  assert out["frames"].shape == batch["tgt_rgb"].shape
  np.testing.assert_allclose(out["frames"], out["source"], atol=1e-6)   # the source, unmoved
  values = jax.jit(system.evaluate)(params, batch)
  assert {"l1", "ssim", "ms_ssim", "psnr", "lpips", "tempe", "interp_psnr",
          "interp_psnr_self"} <= set(values)
  assert all(v.shape == (2,) for v in values.values())
  assert "psnr/copy" not in values   # infinite where a driving frame equals the source
  for name in ("l1", "ssim", "ms_ssim", "m_ssim", "lpips", "tempe"):   # the copy row
    np.testing.assert_allclose(values[f"{name}/copy"], values[name], rtol=1e-6, err_msg=name)
  assert float(values["l1/copy"].min()) > 0.0   # the driving frames are not the source
  strip = system.sample_video({k: np.asarray(v[0]) for k, v in batch.items()},
                              {k: np.asarray(v[0]) for k, v in out.items()})
  assert strip.shape[0] == d.eval_targets and strip.shape[2] == 3 * d.resolution
