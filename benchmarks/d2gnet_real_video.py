r"""D²G-Net on a prepared video (no part, UV or face maps): how plausible the synthetic-pre-trained
UV generator's part maps are on its frames, before and after the end-to-end fine-tuning, and a
still of the result.

  python benchmarks/d2gnet_real_video.py --dataset DATASET --uv runs/d2gnet_uv2d \
      --workdir runs/d2gnet_real [--steps 1500] [--still still.png]
  python benchmarks/d2gnet_real_video.py --make-synthetic /tmp/dancer --uv runs/d2gnet_uv2d \
      --workdir runs/d2gnet_dancer

`--uv` is G_uv pre-trained with the 2D pose label (`psrjax train --config
configs/d2gnet.py:runlocal,pretrain,label2d`): a prepared video has no face maps for the 3D one.
`--make-synthetic DIR` first makes such a video the way a user would: one synthetic person
dancing, waving, squatting, ... while drifting sideways (benchmarks/prepare_check.py's
rendering), encoded to H.264, its keypoints written as OpenPose JSON, then `psrjax prepare`d
(estimated masks, flow and background plate; the last 15 % held out).

Reported on the held-out frames: "person IoU", the IoU of the UV generator's person
(1 - P_0 > 0.5) with the dataset's estimated person mask, for the pre-trained G_uv alone and
for the fine-tuned run, and the run's SSIM / PSNR / LPIPS. The still (`--still`, default
WORKDIR/still.png): a held-out frame | its estimated mask | the pre-trained G_uv's parts | the
fine-tuned parts | the static texture rendering | the result.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = (("dance", 120), ("wave", 90), ("squat", 90), ("jumping_jacks", 90),
          ("arm_circles", 90), ("punch", 90), ("kick", 90))


def make_synthetic(out: str, resolution: int = 256) -> str:
  """A prepared dataset of one synthetic person's encoded video (module docstring)."""
  from benchmarks import prepare_check  # pylint: disable=g-import-not-at-top
  from psrjax import cli  # pylint: disable=g-import-not-at-top
  from psrjax.data import video  # pylint: disable=g-import-not-at-top
  dataset = os.path.join(out, "dataset")
  if os.path.isdir(dataset):
    return dataset
  os.makedirs(os.path.join(out, "videos"), exist_ok=True)
  os.makedirs(os.path.join(out, "openpose"), exist_ok=True)
  frames = prepare_check.render(5, SCRIPT, 2 * resolution, seed=1, travel=0.6)
  video.encode_mp4(os.path.join(out, "videos", "dancer.mp4"), frames["rgb"], 25, crf=23)
  if not os.path.isdir(os.path.join(out, "openpose", "dancer")):
    prepare_check.write_openpose(os.path.join(out, "openpose"), "dancer", frames["keypoints"])
  code = cli.main(["prepare", "--videos", os.path.join(out, "videos"), "--keypoints",
                   os.path.join(out, "openpose"), "--out", dataset, "--resolution",
                   str(resolution)])
  if code:
    raise SystemExit(code)
  return dataset


def pretrained_person_iou(system, params_uv) -> tuple[float, np.ndarray]:
  """Mean person IoU of the pre-trained G_uv over the held-out runs, and its parts [N, T, H, W]."""
  import jax  # pylint: disable=g-import-not-at-top
  from psrjax.models import d2gnet as networks  # pylint: disable=g-import-not-at-top
  from psrjax.systems.tasks import person_video  # pylint: disable=g-import-not-at-top

  @jax.jit
  def predict(batch):
    label = person_video.fold(system.prepare(batch)["label"])
    _, logits = system.uv_generator.apply({"params": params_uv}, label)
    probs = networks.part_probabilities(logits)
    return probs[..., 0] < 0.5, jax.numpy.argmax(probs, -1)

  ious, parts = [], []
  for batch in system.dataset("test", seed=0, shard_index=0, shard_count=1).batch(4):
    person, part = jax.device_get(predict(batch))
    mask = batch["mask"][..., 0] > 0.5
    person = person.reshape(mask.shape)
    inter, union = (person & mask).sum((-1, -2)), (person | mask).sum((-1, -2))
    ious.append(np.where(union > 0, inter / np.maximum(union, 1), 1.0).reshape(-1))
    parts.append(part.reshape(mask.shape))
  return float(np.concatenate(ious).mean()), np.concatenate(parts)


def still(path: str, system, params, example, pretrained_parts) -> None:
  """The still of the module docstring (the run's first held-out frame)."""
  import imageio.v3 as iio  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from psrjax.systems import base, d2gnet  # pylint: disable=g-import-not-at-top
  from psrjax.systems.tasks import strips  # pylint: disable=g-import-not-at-top
  batch = {k: np.asarray(v)[None] for k, v in example.items()}
  out = jax.device_get(jax.jit(functools.partial(base.generate, system))(params, batch))
  columns = [example["rgb"][0], 2.0 * np.repeat(example["mask"][0], 3, -1) - 1.0,
             d2gnet.PART_COLORS[pretrained_parts], d2gnet.PART_COLORS[out["parts"][0, 0]],
             out["static"][0, 0], out["frames"][0, 0]]
  names = ["frame", "est. mask", "parts (pre-trained)", "parts (fine-tuned)", "static", "result"]
  strip = strips.side_by_side([np.asarray(c)[None] for c in columns], names)[0]
  iio.imwrite(path, strip)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", default="", help="a prepared dataset")
  parser.add_argument("--make-synthetic", default="", help="make one in this folder first")
  parser.add_argument("--uv", required=True, help="G_uv pre-trained with the 2D label")
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--steps", type=int, default=0, help="0: runlocal's")
  parser.add_argument("--still", default="")
  args = parser.parse_args(argv)
  if bool(args.dataset) == bool(args.make_synthetic):
    parser.error("give one of --dataset and --make-synthetic")
  dataset = args.dataset or make_synthetic(args.make_synthetic)
  from psrjax import config_utils  # pylint: disable=g-import-not-at-top
  from psrjax.systems import registry  # pylint: disable=g-import-not-at-top
  from psrjax.train import inference, loop  # pylint: disable=g-import-not-at-top
  config = config_utils.load_config(f"configs/d2gnet.py:runlocal,data={dataset}",
                                    [("init_from", args.uv)])
  if args.steps:
    config.train.steps = args.steps
  system = registry.get_system(config)
  before, parts = pretrained_person_iou(system, system.pretrained_uv())
  system.initial_texture()   # the unwrapping the run starts from (sets texture_observed)
  result = loop.train(config, args.workdir)
  final = result.eval_results
  if final is None:
    with open(os.path.join(args.workdir, "eval", "system", f"{result.step}.json")) as f:
      final = json.load(f)
  trained, params, _ = inference.load_trained(args.workdir, [])
  path = args.still or os.path.join(args.workdir, "still.png")
  still(path, trained, params, trained.synthesis_example(seed=0), parts[0, 0])
  report = {"dataset": dataset, "steps": result.step,
            "person_iou_pretrained": before, "person_iou_finetuned": final["person_iou"],
            **{k: final[k] for k in ("ssim", "psnr", "lpips", "mask_iou", "tempe")},
            "texture_observed": system.texture_observed, "still": path}
  print(json.dumps(report, indent=1))
  with open(os.path.join(args.workdir, "real_video.json"), "w") as f:
    json.dump(report, f)
  return 0


if __name__ == "__main__":
  sys.exit(main())
