"""Distribution metrics on feature statistics: streaming moments and the Fréchet distance.

Features (Inception pool features for FID, I3D logits for FVD) are fetched from the devices
batch by batch and accumulated on the host in float64 with Chan et al.'s pairwise update of
the mean and the centred sum of outer products, so any split into batches (and any device
count) gives the same moments up to float64 rounding. `FeatureStats.all_gather` merges the
statistics every process accumulated on its own shard (the float64 bits travel unchanged through
`multihost_utils.process_allgather`). Statistics save to / load from `.npz`.
"""
from __future__ import annotations

import dataclasses
import pathlib

import jax
import numpy as np
from jax.experimental import multihost_utils


@dataclasses.dataclass(frozen=True)
class FeatureStats:
  """Running count, mean [D] and centred sum of outer products [D, D] of feature vectors."""
  count: int
  mean: np.ndarray
  m2: np.ndarray

  @classmethod
  def empty(cls, dim: int) -> "FeatureStats":
    return cls(0, np.zeros(dim), np.zeros((dim, dim)))

  @classmethod
  def of(cls, features, valid=None) -> "FeatureStats":
    """Statistics of features [N, D] (rows with valid == 0, e.g. batch padding, are skipped)."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2:
      raise ValueError(f"FeatureStats: expected features [N, D], got shape {x.shape}")
    if valid is not None:
      valid = np.asarray(valid).reshape(-1)
      if valid.shape[0] != x.shape[0]:
        raise ValueError(f"FeatureStats: {valid.shape[0]} validity flags for {x.shape[0]} feature rows")
      x = x[valid > 0]
    if not np.isfinite(x).all():
      raise ValueError("FeatureStats: features contain NaN or Inf; check the feature network's inputs")
    if len(x) == 0:
      return cls.empty(x.shape[1])
    mean = x.mean(axis=0)
    centred = x - mean
    return cls(len(x), mean, centred.T @ centred)

  def merge(self, other: "FeatureStats") -> "FeatureStats":
    """Statistics of the union of both sets (Chan, Golub & LeVeque 1979)."""
    if self.mean.shape != other.mean.shape:
      raise ValueError(f"FeatureStats.merge: feature sizes differ: {self.mean.shape[0]} vs {other.mean.shape[0]}")
    n = self.count + other.count
    if n == 0:
      return self
    delta = other.mean - self.mean
    mean = self.mean + delta * (other.count / n)
    m2 = self.m2 + other.m2 + np.outer(delta, delta) * (self.count * other.count / n)
    return FeatureStats(n, mean, m2)

  def update(self, features, valid=None) -> "FeatureStats":
    return self.merge(FeatureStats.of(features, valid))

  def all_gather(self) -> "FeatureStats":
    """The merge of every process's statistics (call on all processes; all get the result).

    Count, mean and m2 are packed into one float64 vector whose bytes are gathered as uint32
    (JAX without x64 would round float64 to float32), then merged in process order.
    """
    packed = np.concatenate([[float(self.count)], self.mean, self.m2.reshape(-1)]).astype(np.float64)
    rows = np.asarray(multihost_utils.process_allgather(packed.view(np.uint32)))
    rows = rows.reshape(jax.process_count(), -1)
    d, merged = self.mean.shape[0], FeatureStats.empty(self.mean.shape[0])
    for row in rows:
      values = np.ascontiguousarray(row).view(np.float64)
      merged = merged.merge(FeatureStats(int(values[0]), values[1:d + 1], values[d + 1:].reshape(d, d)))
    return merged

  @property
  def covariance(self) -> np.ndarray:
    """Unbiased covariance (divides by N - 1, as numpy.cov in the FID/FVD references)."""
    if self.count < 2:
      raise ValueError(f"FeatureStats: a covariance needs at least 2 samples, got {self.count}")
    return self.m2 / (self.count - 1)

  def save(self, path: str | pathlib.Path) -> None:
    np.savez(path, count=self.count, mean=self.mean, m2=self.m2)

  @classmethod
  def load(cls, path: str | pathlib.Path) -> "FeatureStats":
    with np.load(path) as f:
      return cls(int(f["count"]), f["mean"], f["m2"])


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
  """tr sqrt(sigma1 sigma2) for covariance matrices, through symmetric eigendecompositions.

  sigma1 sigma2 is similar to S sigma2 S with S = sigma1^(1/2) (symmetric PSD), whose
  eigenvalues are real and >= 0; their square roots sum to the trace. Unlike a general sqrtm
  this stays real and accurate for singular or ill-conditioned covariances (tiny negative
  eigenvalues from rounding are clipped to 0).
  """
  w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
  s = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
  m = s @ sigma2 @ s
  eig = np.linalg.eigvalsh((m + m.T) / 2)
  return float(np.sum(np.sqrt(np.clip(eig, 0, None))))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)) (Heusel et al. 2017), float64."""
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  d = mu1.shape[0]
  if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
    raise ValueError(f"frechet_distance: mismatched shapes mu1 {mu1.shape}, sigma1 {sigma1.shape}, "
                     f"mu2 {mu2.shape}, sigma2 {sigma2.shape}")
  if not all(np.isfinite(v).all() for v in (mu1, mu2, sigma1, sigma2)):
    raise ValueError("frechet_distance: the means or covariances contain NaN or Inf")
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))


