"""Eval type "inception_score": the Inception Score (Salimans et al. 2016) of the generated
frames, exp(E_x KL(p(y|x) || p(y))) over the FID InceptionV3's 1008 classes, its mean and
standard deviation over `is_splits` splits (reported "is", "is_std"), as the pose-transfer papers
report it next to FID. Reads the generated frames only (no real statistics).

Fields: see `psrjax.evals.distribution` (features defaults to "inception_logits"; `weights`:
pytorch-fid's InceptionV3 file, which no package ships).
"""
from __future__ import annotations

from psrjax.evals import distribution


def make_evaluator(system, mesh, data, context, *, features: str = "inception_logits",
                   prediction: str = "", target: str = "", weights: str = "", resolution: int = 0,
                   is_splits: int = 10) -> distribution.DistributionEval:
  return distribution.DistributionEval(
      system, mesh, data, context, metric="is", features=features, prediction=prediction,
      target=target, weights=weights, resolution=resolution, cache=False, is_splits=is_splits)
