"""PSR-Net system: schedule, view pairs, Eq. 1 and Eq. 3, losses, evaluation, strips and synthesis
(the checks every system passes are in test_conformance.py)."""
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import conformance
import train_harness
from psrjax import config_utils
from psrjax.data.samplers import view_pairs
from psrjax.systems import base, psrnet
from psrjax.systems import registry
from psrjax.systems.tasks import strips

pytestmark = pytest.mark.xdist_group("psrnet")   # shares the session's PSR-Net runs
tiny_config = functools.partial(conformance.tiny_config, "psrnet")


@pytest.fixture(scope="module")
def system():
  return registry.get_system(tiny_config())


@pytest.fixture(scope="module")
def batch(system):
  return train_harness.eval_batch(system)


@pytest.fixture(scope="module")
def params():
  return conformance.initial_params("psrnet")


def test_stagewise_schedule_trains_one_layer_per_stage(system):
  stages = system.stages()
  assert [s.name for s in stages] == ["layer1", "layer2"]
  assert [s.steps for s in stages] == [2, 2]
  assert [p.trains for p in stages[1].phases] == [("d2",), ("g2",)]


def test_joint_and_weighted_schedules():
  joint = registry.get_system(tiny_config(**{"schedule.mode": "joint"})).stages()
  assert len(joint) == 1 and joint[0].phases[1].trains == ("g1", "g2")
  weighted = registry.get_system(tiny_config(**{"train.steps": 12, "schedule.layer_weights": (2.0, 1.0)}))
  assert [s.steps for s in weighted.stages()] == [8, 4]
  with pytest.raises(ValueError, match="layer_weights"):
    registry.get_system(tiny_config(**{"schedule.layer_weights": (1.0, -1.0)})).stages()


def test_eval_examples_enumerate_every_view_pair(system):
  ds = system.dataset("validation", seed=0, shard_index=0, shard_count=1)
  assert [int(ds[i]["pair"]) for i in range(6)] == list(range(6))
  assert system.eval_groups == ("1->2", "1->3", "2->1", "2->3", "3->1", "3->2")
  np.testing.assert_array_equal(ds[0]["src_rgb"], ds[1]["src_rgb"])   # same clip, same view 1


def test_generate_layers_and_baselines(system, params, batch):
  out = jax.jit(functools.partial(base.generate, system))(params, batch)
  shape = batch["tgt_rgb"].shape
  for name in ("copy", "texture", "layer1", "raw2", "layer2"):
    assert out[name].shape == shape, name
  assert "raw1" not in out and out["vis"].shape == shape[:-1]
  np.testing.assert_array_equal(out["copy"], batch["src_rgb"])
  assert set(np.unique(out["vis"])) <= {1, 2, 3}
  layer1 = system.stages()[0]
  first = jax.jit(lambda p, b: base.generate(system, p, b, stage=layer1))(params, batch)
  assert "layer2" not in first and "raw2" not in first
  np.testing.assert_allclose(first["layer1"], out["layer1"], atol=1e-6)


def test_layer2_is_eq1_blend_of_layer1(system, params, batch):
  """x̂² = α G²(x_i, x̂¹, d) + (1 - α) x̂¹ (Eq. 1, α = 0.5); "raw2" is G²(x_i, x̂¹, d) itself."""
  def run(p, b):   # one program (eagerly, hundreds of one-operation ones)
    inputs = system.prepare(b)
    x1, x2 = system._layers(p, inputs, 2)
    g2 = system.generators[1].apply({"params": p["g2"]}, b["src_rgb"], x1, b["tgt_depth"])
    return x1, x2, g2, system._outputs(p, inputs, 2)["raw2"]

  x1, x2, g2, raw2 = jax.jit(run)(params, batch)
  np.testing.assert_allclose(x2, 0.5 * g2 + 0.5 * x1, atol=1e-6)
  np.testing.assert_allclose(raw2, g2, atol=1e-6)
  assert not np.allclose(g2, x2, atol=1e-3)   # the raw output is not the blend