def stats_frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
  """Fréchet distance between two sets of accumulated feature statistics (FID, FVD)."""
  return frechet_distance(a.mean, a.covariance, b.mean, b.covariance)


def fid(real: FeatureStats, generated: FeatureStats) -> float:
  """FID (Heusel et al. 2017) from InceptionV3 pool3 statistics (see `inception_features`)."""
  return stats_frechet_distance(real, generated)


def inception_features(inception_apply, images) -> dict:
  """{"pool3": [B, 2048], "logits": [B, 1008]} of images [B, H, W, 3] in [-1, 1].

  inception_apply: e.g. `functools.partial(module.apply, variables)` with `module, variables =
  pretrained.load("inception_v3_fid", weights=<pytorch-fid's pt_inception-2015-12-05 file>)`;
  the module resizes to 299x299 as pytorch-fid does.
  """
  out = inception_apply(images)
  return {"pool3": out["pool3"], "logits": out["logits"]}


def kid(real_features, generated_features, *, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
  """Kernel Inception Distance (Bińkowski et al. 2018): (mean, std) over random subsets.

  Unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3 on subsets of
  min(subset_size, N_real, N_generated) features drawn without replacement, as in the reference
  implementations (torch-fidelity, clean-fid); float64 on the host.
  """
  x_all, y_all = np.asarray(real_features, np.float64), np.asarray(generated_features, np.float64)
  if x_all.ndim != 2 or y_all.ndim != 2 or x_all.shape[1] != y_all.shape[1]:
    raise ValueError(f"kid: expected features [N, D] of equal D, got {x_all.shape} and {y_all.shape}")
  m = min(subset_size, len(x_all), len(y_all))
  if m < 2:
    raise ValueError(f"kid: needs at least 2 real and 2 generated samples, got {len(x_all)} and {len(y_all)}")
  rng, d, values = np.random.RandomState(seed), x_all.shape[1], []
  for _ in range(subsets):
    x = x_all[rng.choice(len(x_all), m, replace=False)]
    y = y_all[rng.choice(len(y_all), m, replace=False)]
    kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    values.append(within - 2 * kxy.mean())
  return float(np.mean(values)), float(np.std(values))


def inception_score(logits, *, splits: int = 10) -> tuple[float, float]:
  """Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), (mean, std) over splits.

  logits: [N, classes] (the FID InceptionV3's 1008 "logits"); p(y) is estimated per split.
  """
  logits = np.asarray(logits, np.float64)
  if logits.ndim != 2 or len(logits) < splits:
    raise ValueError(f"inception_score: expected logits [N >= splits={splits}, classes], got {logits.shape}")
  log_p = logits - logits.max(axis=1, keepdims=True)
  log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
  scores = []
  for part in np.array_split(log_p, splits):
    log_marginal = np.log(np.exp(part).mean(axis=0))
    scores.append(np.exp(np.mean(np.sum(np.exp(part) * (part - log_marginal), axis=1))))
  return float(np.mean(scores)), float(np.std(scores))
