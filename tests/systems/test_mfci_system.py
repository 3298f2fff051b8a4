"""MFCI system: data, bad input, the two-stage schedule, Eq. 3's terms, evaluation, synthesis
with motion and background transfer, init_from (the checks every system passes are in
test_conformance.py)."""
import functools
import os

import jax
import numpy as np
import pytest

import conformance
import train_harness
from psrjax.data import synthetic
from psrjax.data.samplers import same_video
from psrjax.systems import base
from psrjax.train import loop
from psrjax.systems import registry
from psrjax.systems.tasks import strips

CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "mfci.py")
pytestmark = pytest.mark.xdist_group("mfci")   # shares the session's MFCI runs
tiny_config = functools.partial(conformance.tiny_config, "mfci")


@pytest.fixture(scope="module")
def system():
  return registry.get_system(tiny_config())


@pytest.fixture(scope="module")
def batch(system):
  return train_harness.eval_batch(system)


@pytest.fixture(scope="module")
def params():
  return conformance.initial_params("mfci")


def _frame_index(clip_rgb, frames):
  """Index of each of `frames` (in [-1, 1]) among the clip's frames of camera 0."""
  unit = clip_rgb[0].astype(np.float32) / 127.5 - 1.0
  return [int(np.argmin(np.abs(unit - f).reshape(len(unit), -1).sum(1))) for f in frames]


def test_train_examples_are_disjoint_source_and_consecutive_target_frames_of_one_clip():
  clip = synthetic.SyntheticSource("train", num_views=1, num_frames=9, resolution=16)[0]
  starts = set()
  for seed in range(4):
    example = registry.get_system(tiny_config()).dataset("train", seed=seed, shard_index=0,
                                                     shard_count=1)[0]
    sources = _frame_index(clip["rgb"], example["src_rgb"])
    targets = _frame_index(clip["rgb"], example["tgt_rgb"])
    assert targets == list(range(targets[0], targets[0] + 7))
    assert not set(sources) & set(targets) and len(set(sources)) == 2
    np.testing.assert_allclose(example["tgt_keypoints"], clip["keypoints"][0][targets])
    starts.add(targets[0])
  assert len(starts) > 1                                   # the target run is drawn at random


def test_eval_examples_are_fixed_same_video_examples_of_held_out_people(system):
  ds = system.dataset("validation", seed=0, shard_index=0, shard_count=1)
  assert len(ds) == 4
  start, sources = same_video.eval_frames(9, 2, 7)
  assert start == 2 and list(sources) == [0, 1]
  clip = synthetic.SyntheticSource("validation", num_views=1, num_frames=9, resolution=16)[1]
  assert clip["identity"] % 10 == 8                       # a validation (held-out) identity
  example = ds[1]
  assert _frame_index(clip["rgb"], example["src_rgb"]) == [0, 1]
  assert _frame_index(clip["rgb"], example["tgt_rgb"]) == list(range(2, 9))
  np.testing.assert_array_equal(example["tgt_flow_bwd"], clip["flow_bwd"][0][2:])


@pytest.mark.parametrize("overrides,match", [
    ({"data.num_sources": 0}, r"num_sources \(K\) must be >= 1"),
    ({"data.num_targets": 8}, r"K \+ L = 2 \+ 8 .*num_frames = 9"),
    ({"model.fusion": "sum"}, "model.fusion must be one of"),
    ({"model.temporal_ranges": (3, 9)}, "every range must lie in 2..L = 7"),
    ({"pose.joints": 15}, "num_joints must be 14 or 18"),
    ({"pose.input": "limbs"}, "pose.input must be one of heatmaps, heatmaps\\+limbs"),
    ({"loss.vgg_layer_weights": (1.0, 1.0)}, "needs one weight per layer"),
])
def test_bad_config_is_a_clear_error(overrides, match):
  with pytest.raises(ValueError, match=match):
    registry.get_system(tiny_config(**overrides))


