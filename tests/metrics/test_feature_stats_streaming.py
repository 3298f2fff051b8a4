"""Streaming feature statistics equal one big batch (1 or 8 devices, 7 uneven padded batches),
and `FeatureStats.all_gather` merges what separate processes accumulated."""
import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrjax.metrics import distribution

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOUNDS = [0, 5, 21, 22, 40, 64, 90, 103]     # 7 uneven batches of 103 feature rows


def _features(seed=1):
  rng = np.random.RandomState(seed)   # correlated, offset features (as network features are)
  return (rng.normal(size=(103, 16)) @ rng.normal(size=(16, 16)) * 3 + 50).astype(np.float32)


@pytest.mark.parametrize("num_devices", [1, 8])
def test_seven_uneven_batches_equal_one_batch(num_devices):
  features = _features()
  mesh = jax.make_mesh((num_devices,), ("data",), devices=jax.devices()[:num_devices])
  sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  gather = jax.jit(lambda x: x * 1.0, out_shardings=jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec()))   # replicated: an all-gather over the mesh
  stats = distribution.FeatureStats.empty(16)
  for lo, hi in zip(BOUNDS[:-1], BOUNDS[1:]):
    batch = np.tile(features[lo:lo + 1], (32, 1))   # padding repeats a real row, as eval batches do
    batch[:hi - lo] = features[lo:hi]
    out = gather(jax.device_put(jnp.asarray(batch), sharded))
    stats = stats.update(np.asarray(jax.device_get(out)), np.arange(32) < hi - lo)
  whole = distribution.FeatureStats.of(features)
  reference = features.astype(np.float64)
  assert stats.count == whole.count == 103
  mean_err = np.abs(stats.mean - whole.mean).max() / np.abs(whole.mean).max()
  cov_err = np.abs(stats.covariance - whole.covariance).max() / np.abs(whole.covariance).max()
  print(f"{num_devices} device(s): relative error mean {mean_err:.1e}, covariance {cov_err:.1e}")
  assert mean_err <= 1e-6 and cov_err <= 1e-6
  np.testing.assert_allclose(stats.mean, reference.mean(0), rtol=1e-12)
  np.testing.assert_allclose(stats.covariance, np.cov(reference, rowvar=False), rtol=1e-9)


def test_all_gather_in_one_process_is_exact():
  stats = distribution.FeatureStats.of(_features())
  gathered = stats.all_gather()
  assert gathered.count == stats.count
  np.testing.assert_array_equal(gathered.mean, stats.mean)
  np.testing.assert_array_equal(gathered.m2, stats.m2)


WORKER = """
import sys, numpy as np, jax
jax.distributed.initialize(coordinator_address=sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
sys.path.insert(0, sys.argv[4])
from test_feature_stats_streaming import _features, BOUNDS
from psrjax.metrics import distribution
index, features = int(sys.argv[2]), _features()
stats = distribution.FeatureStats.empty(16)
for k, (lo, hi) in enumerate(zip(BOUNDS[:-1], BOUNDS[1:])):   # process 0 reads batches 0, 2, ...
  if k % 2 == index:
    stats = stats.update(features[lo:hi])
merged = stats.all_gather()
np.savez(sys.argv[3], count=merged.count, mean=merged.mean, m2=merged.m2)
jax.distributed.shutdown()
"""


def test_all_gather_across_two_processes(tmp_path):
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=1")
  here = os.path.dirname(os.path.abspath(__file__))
  procs = [subprocess.Popen([sys.executable, "-c", WORKER, f"127.0.0.1:{port}", str(i),
                             str(tmp_path / f"{i}.npz"), here], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in range(2)]
  outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
  assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
  whole = distribution.FeatureStats.of(_features())
  for i in range(2):
    with np.load(tmp_path / f"{i}.npz") as f:
      assert int(f["count"]) == 103
      np.testing.assert_allclose(f["mean"], whole.mean, rtol=1e-12)
      np.testing.assert_allclose(f["m2"], whole.m2, rtol=1e-9, atol=1e-9 * np.abs(whole.m2).max())
