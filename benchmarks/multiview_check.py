r"""`psrjax prepare multiview` against ground truth, then PSR-Net trained on what it wrote.

  python benchmarks/multiview_check.py --out runs/multiview_check \
      [--width 540 --height 960 --frames 120 --resolution 128 --steps 240]

A synthetic person acting a script is filmed by four calibrated portrait cameras around it
(`psrjax.data.synthetic.recording.Recording`: 1080x1920 scaled down to --width x --height, a lens
with barrel distortion k1 = --distortion), encoded to H.264 and written as a Pose2Sim project:
calibration.toml, videos/cam0N.mp4 and pose/cam0N_json/ with OpenPose COCO-18 detections
carrying --noise pixels of Gaussian noise (at --height; scaled with it), left/right swaps on
--swap-rate of the frames of two cameras and a decoy person. `psrjax prepare multiview` runs on
it; printed are the reprojection report (per camera and per joint, pixels of the videos) and,
per camera, the fitted body's maps against the exact ones rendered in the dataset's cameras
(`recording.agreement`: silhouette IoU, part and face within 1 pixel, exact face ids, depth)
and the estimated person masks' IoU.
Then `configs/psrnet.py:runlocal,data=DATASET` trains for --steps (0: skip) and its held-out
evaluation (the recording's last 15 %, every view pair) is printed layer by layer beside the
baselines "copy the input view" and "texture transfer x̂⁰". Everything goes to OUT/report.md.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
sys.path.insert(0, REPO)
import results_table  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax import cli  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.data.sources import multiview  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.data.synthetic.recording import Recording, agreement  # noqa: E402
from psrjax.geometry.calibration import Camera  # noqa: E402  pylint: disable=g-import-not-at-top

ROWS = [("copy", "copy the input view"), ("texture", "texture transfer x̂⁰"), ("layer1", "layer 1"),
        ("layer2", "layer 2"), ("layer3", "layer 3 (final)")]
COLUMNS = [("ssim", "SSIM"), ("m_ssim", "M-SSIM"), ("psnr", "PSNR"), ("m_psnr", "M-PSNR")]


def timed(args, phase: str, done: bool, run) -> float:
  """Wall seconds of `run()`, kept in OUT/timings.json, so that a rerun that skips a finished
  phase (`done`) still reports its time."""
  path = os.path.join(args.out, "timings.json")
  timings = json.load(open(path, encoding="utf-8")) if os.path.isfile(path) else {}
  if not done or phase not in timings:
    start = time.time()
    run()
    timings[phase] = time.time() - start
    with open(path, "w", encoding="utf-8") as f:
      json.dump(timings, f)
  return timings[phase]


def write_recording(args) -> tuple[Recording, str, float]:
  rec = Recording(args.seed, num_views=4, num_frames=args.frames, width=args.width,
                  height=args.height, distortion=args.distortion)
  root = os.path.join(args.out, "recording")
  seconds = timed(args, "render", os.path.isfile(os.path.join(root, "calibration.toml")),
                  lambda: rec.write(root, noise_px=args.noise * args.height / 1920,
                                    swap_rate=args.swap_rate))
  return rec, root, seconds


def prepare(args, root: str) -> tuple[str, float]:
  dataset = os.path.join(args.out, "dataset")

  def run():
    code = cli.main(["prepare", "multiview", "--videos",
                     *sorted(glob.glob(os.path.join(root, "videos", "*.mp4"))), "--calibration",
                     os.path.join(root, "calibration.toml"), "--keypoints", root, "--out",
                     dataset, "--resolution", str(args.resolution)])
    if code:
      raise SystemExit(code)
  return dataset, timed(args, "prepare", os.path.isdir(dataset), run)


def reprojection_tables(report: dict) -> str:
  row = lambda name, s: f"| {name} | {s['median']:.2f} | {s['p90']:.2f} | {s['count']} |"
  head = ["| {} | median (px) | p90 (px) | detections |", "|---|---|---|---|"]
  cams = [head[0].format("camera"), head[1]] + [row(n, s) for n, s in report["per_camera"].items()]
  cams.append(row("**all**", report["overall"]))
  joints = [head[0].format("joint"), head[1]] + [row(n, s) for n, s in report["per_joint"].items()
                                                 if s["count"]]
  return "\n".join(cams) + "\n\n" + "\n".join(joints)


def agreement_table(rec: Recording, dataset: str) -> str:
  data = multiview.MultiViewVideos(dataset)
  rows, keys = [], None
  for v, camera in enumerate(rec.names):
    videos = [t["videos"][v] for t in data.index["takes"]]
    cams = [data.index["videos"][i]["camera"] for i in videos]
    got = [data.frames(i, np.arange(data.index["videos"][i]["num_frames"])) for i in videos]
    keys = ("face", "part", "depth", "mask")
    got = {k: np.concatenate([g[k] for g in got]) for k in keys}
    c = cams[0]
    truth = rec.truth([Camera(c["name"], c["size"], c["K"], [], c["R"], c["t"])])
    scores = agreement(got, {k: truth[k][0] for k in keys})
    keys = list(scores)
    rows.append(f"| {camera} | " + " | ".join(f"{scores[k]:.3f}" for k in keys) + " |")
  return "\n".join([f"| camera | {' | '.join(keys)} |", "|---" * (len(keys) + 1) + "|", *rows])


def train(args, dataset: str) -> str:
  from psrjax import config_utils  # pylint: disable=g-import-not-at-top
  from psrjax.train import loop  # pylint: disable=g-import-not-at-top
  spec = f"configs/psrnet.py:runlocal,data={dataset}"
  config = config_utils.load_config(os.path.join(REPO, spec), [("train.steps", str(args.steps))])
  workdir = os.path.join(args.out, f"psrnet{args.steps}")
  seconds = timed(args, f"train{args.steps}", os.path.isfile(
      os.path.join(workdir, "eval", "system", f"{args.steps}.json")),
                  lambda: loop.train(config, workdir))
  results = results_table.final_results(config, workdir, args.steps)
  return (f"Config `{spec}` --config.train.steps={args.steps}, trained and evaluated in "
          f"{seconds:.0f} s wall, {int(results['num_examples'])} held-out examples\n\n"
          + results_table.table(results, ROWS, COLUMNS))


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--out", required=True)
  p.add_argument("--width", type=int, default=540)
  p.add_argument("--height", type=int, default=960)
  p.add_argument("--frames", type=int, default=120)
  p.add_argument("--resolution", type=int, default=128)
  p.add_argument("--distortion", type=float, default=-0.05, help="k1 of the lenses")
  p.add_argument("--noise", type=float, default=6.0, help="detection noise, pixels at 1920 high")
  p.add_argument("--swap-rate", type=float, default=0.1)
  p.add_argument("--seed", type=int, default=7)
  p.add_argument("--steps", type=int, default=240, help="PSR-Net steps (0: no training)")
  args = p.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  rec, root, rendered = write_recording(args)
  dataset, prepared = prepare(args, root)
  index = multiview.read_index(dataset)
  report = [f"Machine: {results_table.machine()}\n",
            f"Command: `{' '.join(shlex.quote(a) for a in ['python', *sys.argv])}`\n",
            f"{len(rec.names)} cameras of {args.width}x{args.height}, {args.frames} frames; render "
            f"and encode {rendered:.0f} s, prepare {prepared:.0f} s (crops of {args.resolution} px)\n",
            reprojection_tables(index["recordings"][0]["reprojection"]) + "\n",
            "Fitted body against the truth (every frame):\n\n" + agreement_table(rec, dataset) + "\n"]
  if args.steps:
    report.append(train(args, dataset) + "\n")
  text = "\n".join(report)
  print(text)
  with open(os.path.join(args.out, "report.md"), "w", encoding="utf-8") as f:
    f.write(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
