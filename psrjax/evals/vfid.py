"""Eval type "vfid": VFID (Wang et al. 2018): Fréchet distance of pooled I3D Mixed_5c features of
generated vs real clips.

Fields: see `psrjax.evals.distribution` (features defaults to "i3d_pool").
"""
from __future__ import annotations

from psrjax.evals import distribution


def make_evaluator(system, mesh, data, context, *, features: str = "i3d_pool", prediction: str = "",
                   target: str = "", weights: str = "", resolution: int = 0, cache_dir: str = "",
                   cache: bool = True) -> distribution.DistributionEval:
  return distribution.DistributionEval(
      system, mesh, data, context, metric="vfid", features=features, prediction=prediction,
      target=target, weights=weights, resolution=resolution, cache_dir=cache_dir, cache=cache)