def test_losses_report_every_term(system, params, batch):
  inputs = system.prepare(batch)
  stages = {s.name: s for s in system.stages()}
  layer1, layer2 = stages["layer1"], stages["layer2"]
  d_total, d_terms = layer1.phases[0].loss(params, inputs, layer1.forward(params, inputs, None), None)
  g_total, g_terms = layer2.phases[1].loss(params, inputs, layer2.forward(params, inputs, None), None)
  assert [p.name for p in layer2.phases] == ["d", "g"] and layer2.generator_phase().name == "g"
  assert set(d_terms) == {"adv"} and set(g_terms) == {"rec", "adv"}
  assert np.isfinite(d_total) and np.isfinite(g_total)
  np.testing.assert_allclose(g_total, g_terms["rec"] + 0.01 * g_terms["adv"], rtol=1e-6)


def test_evaluate_reports_per_example_metrics(system, params, batch):
  result = jax.jit(functools.partial(base.evaluate, system))(params, batch)
  for name in ("copy", "texture", "layer1", "raw2", "layer2"):
    for metric in ("ssim", "psnr", "m_ssim", "m_psnr", "b_ssim", "b_psnr"):
      assert result[f"{metric}/{name}"].shape == (2,)
  assert "ssim/raw1" not in result
  np.testing.assert_array_equal(result["group"], batch["pair"])
  assert not np.allclose(result["psnr/raw2"], result["psnr/layer2"])


def test_sample_video_strip(system, params, batch):
  out = jax.device_get(jax.jit(functools.partial(base.generate, system))(params, batch))
  one = {k: np.asarray(v)[0] for k, v in batch.items()}
  frames = system.sample_video(one, {k: np.asarray(v)[0] for k, v in out.items()})
  t, h, w = batch["tgt_rgb"].shape[1:4]
  caption = strips.caption_height(h)  # input, x0, 2 layers, target under a caption row
  assert frames.dtype == np.uint8 and frames.shape == (t, caption + h, w * 5, 3)


def test_synthesis_example_checks_views(system):
  example = system.synthesis_example(seed=9, source_view=3, target_view=1)
  assert int(example["pair"]) == view_pairs.pairs(3).index((2, 0))
  with pytest.raises(ValueError, match="views"):
    system.synthesis_example(seed=9, source_view=2, target_view=2)


def test_trains_both_stages_and_evaluates(system_runs):
  straight = system_runs("psrnet").straight
  assert straight.step == 4 and not straight.preempted
  assert "ssim/layer2" in straight.eval_results and "m_ssim/texture/1->2" in straight.eval_results
  assert straight.eval_results["num_examples"] == 6


def test_batch_shapes_that_do_not_match_the_config_are_an_error(tmp_path):
  config = tiny_config()
  system = registry.get_system(config)
  wrong = tiny_config(**{"data.resolution": 36})
  spec = system.example_spec("train")
  ds = registry.get_system(wrong).dataset("validation", seed=0, shard_index=0, shard_count=1)
  from psrjax.train import data as data_lib
  local = {k: np.asarray(v)[None] for k, v in ds[0].items()}
  with pytest.raises(ValueError, match="tgt_rgb|src_rgb"):
    data_lib.check_example_spec(local, spec, what="train")


def test_synthesize_writes_the_chosen_views(system_runs, tmp_path, capsys):
  from psrjax import cli
  straight = system_runs("psrnet").straight
  out = tmp_path / "out.gif"
  code = cli.main(["synthesize", "--workdir", straight.workdir, "--seed", "19", "--source-view", "2",
                   "--target-view", "3", "--out", str(out)])
  assert code == 0 and out.stat().st_size > 0
  import imageio.v3 as iio
  frames = iio.imread(out)
  assert frames.shape[0] == 4 and frames.shape[2] == 32 * 5
  assert cli.main(["synthesize", "--workdir", straight.workdir, "--source-view", "1",
                   "--target-view", "1", "--out", str(out)]) == 2
  assert "views" in capsys.readouterr().err


