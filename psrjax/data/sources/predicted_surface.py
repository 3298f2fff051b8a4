"""Body surface maps of a prepared video predicted from its keypoints by D²G-Net's pre-trained UV
generator: the maps Liquid Warping GAN's body conditions read, on a video `psrjax prepare` made
from one camera, where no body fit gives them.

`data.surface_from=WORKDIR` names the workdir of a G_uv pre-training with the 2D pose label
(`psrjax train --config configs/d2gnet.py:runlocal,pretrain,label2d`: trained on the synthetic
world's identities, whose exact part and UV maps it learns to predict from the stick figure of
frames t, t-1 and t-2). Every frame of the dataset is labelled from its keypoints and the two
frames' before it in its video (a video's first frames repeat its first), at the resolution G_uv
was trained at, and G_uv's outputs become the maps as D²G-Net's own texture initialisation reads
them (`maps_from_outputs`): per pixel the most probable of the 24
DensePose parts where the dataset's person mask is set, the background elsewhere, and that part's
(u, v). The source then also holds, marked estimated:

  part int32 [n, H, W]       0 off the body, 1..24;
  uv float32 [n, H, W, 2]    [0, 1] within the part, 0 off the body;
  face int32 [n, H, W]       part - 1 (-1 off the body): the prediction has no finer cell than a
                             part, so each part is one chart of
                             `psrjax.geometry.liquid_warp.correspondence` (`CHARTS`).

What that departs from (Liquid Warping GAN fits an SMPL mesh with HMR; D²G-Net's paper a
DensePose estimate): the silhouette is the person mask's, but the body inside it is what G_uv
learnt of the synthetic bodies for that pose -- the layout of parts and coordinates follows the
keypoints, not the person's clothes or build -- and a joint the estimator missed (confidence 0)
is not drawn in the label.

The maps are computed once per (dataset, checkpoint step, resolution) in the process that opens
the source and kept in `data.surface_cache` (default ~/.cache/psrjax/surface; "" keeps them in
memory) as a folder written whole (`<key>.partial`, renamed when complete), which later runs and
data workers read memory-mapped.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import Sequence

import ml_collections
import numpy as np

from psrjax import paths
from psrjax.data.sources import base as sources

SURFACE = ("face", "part", "uv")
CHARTS = "part"     # `body_transfer.conditions(charts=...)`: each part one chart
DEFAULT_CACHE = "~/.cache/psrjax/surface"
_VERSION = 1        # of the maps' computation: part of the cache key
_BATCH = 16         # frames per G_uv call


class UVPredictor:
  """D²G-Net's pre-trained G_uv of a `configs/d2gnet.py:...,pretrain,label2d` workdir: `maps`
  turns frames' keypoints and person masks into part / UV maps (module docstring). The label is
  D²G-Net's 2D one (`psrjax.systems.d2gnet`, `pose.surface` off): per frame the colour stick
  figure in [-1, 1], frames t, t-1, ..., t-`pose.history` on channels."""

  def __init__(self, workdir: str):
    import jax  # pylint: disable=g-import-not-at-top  # JAX only where maps are computed
    from psrjax import checkpoint_params  # pylint: disable=g-import-not-at-top
    from psrjax.models import d2gnet as networks  # pylint: disable=g-import-not-at-top
    self.workdir = paths.resolve(workdir)
    config = _workdir_config(workdir)
    if config.get("system") != "d2gnet" or not config.uv_pretrain.enabled:
      raise ValueError(f"data.surface_from={workdir!r} is a {config.get('system')!r} run, not "
                       "D²G-Net's UV pre-training: train one with `psrjax train --config "
                       "configs/d2gnet.py:runlocal,pretrain,label2d`")
    if config.pose.surface:
      raise ValueError(f"the UV generator at {workdir!r} reads the 3D label (pose.surface), "
                       "which a prepared video cannot draw (no face maps): pre-train it with "
                       "configs/d2gnet.py:...,pretrain,label2d")
    m, self.pose = config.model, config.pose
    self.history = int(config.pose.history)
    self.resolution = int(config.data.resolution)
    generator = networks.UVGenerator(ngf=m.uv_ngf, n_downsample=m.uv_n_downsample,
                                     n_blocks=m.uv_n_blocks, conv_impl=m.conv_impl)
    r, channels = self.resolution, 3 * (self.history + 1)
    target = jax.eval_shape(lambda x: generator.init(jax.random.key(0), x)["params"],
                            jax.ShapeDtypeStruct((1, r, r, channels), np.float32))
    params = checkpoint_params.restore_params(self.workdir, {"uv": target})["uv"]
    self._apply = jax.jit(lambda label: generator.apply({"params": params}, label))

  def label(self, windows: np.ndarray):
    """[B, H, W, 3 (history + 1)]: the label of the last frame of each window of keypoints
    [B, history + 1, 18, 3], that frame's figure first."""
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    from psrjax.geometry import pose_render  # pylint: disable=g-import-not-at-top
    r = self.resolution
    figures = 2.0 * pose_render.stick_figure(jnp.asarray(windows, jnp.float32), r, r,
                                             joint_radius=self.pose.radius,
                                             stick_width=self.pose.width) - 1.0
    return jnp.concatenate([figures[:, -1 - k] for k in range(self.history + 1)], axis=-1)

  def maps(self, keypoints: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(part [n, H, W], uv [n, H, W, 2]) of the n consecutive frames of one video (keypoints
    [n, 18, 3] and mask [n, H, W, 1] at `resolution`)."""
    n, history = len(keypoints), self.history
    windows = np.maximum(np.arange(n)[:, None] + np.arange(-history, 1)[None], 0)
    parts, uvs = [], []
    for start in range(0, n, _BATCH):
      rows = windows[start:start + _BATCH]
      coords, logits = self._apply(self.label(np.asarray(keypoints, np.float32)[rows]))
      part, uv = maps_from_outputs(coords, logits, mask[start:start + _BATCH])
      parts.append(part)
      uvs.append(uv)
    return np.concatenate(parts), np.concatenate(uvs)


def maps_from_outputs(coords, logits, mask) -> tuple[np.ndarray, np.ndarray]:
  """(part int32 [F, H, W], uv float32 [F, H, W, 2]) of G_uv's outputs (coords [F, H, W, 24, 2]
  in [-1, 1], logits [F, H, W, 25]) inside a person mask [F, H, W, 1]: the most probable part
  where the mask is set (0, the background, elsewhere) and that part's (u, v) in [0, 1] (0 on
  the background, as the batch contract's maps)."""
  part = np.asarray(np.argmax(np.asarray(logits), axis=-1)).astype(np.int32)
  part = np.where(np.asarray(mask)[..., 0] > 0.5, part, 0)
  chosen = np.take_along_axis(np.asarray(coords, np.float32),
                              np.maximum(part - 1, 0)[..., None, None], axis=-2)[..., 0, :]
  uv = np.clip((chosen + 1.0) / 2.0, 0.0, 1.0)
  return part, np.where(part[..., None] > 0, uv, 0.0).astype(np.float32)


