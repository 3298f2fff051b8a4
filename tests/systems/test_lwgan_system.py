"""The Liquid Warping GAN system (psrjax/systems/lwgan.py) beyond the shared system checks: its
inputs and loss pieces against the authors' PyTorch expressions (models/impersonator_trainer.py,
utils/util.py `morph`), the body conditions of its examples, synthesis refusing an image file,
and bad configs."""
import functools

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import conformance
from psrjax import cli
from psrjax.data.samplers import body_transfer, per_person, same_video
from psrjax.data.sources import scripted_person
from psrjax.systems import lwgan, registry
from psrjax.systems.tasks import person_video
from psrjax.train import evaluator as evaluator_lib
from psrjax.train import partitioning

GROUP = pytest.mark.xdist_group("lwgan")
tiny_config = functools.partial(conformance.tiny_config, "lwgan")


def _torch_morph(mask, ks):
  """utils/util.py `morph(mask, ks, mode="erode")` as the authors write it (NCHW)."""
  pad = ks // 2
  padded = F.pad(mask, [pad, pad, pad, pad], value=1.0)
  return (F.conv2d(padded, torch.ones(1, 1, ks, ks)) == ks ** 2).float()


def _uvseg(rng, n=2, size=24):
  """UV-segment maps [n, size, size, 3]: a body blob of (U, V, 0) codes on (0, 0, 1)."""
  yy, xx = np.mgrid[:size, :size]
  out = np.zeros((n, size, size, 3), np.float32)
  out[..., 2] = 1.0
  for i in range(n):
    cx, cy = rng.uniform(0.3, 0.7, 2) * size
    body = ((xx - cx) / 5.0) ** 2 + ((yy - cy) / 9.0) ** 2 < 1.0
    out[i][body] = np.concatenate([rng.uniform(0, 1, (body.sum(), 2)),
                                   np.zeros((body.sum(), 1))], axis=1)
  return out


def _nchw(x):
  return torch.from_numpy(np.ascontiguousarray(np.moveaxis(np.asarray(x), -1, 1)))


def test_network_inputs_are_the_authors_body_recovery_inputs():
  """`network_inputs` against BodyRecoveryFlow.forward's expressions in PyTorch (grid_sample as
  PyTorch 1.2 computes it: align_corners=True)."""
  rng = np.random.default_rng(0)
  src = rng.uniform(-1, 1, (2, 24, 24, 3)).astype(np.float32)
  src_uvseg, tgt_uvseg = _uvseg(rng), _uvseg(rng)
  transform = rng.uniform(-1.1, 1.1, (2, 24, 24, 2)).astype(np.float32)
  transform[tgt_uvseg[..., 2] > 0] = -2.0
  ours = lwgan.network_inputs(jnp.asarray(src), jnp.asarray(src_uvseg), jnp.asarray(tgt_uvseg),
                              jnp.asarray(transform))
  s, sc, tc = _nchw(src), _nchw(src_uvseg), _nchw(tgt_uvseg)
  src_crop = _torch_morph(sc[:, -1:], 3)
  bg_mask = _torch_morph(sc[:, -1:], 15)
  syn = F.grid_sample(s, torch.from_numpy(transform), align_corners=True)
  theirs = {"bg": torch.cat([s * bg_mask, bg_mask], 1),
            "src": torch.cat([s * (1 - src_crop), sc], 1),
            "tsf": torch.cat([syn, tc], 1), "src_crop": src_crop,
            "tgt_crop": _torch_morph(tc[:, -1:], 3)}
  for key, value in theirs.items():
    np.testing.assert_allclose(np.asarray(ours[key]), np.moveaxis(value.numpy(), 1, -1),
                               atol=1e-5, err_msg=key)
  assert 0 < float(np.asarray(ours["bg"])[..., 3].mean()) < float(tgt_uvseg[..., 2].mean())


def test_the_composite_background_keeps_the_sources_visible_pixels():
  rng = np.random.default_rng(2)
  field = lambda c=3: jnp.asarray(rng.uniform(0, 1, (2, 8, 8, c)), jnp.float32)
  out = {"background": field(), "source_color": field(), "source_mask": field(1),
         "color": field(), "mask": field(1)}
  source = field()
  bg_mask = jnp.asarray(rng.uniform(0, 1, (2, 8, 8, 1)) > 0.5, jnp.float32)
  composed = lwgan.compose(out, source, bg_mask)
  background = np.where(bg_mask > 0, source, out["background"])
  np.testing.assert_allclose(composed["background"], background, atol=1e-6)
  expected = out["mask"] * background + (1 - out["mask"]) * out["color"]
  np.testing.assert_allclose(composed["image"], expected, atol=1e-6)
  expected = out["source_mask"] * background + (1 - out["source_mask"]) * out["source_color"]
  np.testing.assert_allclose(composed["source_image"], expected, atol=1e-6)


