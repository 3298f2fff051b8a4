"""INTERnet (psrjax/systems/internet.py, psrjax/models/internet.py) beyond the shared system
checks: the motion field of identical keypoints, the confidence's range, which temporal scheme
reaches Stage I through the confidence, the first-frame examples, the single-scale variant,
animating an image file, and bad configs."""
import functools
import itertools

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import conformance
from psrjax import cli, config_utils
from psrjax.data.samplers import first_frame, same_video
from psrjax.geometry import motion
from psrjax.models import internet as internet_models
from psrjax.systems import registry
from psrjax.systems.tasks import animation

GROUP = pytest.mark.xdist_group("internet")
tiny_config = functools.partial(conformance.tiny_config, "internet")


def _generator(deformable_skips=True, **overrides):
  detector, generator, _ = internet_models.networks(tiny_config().model.to_dict(),
                                                    deformable_skips=deformable_skips,
                                                    **overrides)
  source = jax.random.uniform(jax.random.PRNGKey(0), (2, 32, 32, 3))
  # jitted: a compiled program each instead of hundreds of one-operation ones
  kp_params = jax.jit(detector.init)(jax.random.PRNGKey(1), source)
  kp = jax.jit(detector.apply)(kp_params, source)
  params = jax.jit(generator.init)(jax.random.PRNGKey(2), source, kp, kp)
  return generator, params, source, kp


@pytest.mark.parametrize("overrides", [{}, {"dm_scale_factor": 1.0}])
def test_identical_keypoints_give_the_identity_motion_field(overrides):
  """F = sum_k w_k T_k with every T_k the identity when source and driving anchors agree (the
  motion at the base scale, or at the frame's size)."""
  generator, params, source, kp = _generator(**overrides)
  out = jax.jit(generator.apply)(params, source, kp, kp)
  if overrides:
    assert out["deformation"].shape[1:3] == source.shape[1:3]
  grid = motion.coordinate_grid(*out["deformation"].shape[1:3])
  np.testing.assert_allclose(out["deformation"], np.broadcast_to(grid, out["deformation"].shape),
                             atol=1e-5)
  moved = {"value": kp["value"] + 0.3, "jacobian": kp["jacobian"]}
  far = jax.jit(generator.apply)(params, source, kp, moved)["deformation"]
  assert float(jnp.max(jnp.abs(far - grid))) > 0.05


def test_field_pyramid_is_torch_interpolate_with_aligned_corners():
  torch = pytest.importorskip("torch")
  field = np.random.default_rng(0).normal(size=(2, 5, 7, 2)).astype(np.float32)
  levels = internet_models.upsample_pyramid(field, [(5, 7), (10, 14), (19, 27)],
                                            align_corners=True)
  x = torch.from_numpy(field).permute(0, 3, 1, 2)
  for level in levels:
    x = torch.nn.functional.interpolate(x, size=level.shape[1:3], mode="bilinear",
                                        align_corners=True)
    np.testing.assert_allclose(level, x.permute(0, 2, 3, 1).numpy(), atol=1e-5)
  # The identity field stays the identity at every scale (with half-pixel centres, 16 -> 64 px
  # would zoom it by 63 / 60).
  sizes = [(16, 16), (32, 32), (64, 64)]
  identity = motion.coordinate_grid(*sizes[0])[None]
  for level, size in zip(internet_models.upsample_pyramid(identity, sizes, align_corners=True),
                         sizes):
    np.testing.assert_allclose(level[0], motion.coordinate_grid(*size), atol=1e-6)
  zoomed = internet_models.upsample_pyramid(identity, sizes)[-1][0]
  assert float(jnp.max(jnp.abs(zoomed - motion.coordinate_grid(64, 64)))) > 0.02


def test_a_field_at_the_frames_size_is_resized_down_not_through_the_base_scale():
  torch = pytest.importorskip("torch")
  field = np.random.default_rng(1).normal(size=(1, 12, 16, 2)).astype(np.float32)
  sizes = [(3, 4), (6, 8), (12, 16)]
  levels = internet_models.upsample_pyramid(field, sizes, align_corners=True)
  np.testing.assert_array_equal(levels[-1], field)   # the finest level keeps every detail
  x = torch.from_numpy(field).permute(0, 3, 1, 2)
  for level, size in zip(levels, sizes):
    expected = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=True)
    np.testing.assert_allclose(level, expected.permute(0, 2, 3, 1).numpy(), atol=1e-5)


