"""Windows of consecutive frames with their body-surface maps, from many synthetic identities.

A person-agnostic model of the body's surface (D²G-Net's UV generator, pre-trained "on frames of a
large corpus of different characters" with DensePose's part and UV maps as targets, Eq. 5) needs
many people in many poses seen from many cameras. The synthetic world is this corpus with exact
maps: clip `i` of a split (`psrjax.data.sources.synthetic_clips.SyntheticClips`, identities held out
by split, each clip its own identity, action, room and camera) gives one example per epoch:

  keypoints [T, 18, 3]            the window's keypoints (pixels, visibility);
  face [T, H, W] int32            face ids (-1 background), for a 3D label drawn through them;
  part [H, W] int32, uv [H, W, 2] the last frame's part (0 background, 1..24) and (u, v) in [0, 1];
  mask [H, W, 1] float32          the last frame's person mask;

T = `frames` consecutive frames (a pose label of frame t reading t - 1 and t - 2: 3) starting at
frame 0 of a `frames`-frame clip seen by one camera, so an example renders only its own frames
(~35 ms at 64 x 64 on one core). Training examples are clips 0, 1, ... of "train" in an order
shuffled with the seed; evaluation examples the first clips of the held-out split.

Close-ups (`zoom`): the synthetic frames show whole bodies, while a prepared real video is often
a close-up of the head and shoulders, whose stick figure a model trained on whole bodies has
never seen. With `zoom=(lo, hi)` every example is cut to a square of `s` times the frame's side,
`s` drawn uniformly from [lo, hi] (per example, from the seed and the clip index; s = 1 is the
whole frame), placed at the top of the person (its highest visible keypoint, a random margin of
up to a tenth of the square above it) and centred on it horizontally (clamped to the frame), and
resized back to the frame's size: the maps by nearest neighbour of pixel centres, the keypoints
with them (pixel centres at integers), a keypoint the square leaves out marked missing (confidence 0), as
a pose estimator reports a joint outside the picture.

Used by D²G-Net (`psrjax.systems.d2gnet`): the pre-training of its UV generator.
"""
from __future__ import annotations

import cv2
import grain
import numpy as np

from psrjax.data.sources import synthetic_clips
from psrjax.data.synthetic.clip import check_positive_int

KEYS = ("keypoints", "face", "part", "uv", "mask")


def source(split: str, *, frames: int, resolution: int, num_clips: int | None = None):
  """The split's clips, one camera each, `frames` frames long."""
  return synthetic_clips.SyntheticClips(split, num_views=1, num_frames=frames,
                                        resolution=resolution, num_clips=num_clips)


def example(src, index: int) -> dict[str, np.ndarray]:
  """Clip `index`'s window (module docstring)."""
  video = src.take(int(index))[0]
  f = src.frames(video, np.arange(src.num_frames), ("face", "part", "uv", "mask"))
  return {"keypoints": np.array(src.keypoints(video), np.float32), "face": f["face"],
          "part": f["part"][-1], "uv": f["uv"][-1].astype(np.float32), "mask": f["mask"][-1]}


def check_zoom(zoom) -> tuple[float, float]:
  lo, hi = (float(z) for z in zoom)
  if not 0.1 <= lo <= hi <= 1.0:
    raise ValueError(f"uv_pretrain.zoom must be (lo, hi) with 0.1 <= lo <= hi <= 1 (fractions of "
                     f"the frame's side); got {tuple(zoom)}")
  return lo, hi


def zoomed(example: dict[str, np.ndarray], scale: float,
           rng: np.random.Generator) -> dict[str, np.ndarray]:
  """`example` cut to a square of `scale` times its side at the top of the person and resized
  back (module docstring)."""
  r = example["mask"].shape[0]
  side = int(round(scale * r))
  if side >= r:
    return example
  kp = example["keypoints"]
  seen = kp[..., 2] > 0
  xy = kp[..., :2][seen] if seen.any() else np.full((1, 2), (r - 1) / 2.0)
  top = float(xy[:, 1].min()) - rng.uniform(0.0, 0.1 * side)
  y0 = int(np.clip(round(top), 0, r - side))
  x0 = int(np.clip(round(float(np.median(xy[:, 0])) - side / 2.0), 0, r - side))
  cut = lambda m: np.stack([cv2.resize(np.ascontiguousarray(f[y0:y0 + side, x0:x0 + side]), (r, r),
                                       interpolation=cv2.INTER_NEAREST_EXACT).reshape((r, r) + f.shape[2:])
                            for f in m]).astype(m.dtype)
  out = {k: cut(example[k]) for k in ("face",)}
  out.update({k: cut(example[k][None])[0] for k in ("part", "uv", "mask")})
  moved = kp.copy()
  moved[..., 0] = (kp[..., 0] - x0 + 0.5) * (r / side) - 0.5
  moved[..., 1] = (kp[..., 1] - y0 + 0.5) * (r / side) - 0.5
  inside = np.all((moved[..., :2] >= -0.5) & (moved[..., :2] <= r - 0.5), axis=-1)
  moved[..., 2] = np.where(inside, kp[..., 2], 0.0)
  out["keypoints"] = moved.astype(np.float32)
  return out


def example_spec(frames: int, resolution: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  r = resolution
  return {"keypoints": ((frames, 18, 3), np.float32), "face": ((frames, r, r), np.int32),
          "part": ((r, r), np.int32), "uv": ((r, r, 2), np.float32),
          "mask": ((r, r, 1), np.float32)}


def dataset(split: str, *, frames: int, resolution: int, num_clips: int, seed: int,
            shard_index: int, shard_count: int, shuffle: bool,
            zoom=(1.0, 1.0)) -> grain.MapDataset:
  """This shard's examples of the split's first `num_clips` clips (shuffled with `seed` when
  `shuffle`; shards take every shard_count-th clip), cut to close-ups by `zoom` (module
  docstring; (1, 1): whole frames)."""
  check_positive_int("frames", frames)
  lo, hi = check_zoom(zoom)
  src = source(split, frames=frames, resolution=resolution, num_clips=num_clips)
  ds = grain.MapDataset.range(len(src))[shard_index::shard_count]
  if shuffle:
    ds = ds.shuffle(seed=seed)
  if hi >= 1.0 and lo >= 1.0:
    return ds.map(lambda i: example(src, int(i)))

  def close_up(i: int):
    rng = np.random.default_rng([seed, i])
    return zoomed(example(src, i), rng.uniform(lo, hi), rng)

  return ds.map(lambda i: close_up(int(i)))