def test_paper_defaults_of_the_base_config():
  """Sec. 3: "a M-channel heatmap, where M = 14"; Sec. 4: pretraining "with a batch size of 4";
  Sec. 3.5: L_VGG unweighted over VGG19 conv1_1..conv4_1 (VGG16 + pix2pixHD's weights offline);
  Sec. 4.1: VFID of the fused model (and of the single-frame baseline) declared as evals."""
  from psrjax import config_utils, evals
  from psrjax.systems import mfci
  config = config_utils.load_config(CONFIG)
  assert (config.pose.input, config.pose.joints, config.train.batch_size) == ("heatmaps", 14, 4)
  specs = {s.name: s for s in evals.specs(config)}
  assert specs["vfid"].type == "vfid" and specs["vfid"].options["prediction"] == "fused"
  assert specs["vfid_single"].options["prediction"] == "single"
  assert (config.loss.vgg_net, tuple(config.loss.vgg_layer_weights)) == ("vgg16", ())
  assert mfci.vgg_layer_weights(config.loss) == (1 / 32, 1 / 16, 1 / 8, 1 / 4)
  config.loss.vgg_net = "vgg19"
  assert mfci.vgg_layer_weights(config.loss) == (1.0, 1.0, 1.0, 1.0)
  runlocal = config_utils.load_config(f"{CONFIG}:runlocal")
  assert {n: e.every for n, e in runlocal.evals.items()} == {"vfid": 0, "vfid_single": 0}
  assert (runlocal.pose.input, runlocal.pose.joints) == ("heatmaps", 14)


def test_fourteen_joint_heatmaps_are_the_model_pose_input(system, batch, params):
  """P = 14 channels in every network that reads the pose: the single-frame segmentation and
  foreground U-Nets, RB6's attention input and the conditional D_I."""
  b = jax.eval_shape(system.prepare, batch)
  assert b["src_pose"].shape[-1] == b["tgt_pose"].shape[-1] == 14
  k, c, pf = 2, 8, 2                                     # tiny: K, features, part_features
  kernel = lambda *path: functools.reduce(lambda t, n: t[n], path, params)["kernel"].shape[2]
  assert kernel("single", "segment", "in", "conv") == 3 + 14
  assert kernel("single", "foreground", "in", "conv") == 10 * (3 + pf) + 14
  assert kernel("fusion", "fg_fusion", "rb6", "in") == k * (c + 14) + 14
  assert kernel("d_frame", "conv0") == 3 + 14
  limbs = registry.get_system(tiny_config(**{"pose.input": "heatmaps+limbs", "pose.joints": 18}))
  assert jax.eval_shape(limbs.prepare, batch)["tgt_pose"].shape[-1] == 18 + 17


def test_mismatched_source_and_pose_lengths_and_empty_sources_are_errors(system, batch):
  bad = {**batch, "src_keypoints": batch["src_keypoints"][:, :1]}
  with pytest.raises(ValueError, match=r"src_rgb .* needs src_keypoints \[2, 2, 18, 3\]"):
    system.prepare(bad)
  bad = {**batch, "tgt_keypoints": batch["tgt_keypoints"][:, :5]}
  with pytest.raises(ValueError, match="one pose per frame"):
    system.prepare(bad)
  empty = {**batch, "src_rgb": batch["src_rgb"][:, :0], "src_keypoints": batch["src_keypoints"][:, :0]}
  with pytest.raises(ValueError, match="K >= 1 source frames"):
    system.prepare(empty)


def test_keypoints_outside_the_frame_are_an_error():
  clip = synthetic.render_clip(8, num_views=1, num_frames=9, resolution=16)
  clip["keypoints"][0, 4, 2] = (30.0, 3.0, 1.0)
  with pytest.raises(ValueError, match="src_keypoints: 1 visible keypoints lie outside the 16x16"):
    same_video.make_example(clip, 0, 5, [1, 4], 4)
  with pytest.raises(ValueError, match="overlap the target frames"):
    same_video.make_example(clip, 0, 2, [0, 3], 7)


def test_two_stage_schedule(system):
  single, fused = system.stages()
  assert (single.name, single.steps, fused.name, fused.steps) == ("single", 2, "fused", 2)
  assert [p.trains for p in single.phases] == [("d_single",), ("single",)]
  assert [p.trains for p in fused.phases] == [("d_frame", "d_video"), ("fusion",)]
  no_dv = registry.get_system(tiny_config(**{"model.temporal_ranges": ()}))
  assert no_dv.stages()[1].phases[0].trains == ("d_frame",) and "d_video" not in no_dv.optimizers()


def phase_loss(system, stage_name, phase_name):
  """`f(params, prepared batch) -> (loss, terms)` of one phase of one stage on its forward."""
  stage = {s.name: s for s in system.stages()}[stage_name]
  phase = {p.name: p for p in stage.phases}[phase_name]
  return lambda p, x: phase.loss(p, x, stage.forward(p, x, None), None)


