"""Eval type "kid": KID (Bińkowski et al. 2018): unbiased MMD² with the cubic kernel on subsets of
generated vs real InceptionV3 pool3 features; reports kid and kid_std.

Fields: see `psrjax.evals.distribution` (features defaults to "inception_pool3").
"""
from __future__ import annotations

from psrjax.evals import distribution


def make_evaluator(system, mesh, data, context, *, features: str = "inception_pool3", prediction: str = "",
                   target: str = "", weights: str = "", resolution: int = 0, cache_dir: str = "",
                   cache: bool = True, kid_subsets: int = 100,
                   kid_subset_size: int = 1000) -> distribution.DistributionEval:
  return distribution.DistributionEval(
      system, mesh, data, context, metric="kid", features=features, prediction=prediction,
      target=target, weights=weights, resolution=resolution, cache_dir=cache_dir, cache=cache,
      kid_subsets=kid_subsets, kid_subset_size=kid_subset_size)