def test_background_plate_averages_uncovered_frames():
  rgb = np.zeros((1, 3, 2, 2, 3), np.float32)
  rgb[0, :, 0, 0] = [[0.1] * 3, [0.3] * 3, [0.9] * 3]
  rgb[0, :, 1, 1] = 0.5
  face = np.full((1, 3, 2, 2), -1, np.int32)
  face[0, 2, 0, 0] = 7          # the person covers (0, 0) in the last frame only
  face[0, :, 1, 1] = 3          # and (1, 1) in every frame
  plate = np.asarray(psrnet.background_plate(jnp.asarray(rgb), jnp.asarray(face)))
  np.testing.assert_allclose(plate[0, :, 0, 0], 0.2, atol=1e-6)      # mean of frames 0 and 1
  clip_mean = (0.1 + 0.3) / 8                                       # all uncovered pixels
  np.testing.assert_allclose(plate[0, :, 1, 1], clip_mean, atol=1e-6)
  assert plate.shape == rgb.shape


@pytest.mark.parametrize("plate", [False, True])
def test_residual_layer1_starts_exactly_at_texture_transfer(batch, plate):
  """With residual decoders, G¹'s output after Eq. 3 at initialisation is x̂⁰ on the person and,
  elsewhere, x̂⁰'s mid-grey or (`residual_plate`) the input view's background plate (the
  decoders correct the Eq. 3 pre-image)."""
  system = registry.get_system(tiny_config(**{"model.residual": True, "model.residual_plate": plate}))
  params = train_harness.init_params(system, batch, 1)
  layer1 = system.stages()[0]
  out = jax.jit(lambda p, b: base.generate(system, p, b, stage=layer1))(params, batch)
  background = (psrnet.background_plate(jnp.asarray(batch["src_rgb"]), jnp.asarray(batch["src_face"]))
                if plate else out["texture"])
  person = out["vis"][..., None] > 1
  expected = np.clip(np.where(person, out["texture"], background), -1, 1)
  np.testing.assert_allclose(np.asarray(out["layer1"]), expected, atol=1e-5)


# ----------------------------------------------------------------------------- per-layer residual

def _init_shapes(config, batch):
  """The parameter shapes of `config`'s system (nothing compiled)."""
  system = registry.get_system(config)
  params = jax.eval_shape(functools.partial(base.init, system), jax.random.key(0), batch)
  return system, jax.tree.map(lambda a: a.shape, params)


def test_residual_bool_and_tuple_forms_agree(batch):
  """A bool is every layer's choice; a tuple's last value repeats (and a longer one is cut)."""
  shapes = {}
  for text in ("True", "(True,)", "(True, True, False)", "False", "(False, False)"):
    system, shapes[text] = _init_shapes(tiny_config(**{"model.residual": text}), batch)
    assert [g.residual for g in system.generators] == [text.startswith(("True", "(True"))] * 2
    assert ("residual_base" in system.prepare(batch)) == system.residual[0]
  assert shapes["True"] == shapes["(True,)"] == shapes["(True, True, False)"]
  assert shapes["False"] == shapes["(False, False)"] != shapes["True"]


def test_residual_per_layer_builds_each_layers_decoder(batch):
  """A residual layer's output conv also sees the estimate it corrects (3 more input channels)."""
  system, shapes = _init_shapes(tiny_config(**{"model.residual": "(False, True)"}), batch)
  assert [g.residual for g in system.generators] == [False, True]
  assert "residual_base" not in system.prepare(batch)
  _, full = _init_shapes(tiny_config(**{"model.residual": False}), batch)
  assert shapes["g1"] == full["g1"]
  kernel = lambda s: s["g2"]["decoder"]["out"]["kernel"]
  assert kernel(shapes)[-2] == kernel(full)[-2] + 3


