r"""Background oracles for PSR-Net's evaluation on the synthetic world's fixed rooms.

  python benchmarks/psrnet_background.py [--config configs/psrnet.py:runlocal] [--train-clips 340]

PSR-Net's Table 3 gain from layer 1 to layers 2 and 3 is in the background ("correcting the
lighting of the room"; M-SSIM falls slightly while SSIM rises). With `data.rooms=N` fixed setups
a generator can learn each room as each camera sees it, and these oracles say how much of the
background it has learnt. Each is a frame painted over the whole target view, scored on the
background alone (`b_ssim`, `b_psnr`: M-SSIM's and M-PSNR's convention on the complement of the
target mask, as `PSRNet.evaluate` scores every layer) over the same held-out examples:

- `bg_all`: the mean empty room over `--train-clips` training clips of every setup, for the
  target camera index j (a generator that knows the rig's perspective but not which room it is);
- `bg_room`: the mean empty room over the training clips of the true setup, camera j (it knows
  the room; the rig's per-clip jitter, `cameras.SETUP_JITTER`, is averaged out).

The clip's own empty room would score exactly (the world renders no shadows): not a row.

`benchmarks/psrnet_ablation.py` prints them as rows of Table 3.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from psrjax import config_utils  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.data import synthetic  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.data.samplers import view_pairs  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.data.sources import base as sources  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.metrics import runs  # noqa: E402  pylint: disable=g-import-not-at-top

ORACLES = {"bg_all": "mean empty room of all setups (camera j)",
           "bg_room": "mean empty room of the true setup (camera j)"}
METRICS = ("b_ssim", "b_psnr")


def _background(data, seed: int) -> np.ndarray:
  """float32 [V, H, W, 3] in [-1, 1]: clip `seed`'s empty room."""
  return sources.to_unit(synthetic.render_background(
      seed, num_views=data.num_views, num_frames=data.num_frames, resolution=data.resolution,
      rooms=data.rooms))


def room_means(data, train_clips: int) -> tuple[np.ndarray, dict[int, np.ndarray]]:
  """(mean over the first `train_clips` training clips [V, H, W, 3], {setup: the mean over
  those of its clips}), empty rooms in [-1, 1]."""
  by_setup = collections.defaultdict(list)
  for index in range(train_clips):
    seed = synthetic.split_seed("train", index)
    by_setup[synthetic.clip.clip_setup(seed, data.rooms)].append(_background(data, seed))
  every = np.concatenate([np.stack(v) for v in by_setup.values()])
  return every.mean(0), {s: np.mean(v, axis=0) for s, v in by_setup.items()}


def check_data(data) -> None:
  if data.get("dataset", "") or data.get("rooms", 0) < 1:
    raise ValueError("background oracles need the synthetic world with fixed rooms "
                     f"(data.rooms >= 1, no data.dataset); got rooms={data.get('rooms', 0)}, "
                     f"dataset={data.get('dataset', '')!r}")


def oracle_scores(config, train_clips: int = 340) -> dict[str, dict[str, float]]:
  """{oracle: {"b_ssim", "b_psnr"}} over the config's evaluation examples (`eval.split`, the
  first `eval.num_examples` view pairs, clip-major as `PSRNet.dataset` serves them)."""
  data = config.data
  check_data(data)
  every, per_setup = room_means(data, train_clips)
  num_pairs = len(view_pairs.pairs(data.num_views))
  num_clips = max(1, -(-config.eval.num_examples // num_pairs))
  preds = {name: [] for name in ORACLES}
  targets, masks = [], []
  for clip_index in range(num_clips):
    seed = synthetic.split_seed(config.eval.split, clip_index)
    clip = synthetic.render_clip(seed, num_views=data.num_views, num_frames=data.num_frames,
                                 resolution=data.resolution, rooms=data.rooms)
    room = per_setup.get(synthetic.clip.clip_setup(seed, data.rooms), every)
    for _, j in view_pairs.pairs(data.num_views):
      targets.append(sources.to_unit(clip["rgb"][j]))
      masks.append(clip["mask"][j].astype(np.float32)[..., None])
      for name, image in (("bg_all", every[j]), ("bg_room", room[j])):
        preds[name].append(np.broadcast_to(image, targets[-1].shape))
  n = config.eval.num_examples
  target, mask = np.stack(targets)[:n], np.stack(masks)[:n]
  out = {}
  for name, pred in preds.items():
    values = runs.run_metrics(np.stack(pred)[:n], target, mask, background=True)
    out[name] = {m: float(np.mean(values[m])) for m in METRICS}
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", default="configs/psrnet.py:runlocal")
  parser.add_argument("--train-clips", type=int, default=340,
                      help="training clips averaged into the mean rooms (~20 per setup of 17)")
  args = parser.parse_args(argv)
  scores = oracle_scores(config_utils.load_config(args.config), args.train_clips)
  print(json.dumps(scores, indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(main())
