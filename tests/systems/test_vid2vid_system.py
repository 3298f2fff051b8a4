"""vid2vid on the per-person task: the frame-by-frame generation from its own previous outputs,
every loss term, the temporal discriminators' frame groups and composed flows, a tiny run end to
end (train, evaluate on the held-out segment, cross-person synthesis) and bad configs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import conformance
import train_harness
from psrjax.data.samplers import per_person
from psrjax.data.synthetic.body import NUM_PARTS
from psrjax.systems import base
from psrjax.systems import vid2vid
from psrjax.systems import registry
from psrjax.systems.tasks import gan, person_video
from psrjax.train import inference
from psrjax.train import state as state_lib
from psrjax.train import step as step_lib

pytestmark = pytest.mark.xdist_group("vid2vid")
METRICS = {"ssim", "psnr", "m_ssim", "lpips", "mask_iou", "tempe"}


@pytest.fixture(scope="module")
def system():
  return registry.get_system(conformance.tiny_config("vid2vid"))


@pytest.fixture(scope="module")
def params(system):
  return train_harness.init_params(system, _train_batch(system))


def _train_batch(system, size: int = 2) -> dict:
  ds = system.dataset("train", seed=0, shard_index=0, shard_count=1)
  examples = [ds[i] for i in range(size)]
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def _changed(a, b) -> np.ndarray:
  """[B, T]: the largest change of each frame."""
  return np.abs(np.asarray(a) - np.asarray(b)).reshape(a.shape[:2] + (-1,)).max(-1)


def test_frames_are_generated_from_the_previous_outputs(system, params):
  batch = train_harness.eval_batch(system)
  run = jax.jit(lambda p, b: base.generate(system, p, b)["frames"])
  out = np.asarray(run(params, batch))
  assert out.shape[1] == 4
  first = dict(batch, keypoints=batch["keypoints"].copy())
  first["keypoints"][:, 0, :, :2] += 3.0            # frame 0's label: read by frames 0..2
  changed = _changed(run(params, first), out)
  assert np.all(changed[:, 3] > 0), changed          # frame 3 sees it through frames 1 and 2 only
  last = dict(batch, keypoints=batch["keypoints"].copy())
  last["keypoints"][:, -1, :, :2] += 3.0             # the last frame's label
  changed = _changed(run(params, last), out)
  np.testing.assert_array_equal(changed[:, :-1], 0.0)
  assert np.all(changed[:, -1] > 0)


def test_windows_continue_the_video_from_the_carried_state(system, params):
  """Two windows of 2 frames, the state carried over, give the run of 4 frames."""
  batch = train_harness.eval_batch(system)
  whole = np.asarray(jax.jit(lambda p, b: base.generate(system, p, b)["frames"])(params, batch))
  context = [k for k in batch if k.startswith("context_")]   # keypoints, part and UV maps
  assert {"context_keypoints", "context_part", "context_uv"} <= set(context), context
  halves = [{k: v[:, s] for k, v in batch.items() if k not in context}
            for s in (slice(0, 2), slice(2, 4))]
  for key in context:
    halves[0][key] = batch[key]
    halves[1][key] = batch[key.removeprefix("context_")][:, :2]
  window = jax.jit(lambda p, b, s: base.generate_window(system, p, b, s))
  state = base.window_state(system, halves[0])
  frames = []
  for half in halves:
    out, state = window(params, half, state)
    frames.append(np.asarray(out["frames"]))
  np.testing.assert_allclose(np.concatenate(frames, axis=1), whole, atol=1e-4)


def test_the_first_frame_is_the_raw_image(system, params):
  batch = system.prepare(jax.tree.map(jnp.asarray, train_harness.eval_batch(system)))
  stage = system.stages()[0]
  out = jax.jit(lambda p, b: stage.forward(p, b, None))(params, batch)
  np.testing.assert_array_equal(np.asarray(out["out"][:, 0]), np.asarray(out["raw"][:, 0]))
  assert np.abs(np.asarray(out["out"][:, 1:] - out["raw"][:, 1:])).max() > 0


def test_losses_report_every_term_finite(system, params):
  batch = system.prepare(jax.tree.map(jnp.asarray, _train_batch(system)))
  stage = system.stages()[0]
  assert [p.name for p in stage.phases] == ["g", "d", "d_t0", "d_t1"]

  @jax.jit
  def losses(p, b):
    outputs = stage.forward(p, b, None)
    return {ph.name: ph.loss(p, b, outputs, None) for ph in stage.phases}

  values = losses(params, batch)
  generator = {"adv", "fm", "adv_raw", "fm_raw", "flow", "warp", "g_warp", "weight",
               "t0_adv", "t0_fm", "t1_adv", "t1_fm"}
  want = {"g": generator, "d": {"adv", "adv_raw"}, "d_t0": {"adv"}, "d_t1": {"adv"}}
  for phase, (total, terms) in values.items():
    assert set(terms) == want[phase], (phase, set(terms))
    assert np.isfinite(float(total)) and all(np.isfinite(float(v)) for v in terms.values())
  assert float(values["g"][1]["flow"]) > 0 and float(values["g"][1]["warp"]) > 0


def test_temporal_groups_and_composed_flows(system):
  video = jnp.arange(7, dtype=jnp.float32).reshape(1, 7, 1, 1, 1) * jnp.ones((1, 7, 8, 8, 3))
  shift = jnp.zeros((1, 7, 8, 8, 2)).at[..., 0].set(-1.0)      # every frame 1 px right of the last
  frames, flows = system._groups(video, shift, 0)
  np.testing.assert_array_equal(np.asarray(frames[:, :, 0, 0, 0]), [[4, 5, 6], [1, 2, 3]])
  frames, flows = system._groups(video, shift, 1)
  np.testing.assert_array_equal(np.asarray(frames[:, :, 0, 0, 0]), [[0, 3, 6]])
  np.testing.assert_allclose(np.asarray(flows[0, :, :, 4:, 0]), -3.0)   # 3 frames: 3 px


def test_tiny_run_trains_evaluates_and_synthesizes_cross_person(system_runs):
  result = system_runs("vid2vid").straight
  values = result.eval_results
  assert result.step == 4 and METRICS <= set(values), values
  assert all(np.isfinite(values[m]) for m in METRICS), values
  trained, params, _ = inference.load_trained(result.workdir, [])
  for driving in ("test", "cross"):
    frames = inference.sample_frames(trained, params,
                                     trained.synthesis_example(seed=0, driving=driving))
    assert frames.shape[0] == trained.config.data.eval_run_frames and frames.dtype == np.uint8


def _staged(**overrides):
  """tiny with 8-frame examples in two clip stages (4 then 8 frames), one temporal scale."""
  return registry.get_system(conformance.tiny_config(
      "vid2vid", **{"data.frames_per_example": 8, "schedule.clip_doublings": 1, **overrides}))


def test_the_first_clip_stage_trains_as_on_clips_of_its_length():
  """A step of stage "clip4" on 8-frame examples equals a step of a 4-frame config on their
  first 4 frames (same parameters, optimizer states and key); "clip8" reads all 8."""
  staged = _staged(**{"model.n_scales_temporal": 1})
  short = registry.get_system(conformance.tiny_config(
      "vid2vid", **{"data.frames_per_example": 4, "model.n_scales_temporal": 1}))
  assert staged.clip_lengths() == (4, 8)
  assert [(st.name, st.steps) for st in staged.stages()] == [("clip4", 2), ("clip8", 2)]
  batch = _train_batch(staged)
  first = {k: v[:, :4] if not k.startswith("context_") and np.ndim(v) >= 2 and
           v.shape[1] == 8 else v for k, v in batch.items()}
  params = train_harness.init_params(staged, batch)
  results = []
  for system, stage, b in ((staged, staged.stages()[0], batch),
                           (short, short.stages()[0], first)):
    optimizers = system.optimizers()
    state = state_lib.from_params(params, optimizers)
    step = jax.jit(step_lib.make_train_step(system, optimizers, stage))
    results.append(step(state, b, jax.random.key(3), {}))
  (new, metrics), (want, want_metrics) = results
  assert set(metrics) == set(want_metrics)
  for key in want_metrics:
    train_harness.assert_close(metrics[key], want_metrics[key], rtol=1e-5, err_msg=key)
  jax.tree.map(lambda a, b: train_harness.assert_close(a, b, rtol=1e-5), new["params"],
               want["params"])
  out = jax.eval_shape(staged.stages()[1].forward, params, staged.prepare(batch),
                       jax.random.key(0))
  assert out["out"].shape[1] == 8


def test_a_temporal_scale_trains_from_the_stage_whose_clips_hold_its_groups():
  """Both scales: D_T^1 (groups 6 frames long) only in "clip8", its learning rate starting
  there on the run's schedule (8 steps, decaying over the last 4)."""
  system = _staged(**{"train.steps": 8})
  assert [[p.name for p in st.phases] for st in system.stages()] == [
      ["g", "d", "d_t0"], ["g", "d", "d_t0", "d_t1"]]
  lr = gan.decayed_lr(system.config.optim.lr, 8, system.config.optim.decay_fraction)
  x = jnp.zeros(())
  for name, first in (("d_t0", 0), ("d_t1", 4)):
    opt = system.optimizers()[name]
    state = opt.init(x)
    for count in range(3):   # Adam's first steps on a constant gradient move by the rate
      update, state = opt.update(jnp.ones(()), state, x)
      np.testing.assert_allclose(-float(update), float(lr(first + count)), rtol=1e-5)