def test_confidence_is_in_the_unit_interval_at_every_scale():
  generator, params, source, kp = _generator()
  for scale in (1.0, 1e3):        # large inputs drive the sigmoid to its ends
    moved = {"value": kp["value"] * 0.5, "jacobian": kp["jacobian"]}
    out = generator.apply(params, source * scale, kp, moved)
    for key in ("confidence", "confidence_full"):
      m = np.asarray(out[key])
      assert m.min() >= 0.0 and m.max() <= 1.0 and np.isfinite(m).all()
    assert out["confidence_full"].shape == (2, 32, 32, 1)


def test_single_scale_generator_reads_only_the_base_motion():
  """SS (no deformable skips) has no fusion layers; MS has one per finer scale."""
  _, ms, _, _ = _generator(True)
  _, ss, _, _ = _generator(False)
  assert "fuse1" in ms["params"] and not any(k.startswith("fuse") for k in ss["params"])


SCHEMES = ("flow", "external", "intrinsic")


@functools.cache
def _regularisation_grads() -> dict[tuple[str, bool], float]:
  """{(scheme, through the generated frame): max |d L_reg / d (keypoint detector's params)|} of
  a tiny system's first training batch; without the generated frame's path only the confidence
  path remains. One jitted program: the forward does not depend on the scheme."""
  systems = {s: registry.get_system(tiny_config(**{"loss.temporal": s})) for s in SCHEMES}
  system = systems[SCHEMES[0]]
  batch = jax.tree.map(lambda x: jnp.asarray(x)[None],
                       system.dataset("train", seed=0, shard_index=0, shard_count=1)[0])
  params = conformance.initial_params("internet")

  def grads(params):
    out = {}
    for (scheme, scheme_system), through in itertools.product(systems.items(), (False, True)):
      def loss(kp_params, scheme_system=scheme_system, through=through):
        outputs = system.motion.forward({**params, "kp": kp_params}, batch, jax.random.PRNGKey(1))
        if not through:
          outputs = {**outputs, "prediction": jax.lax.stop_gradient(outputs["prediction"])}
        return scheme_system._regularisation(batch, outputs)
      leaves = jax.tree.leaves(jax.grad(loss)(params["kp"]))
      out[scheme, through] = jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in leaves]))
    return out

  return {k: float(v) for k, v in jax.device_get(jax.jit(grads)(params)).items()}


@GROUP
@pytest.mark.parametrize("scheme", SCHEMES)
def test_only_the_intrinsic_loss_reaches_the_keypoint_detector_through_the_confidence(scheme):
  """Eq. 4's shortcut: with the generated frame held fixed, the intrinsic loss's gradient
  reaches the keypoint detector through M and schemes (a) and (b) send none; through the
  generated frame every scheme reaches it (Stage II's path)."""
  shortcut = _regularisation_grads()[scheme, False]
  if scheme == "intrinsic":
    assert shortcut > 1e-7
  else:
    assert shortcut == 0.0
  assert _regularisation_grads()[scheme, True] > 1e-7


def test_training_examples_start_at_the_first_frame_and_drive_with_two_consecutive_frames():
  system = registry.get_system(tiny_config())
  d = system.config.data
  clip = system.dataset("train", seed=0, shard_index=0, shard_count=1)
  src = same_video._source(d, "train", d.train_clips)
  for i in range(6):
    example = clip[i]
    assert example["tgt_rgb"].shape[0] == 2 and example["tgt_flow_fwd"].shape == (2, 32, 32, 2)
    video = src.take(i)
    frames = [src.frames(v, np.arange(d.num_frames), ("rgb",))["rgb"] for v in video]
    matches = [(v, t) for v, f in enumerate(frames) for t in range(1, d.num_frames)
               if np.array_equal(f[t], example["tgt_rgb"][1])]
    assert matches, "the driving frame is a frame of the example's clip"
    view, t = matches[0]
    assert t >= d.min_driving_frame
    np.testing.assert_array_equal(example["src_rgb"][0], frames[view][0])
    np.testing.assert_array_equal(example["tgt_rgb"][0], frames[view][t - 1])
  assert first_frame.MODALITIES[-1] == "flow_fwd"
  evaluation = system.dataset("test", seed=0, shard_index=0, shard_count=1)[0]
  np.testing.assert_array_equal(evaluation["init_rgb"], evaluation["src_rgb"][0])
  assert evaluation["tgt_rgb"].shape[0] == d.eval_targets
  assert evaluation["tgt_flow_fwd"].shape == evaluation["tgt_flow_bwd"].shape