def image_maps(workdir: str, keypoints: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
  """{"face", "part" int32 [1, H, W], "uv" float32 [1, H, W, 2]}: the maps `workdir`'s G_uv
  predicts for one still frame (keypoints [18, 3] and mask [H, W, 1] at its H x W), labelled
  as a video's first frame is (the frame standing for the ones before it), at G_uv's
  resolution and resized back by nearest neighbour."""
  predictor = UVPredictor(workdir)
  size, r = mask.shape[0], predictor.resolution
  kp = sources.resize_keypoints(np.asarray(keypoints, np.float32)[None], r / size)
  part, uv = predictor.maps(kp, sources.resize_frames(np.asarray(mask, np.float32)[None],
                                                      "mask", r))
  part = sources.resize_frames(part, "part", size)
  return {"part": part, "face": np.where(part > 0, part - 1, -1).astype(np.int32),
          "uv": sources.resize_frames(uv, "uv", size)}


def _latest_step(workdir: str) -> int:
  from psrjax import checkpoint_params  # pylint: disable=g-import-not-at-top
  root, step = checkpoint_params.checkpoint_root(workdir)
  if step is None:
    steps = [int(n) for n in paths.listdir(root) if n.isdigit()]
    if not steps:
      raise ValueError(f"data.surface_from={workdir!r} holds no checkpoint")
    step = max(steps)
  return step


def _cache_key(source, workdir: str) -> str:
  """The maps' identity: the dataset's videos, the checkpoint (workdir, step), the resolution."""
  workdir = paths.resolve(workdir)
  videos = [(v.name, v.split, v.num_frames, v.offset) for v in source.all_videos()]
  text = json.dumps([_VERSION, sources.describe(source), videos, workdir, _latest_step(workdir),
                     source.resolution, getattr(source, "cache_token", "")])
  return hashlib.sha256(text.encode()).hexdigest()[:24]


def _compute(source, predictor: UVPredictor) -> dict[str, np.ndarray]:
  """{"part" int8 [F, H, W], "uv" float16 [F, H, W, 2]} of every frame of `source` (its
  videos' frames at their offsets)."""
  videos = source.all_videos()
  total = max((v.offset + v.num_frames for v in videos), default=0)
  r = source.resolution
  part = np.zeros((total, r, r), np.int8)
  uv = np.zeros((total, r, r, 2), np.float16)
  for video in videos:
    frames = np.arange(video.num_frames)
    mask = source.frames(video, frames, ("mask",))["mask"]
    p, u = predictor.maps(source.keypoints(video), mask)
    part[video.offset:video.offset + video.num_frames] = p
    uv[video.offset:video.offset + video.num_frames] = u
  return {"part": part, "uv": uv}


# Maps computed in this process, by cache key (with no cache folder, each is computed once).
_COMPUTED: dict[str, dict[str, np.ndarray]] = {}


def _cached(source, workdir: str, cache_dir: str) -> dict[str, np.ndarray]:
  """The maps, from `cache_dir` when it holds them, else computed (and kept there)."""
  key = _cache_key(source, workdir)
  if not cache_dir:
    if key not in _COMPUTED:
      _COMPUTED[key] = _compute(source, UVPredictor(workdir))
    return _COMPUTED[key]
  folder = os.path.join(os.path.abspath(os.path.expanduser(cache_dir)), key)
  if not os.path.isdir(folder):
    maps = _compute(source, UVPredictor(workdir))
    partial = f"{folder}.partial.{os.getpid()}"
    os.makedirs(partial, exist_ok=True)
    for name, value in maps.items():
      np.save(os.path.join(partial, f"{name}.npy"), value)
    try:
      os.replace(partial, folder)
    except OSError:   # another process finished first: its maps are the same
      shutil.rmtree(partial, ignore_errors=True)
  return {k: np.load(os.path.join(folder, f"{k}.npy"), mmap_mode="r") for k in ("part", "uv")}


class PredictedSurface:
  """`source` (a prepared dataset, or the synthetic person in place of its exact maps) with
  "face", "part" and "uv" predicted by the UV generator of
  `workdir` (module docstring), at the generator's resolution. Picklable: the maps are reopened
  from `cache_dir` (or computed again) in another process."""

  def __init__(self, source, workdir: str, cache_dir: str = DEFAULT_CACHE):
    self.source, self.workdir, self.cache_dir = source, workdir, cache_dir
    self.resolution = source.resolution
    self.modalities = {**source.modalities, **{k: sources.ESTIMATED for k in SURFACE}}
    self.group_names = source.group_names
    self.description = f"{sources.describe(source)} with surface maps predicted by {workdir}"
    self._maps = None
    self._load()

  def _load(self):
    if self._maps is None:
      self._maps = _cached(self.source, self.workdir, self.cache_dir)
    return self._maps

  def __getstate__(self):
    state = dict(self.__dict__)
    if self.cache_dir:
      state["_maps"] = None
    return state

  def __getattr__(self, name):   # videos, all_videos, ... of the wrapped source
    if name in ("source", "_maps"):
      raise AttributeError(name)
    return getattr(self.source, name)

  def keypoints(self, video: sources.VideoInfo) -> np.ndarray:
    return self.source.keypoints(video)

  def frames(self, video: sources.VideoInfo, indices, keys: Sequence[str]) -> dict[str, np.ndarray]:
    out = self.source.frames(video, indices, [k for k in keys if k not in SURFACE])
    wanted = [k for k in keys if k in SURFACE]
    if wanted:
      maps = self._load()
      rows = video.offset + np.asarray(indices, np.int64)
      part = np.asarray(maps["part"][rows], np.int32)
      got = {"part": part, "face": np.where(part > 0, part - 1, -1).astype(np.int32),
             "uv": np.asarray(maps["uv"][rows], np.float32)}
      out.update({k: got[k] for k in wanted})
    return sources.checked(self, video, out)


def open_predicted(path: str, resolution: int, workdir: str, cache_dir: str = DEFAULT_CACHE):
  """The prepared dataset `path` with maps predicted by `workdir`'s G_uv at its resolution, the
  whole read at `resolution` (surface maps resized by nearest neighbour)."""
  return with_predicted(sources.PreparedSource(path), resolution, workdir, cache_dir)


def with_predicted(source, resolution: int, workdir: str, cache_dir: str | None = None):
  """Any video source with keypoints and person masks (a prepared dataset, the synthetic
  person) with maps predicted by `workdir`'s G_uv at its resolution in place of its own, the
  whole read at `resolution`."""
  predictor_resolution = int(_workdir_resolution(workdir))
  src = sources.at_resolution(source, predictor_resolution)
  cache = DEFAULT_CACHE if cache_dir is None else cache_dir
  return sources.at_resolution(PredictedSurface(src, workdir, cache), resolution)


def _workdir_config(workdir: str) -> ml_collections.ConfigDict:
  """The config `psrjax train` saved in `workdir` (its config.json)."""
  path = paths.join(paths.resolve(workdir), "config.json")
  if not paths.isfile(path):
    raise ValueError(f"data.surface_from={workdir!r} holds no config.json: give the workdir of "
                     "`psrjax train --config configs/d2gnet.py:runlocal,pretrain,label2d`")
  return ml_collections.ConfigDict(json.loads(paths.read_text(path)))


def _workdir_resolution(workdir: str) -> int:
  return int(_workdir_config(workdir).data.resolution)


def open_prepared(path: str, resolution: int, *, surface_from: str = "",
                  surface_cache: str | None = None):
  """The prepared dataset `path` as a source at `resolution` (`sources.open_prepared`), with
  `surface_from`'s G_uv predicting its surface maps where given (kept in `surface_cache`, None
  for DEFAULT_CACHE)."""
  if not surface_from:
    return sources.open_prepared(path, resolution)
  cache = DEFAULT_CACHE if surface_cache is None else surface_cache
  return open_predicted(path, resolution, surface_from, cache)


def open_data(data):
  """The prepared dataset `data.dataset` at `data.resolution`, with surface maps predicted by
  `data.surface_from`'s G_uv where the config names one (`open_prepared`)."""
  return open_prepared(data.dataset, data.resolution, surface_from=data.get("surface_from", ""),
                       surface_cache=data.get("surface_cache"))
