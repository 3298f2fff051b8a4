"""Eval type "robust_pose": D²G-Net's robustness protocol, R-SSIM and R-PSNR.

D²G-Net selects the M = 10 validation poses farthest from the training poses, a pose's
distance to the training set being its nearest-neighbour keypoint distance
(`metrics.challenging_poses`: Euclidean distance of the 2D keypoints visible in both poses, in
pixels), and reports SSIM and PSNR on them. A pose is one frame's keypoints: examples with
keypoints [T, K, 3] give T poses, scored by the SSIM / PSNR of that frame of the prediction
against the target; examples with [K, 3] give one. The training poses are those of the first
`train_examples` examples of the train split, read at the first evaluation (reading them renders
or decodes those examples: a run that never evaluates, or one that only starts, skips it).

Fields (besides the common ones):
  prediction, target  generate() output and real batch key ("" = the system's eval_prediction /
                      eval_target), images [..., H, W, C] whose leading axes match the poses'
  keypoints           batch key of the poses, [..., K, 3] (x, y, visibility) ("" = the system's
                      eval_keypoints, else "keypoints")
  m                   number of challenging poses (D²G-Net: 10)
  train_examples      training examples whose poses form the reference set
  value_range         (lo, hi) of the images ((-1.0, 1.0) for the batch contract). SSIM is the
                      standard metric on the images mapped to [0, 1] (`metrics.ssim`); PSNR uses
                      data_range = hi - lo (it does not depend on lo).
Reports r_ssim, r_psnr (the M poses), ssim, psnr (all validation poses) and num_poses.
"""
from __future__ import annotations

import functools

import jax
import numpy as np

from psrjax import metrics
from psrjax.evals import common
from psrjax.metrics import image_checks as metrics_checks
from psrjax.systems import base


class RobustPoseEval:
  """`run(params)`: SSIM / PSNR on the validation poses farthest from the training poses."""

  def __init__(self, system, mesh, data, context, *, prediction: str, target: str, keypoints: str,
               m: int, train_examples: int, value_range: tuple[float, float]):
    self.system, self.mesh, self.data, self.m = system, mesh, data, m
    name = context["name"]
    self.prediction = prediction or getattr(system, "eval_prediction", None)
    self.target = target or getattr(system, "eval_target", None)
    if not self.prediction or not self.target:
      raise ValueError(f"config.evals.{name}: set prediction= and target= or declare "
                       f"{type(system).__name__}.eval_prediction / eval_target")
    self.keypoints = keypoints = keypoints or getattr(system, "eval_keypoints", "keypoints")
    self.value_range = metrics_checks.check_value_range(value_range, f"config.evals.{name}")
    if keypoints not in data.first_batch():
      raise ValueError(f"config.evals.{name}: keypoints {keypoints!r} is not a batch key; keys: "
                       f"{', '.join(sorted(data.first_batch()))}")
    self._train = self.system.dataset("train", seed=context["config"].seed, shard_index=0,
                                      shard_count=1)
    if train_examples < 1 or len(self._train) == 0:
      raise ValueError(f"config.evals.{name}: train_examples must be >= 1 and the train split "
                       f"non-empty, got {train_examples} of {len(self._train)}")
    self._train_examples = min(train_examples, len(self._train))
    self.m = _fit_m(m, data.num_examples * _poses_per_example(data.first_batch()[keypoints]), name)

  @functools.cached_property
  def train_poses(self) -> np.ndarray:
    """[N, K, 3] keypoints of the first `train_examples` training examples (read once)."""
    poses = [np.asarray(self._train[i][self.keypoints], np.float32)
             for i in range(self._train_examples)]
    return np.concatenate([p.reshape(-1, *p.shape[-2:]) for p in poses])

  def _fn(self):
    system, prediction, target, kp, value_range = (self.system, self.prediction, self.target,
                                                   self.keypoints, self.value_range)
    data_range = value_range[1] - value_range[0]

    def build():
      def fn(params, batch):
        batch, valid = common.split_valid(batch)
        pred, real = base.generate(system, params, batch)[prediction], batch[target]
        return {"ssim": metrics.ssim(pred, real, value_range=value_range),
                "psnr": metrics.psnr(pred, real, data_range=data_range),
                "keypoints": batch[kp], "valid": valid}
      return fn

    return common.cached_jit("robust_pose", system, self.mesh, build, prediction, target, kp,
                             value_range)

  def run(self, params) -> dict[str, float]:
    fn, scores, poses = self._fn(), {"ssim": [], "psnr": []}, []
    for batch in self.data.batches():
      out = jax.device_get(fn(params, batch))
      valid = np.asarray(out["valid"], bool)
      keypoints = np.asarray(out["keypoints"])[valid]
      if out["ssim"].shape != out["keypoints"].shape[:-2]:
        raise ValueError(f"robust_pose: per-image scores {out['ssim'].shape} do not match the "
                         f"poses {out['keypoints'].shape[:-2]}; prediction and keypoints need "
                         "the same leading axes")
      poses.append(keypoints.reshape(-1, *keypoints.shape[-2:]))
      for k in scores:
        scores[k].append(np.asarray(out[k], np.float64)[valid].reshape(-1))
    poses, scores = np.concatenate(poses), {k: np.concatenate(v) for k, v in scores.items()}
    chosen = metrics.challenging_poses(poses, self.train_poses, m=self.m)
    return {"r_ssim": float(scores["ssim"][chosen].mean()),
            "r_psnr": float(scores["psnr"][chosen].mean()),
            "ssim": float(scores["ssim"].mean()), "psnr": float(scores["psnr"].mean()),
            "num_poses": float(len(poses)), "num_examples": float(self.data.num_examples)}


def _fit_m(m: int, available: int, name: str) -> int:
  """`m`, or every validation pose when a short held-out split has fewer than `m` (said once)."""
  if m < 1:
    raise ValueError(f"config.evals.{name}: m={m} must be >= 1 challenging poses")
  if available < 1:
    raise ValueError(f"config.evals.{name}: the held-out split has no poses; hold out frames "
                     f"or drop the evaluation (--config.evals.{name}.every=0)")
  if m > available:
    if jax.process_index() == 0:
      print(f"config.evals.{name}: the held-out split has {available} poses, fewer than m={m}: "
            f"scoring all {available} (--config.evals.{name}.m sets another number)", flush=True)
    return available
  return m


def _poses_per_example(local_keypoints) -> int:
  return int(np.prod(np.shape(local_keypoints)[1:-2], dtype=np.int64))


def make_evaluator(system, mesh, data, context, *, prediction: str = "", target: str = "",
                   keypoints: str = "", m: int = 10, train_examples: int = 100,
                   value_range: tuple[float, float] = (-1.0, 1.0)) -> RobustPoseEval:
  return RobustPoseEval(system, mesh, data, context, prediction=prediction, target=target,
                        keypoints=keypoints, m=m, train_examples=train_examples,
                        value_range=value_range)
