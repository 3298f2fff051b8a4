"""The synthetic world's estimated-geometry mode: geometry maps from a body fitted to the clip's
noisy triangulated keypoints, rgb and mask true; through the multi-view source, PSR-Net's
examples and its synthesis example."""
import numpy as np
import pytest

from psrjax.data.sources import estimated_geometry as eg
from psrjax.data import synthetic
from psrjax.data.samplers import view_pairs
from psrjax.data.sources import base as sources, synthetic_clips
from psrjax.systems import registry

import conformance

SEED, VIEWS, FRAMES, SIZE = 3, 3, 6, 48


@pytest.fixture(scope="module")
def clip():
  return synthetic.render_clip(SEED, num_views=VIEWS, num_frames=FRAMES, resolution=SIZE)


def _agreement(est: dict, truth: dict) -> dict:
  fg, fitted = truth["mask"] > 0, est["face"] >= 0
  return dict(part=float(np.mean((est["part"] == truth["part"])[fg])),
              iou=float(np.sum(fg & fitted) / np.sum(fg | fitted)))


@pytest.fixture(scope="module")
def estimated(clip):
  return eg.estimate_clip(clip, eg.Estimate(noise=0.01, swap_rate=0.2, fit_steps=300), SEED)


def test_geometry_comes_from_the_fit_and_the_images_stay_true(clip, estimated):
  for key in ("rgb", "mask", "background", "background_depth", "K", "R", "t"):
    np.testing.assert_array_equal(estimated[key], clip[key], err_msg=key)
  for key in ("face", "part", "depth", "flow_bwd", "keypoints"):
    assert estimated[key].shape == clip[key].shape and estimated[key].dtype == clip[key].dtype
    assert not np.array_equal(estimated[key], clip[key]), key
  agree = _agreement(estimated, clip)
  print(f"\nnoise 1 % of {SIZE} px, 20 % of frames swapped: {agree}")
  assert agree["part"] > 0.7 and agree["iou"] > 0.75
  person = estimated["depth"] > 0
  assert np.array_equal(person, estimated["face"] >= 0)
  assert 2.0 < np.median(estimated["depth"][person]) < 4.5   # about 3 m from the cameras


def test_detections_are_noisy_swapped_and_repaired(clip):
  est = eg.Estimate(noise=0.02, swap_rate=0.3)
  det, swapped = eg.noisy_detections(clip["keypoints"], SIZE, SIZE, est,
                                     np.random.default_rng(0))
  assert 0.15 < swapped.mean() < 0.45
  r, l = synthetic.COCO_NAMES.index("r_wrist"), synthetic.COCO_NAMES.index("l_wrist")
  np.testing.assert_allclose(det[swapped][:, r, :2], clip["keypoints"][swapped][:, l, :2],
                             atol=6 * 0.02 * SIZE)
  err = np.linalg.norm(det[..., 0, :2] - clip["keypoints"][..., 0, :2], axis=-1)   # nose
  assert 0.6 < np.median(err) < 1.8      # sigma 0.96 px: median radius 1.18 sigma
  fit, det_fit, tri = eg.fit_clip(clip, est, SEED)
  _, injected = eg.noisy_detections(clip["keypoints"], SIZE, SIZE, est,
                                    np.random.default_rng([0xE57, SEED]))
  assert np.array_equal(det_fit[..., 2] > 0, np.ones_like(det_fit[..., 2], bool))
  relative = lambda s: s[1:] ^ s[:1]   # labellings are found up to the first camera's
  assert np.mean(relative(tri.swapped) == relative(injected)) >= 0.9
  assert np.all(np.isfinite(fit.pose)) and np.nanmedian(fit.residuals) < 0.06


def test_more_noise_estimates_worse(clip):
  less, more = (_agreement(eg.estimate_clip(clip, eg.Estimate(noise=n, fit_steps=300), SEED), clip)
                for n in (0.0, 0.04))
  assert less["part"] > more["part"] + 0.03 and less["iou"] > more["iou"]


def test_bad_settings_are_one_line_errors():
  for kwargs, message in ((dict(noise=-0.1), "noise"), (dict(swap_rate=1.5), "swap rate"),
                          (dict(fit_steps=0), "fit_steps")):
    with pytest.raises(ValueError, match=message):
      eg.Estimate(**kwargs)
  with pytest.raises(ValueError, match="data.geometry must be one of"):
    eg.check_geometry("fitted")


def test_source_examples_and_synthesis_use_the_estimate(clip, estimated):
  config = conformance.tiny_config("psrnet", **{
      "data.geometry": "estimated", "data.keypoint_swap_rate": 0.2, "data.fit_steps": 300,
      "data.num_views": VIEWS, "data.num_frames": FRAMES, "data.resolution": SIZE,
      "data.rooms": 0})
  estimate = view_pairs.estimate_of(config.data)
  assert estimate == eg.Estimate(noise=0.01, swap_rate=0.2, fit_steps=300)
  src = synthetic_clips.SyntheticClips("train", num_views=VIEWS, num_frames=FRAMES,
                                       resolution=SIZE, num_clips=2, estimate=estimate)
  assert src.modalities["face"] == sources.ESTIMATED and src.modalities["rgb"] == sources.EXACT
  example = registry.get_system(config).synthesis_example(seed=SEED, source_view=1, target_view=3)
  np.testing.assert_array_equal(example["tgt_face"], estimated["face"][2])
  np.testing.assert_array_equal(example["src_face"], estimated["face"][0])
  np.testing.assert_array_equal(example["tgt_rgb"], sources.to_unit(clip["rgb"][2]))
  np.testing.assert_array_equal(example["tgt_mask"][..., 0], clip["mask"][2])
  scene = np.where(estimated["depth"][2] > 0, estimated["depth"][2], clip["background_depth"][2])
  np.testing.assert_array_equal(example["tgt_depth"][..., 0], scene)