@pytest.mark.parametrize("overrides,match", [
    ({"schedule.clip_doublings": 1}, "clip_doublings"),   # 7 frames do not halve
    ({"data.frames_per_example": 6}, "frames_per_example"),
    ({"model.n_frames_g": 1}, "n_frames_g"),
    ({"model.n_scales_temporal": 0}, "n_scales_temporal"),
])
def test_bad_configs_fail_with_one_line_errors(overrides, match):
  with pytest.raises(ValueError, match=match):
    registry.get_system(conformance.tiny_config("vid2vid", **overrides))


def test_iuv_label_reads_as_the_authors_pose_dataset_reads_a_densepose_file():
  """The authors' pose_dataset.py on a DensePose IUV file (I, U, V as uint8, written by OpenCV
  as BGR, read by PIL as RGB): ToTensor, Normalize(0.5, 0.5), then the part channel rescaled by
  255 / 24."""
  rng = np.random.default_rng(0)
  part = rng.integers(0, NUM_PARTS + 1, (2, 5, 6))
  uv = rng.integers(0, 256, (2, 5, 6, 2)) / 255.0
  on = part > 0
  iuv = np.stack([part, np.round(uv[..., 0] * 255) * on, np.round(uv[..., 1] * 255) * on], -1)
  rgb = iuv[..., ::-1].astype(np.uint8)                      # OpenCV's BGR file read as RGB
  di = (rgb / 255.0 - 0.5) / 0.5
  di[..., 2] = ((di[..., 2] * 0.5 + 0.5) * 255 / 24 - 0.5) / 0.5
  np.testing.assert_allclose(np.asarray(vid2vid.iuv_label(part, uv)), di, atol=1e-6)


