r"""VFID's floor on a few clips: the Fréchet distance between two disjoint sets of REAL held-out
clips with the features MFCI's VFID uses (`vfid` eval: I3D Mixed_5c averaged over time and
space, 1,024 values, the clips at the evaluation resolution), for growing set sizes N.

  python benchmarks/vfid_floor.py [--config configs/mfci.py:runlocal] [--counts 16,32,64,128]

Both sets are real clips of the same distribution (the held-out identities' target runs of the
config's evaluation examples: clips 0..N-1 against N..2N-1), so their true distance is 0: what
it prints is the estimate's own bias at N clips, against which a model's VFID over the same N
held-out examples reads. Also printed: tr(Σ), the features' total variance (the scale every
Fréchet distance of these features is on).
"""
from __future__ import annotations

import argparse
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from psrjax import config_utils  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.evals import features as features_lib  # noqa: E402
from psrjax.metrics import distribution  # noqa: E402
from psrjax.systems import registry  # noqa: E402


def real_features(config, count: int, batch: int = 8) -> np.ndarray:
  """[count, 1024] VFID features of the target runs of the first `count` evaluation examples."""
  config = config.copy_and_resolve_references()
  config.eval.num_examples = count
  system = registry.get_system(config)
  data = system.dataset("test", seed=0, shard_index=0, shard_count=1)
  if len(data) < count:
    raise ValueError(f"the evaluation split holds {len(data)} examples, fewer than {count}")
  net, variables = features_lib.load("i3d_pool")
  embed = jax.jit(lambda x: net.embed(net.module, variables, x))
  key = system.eval_target
  rows = []
  for start in range(0, count, batch):
    clips = np.stack([data[i][key] for i in range(start, min(start + batch, count))])
    rows.append(np.asarray(embed(clips), np.float64))
  return np.concatenate(rows)


def floor(features: np.ndarray, n: int) -> float:
  """VFID between rows 0..n-1 and n..2n-1."""
  a = distribution.FeatureStats.of(features[:n])
  b = distribution.FeatureStats.of(features[n:2 * n])
  return distribution.stats_frechet_distance(a, b)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", default="configs/mfci.py:runlocal")
  parser.add_argument("--counts", default="16,32,64,128")
  args = parser.parse_args(argv)
  counts = sorted(int(n) for n in args.counts.split(","))
  features = real_features(config_utils.load_config(args.config), 2 * counts[-1])
  total = float(np.trace(distribution.FeatureStats.of(features).covariance))
  print(f"{args.config}: {len(features)} real held-out clips, I3D Mixed_5c pooled "
        f"({features.shape[1]} values), tr(Σ) = {total:.1f}, mean |μ|² = "
        f"{float(features.mean(0) @ features.mean(0)):.1f}")
  print("| N clips per set | VFID(real, real) |\n|---|---|")
  for n in counts:
    print(f"| {n} | {floor(features, n):.2f} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
