"""Real-data feature statistics cached on disk, keyed by what determines them.

The key hashes the dataset (`config.system`, the config's `data` block, the eval seed), the
split, the number of examples, the target batch key and the feature network (name, weight
file, resolution); the file name also shows the readable parts:
`<cache_dir>/<features>-<split>-<num_examples>-<hash>.npz`. Systems whose data settings live
outside `config.data` should use one `cache_dir` per dataset (or `cache=False`). The cache may
be in a bucket (`gs://...`, e.g. under a `gs://` workdir: `psrjax.paths`), where each file is
one object upload.
"""
from __future__ import annotations

import hashlib
import io
import json
import os

import jax
import numpy as np
from jax.experimental import multihost_utils

from psrjax import paths
from psrjax.metrics import distribution

DEFAULT_DIR = "eval_cache"  # under the workdir when an eval sets no cache_dir


def cache_path(cache_dir: str, *, config, split: str, num_examples: int, target: str,
               features: str, weights: str, resolution: int) -> str:
  """The file holding the real statistics of this dataset / split / size / feature network."""
  data = config.get("data")
  key = {"system": config.system, "data": data.to_dict() if hasattr(data, "to_dict") else data,
         "seed": config.seed, "split": split, "num_examples": num_examples, "target": target,
         "features": features, "resolution": resolution,
         "weights": os.path.abspath(weights) if weights else "packaged"}
  digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
  return os.path.join(cache_dir, f"{features}-{split}-{num_examples}-{digest}.npz")


def load(path: str, *, rows: bool):
  """Cached FeatureStats (or feature rows [N, D] when `rows`), or None when absent.

  Only when every process finds the file is it used: processes must agree on whether the real
  data is embedded (they run the same collective programs), and hosts without a shared
  filesystem never see the file process 0 wrote.
  """
  found = paths.isfile(path)
  if jax.process_count() > 1:
    found = bool(np.all(multihost_utils.process_allgather(np.int32(found))))
  if not found:
    return None
  source = io.BytesIO(paths.read_bytes(path)) if paths.is_url(path) else path
  if rows:
    with np.load(source) as f:
      return f["rows"]
  return distribution.FeatureStats.load(source)


def save(path: str, value) -> None:
  """Writes `value` (FeatureStats or rows [N, D]) atomically, on process 0 only."""
  if jax.process_index() != 0:
    return
  if paths.is_url(path):
    data = io.BytesIO()
    _write(data, value)
    paths.write_bytes(path, data.getvalue())
    return
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}.npz"
  _write(tmp, value)
  os.replace(tmp, path)


def _write(target, value) -> None:
  """FeatureStats or rows [N, D] as .npz into `target` (a path or a binary file)."""
  if isinstance(value, distribution.FeatureStats):
    value.save(target)
  else:
    np.savez(target, rows=np.asarray(value, np.float64))