@GROUP
def test_evaluation_reports_table_2s_metrics_and_synthesize_animates_an_image(
    system_runs, tmp_path, capsys):
  runs = system_runs("internet")
  values = runs.straight.eval_results
  for key in ("ssim", "ms_ssim", "lpips", "tempe", "interp_psnr", "interp_psnr_self", "l1"):
    assert np.isfinite(values[key]), key
  size = runs.system.config.data.resolution
  path = tmp_path / "person.png"
  iio.imwrite(path, np.full((size, size, 3), 120, np.uint8))
  out = tmp_path / "animated.gif"
  assert cli.main(["synthesize", "--workdir", runs.straight.workdir, "--source", str(path),
                   "--out", str(out)]) == 0, capsys.readouterr().err
  assert iio.imread(out).shape[0] == runs.system.config.data.eval_targets


def test_configs_name_table_2s_rows():
  ss_a = config_utils.load_config(conformance.config_spec("internet", "runlocal,ss,temporal=flow"))
  assert ss_a.model.deformable_skips is False and ss_a.loss.temporal == "flow"
  ms_c = config_utils.load_config(conformance.config_spec("internet", "runlocal"))
  assert ms_c.model.deformable_skips is True and ms_c.loss.temporal == "intrinsic"
  assert animation.ms_ssim_weights(ms_c.data.resolution)


@pytest.mark.parametrize("overrides,match", [
    ({"loss.temporal": "warp"}, "loss.temporal"),
    ({"data.min_driving_frame": 1}, "min_driving_frame"),
    ({"data.eval_targets": 2}, "eval_targets"),
    ({"loss.style": 1.0}, "loss.style"),
])
def test_bad_configs_fail_with_one_line_errors(overrides, match):
  with pytest.raises(ValueError, match=match):
    registry.get_system(tiny_config(**overrides))


def test_table_2_script_rows_are_the_papers_variants():
  import internet_table as table  # pylint: disable=g-import-not-at-top
  from benchmarks import seeds  # pylint: disable=g-import-not-at-top
  spec = conformance.config_spec("internet", "runlocal")
  for name, (label, overrides) in table.ROWS.items():
    if not isinstance(overrides, dict):   # FOMM's or Liquid Warping GAN's own config
      continue
    config = table.make_config(spec, overrides, steps=7)
    assert config.train.steps == 7
    assert config.model.deformable_skips is (not name.startswith("ss")), name
    scheme = {"a": "flow", "b": "external", "c": "intrinsic", "none": "none"}[name.split("_")[1]]
    assert config.loss.temporal == scheme, name
  rows = [seeds.Row("fom", "FoM", [{"ms_ssim": 0.9, "lpips": 0.1}]),
          seeds.Row("ms_c", "Ours (MS c)", [{"ssim": 0.5}])]
  lines = seeds.table(rows, table.columns(fid=True)).splitlines()
  assert lines[0].startswith("| model | ms_ssim | ssim | lpips | fid/fid | interp_psnr |")
  assert lines[2].startswith("| FoM | 0.9000 | - | 0.1000 | - |")


@GROUP
def test_generator_remat_modes_compute_the_same():
  """model.remat "blocks" and "full" (the decoder's channel count stays a Python int under
  "full") give the "none" generator's prediction and gradients."""
  source = jax.random.uniform(jax.random.key(3), (2, 32, 32, 3))
  kp = lambda seed: {"value": jax.random.uniform(jax.random.key(seed), (2, 10, 2), minval=-1.0),
                     "jacobian": jnp.broadcast_to(jnp.eye(2), (2, 10, 2, 2))}
  results = []
  for remat in ("none", "blocks", "full"):
    _, generator, _ = internet_models.networks(tiny_config().model.to_dict(), remat=remat)
    params = jax.jit(generator.init)(jax.random.key(0), source, kp(1), kp(2))
    loss = lambda p, g=generator: jnp.mean(g.apply(p, source, kp(1), kp(2))["prediction"])
    results.append(jax.jit(jax.value_and_grad(loss))(params))
  for other in results[1:]:
    jax.tree.map(functools.partial(np.testing.assert_allclose, atol=1e-6), other, results[0])