def test_losses_report_every_term_of_eq3(system_runs):
  """The logged terms of each stage's phases and Eq. 3's weighting of the fused objective."""
  history = {r["step"]: r for r in system_runs("mfci").straight.history}
  terms = lambda step, phase: {k.split("/")[1] for k in history[step] if k.startswith(phase + "/")}
  assert terms(1, "g") == {"mse", "adv_frame", "total"}             # stage "single"
  assert terms(3, "g") == {"mse", "adv_frame", "adv_video", "total"}  # stage "fused"
  assert terms(3, "d") == {"adv_frame", "adv_video", "total"}
  g = {k[2:]: v for k, v in history[3].items() if k.startswith("g/")}
  np.testing.assert_allclose(g["total"], g["mse"] + 0.2 * g["adv_frame"] + 0.1 * g["adv_video"],
                             rtol=1e-5)


def test_mask_term_is_the_bce_of_the_generated_mask(params, batch):
  """`loss.mask` adds its weight times the binary cross-entropy of the generated M_fg with the
  person mask, to both stages' generator losses."""
  masked = registry.get_system(tiny_config(**{"loss.mask": 0.5}))
  b = jax.jit(masked.prepare)(batch)
  single_terms = jax.eval_shape(phase_loss(masked, "single", "g"), params, b)[1]
  assert "mask" in single_terms
  fused = phase_loss(masked, "fused", "g")
  (total, terms), m_fg = jax.jit(lambda p, x: (fused(p, x), masked.generate(p, x)["mask"]))(
      params, b)
  np.testing.assert_allclose(total, terms["mse"] + 0.2 * terms["adv_frame"]
                             + 0.1 * terms["adv_video"] + 0.5 * terms["mask"], rtol=1e-5)
  m_fg, y = np.asarray(m_fg, np.float64), np.asarray(batch["tgt_mask"], np.float64)
  bce = -np.mean(y * np.log(m_fg) + (1 - y) * np.log1p(-m_fg))
  assert float(terms["mask"]) > 0
  np.testing.assert_allclose(float(terms["mask"]), bce, rtol=1e-4)


def test_generate_evaluate_and_sample_strip(system, params, batch):
  out = jax.device_get(jax.jit(functools.partial(base.generate, system))(params, batch))
  for name in ("single", "fused", "fg", "bg", "source"):
    assert out[name].shape == batch["tgt_rgb"].shape, name
  assert out["attention"].shape == (2, 7, 2, 16, 16)
  np.testing.assert_allclose(out["attention"].sum(2), 1.0, atol=1e-5)
  result = jax.jit(functools.partial(base.evaluate, system))(params, batch)
  for name in ("single", "fused"):
    for metric in ("psnr", "ssim", "m_ssim", "m_psnr", "tempe", "mask_iou"):
      assert result[f"{metric}/{name}"].shape == (2,)
  one = {k: np.asarray(v)[0] for k, v in batch.items()}
  strip = system.sample_video(one, {k: v[0] for k, v in out.items()})
  assert strip.dtype == np.uint8 and strip.shape == (7, strips.caption_height(16) + 16, 16 * 5, 3)


def test_trains_both_stages_and_evaluates_baseline_and_fused(system_runs):
  straight = system_runs("mfci").straight
  assert straight.step == 4 and not straight.preempted
  for key in ("psnr/single", "psnr/fused", "m_ssim/single", "m_ssim/fused", "tempe/fused"):
    assert key in straight.eval_results
  assert straight.eval_results["num_examples"] == 4
  assert {r["step"] for r in straight.history if "g/adv_video" in r} == {3, 4}


def test_synthesize_cross_video_with_background_substitution(system_runs, tmp_path, capsys):
  from psrjax import cli
  straight = system_runs("mfci").straight
  out = tmp_path / "out.gif"
  code = cli.main(["synthesize", "--workdir", straight.workdir, "--seed", "18", "--driving-seed",
                   "27", "--background-seed", "36", "--out", str(out)])
  assert code == 0 and out.stat().st_size > 0
  import imageio.v3 as iio
  assert iio.imread(out).shape[:3] == (7, strips.caption_height(16) + 16, 16 * 5)
  with pytest.raises(SystemExit) as exit_info:    # PSR-Net's option: not MFCI's
    cli.main(["synthesize", "--workdir", straight.workdir, "--source-view", "2", "--out", str(out)])
  assert exit_info.value.code == 2
  assert "unrecognized arguments: --source-view 2" in capsys.readouterr().err


