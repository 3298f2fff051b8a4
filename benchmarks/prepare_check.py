"""`psrjax prepare` against ground truth: synthetic videos encoded as real ones are, prepared as if
they were real, and the estimated modalities compared with the exact ones.

  python benchmarks/prepare_check.py --out /tmp/prepare_check [--resolution 128 --source 256]

Each video is one synthetic person acting a script before a fixed camera (`ScriptedSequence`)
while drifting sideways back and forth by +-`--travel` metres (the actions happen in place; real
dance videos move about the frame, which is what lets a static camera see the whole background;
`--travel 0` keeps the person in place), rendered at --source pixels and encoded to H.264 at
--crf (lossy, as real footage is). Its exact
keypoints are written as OpenPose COCO-18 JSON files (one per frame, two decimals, as OpenPose
writes them, with a second, smaller person in every frame that the import must ignore). Then
`psrjax prepare` runs on the folder and every modality of the prepared dataset is compared with
the exact one cropped and resized by the same box:

  mask IoU                 estimated (background differencing + keypoint cleanup) vs exact mask
  flow EPE (px)            DIS forward flow vs the exact flow, in output pixels, on the person
                           and on all pixels (and the EPE of a zero flow, for scale)
  background MAE           0..255, on pixels the person leaves at some time / never leaves
  keypoints (px)           imported vs exact, after the crop (OpenPose rounding + the tracking)
  rgb PSNR (dB)            decoded frames vs the exact render (what the encoding lost)

Prints a Markdown table (one row per video and the mean) and writes it to OUT/table.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from psrjax import cli
from psrjax.data import video
from psrjax.data.sources import prepared
from psrjax.data.synthetic import cameras as cams, motion, sequence

SCRIPTS = ((("dance", 40), ("wave", 30), ("squat", 26)),
           (("jumping_jacks", 36), ("turn_around", 30), ("punch", 30)),
           (("walk_in_place", 32), ("arm_circles", 32), ("kick", 32)))


def render(identity: int, script, source: int, seed: int, travel: float) -> dict:
  """The exact modalities of one video; the camera stands back far enough for the drift."""
  cam = cams.camera_ring([20.0 * seed - 20.0], height=source, width=source, distance=3.0 + 2 * travel,
                         fov_y_deg=sequence.DEFAULT_FOV_Y_DEG)
  seq = sequence.ScriptedSequence(identity, script, cameras=cam, seed=seed)
  t = np.arange(len(seq))
  sideways = travel * np.sin(2 * np.pi * t / len(seq))       # one slow sway out and back
  yaw = np.deg2rad(20.0 * seed - 20.0)
  drift = sideways[:, None] * np.array([np.cos(yaw), np.sin(yaw), 0.0])
  seq.motion = motion.Motion(seq.motion.local_rot, seq.motion.root_pos + drift)
  out = seq.render(0, len(seq))
  return {k: v[0] for k, v in out.items() if k in ("rgb", "mask", "keypoints", "flow_fwd",
                                                   "background")}


def write_openpose(folder: str, name: str, keypoints: np.ndarray) -> None:
  """OpenPose COCO-18 JSON per frame, with a half-size decoy person beside the main one."""
  os.makedirs(os.path.join(folder, name))
  for t, kp in enumerate(keypoints):
    decoy = kp.copy()
    decoy[:, :2] = decoy[:, :2] * 0.5 + 2.0
    people = [{"pose_keypoints_2d": np.round(p, 2).reshape(-1).tolist()} for p in (decoy, kp)]
    with open(os.path.join(folder, name, f"{name}_{t:012d}_keypoints.json"), "w") as f:
      json.dump({"version": 1.3, "people": people}, f)


def crop_float(field: np.ndarray, box, resolution: int) -> np.ndarray:
  """[T, H, W, C] float field cropped to the box and area-resized (values unscaled)."""
  import cv2  # pylint: disable=g-import-not-at-top
  x0, y0, size = box
  crop = field[:, y0:y0 + size, x0:x0 + size]
  return np.stack([cv2.resize(c, (resolution, resolution), interpolation=cv2.INTER_AREA)
                   for c in crop])


def compare(exact: dict, got: dict, box, decoded: np.ndarray, r: int) -> dict:
  x0, y0, size = box
  mask = video.crop_masks(exact["mask"], box, r).astype(bool)
  est = got["mask"].astype(bool)
  iou = (mask & est).sum((1, 2)) / np.maximum((mask | est).sum((1, 2)), 1)
  flow = crop_float(exact["flow_fwd"], box, r) * (r / size)
  err = np.linalg.norm(got["flow_fwd"][:-1] - flow[:-1], axis=-1)
  zero = np.linalg.norm(flow[:-1], axis=-1)
  on = mask[:-1]
  bg = video.crop_resize(exact["background"][None], box, r)[0].astype(np.float32)
  bg_err = np.abs(got["background"][0].astype(np.float32) - bg).mean(-1)
  free = ~mask.all(0)
  kp = video.crop_keypoints(exact["keypoints"], box, r)
  seen = kp[..., 2] > 0
  kp_err = np.linalg.norm(got["keypoints"][..., :2] - kp[..., :2], axis=-1)[seen]
  mse = np.mean((decoded.astype(np.float64) - exact["rgb"]) ** 2)
  return {"mask IoU": iou.mean(), "flow EPE person": err[on].mean(), "flow EPE all": err.mean(),
          "zero-flow EPE person": zero[on].mean(), "bg MAE free": bg_err[free].mean(),
          "bg MAE never free": bg_err[~free].mean() if (~free).any() else float("nan"),
          "keypoints px": kp_err.mean(), "rgb PSNR": 10 * np.log10(255 ** 2 / mse)}


def table(rows: dict) -> str:
  keys = list(next(iter(rows.values())))
  lines = ["| video | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
  for name, row in rows.items():
    lines.append(f"| {name} | " + " | ".join(f"{row[k]:.3f}" for k in keys) + " |")
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--out", required=True)
  p.add_argument("--resolution", type=int, default=128)
  p.add_argument("--source", type=int, default=256, help="rendered frame size before encoding")
  p.add_argument("--crf", type=int, default=23)
  p.add_argument("--videos", type=int, default=3)
  p.add_argument("--travel", type=float, default=0.6, help="sideways drift amplitude, metres")
  args = p.parse_args(argv)
  os.makedirs(os.path.join(args.out, "videos")), os.makedirs(os.path.join(args.out, "openpose"))
  exact = {}
  for i in range(args.videos):
    name = f"person{i}"
    exact[name] = render(i + 1, SCRIPTS[i % len(SCRIPTS)], args.source, seed=i,
                         travel=args.travel)
    video.encode_mp4(os.path.join(args.out, "videos", name + ".mp4"), exact[name]["rgb"], 25,
                     crf=args.crf)
    write_openpose(os.path.join(args.out, "openpose"), name, exact[name]["keypoints"])
  ds = os.path.join(args.out, "dataset")
  code = cli.main(["prepare", "--videos", os.path.join(args.out, "videos"), "--keypoints",
                   os.path.join(args.out, "openpose"), "--out", ds,
                   "--resolution", str(args.resolution)])
  if code:
    return code
  videos = prepared.PreparedVideos(ds)
  rows = {}
  for v in videos.videos("train") + videos.videos("test"):
    meta = videos.index["videos"][v.index]
    got = videos.frames(v, np.arange(v.num_frames))
    decoded, _ = video.read_video(os.path.join(args.out, "videos", v.name + ".mp4"))
    rows[v.name] = compare(exact[v.name], got, [int(b) for b in meta["crop_box"]], decoded,
                           args.resolution)
  rows["mean"] = {k: float(np.mean([r[k] for r in rows.values()])) for k in next(iter(rows.values()))}
  text = (f"source {args.source}px, H.264 crf {args.crf}, sideways travel +-{args.travel} m, "
          f"prepared at {args.resolution}px\n\n"
          + table(rows))
  print(text)
  with open(os.path.join(args.out, "table.md"), "w") as f:
    f.write(text + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