def test_front_warp_pastes_the_source_where_it_shows_the_point():
  rng = np.random.default_rng(3)
  image, source = (jnp.asarray(rng.uniform(-1, 1, (1, 6, 6, 3)), jnp.float32) for _ in range(2))
  mask = jnp.asarray(rng.uniform(0, 1, (1, 6, 6, 1)), jnp.float32)
  ys, xs = np.mgrid[:6, :6]
  identity = np.stack([xs, ys], -1)[None] * 2.0 / 5 - 1.0
  shown = np.zeros((1, 6, 6), bool)
  shown[:, 1:4, 2:5] = True
  transform = jnp.asarray(np.where(shown[..., None], identity, -2.0), jnp.float32)
  out = np.asarray(lwgan.front_warp(image, mask, source, transform))
  np.testing.assert_allclose(out[~shown], np.asarray(image)[~shown], atol=1e-6)
  expected = (1 - np.asarray(mask)) * np.asarray(source)
  np.testing.assert_allclose(out[shown], expected[shown], atol=1e-5)


def test_mask_losses_are_torchs_bce_and_the_authors_smoothness():
  rng = np.random.default_rng(1)
  p = rng.uniform(0, 1, (3, 8, 8, 1)).astype(np.float32)
  p[0, 0, 0, 0] = 0.0                                   # log(0): clamped at -100 in both
  y = (rng.uniform(0, 1, p.shape) > 0.5).astype(np.float32)
  expected = torch.nn.BCELoss()(_nchw(p), _nchw(y)).item()
  assert float(lwgan.binary_cross_entropy(jnp.asarray(p), jnp.asarray(y))) == pytest.approx(
      expected, rel=1e-5)
  saturated = jnp.asarray([0.0, 1e-45, 1.0, 0.5], jnp.float32)   # a saturated sigmoid's outputs
  grad = jax.grad(lwgan.binary_cross_entropy)(saturated, jnp.asarray([1.0, 1.0, 0.0, 1.0]))
  assert np.all(np.isfinite(np.asarray(grad))), grad
  m = _nchw(p)
  smooth = (torch.mean(torch.abs(m[:, :, :, :-1] - m[:, :, :, 1:]))
            + torch.mean(torch.abs(m[:, :, :-1, :] - m[:, :, 1:, :]))).item()
  assert float(lwgan.total_variation(jnp.asarray(p))) == pytest.approx(smooth, rel=1e-5)


def test_examples_carry_the_body_conditions_and_a_frame_maps_onto_itself():
  system = registry.get_system(tiny_config())
  train = system.dataset("train", seed=0, shard_index=0, shard_count=1)[0]
  spec = system.example_spec("train")
  assert {k: (v.shape, v.dtype) for k, v in train.items()} == {
      k: (s.shape, s.dtype) for k, s in spec.items()}
  assert not set(body_transfer.surface_keys()) & set(train)
  evaluation = system.dataset("test", seed=0, shard_index=0, shard_count=1)[0]
  assert evaluation["transform"].shape[0] == system.config.data.eval_targets
  np.testing.assert_array_equal(evaluation["init_rgb"], evaluation["src_rgb"][0])
  example = system.synthesis_example(seed=0)
  assert {k: v.shape for k, v in example.items() if k in body_transfer.CONDITIONS} == {
      k: s.shape for k, s in system.example_spec("test").items() if k in body_transfer.CONDITIONS}


def test_conditions_of_a_frame_with_itself_are_the_identity_on_the_body():
  system = registry.get_system(tiny_config())
  example = same_video.synthesis_example(system.eval_data, seed=1, driving_seed=None, background_seed=None,
                                         extra=body_transfer.SURFACE)
  maps = [example[f"src_{m}"] for m in body_transfer.SURFACE]
  out = body_transfer.conditions(*maps, *maps)
  on = maps[0][0] >= 0
  assert on.sum() > 20
  size = on.shape[0]
  ys, xs = np.nonzero(on)
  expected = np.stack([xs, ys], -1) * 2.0 / (size - 1) - 1.0
  np.testing.assert_allclose(out["transform"][0][on], expected, atol=2.0 / 16 / (size - 1))
  assert np.all(out["transform"][0][~on] == -2.0)
  np.testing.assert_array_equal(out["src_uvseg"], out["tgt_uvseg"])
  np.testing.assert_array_equal(out["src_uvseg"][0][..., 2], (~on).astype(np.float32))


