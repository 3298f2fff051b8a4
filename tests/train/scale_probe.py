"""One process of a multi-process job that builds the train context of each config given and
writes what it saw as JSON (used by test_scale_multiprocess.py).

  python scale_probe.py OUT_DIR SPEC[@key=value;...] ... --coordinator H:P --num-processes N \
      --process-id I

writes OUT_DIR/process<I>.json.

For every spec: the mesh shape, this process's data shard and local batch size, a fingerprint
of its first local train batch, and whether the global batch assembled from it holds, on each
of this process's devices, the rows that device should hold.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from psrjax.train import distributed  # noqa: E402  pylint: disable=g-import-not-at-top


def probe(spec: str) -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  from psrjax import config_utils  # pylint: disable=import-outside-toplevel
  from psrjax.train import context, partitioning  # pylint: disable=import-outside-toplevel
  import test_configs_scale  # pylint: disable=import-outside-toplevel
  path, _, overrides = spec.partition("@")
  pairs = [tuple(kv.split("=", 1)) for kv in overrides.split(";") if kv]
  config = test_configs_scale.small(config_utils.load_config(path, pairs))
  ctx = context.build_context(config, None)
  index, count = partitioning.data_shard(ctx.mesh)
  local = {k: np.asarray(v) for k, v in ctx.first_batch.items()}
  rows = next(iter(local.values())).shape[0]
  assembled = ctx.global_batch(local)
  placed = True
  for key, array in assembled.items():
    for shard in array.addressable_shards:
      start = (shard.index[0].start or 0) - index * rows
      want = local[key][start:start + shard.data.shape[0]]
      placed &= bool(np.array_equal(np.asarray(shard.data), want))
  return {"mesh": dict(ctx.mesh.shape), "shard": [index, count], "local_batch": rows,
          "global_batch": int(next(iter(assembled.values())).shape[0]),
          "fingerprint": fingerprint(local), "placed": placed,
          "eval_batch": ctx.eval_data.batch_size, "process": jax.process_index()}


def fingerprint(batch) -> list[float]:
  """Per-row sums of every float array of a batch (identifies the examples read)."""
  floats = [np.asarray(v, np.float64).reshape(len(v), -1).sum(1)
            for _, v in sorted(batch.items()) if np.asarray(v).dtype.kind == "f"]
  return [float(x) for x in np.sum(floats, axis=0)]


def main(argv) -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("out")
  parser.add_argument("specs", nargs="+")
  distributed.add_arguments(parser)
  args = parser.parse_args(argv)
  distributed.initialize(distributed.resolve(coordinator=args.coordinator,
                                             num_processes=args.num_processes,
                                             process_id=args.process_id))
  results = {spec: probe(spec) for spec in args.specs}
  with open(os.path.join(args.out, f"process{args.process_id}.json"), "w",
            encoding="utf-8") as f:
    json.dump(results, f)


if __name__ == "__main__":
  main(sys.argv[1:])