def test_background_substitution_changes_only_the_background_input(system, params):
  own = system.synthesis_example(seed=18, driving_seed=27)
  swapped = system.synthesis_example(seed=18, driving_seed=27, background_seed=36)
  assert "bg_rgb" not in own and swapped["bg_rgb"].shape == own["src_rgb"].shape
  np.testing.assert_array_equal(swapped["src_rgb"], own["src_rgb"])
  run = jax.jit(functools.partial(base.generate, system))
  gen = lambda ex: jax.device_get(run(params, {k: v[None] for k, v in ex.items()}))
  a, b = gen(own), gen(swapped)
  np.testing.assert_allclose(a["fg"], b["fg"], atol=1e-6)
  assert np.abs(a["bg"] - b["bg"]).max() > 1e-3


def test_init_from_loads_only_the_named_groups(system_runs, tmp_path):
  """How stage-2 variants start from one trained baseline (benchmarks/mfci_ablation.py)."""
  straight = system_runs("mfci").straight
  config = tiny_config(**{"seed": 1})
  config.init_from = os.path.join(straight.workdir, "checkpoints")
  config.init_groups = ("single",)
  result = loop.train(config, str(tmp_path / "a"), stop_after=0)
  got, ref = train_harness.host_params(result), train_harness.host_params(straight)
  jax.tree.map(np.testing.assert_array_equal, got["single"], ref["single"])
  assert any(np.any(a != b) for a, b in zip(jax.tree.leaves(got["fusion"]),
                                             jax.tree.leaves(ref["fusion"])))
  config.init_groups = ("generator",)
  with pytest.raises(ValueError, match=r"init_groups \['generator'\] are not parameter groups"):
    loop.train(config, str(tmp_path / "b"))


def test_ablation_runs_declare_vfid_and_its_table_has_a_vfid_column():
  from psrjax import config_utils
  import mfci_ablation as ablation  # pylint: disable=g-import-not-at-top
  from benchmarks import seeds  # pylint: disable=g-import-not-at-top
  tiny = ablation.with_vfid(tiny_config(), "/cache")        # tiny declares no VFID: added
  paper = ablation.with_vfid(config_utils.load_config(CONFIG), "/cache")   # declared: kept
  for config in (tiny, paper):
    assert {n: (e.type, e.every, e.prediction, e.cache_dir) for n, e in config.evals.items()} == {
        "vfid": ("vfid", 0, "fused", "/cache"), "vfid_single": ("vfid", 0, "single", "/cache")}
  results = {f"{m}/{o}": 1.0 for m in ("vfid",) + ablation.METRICS for o in ("single", "fused")}
  raw = seeds.Row("rb6", "fused", [{**results, "num_examples": 4.0}])
  rows = [ablation.output_row(raw, "single", "single-frame", "single"),
          ablation.output_row(raw, "rb6", "fused", "fused")]
  text = seeds.table(rows, ablation.COLUMNS, corner="variant")
  assert text.splitlines()[0].startswith("| variant | VFID | PSNR |")
  assert text.splitlines()[0].endswith("| E_temp | mask IoU |")
  assert [len(line.split("|")) for line in text.splitlines()] == [10] * 4


@pytest.mark.slow  # 6 min on a shared 2-core CPU: two tiny runs, I3D at each one's end
def test_ablation_script_reports_vfid_and_resumes(tmp_path):
  import mfci_ablation as ablation  # pylint: disable=g-import-not-at-top
  argv = ["--workdir", str(tmp_path), "--config", f"{CONFIG}:tiny", "--single-steps", "2",
          "--fused-steps", "1", "--variants", "rb6"]
  assert ablation.main(argv) == 0
  text = (tmp_path / "table.md").read_text()
  head, _, table = text.partition("\n\n")
  table = table.partition("\n\n")[0]   # the claims follow
  assert f"{CONFIG}:tiny" in head and "2 stage \"single\" steps" in head and "cores" in head
  assert "benchmarks/mfci_ablation.py" in head
  lines = table.strip().splitlines()
  assert lines[0].startswith("| variant | VFID |") and len(lines) == 4
  vfid = [float(line.split("|")[2]) for line in lines[2:]]
  assert all(np.isfinite(vfid)) and all(v >= 0 for v in vfid)
  assert len(list((tmp_path / ablation.VFID_CACHE).iterdir())) == 1   # one real-data cache
  # Finished runs are read back, not trained again; a run whose VFID files are missing (a
  # workdir from before the column) is evaluated from its last checkpoint.
  for name in ("vfid", "vfid_single"):
    for f in (tmp_path / "rb6" / "eval" / name).iterdir():
      f.unlink()
  assert ablation.main(argv) == 0
  again = (tmp_path / "table.md").read_text().split("\n\n")[1]
  again_vfid = [float(line.split("|")[2]) for line in again.strip().splitlines()[2:]]
  np.testing.assert_allclose(again_vfid, vfid, atol=0.01)