@GROUP
def test_synthesize_asks_for_the_uv_pretraining_to_animate_an_image_file(system_runs, tmp_path,
                                                                         capsys):
  """An image has no surface maps: without a UV pre-training to predict them (--surface-from or
  data.surface_from), a one-line error naming the flag."""
  runs = system_runs("lwgan")
  path = tmp_path / "person.png"
  iio.imwrite(path, np.full((40, 40, 3), 120, np.uint8))
  out = tmp_path / "animated.gif"
  capsys.readouterr()
  assert cli.main(["synthesize", "--workdir", runs.straight.workdir, "--source", str(path),
                   "--out", str(out)]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "surface maps" in err[0] and "--surface-from" in err[0], err


def _maps(data, start, length):
  return [scripted_person.frames(data, start, length, body_transfer.SURFACE)[m]
          for m in body_transfer.SURFACE]


def test_person_protocol_drives_the_per_person_runs_from_the_first_frame():
  """`person`: the held-out runs the per-person systems score, each driven from training frame
  0 with the conditions of its exact maps; training pairs are two distinct training frames."""
  system = registry.get_system(tiny_config("tiny,person"))
  data = system.config.data
  runs = per_person.eval_dataset(data, shard_index=0, shard_count=1)
  held = system.dataset("test", seed=0, shard_index=0, shard_count=1)
  assert len(held) == len(runs) >= 2
  first = scripted_person.frames(data, 0, 1)
  spec = system.example_spec("test")
  for i in (0, len(runs) - 1):
    example, run = held[i], runs[i]
    assert {k: (v.shape, v.dtype) for k, v in example.items()} == {
        k: (s.shape, s.dtype) for k, s in spec.items()}
    for key in ("rgb", "keypoints", "mask", "flow_bwd", "flow_fwd"):
      np.testing.assert_array_equal(example[f"tgt_{key}"], run[key])
    np.testing.assert_array_equal(example["src_rgb"], first["rgb"])
    np.testing.assert_array_equal(example["init_rgb"], first["rgb"][0])
    assert example["run_group"] == per_person.run_groups(data, run["frame_index"][None])[0]
    expected = body_transfer.conditions(*_maps(data, 0, 1),
                                        *_maps(data, int(run["frame_index"][0]), len(run["rgb"])))
    for key, value in expected.items():
      np.testing.assert_array_equal(example[key], value)
  np.testing.assert_array_equal(system.held_out_example(1)["tgt_rgb"], runs[1]["rgb"])
  train_poses = per_person.train_keypoints(data)
  train = system.dataset("train", seed=0, shard_index=0, shard_count=1)
  for i in range(3):
    pair = train[i]
    frames = [int(np.flatnonzero((train_poses == pair[k][0]).all(axis=(1, 2)))[0])
              for k in ("src_keypoints", "tgt_keypoints")]
    assert frames[0] != frames[1]


def test_person_protocol_scores_far_poses_and_the_drawn_person():
  """R-SSIM's training poses are the person's (`eval_keypoints`); "mask_iou" is the per-person
  systems' (pixels off the empty room against the person mask): 1 - small for the ground
  truth itself, 0 for the empty room."""
  config = tiny_config("tiny,person")
  system = registry.get_system(config)
  mesh = partitioning.make_mesh()
  robust = evaluator_lib.build_one("robust_pose", dict(config.evals.robust_pose), config=config,
                                   system=system, mesh=mesh).evaluator
  assert robust.keypoints == "tgt_keypoints"
  train_poses = per_person.train_keypoints(system.config.data).reshape(-1, 18 * 3)
  assert {tuple(p) for p in robust.train_poses.reshape(-1, 18 * 3)} <= {tuple(p)
                                                                       for p in train_poses}
  example = system.dataset("test", seed=0, shard_index=0, shard_count=1)[0]
  batch = {k: np.repeat(np.asarray(v)[None], 2, 0) for k, v in example.items()}
  room = per_person.background(system.config.data)
  pred = np.stack([example["tgt_rgb"], np.broadcast_to(room, example["tgt_rgb"].shape)])
  scores = jax.jit(system.frame_scores)(system.constants(), jnp.asarray(pred), batch)
  drawn = np.abs(example["tgt_rgb"] - room).max(-1) > person_video.MASK_THRESHOLD
  person = example["tgt_mask"][..., 0] > 0.5
  iou = np.mean([(d & p).sum() / (d | p).sum() for d, p in zip(drawn, person)])
  np.testing.assert_allclose(np.asarray(scores["mask_iou"]), [iou, 0.0], atol=1e-6)
  assert iou > 0.5


@pytest.mark.parametrize("overrides,match", [
    ({"data.num_targets": 2}, "num_targets"),
    ({"data.eval_targets": 1}, "eval_targets"),
    ({"loss.face_size": (8, 8)}, "face_size"),
    ({"model.background": "inpaint"}, "model.background"),
    ({"model.bg_erosion": 4}, "bg_erosion"),
    ({"data.protocol": "people"}, "data.protocol"),
])
def test_bad_configs_fail_with_one_line_errors(overrides, match):
  with pytest.raises(ValueError, match=match):
    registry.get_system(tiny_config(**overrides))
