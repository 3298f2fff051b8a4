"""pix2pixHD and Everybody Dance Now on the trainer: a tiny run end to end (train, evaluate on
the held-out segment, cross-person synthesis), EDN's frame-by-frame generation and face paste,
pix2pix's training-only dropout, the derived person mask and bad configs."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import conformance
import train_harness
from psrjax.geometry import face_crop
from psrjax.data.sources import scripted_person
from psrjax.systems import base
from psrjax.train import benchmark
from psrjax.train import inference
from psrjax.systems import registry
from psrjax.systems.tasks import gan, person_video

METRICS = {"ssim", "psnr", "m_ssim", "lpips", "mask_iou", "tempe"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xdist_group(n))
                                  for n in ("pix2pixhd", "edn")])
def test_tiny_run_trains_evaluates_and_synthesizes_cross_person(name, system_runs):
  result = system_runs(name).straight
  workdir = result.workdir
  assert result.step == 4
  values = result.eval_results
  assert METRICS <= set(values), values
  assert all(np.isfinite(values[m]) for m in METRICS), values
  system, params, _ = inference.load_trained(workdir, [])
  for driving in ("test", "cross"):
    example = system.synthesis_example(seed=0, driving=driving)
    frames = inference.sample_frames(system, params, example)
    t, h = system.config.data.eval_run_frames, system.config.data.resolution
    assert frames.shape[0] == t and frames.shape[2] == 3 * h and frames.dtype == np.uint8, name
  with pytest.raises(ValueError, match="--driving"):
    system.synthesis_example(seed=0, driving="nobody")


def test_edn_generates_frame_by_frame_from_the_previous_output():
  system = registry.get_system(conformance.tiny_config("edn"))
  batch = train_harness.eval_batch(system)
  params = train_harness.init_params(system, batch, 0)
  main = system.stages()[0]
  run = jax.jit(lambda p, b: base.generate(system, p, b, stage=main)["frames"])
  out = np.asarray(run(params, batch))
  moved = dict(batch, keypoints=batch["keypoints"].copy())
  moved["keypoints"][:, 0, :, :2] += 3.0           # only the first frame's pose changes
  changed = np.abs(np.asarray(run(params, moved)) - out).reshape(out.shape[:2] + (-1,)).max(-1)
  assert np.all(changed[:, 0] > 0) and np.all(changed[:, 1:] > 0)   # later frames see it
  late = dict(batch, keypoints=batch["keypoints"].copy())
  late["keypoints"][:, -1, :, :2] += 3.0           # only the last frame's pose changes
  changed = np.abs(np.asarray(run(params, late)) - out).reshape(out.shape[:2] + (-1,)).max(-1)
  np.testing.assert_array_equal(changed[:, :-1], 0.0)


def test_edn_face_gan_changes_only_the_face_box():
  system = registry.get_system(conformance.tiny_config("edn"))
  batch = train_harness.eval_batch(system)
  params = train_harness.init_params(system, batch, 1)
  main = np.asarray(base.generate(system, params, batch, stage=system.stages()[0])["frames"])
  final = np.asarray(base.generate(system, params, batch)["frames"])
  np.testing.assert_allclose(final, main, atol=1e-5)   # G_f starts as the identity on the face
  params["g_face"]["head"] = jax.tree.map(lambda x: x + 0.1, params["g_face"]["head"])
  final = np.asarray(base.generate(system, params, batch)["frames"])
  prepared = system.prepare(batch)
  inside = np.asarray(face_crop.box_mask(system.face.boxes(prepared), *main.shape[2:4])) > 0
  np.testing.assert_array_equal(final[~inside], main[~inside])
  assert np.abs(final[inside] - main[inside]).max() > 0


def test_pix2pix_dropout_is_noise_in_training_only():
  """pix2pix's U-Net (6 levels at 64x64: dropout on level 4) draws a new dropout mask from each
  training step's key; evaluation and synthesis are deterministic."""
  system = registry.get_system(conformance.tiny_config("pix2pix", **{"data.resolution": 64,
                                                                   "model.unet_downs": 6}))
  batch = train_harness.eval_batch(system, 1)
  params = train_harness.init_params(system, batch, 2)
  (stage,) = system.stages()
  train = jax.jit(lambda p, b, k: stage.forward(p, system.prepare(b), k)["out"])
  a, b = (np.asarray(train(params, batch, jax.random.key(k, impl="rbg"))) for k in (0, 1))
  assert np.abs(a - b).max() > 1e-3
  np.testing.assert_array_equal(np.asarray(train(params, batch, jax.random.key(0, impl="rbg"))), a)
  run = jax.jit(lambda p, b: base.generate(system, p, b)["frames"])
  evaluated = np.asarray(run(params, batch))
  assert np.abs(evaluated - np.clip(a, -1.0, 1.0)).max() > 1e-3   # no dropout mask there
  np.testing.assert_array_equal(np.asarray(run(params, batch)), evaluated)


