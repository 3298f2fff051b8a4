"""R-SSIM / R-PSNR (D²G-Net's robustness protocol) on the synthetic world, against scikit-image
scores of brute-force selected frames."""
import grain
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from psrjax.data import synthetic
from psrjax.train import defaults
from psrjax.train import evaluator as evaluator_lib
from psrjax.train import partitioning

FRAMES, RES = 2, 32


def _example(clip):
  rgb = clip["rgb"][0].astype(np.float32) / 127.5 - 1.0
  return {"rgb": rgb, "keypoints": clip["keypoints"][0]}


class PoseSystem:
  """Synthetic single-view clips; the "prediction" is the clip shifted by one pixel and darkened."""
  eval_prediction, eval_target = "shifted", "rgb"

  def dataset(self, split, *, seed, shard_index, shard_count):
    del seed
    source = synthetic.SyntheticSource(split, num_views=1, num_frames=FRAMES, resolution=RES,
                                       num_clips=12)
    return grain.MapDataset.source(source).map(_example)[shard_index::shard_count]

  def prepare(self, batch):   # base.generate prepares every batch; nothing to derive here
    return dict(batch)

  def generate(self, params, batch):
    return {"shifted": jnp.roll(batch["rgb"], 1, axis=-2) * params["gain"]}


def _reference(system, m, train_examples, num_examples):
  train = system.dataset("train", seed=0, shard_index=0, shard_count=1)
  val = system.dataset("validation", seed=0, shard_index=0, shard_count=1)
  train_poses = np.concatenate([train[i]["keypoints"] for i in range(train_examples)])
  frames = [(e["rgb"][t], e["keypoints"][t]) for e in (val[i] for i in range(num_examples))
            for t in range(FRAMES)]
  nearest = []
  for _, pose in frames:   # nearest-neighbour distance over keypoints visible in both poses
    both = (pose[None, :, 2] > 0) & (train_poses[:, :, 2] > 0)
    d = np.sqrt((((pose[None, :, :2] - train_poses[:, :, :2]) ** 2).sum(-1) * both).sum(-1))
    nearest.append(d.min())
  chosen = np.argsort(nearest)[::-1][:m]
  ssim, psnr = [], []
  for i in chosen:
    real = frames[i][0]
    pred = np.roll(real, 1, axis=-2) * 0.9
    # SSIM is the standard metric on [0, 1] intensities; PSNR only needs the range's width.
    ssim.append(structural_similarity((pred + 1) / 2, (real + 1) / 2, gaussian_weights=True,
                                      sigma=1.5, use_sample_covariance=False, data_range=1.0,
                                      channel_axis=-1))
    psnr.append(peak_signal_noise_ratio(real, pred, data_range=2.0))
  return np.mean(ssim), np.mean(psnr), len(frames)


def test_r_ssim_and_r_psnr_match_a_brute_force_reference():
  config = defaults.trainer_config()
  config.update(system="synthetic_pose", eval=dict(split="validation", batch_size=8, num_examples=0))
  config.train.prefetch = 0
  mesh = partitioning.make_mesh()
  system = PoseSystem()
  entry = dict(type="robust_pose", num_examples=11, m=4, train_examples=5)
  evaluator = evaluator_lib.build_one("robust", entry, config=config, system=system, mesh=mesh,
                                      workdir=None).evaluator
  results = evaluator.run(partitioning.put_replicated({"gain": np.float32(0.9)}, mesh))
  ssim, psnr, num_poses = _reference(system, m=4, train_examples=5, num_examples=11)
  assert results["num_poses"] == num_poses == 22 and results["num_examples"] == 11
  assert results["r_ssim"] == pytest.approx(ssim, abs=1e-5)
  assert results["r_psnr"] == pytest.approx(psnr, abs=1e-4)
  assert results["r_ssim"] != pytest.approx(results["ssim"], abs=1e-4)


def test_bad_fields():
  config = defaults.trainer_config()
  mesh = partitioning.make_mesh()
  with pytest.raises(ValueError, match="keypoints 'pose' is not a batch key; keys: keypoints, rgb"):
    evaluator_lib.build_one("r", dict(type="robust_pose", keypoints="pose"), config=config,
                            system=PoseSystem(), mesh=mesh, workdir=None)
  with pytest.raises(ValueError, match=r"config.evals.r: value_range must have lo < hi"):
    evaluator_lib.build_one("r", dict(type="robust_pose", value_range=(1.0, -1.0)), config=config,
                            system=PoseSystem(), mesh=mesh, workdir=None)
  with pytest.raises(ValueError, match=r"config.evals.r: m=0 must be >= 1"):
    evaluator_lib.build_one("r", dict(type="robust_pose", num_examples=8, m=0), config=config,
                            system=PoseSystem(), mesh=mesh, workdir=None)


def test_a_short_held_out_split_scores_all_its_poses_and_says_so(capsys):
  config = defaults.trainer_config()
  evaluator = evaluator_lib.build_one("r", dict(type="robust_pose", num_examples=8, m=30),
                                      config=config, system=PoseSystem(),
                                      mesh=partitioning.make_mesh(), workdir=None).evaluator
  assert evaluator.m == 16   # 8 examples of 2 poses
  assert "has 16 poses, fewer than m=30: scoring all 16" in capsys.readouterr().out