@pytest.mark.parametrize("residual, layer2_starts_at_layer1", [("(True, False)", False),
                                                               ("(False, True)", True)])
def test_residual_layers_start_at_their_input_full_frame_layers_do_not(batch, residual,
                                                                      layer2_starts_at_layer1):
  """At initialisation a residual G² returns x̂¹ (so x̂² = x̂¹); a full-frame G² paints its own
  frame, which Eq. 1 averages with x̂¹."""
  system = registry.get_system(tiny_config(**{"model.residual": residual}))
  params = train_harness.init_params(system, batch, 1)
  out = jax.jit(functools.partial(base.generate, system))(params, batch)
  for name in ("raw2", "layer2"):
    same = np.allclose(out[name], out["layer1"], atol=1e-5)
    assert same == layer2_starts_at_layer1, name


@pytest.mark.parametrize("value", ["()", "'yes'", "(True, 1)", "1", "None"])
def test_bad_residual_values_are_a_one_line_error(value):
  with pytest.raises(ValueError, match="model.residual must be True, False or") as error:
    registry.get_system(tiny_config(**{"model.residual": value}))
  assert "\n" not in str(error.value)


@pytest.mark.parametrize("arg, residual, per_layer", [
    ("runlocal,blend", (True, False, False), (True, False, False)),
    ("blend,layers=4", (False,) * 4, (False,) * 4),
    ("runlocal", True, (True,) * 3)])     # as a workdir of the bool form saved it
def test_blend_argument_and_saved_configs(tmp_path, arg, residual, per_layer):
  """`blend`: layer 1 as the variant has it, full-frame refiners; the saved config (config.json
  of a workdir) builds the same layers."""
  config = config_utils.load_config(os.path.join(conformance.CONFIGS, f"psrnet.py:{arg}"))
  assert config.model.residual == residual
  path = str(tmp_path / "config.json")
  config_utils.save_config(config, path)
  assert registry.get_system(config_utils.load_saved_config(path)).residual == per_layer


def test_long_argument_trains_refiners_without_discriminators(tmp_path):
  """`long`: 1440 steps split evenly, layer 1 with its adversarial term and discriminator, the
  refiners with neither (no "d" phase, no "adv" term); the saved config builds the same."""
  config = config_utils.load_config(os.path.join(conformance.CONFIGS, "psrnet.py:runlocal,long"))
  assert config.loss.adversarial == (0.001, 0.0)
  path = str(tmp_path / "config.json")
  config_utils.save_config(config, path)
  system = registry.get_system(config_utils.load_saved_config(path))
  assert system.adversarial == (0.001, 0.0, 0.0)
  stages = system.stages()
  assert [s.steps for s in stages] == [480, 480, 480]
  assert [[p.name for p in s.phases] for s in stages] == [["d", "g"], ["g"], ["g"]]
  assert stages[0].phases[0].trains == ("d1",)


def test_zero_adversarial_weight_drops_the_term(params, batch):
  """Layer 2 at weight 0: no discriminator phase, no adversarial term (same parameters)."""
  system = registry.get_system(tiny_config(**{"loss.adversarial": "(0.01, 0.0)"}))
  assert [p.name for p in system.stages()[1].phases] == ["g"]
  prepared = system.prepare(batch)
  outputs = system._forward(2, params, prepared, None)
  _, with_adv = system._g_loss((1,), params, prepared, outputs, None)
  total, without = system._g_loss((2,), params, prepared, outputs, None)
  assert set(with_adv) == {"rec", "adv"} and set(without) == {"rec"}
  np.testing.assert_allclose(total, without["rec"])


@pytest.mark.parametrize("value", ["-0.1", "(0.01, 'no')", "()", "True"])
def test_bad_adversarial_weights_are_a_one_line_error(value):
  with pytest.raises(ValueError, match="loss.adversarial must be a number >= 0") as error:
    registry.get_system(tiny_config(**{"loss.adversarial": value}))
  assert "\n" not in str(error.value)
