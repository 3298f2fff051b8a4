"""Eval type "fvd": FVD (Unterthiner et al. 2019): Fréchet distance of I3D logits of generated vs
real clips (TF1 bilinear resize to 224, clips of 16 frames in the reference protocol).

Fields: see `psrjax.evals.distribution` (features defaults to "i3d_logits").
"""
from __future__ import annotations

from psrjax.evals import distribution


def make_evaluator(system, mesh, data, context, *, features: str = "i3d_logits", prediction: str = "",
                   target: str = "", weights: str = "", resolution: int = 0, cache_dir: str = "",
                   cache: bool = True) -> distribution.DistributionEval:
  return distribution.DistributionEval(
      system, mesh, data, context, metric="fvd", features=features, prediction=prediction,
      target=target, weights=weights, resolution=resolution, cache_dir=cache_dir, cache=cache)
