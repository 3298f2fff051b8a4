"""Eval type "fid": FID (Heusel et al. 2017): Fréchet distance of InceptionV3 pool3 statistics of
generated vs real frames.

Fields: see `psrjax.evals.distribution` (features defaults to "inception_pool3").
"""
from __future__ import annotations

from psrjax.evals import distribution


def make_evaluator(system, mesh, data, context, *, features: str = "inception_pool3", prediction: str = "",
                   target: str = "", weights: str = "", resolution: int = 0, cache_dir: str = "",
                   cache: bool = True) -> distribution.DistributionEval:
  return distribution.DistributionEval(
      system, mesh, data, context, metric="fid", features=features, prediction=prediction,
      target=target, weights=weights, resolution=resolution, cache_dir=cache_dir, cache=cache)
