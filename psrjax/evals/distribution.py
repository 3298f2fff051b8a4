"""Distribution evaluations (FID, KID, FVD, VFID): generated against real feature statistics;
and the Inception Score, which reads the generated frames alone.

Every example of the split goes through `System.generate`; its `prediction` output and the
real `batch[target]` go through a frozen feature network (`features`). The features of each
global batch are replicated to every process by the jitted function (an all-gather over the
mesh) and accumulated on the host in float64 (`metrics.FeatureStats`, Chan et al.'s pairwise
update; rows of padded examples are skipped), so every process holds the statistics of the
whole split and any batch size or device count gives the same moments. The real statistics
are computed once and cached on disk (`stats_cache`); later runs only embed generated data.

Fields (besides the common ones):
  prediction       generate() output to score ("" = the system's `eval_prediction`)
  target           batch key of the real data ("" = the system's `eval_target`)
  features         feature network (evals.features.NAMES; the type's default)
  weights          feature-network weight file ("" = packaged; FID/KID's InceptionV3 needs one)
  resolution       I3D input size of i3d_logits (0 = 224, the FVD protocol)
  cache_dir        real-statistics cache ("" = <workdir>/eval_cache; no workdir = no cache)
  cache            False: recompute the real statistics every run
  kid_subsets, kid_subset_size   KID's random subsets (100 of min(1000, N) rows)
  is_splits        the Inception Score's splits (10, at most one per generated frame)
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from psrjax.evals import common
from psrjax.evals import features as features_lib
from psrjax.evals import stats_cache
from psrjax.metrics import distribution
from psrjax.systems import base


class _Accumulator:
  """Valid feature rows, as float64 FeatureStats or (for KID) the rows themselves."""

  def __init__(self, rows: bool):
    self.rows, self.parts, self.stats = rows, [], None

  def add(self, features, valid) -> None:
    features, valid = np.asarray(features, np.float64), np.asarray(valid, bool)
    if self.rows:
      self.parts.append(features[valid])
    else:
      empty = distribution.FeatureStats.empty(features.shape[1])
      self.stats = (self.stats or empty).update(features, valid)

  def value(self):
    return np.concatenate(self.parts) if self.rows else self.stats


def _count(value) -> int:
  return len(value) if isinstance(value, np.ndarray) else value.count


class DistributionEval:
  """`run(params) -> {metric, "num_examples", "num_features"}` for one feature network."""

  def __init__(self, system, mesh, data, context, *, metric: str, features: str, prediction: str = "",
               target: str = "", weights: str = "", resolution: int = 0, cache_dir: str = "",
               cache: bool = True, kid_subsets: int = 100, kid_subset_size: int = 1000,
               is_splits: int = 10):
    self.system, self.mesh, self.data, self.metric = system, mesh, data, metric
    self.name = context["name"]
    self.prediction = self._declared(prediction, "prediction", "eval_prediction",
                                     "the generate() output to score")
    self.needs_real = metric != "is"
    self.target = (self._declared(target, "target", "eval_target", "the batch key of the real data")
                   if self.needs_real else target)
    self.net, variables = features_lib.load(features, weights=weights, resolution=resolution)
    self.resolution = resolution
    if self.needs_real:
      self._check_target()
    self.variables = common.put_replicated(variables, mesh)
    self.rows = metric in ("kid", "is")   # the rows themselves, not their moments
    self.kid_options = dict(subsets=kid_subsets, subset_size=kid_subset_size)
    cache_dir = cache_dir or (os.path.join(context["workdir"], stats_cache.DEFAULT_DIR)
                              if context["workdir"] else "")
    self.cache_file = stats_cache.cache_path(
        cache_dir, config=context["config"], split=data.split, num_examples=data.num_examples,
        target=self.target, features=features, weights=weights,
        resolution=resolution) if cache and cache_dir and self.needs_real else None
    self.is_splits = is_splits

  def _declared(self, value: str, field: str, attribute: str, what: str) -> str:
    value = value or getattr(self.system, attribute, None)
    if not value:
      raise ValueError(f"config.evals.{self.name}: set {field}=<{what}> or declare "
                       f"{type(self.system).__name__}.{attribute}")
    return value

  def _check_target(self) -> None:
    batch = self.data.first_batch()
    if self.target not in batch:
      raise ValueError(f"config.evals.{self.name}: target {self.target!r} is not a batch key; "
                       f"keys: {', '.join(sorted(batch))}")
    shape = np.shape(batch[self.target])
    if shape[-1] != 3 or len(shape) not in ((5,) if self.net.clips else (4, 5)):
      want = "[T, H, W, 3] clips" if self.net.clips else "[H, W, 3] images or [T, H, W, 3] clips"
      raise ValueError(f"config.evals.{self.name}: {self.net.name} features need {want}; "
                       f"{self.target!r} examples are {list(shape[1:])}")

  def _fn(self, with_real: bool):
    system, net, prediction, target = self.system, self.net, self.prediction, self.target

    def build():
      def fn(params, variables, batch):
        batch, valid = common.split_valid(batch)
        outputs = base.generate(system, params, batch)
        if prediction not in outputs:
          raise ValueError(f"prediction {prediction!r} is not a generate() output; outputs: "
                           f"{', '.join(sorted(outputs))}")
        embed = lambda x: net.embed(net.module, variables, x).astype(jnp.float32)
        out = {"generated": embed(outputs[prediction])}
        if with_real:
          out["real"] = embed(batch[target])
        out["valid"] = jnp.repeat(valid, out["generated"].shape[0] // valid.shape[0])
        return out
      return fn

    return common.cached_jit("distribution", system, self.mesh, build, prediction, target,
                             net.name, self.resolution, with_real)

  def run(self, params) -> dict[str, float]:
    if not self.needs_real:
      return self._inception_score(params)
    real = stats_cache.load(self.cache_file, rows=self.rows) if self.cache_file else None
    fn = self._fn(with_real=real is None)
    generated, real_acc = _Accumulator(self.rows), _Accumulator(self.rows)
    for batch in self.data.batches():
      out = jax.device_get(fn(params, self.variables, batch))
      generated.add(out["generated"], out["valid"])
      if real is None:
        real_acc.add(out["real"], out["valid"])
    if real is None:
      real = real_acc.value()
      if self.cache_file:
        stats_cache.save(self.cache_file, real)
    return self._score(real, generated.value())

  def _inception_score(self, params) -> dict[str, float]:
    fn, generated = self._fn(with_real=False), _Accumulator(rows=True)
    for batch in self.data.batches():
      out = jax.device_get(fn(params, self.variables, batch))
      generated.add(out["generated"], out["valid"])
    logits = generated.value()
    mean, std = distribution.inception_score(logits, splits=min(self.is_splits, len(logits)))
    return {"is": mean, "is_std": std, "num_examples": float(self.data.num_examples),
            "num_features": float(len(logits))}

  def _score(self, real, generated) -> dict[str, float]:
    if _count(real) != _count(generated):
      raise ValueError(f"config.evals.{self.name}: cached real statistics of {_count(real)} rows "
                       f"({self.cache_file}) do not match {_count(generated)} generated rows")
    if self.rows:
      mean, std = distribution.kid(real, generated, **self.kid_options)
      scores = {"kid": mean, "kid_std": std}
    else:
      scores = {self.metric: distribution.stats_frechet_distance(real, generated)}
    return {**scores, "num_examples": float(self.data.num_examples),
            "num_features": float(_count(generated))}