def test_each_label_map_is_the_iuv_image_then_the_stick_figure(system):
  batch = system.prepare(jax.tree.map(jnp.asarray, train_harness.eval_batch(system)))
  for key, prefix in (("label", ""), ("context_label", "context_")):
    label = np.asarray(batch[key])
    assert label.shape[-1] == 6, label.shape
    np.testing.assert_allclose(label[..., :3], vid2vid.iuv_label(batch[prefix + "part"],
                                                                  batch[prefix + "uv"]))
  stick = person_video.pose_label(system.config.pose, batch["keypoints"], *batch["rgb"].shape[2:4])
  np.testing.assert_array_equal(np.asarray(batch["label"][..., 3:]), np.asarray(stick))
  plain = registry.get_system(conformance.tiny_config("vid2vid", **{"model.iuv": False}))
  assert "part" not in plain.data_reads("train").get("extra", ())
  assert plain.prepare(train_harness.eval_batch(plain))["label"].shape[-1] == 3


def test_iuv_label_without_part_and_uv_maps_is_a_one_line_error():
  class Source:
    modalities = ("rgb", "keypoints", "mask", "flow_fwd", "flow_bwd")
  with pytest.raises(ValueError, match=r"reads part and UV maps.*model.iuv=False"):
    vid2vid._require_surface(Source(), "vid2vid's IUV label (model.iuv)")


def test_a_cross_driving_run_carries_its_part_and_uv_maps_moved_with_its_keypoints(system):
  example = system.synthesis_example(seed=0, driving="cross")
  t, h = example["keypoints"].shape[0], system.config.data.resolution
  assert example["part"].shape == (t, h, h) and example["uv"].shape == (t, h, h, 2)
  assert example["context_part"].shape == (system.n_frames - 1, h, h)
  assert example["part"].min() >= 0 and (example["part"] > 0).mean() > 0.01   # the person
  # A UV map moves as the part map does: pixels brought in from outside get 0 (background).
  uv = np.stack([np.arange(16.0).reshape(4, 4)] * 2, -1)[None] / 16.0
  raw = np.zeros((1, 18, 3), np.float32)
  raw[0, :, 2], raw[0, :, 0], raw[0, :, 1] = 1, np.linspace(0, 3, 18), np.linspace(0, 3, 18)
  moved = raw.copy()
  moved[0, :, 0] += 1.0                                            # one pixel to the right
  out = per_person.follow_keypoints(uv, raw, moved, fill=0.0)
  np.testing.assert_array_equal(out[0, :, 1:], uv[0, :, :-1])
  np.testing.assert_array_equal(out[0, :, 0], 0.0)
