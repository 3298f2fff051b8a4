"""Every shipped config's examples are the ones this version's pipelines were checked against:
the digests below are those of the tiny configs' trainer batches (the shuffled, batched train
stream a saved iterator state points into), evaluation examples and synthesis example, as the
pipelines of commit 2e93d74 made them. The same digests come out on AVX-512 and on AVX2 CPUs
(checked under an emulated Haswell CPU). After a deliberate change of a pipeline, print the new
digests with `python tests/data/test_examples_unchanged.py` and say why in the commit.
"""
import hashlib
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train"))
import train_harness  # noqa: E402
from psrjax.train import data as data_lib  # noqa: E402
from psrjax.systems import registry

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
# sha1 (16 hex digits) of: trainer batches 0 and 1; evaluation examples 0..2; synthesis_example(seed=1).
GOLDEN = {
    "psrnet": {"train": ["e75ecbbd0797a32f", "49b993ccc3758f50"],
               "eval": ["359e77e2246a527d", "0ae07357bc75c69b", "b90a2b8b50477c2d"],
               "eval_len": 6, "synthesis": "a898854f1033673f"},
    "mfci": {"train": ["6837a52a3e6e8312", "d399b16842a1c490"],
             "eval": ["ba1583b246bcdf6f", "db98d6ea28bf3c36", "08c9ede24a453eb4"],
             "eval_len": 4, "synthesis": "b32392bd158641a1"},
    "pix2pixhd": {"train": ["cf622570dd8e30fb", "c4a842716fc0f979"],
                  "eval": ["25104eae9199d047", "6a5b7cab32af6fcc"],
                  "eval_len": 2, "synthesis": "6a5b7cab32af6fcc"},
    "pix2pix": {"train": ["cf622570dd8e30fb", "c4a842716fc0f979"],
                "eval": ["25104eae9199d047", "6a5b7cab32af6fcc"],
                "eval_len": 2, "synthesis": "6a5b7cab32af6fcc"},
    "edn": {"train": ["c4276b310f330176", "d3e72901314fe722"],
            "eval": ["25104eae9199d047", "6a5b7cab32af6fcc"],
            "eval_len": 2, "synthesis": "6a5b7cab32af6fcc"},
}


def digest(example) -> str:
  """sha1 of every array's key, dtype, shape and bytes, in key order."""
  h = hashlib.sha1()
  for key in sorted(example):
    a = np.ascontiguousarray(np.asarray(example[key]))
    h.update(f"{key}|{a.dtype}|{a.shape}|".encode())
    h.update(a.tobytes())
  return h.hexdigest()[:16]


def digests(name: str) -> dict:
  config = train_harness.config_with(os.path.join(CONFIGS, f"{name}.py") + ":tiny")
  system = registry.get_system(config)
  batched = data_lib.train_dataset(system, config, local_batch=config.train.batch_size,
                                   shard=(0, 1))
  evaluation = system.dataset(config.eval.split, seed=config.seed, shard_index=0, shard_count=1)
  return {"train": [digest(batched[i]) for i in range(2)],
          "eval": [digest(evaluation[i]) for i in range(min(3, len(evaluation)))],
          "eval_len": len(evaluation), "synthesis": digest(system.synthesis_example(seed=1))}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_tiny_config_examples_are_unchanged(name):
  assert digests(name) == GOLDEN[name]


if __name__ == "__main__":
  print(json.dumps({name: digests(name) for name in sorted(GOLDEN)}, indent=1))