def test_synthesized_mask_of_the_ground_truth_is_the_person_mask():
  config = conformance.tiny_config("pix2pixhd")
  system = registry.get_system(config)
  frames = scripted_person.frames(config.data, 5, 3)
  derived = np.asarray(person_video.synthesized_mask(jnp.asarray(frames["rgb"]), system.background))
  np.testing.assert_array_equal(derived, frames["mask"])


@pytest.mark.parametrize("name,overrides,match", [
    ("edn", {"data.frames_per_example": 1}, "frames_per_example"),
    ("pix2pixhd", {"pose.label": "heatmaps"}, "pose.label"),
    ("pix2pixhd", {"model.generator": "resnet"}, "model.generator"),
    ("pix2pixhd", {"loss.gan": "wgan"}, "loss.gan"),
    ("pix2pixhd", {"optim.decay_fraction": 1.5}, "decay_fraction"),
    ("pix2pixhd", {"optim.update_order": "gdg"}, "optim.update_order"),
])
def test_bad_configs_fail_with_one_line_errors(name, overrides, match):
  with pytest.raises(ValueError, match=match):
    system = registry.get_system(conformance.tiny_config(name, **overrides))
    system.optimizers()


def test_pix2pixhd_lr_is_constant_then_decays_linearly_to_zero():
  schedule = gan.decayed_lr(2e-4, 100, 0.5)
  np.testing.assert_allclose([schedule(0), schedule(49), schedule(50), schedule(75), schedule(100)],
                             [2e-4, 2e-4, 2e-4, 1e-4, 0.0], rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name,order,phases", [
    ("pix2pixhd", "gd", ("g", "d")), ("edn", "gd", ("g", "d")), ("pix2pixhd", "dg", ("d", "g"))])
def test_update_order_orders_every_stages_phases(name, order, phases):
  system = registry.get_system(conformance.tiny_config(name, **{"optim.update_order": order}))
  for stage in system.stages():
    assert tuple(p.name for p in stage.phases) == phases
    assert stage.generator_phase().name == "g"


def test_update_order_defaults_to_the_authors_scripts_and_old_runs_keep_theirs():
  assert gan.update_order(conformance.tiny_config("pix2pixhd").optim) == "gd"
  assert gan.update_order(conformance.tiny_config("pix2pix").optim) == "dg"
  saved = conformance.tiny_config("pix2pixhd").optim
  del saved["update_order"]   # a config saved before the field existed
  assert gan.update_order(saved) == "dg"


def _discriminator_forward_convolutions(hlo: str) -> int:
  """Forward convolutions of the multi-scale discriminator in a compiled step's HLO (oneDNN's
  custom calls or XLA's convolutions; the backward passes' ops carry `transpose(`)."""
  count = 0
  for line in hlo.splitlines():
    name = re.search(r'op_name="([^"]*)"', line)
    if (name and "jvp(MultiScaleDiscriminator)" in name.group(1)
        and "transpose(" not in name.group(1)
        and ('custom_call_target="psrjax_conv_forward"' in line
             or re.search(r"= \S+ convolution\(", line))):
      count += 1
  return count


@pytest.mark.parametrize("name,orders", [
    pytest.param("pix2pixhd", ("gd", "dg"), marks=pytest.mark.xdist_group("pix2pixhd")),
    pytest.param("edn", ("gd",), marks=pytest.mark.xdist_group("edn"))])
def test_generator_first_step_runs_the_discriminator_once_per_input(name, orders):
  """With G's phase first both phases read the same D on the same real and generated frames,
  and the compiled step computes each of those passes once: two passes of D's convolutions
  (PyTorch's pix2pixHD step runs three). With two stride-2 layers instance norm feeds
  convolutions, and at batch 1 (the paper's) XLA simplified its statistics differently under
  the two phases' differentiations and computed those passes twice (psrjax.nn.norms.normalise)."""
  config = conformance.tiny_config(name, **{"model.d_layers": 2, "train.batch_size": 1})
  per_pass = config.model.num_d * (config.model.d_layers + 2)
  counts = {}
  for order in orders:
    config.optim.update_order = order
    step = benchmark.CompiledStep(config, devices=jax.devices()[:1])
    counts[order] = _discriminator_forward_convolutions(step.compiled.as_text())
  assert counts["gd"] == 2 * per_pass, counts
  if "dg" in counts:   # D's update between the phases: G's phase runs D again
    assert counts["dg"] > counts["gd"], counts
