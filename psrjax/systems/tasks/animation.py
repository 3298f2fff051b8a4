"""The animation task: one network for every person animates a source image with the motion of a
driving video, learned from videos alone (no pose labels). FOMM (`psrjax.systems.fomm`) and
INTERnet (`psrjax.systems.internet`) build on it; `AnimationTask` provides, for a keypoint motion
model (`keypoints`, `animate`):

- Data. Evaluation examples (`psrjax.data.samplers.first_frame.eval_dataset`, INTERnet's Table 2
  self-imitation and FOMM's reconstruction, on held-out identities): the first frame of each
  held-out clip is the source, its last `data.eval_targets` frames the driving frames, and
  "init_rgb", the driving video's first frame, is the source frame itself. The training examples
  are the system's (`train_dataset`, `train_example_spec`, checked by `check_training_data`),
  source and driving frames of one video (`psrjax.data.samplers.same_video` or `first_frame`). A prepared
  dataset (`data.dataset`) is checked for the modalities these read when the system is built.
- Inference (`generate`): the official FOMM animation's relative motion (animate.py
  `normalize_kp` with relative movement and Jacobians, no movement scaling): the driving
  keypoints move the source's by their displacement from the driving video's first frame,
  p = p(D_t) - p(D_1) + p(S), J = J(D_t) J(D_1)^-1 J(S) (`relative_keypoints`), frame by frame.
  With the source and the driving frames from one video and D_1 = S this is reconstruction.
- Evaluation (`evaluate`, per example): L1 (FOMM's reconstruction metric, on [0, 1]
  intensities), SSIM, MS-SSIM (with as many of its five scales as the frame size allows:
  `ms_ssim_weights`), PSNR, LPIPS (AlexNet), E_temp; with >= 3 driving frames INTERnet's
  Interp-PSNR, each frame t of the output predicted from O_{t-1} and O_{t+1} by flow-based
  midpoint interpolation with the ground-truth flows (`psrjax.metrics.interpolation_psnr`; the
  paper's Super SloMo is not available here) and compared with the ground-truth frame I_t
  ("interp_psnr", the paper's "predict each frame I_t") and with O_t itself
  ("interp_psnr_self", the output's own consistency); with `eval.act_recog`, Act-Recog-L1 per
  clip (the packaged Kinetics-400 I3D's pooled Mixed_5c features,
  `psrjax.metrics.action_feature_distance`). FID is the "fid" eval type.
- Samples: source | driving | result (`sample_video`).
- Synthesis: `psrjax synthesize --source IMAGE --driving PATH` animates an image file
  (`source_frame`) with a prepared video (`driving_video`); by default held-out clip
  `--seed` reconstructs itself.

A subclass implements `drive` (the source animated by every driving frame; a keypoint motion
model subclasses `KeypointAnimationTask` and implements `keypoints` and `animate` instead),
`check_training_data`, `train_dataset` and `train_example_spec` (its training examples), and the
protocol's training methods (`stages`, `init`, `optimizers`); it may extend `constants` (the
task's are LPIPS and, with `eval.act_recog`, I3D) and `frame_scores` (the per-frame scores of
its frames and of the copy), set `min_eval_targets`, read more modalities of the evaluation
clips (`eval_reads`) and turn them into the model's inputs (`eval_example`,
`eval_example_spec`), and evaluate on another protocol (`dataset`, `example_spec` and
`held_out_example` for the test split: Liquid Warping GAN's per-person runs).
"""
from __future__ import annotations

import abc
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from psrjax import config_args
from psrjax.data.samplers import first_frame, same_video
from psrjax.data.sources import base as sources
from psrjax.data.sources import predicted_surface
from psrjax.data.sources import still_image
from psrjax.geometry import motion
from psrjax.metrics import perceptual as perceptual_metrics, runs, structural
from psrjax.metrics import temporal as temporal_metrics, video as video_metrics
from psrjax.models import pretrained
from psrjax.nn import population_norm
from psrjax.systems import base
from psrjax.systems.tasks import strips, windows

LPIPS_NET = "alexnet"
POPULATION_PAIRS = 256   # training pairs measured for the batch norms' population statistics
SYNTHESIS_FRAMES = 96   # driving frames of a prepared video in one `synthesis_example`
SYNTHESIS_WINDOW = 16   # driving frames animated per call when a whole video is rendered


def unit(x):
  """[-1, 1] frames -> [0, 1] (the motion models' image range)."""
  return (x + 1.0) * 0.5


def ms_ssim_weights(resolution: int) -> tuple[float, ...]:
  """MS-SSIM's scale weights for `resolution`-pixel frames: the first n of the five that fit
  (each scale halves the frame; the 11-pixel window needs 10 * 2^(n-1) + 1 pixels)."""
  n = len(structural.MS_SSIM_WEIGHTS)
  while n > 1 and 10 * 2 ** (n - 1) + 1 > resolution:
    n -= 1
  return tuple(structural.MS_SSIM_WEIGHTS[:n])


def relative_keypoints(kp_source, kp_driving, kp_initial):
  """The driving keypoints moved onto the source (animate.py `normalize_kp`, relative movement
  and Jacobians): values p(D) - p(D_1) + p(S), Jacobians J(D) J(D_1)^-1 J(S)."""
  value = kp_driving["value"] - kp_initial["value"] + kp_source["value"]
  out = {"value": value}
  if "jacobian" in kp_driving:
    change = motion.matmul2(kp_driving["jacobian"], motion.inverse2(kp_initial["jacobian"]))
    out["jacobian"] = motion.matmul2(change, kp_source["jacobian"])
  return out


class AnimationTask(base.System):
  """A source image animated by a driving video's motion (module docstring)."""

  eval_prediction = "frames"
  eval_target = "tgt_rgb"
  synthesis_options = (
      base.Option("source", str, "", "image file of the person to animate (default: the first "
                  "frame of held-out clip --seed)"),
      base.Option("driving", str, "test", "'test': the frames of held-out clip --seed; or a "
                  "prepared dataset's path: the whole of its video --seed"),
      windows.FRAMES,
  )
  modalities = first_frame.MODALITIES
  # The fewest driving frames of an evaluation clip, and the metric that needs them.
  min_eval_targets: tuple[int, str] = (2, "E_temp")
  # More modalities of the evaluation clips' source and driving frames ("src_<m>", "tgt_<m>").
  eval_reads: tuple[str, ...] = ()

  def __init__(self, config):
    super().__init__(config)
    d = config.data
    self.check_training_data(d)
    least, metric = self.min_eval_targets
    if d.eval_targets < least:
      raise ValueError(f"data.eval_targets must be >= {least} driving frames ({metric}); got "
                       f"{d.eval_targets}")
    same_video.check_lengths(d.num_frames, 1, d.eval_targets)
    if d.get("dataset", ""):
      first_frame.open_dataset(d, type(self).__name__)
    self.eval_data = _with(d, num_sources=1, num_targets=d.eval_targets)

  # ------------------------------------------------------------------- what a system implements
  @abc.abstractmethod
  def check_training_data(self, data: ml_collections.ConfigDict) -> None:
    """Raises a one-line ValueError where `data` does not fit the training examples."""

  @abc.abstractmethod
  def train_dataset(self, *, seed: int, shard_index: int, shard_count: int):
    """The training split's `grain.MapDataset` (`System.dataset`)."""

  @abc.abstractmethod
  def train_example_spec(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{key: (shape, dtype)} of a training example."""

  @abc.abstractmethod
  def drive(self, params, batch) -> jax.Array:
    """[B, L, H, W, 3] in [-1, 1]: the source "src_rgb" [B, 1, H, W, 3] animated by each
    driving frame "tgt_rgb" [B, L, H, W, 3] (relative to "init_rgb", the driving video's first
    frame, where the model moves by relative motion)."""

  def source_frame(self, path: str, **options) -> dict:
    """{"src_rgb" [1, H, W, 3], ...}: the image file `path` as the source frame (its centred
    square at the config's resolution); a subclass whose examples read more of the source
    (`eval_reads`) gives them too, from its `synthesis_options` beyond this task's."""
    del options
    return {"src_rgb": still_image.read_rgb(path, self.config.data.resolution)[None]}

  def driving_data(self, **options) -> ml_collections.ConfigDict:
    """The data config a prepared driving dataset is read with (`--driving DATASET`): the
    config's own; a subclass's `synthesis_options` may change it."""
    del options
    return self.config.data

  def synthesis_input(self, example: dict, *, source: str = "", **options) -> dict:
    """A synthesis example -> the model's inputs: `eval_example`'s, unless a subclass reads
    its `synthesis_options` (or whether `source` is an image file) here."""
    del source, options
    return self.eval_example(example)

  def eval_example(self, example: dict) -> dict:
    """An evaluation or synthesis example (with `eval_reads`) -> the model's inputs."""
    return example

  def eval_example_spec(self, spec: dict) -> dict:
    """{key: (shape, dtype)} of `eval_example`'s output, given the example's `spec`."""
    return spec

  # ------------------------------------------------------------------- constants
  def constants(self):
    """LPIPS's network and, with `eval.act_recog`, the I3D of Act-Recog-L1."""
    out = {"lpips": perceptual_metrics.load_variables(LPIPS_NET)}
    if self.config.eval.get("act_recog", False):
      out["i3d"] = pretrained.load("i3d", self.config.eval.i3d_weights or None,
                                   final_endpoint="Mixed_5c")[1]
    return out

  # ------------------------------------------------------------------- inference
  def generate(self, params, batch):
    """"frames" [B, L, H, W, 3] in [-1, 1]: the source animated by the driving frames
    (`drive`); "source" beside them."""
    frames = jnp.clip(self.drive(params, batch), -1.0, 1.0)
    length = frames.shape[1]
    return {"frames": frames,
            "source": jnp.repeat(batch["src_rgb"][:, :1], length, axis=1)}

  def evaluate(self, params, batch):
    """Per example [B]: l1 (on [0, 1]), ssim, ms_ssim, psnr, m_ssim, lpips, tempe,
    interp_psnr and interp_psnr_self (with >= 3 driving frames), act_recog_l1 (with
    `eval.act_recog`); and the baseline every animation must beat, the source frame copied to
    every driving frame, under `<metric>/copy` (l1, ssim, ms_ssim, m_ssim, lpips, tempe; not
    PSNR, infinite wherever a driving frame equals the source, as still frames of a clip do)."""
    outputs = self.generate(params, batch)
    pred, target = outputs["frames"], batch["tgt_rgb"]
    values = self.frame_scores(params, pred, batch)
    copy = self.frame_scores(params, outputs["source"], batch)
    values.update({f"{name}/copy": value for name, value in copy.items() if name != "psnr"})
    if pred.shape[1] >= 3:
      flows = (batch["tgt_flow_fwd"], batch["tgt_flow_bwd"])
      values["interp_psnr"] = temporal_metrics.interpolation_psnr(pred, *flows, target)
      values["interp_psnr_self"] = temporal_metrics.interpolation_psnr(pred, *flows, pred)
    if "i3d" in params:
      i3d = pretrained.make_module("i3d", final_endpoint="Mixed_5c",
                                   conv_impl=self.config.model.conv_impl)
      values["act_recog_l1"] = video_metrics.action_feature_distance(
          functools.partial(i3d.apply, params["i3d"]), pred, target)
    return values

  def frame_scores(self, params, pred, batch):
    """Per example [B]: l1 (on [0, 1]), ssim, ms_ssim, psnr, m_ssim, lpips, tempe of the frames
    `pred` [B, L, H, W, 3] against the driving frames (of the model's frames and of the copied
    source frame alike; a subclass may add scores)."""
    target = batch["tgt_rgb"]
    values = runs.run_metrics(pred, target, batch["tgt_mask"], flow_bwd=batch["tgt_flow_bwd"],
                              lpips_net=LPIPS_NET, lpips_variables=params["lpips"])
    weights = ms_ssim_weights(pred.shape[2])
    values["ms_ssim"] = jnp.mean(structural.ms_ssim(pred, target, weights=weights), axis=-1)
    values["l1"] = jnp.mean(jnp.abs(pred - target), axis=(1, 2, 3, 4)) * 0.5
    return values

  def sample_video(self, batch, outputs):
    """source | driving | result."""
    return strips.side_by_side([outputs["source"], batch["tgt_rgb"], outputs["frames"]],
                               ["source", "driving", "result"])

  # ------------------------------------------------------------------- data
  def dataset(self, split, *, seed, shard_index, shard_count):
    if split == "train":
      return self.train_dataset(seed=seed, shard_index=shard_index, shard_count=shard_count)
    ds = first_frame.eval_dataset(self.eval_data, split,
                                  num_clips=max(1, self.config.eval.num_examples),
                                  shard_index=shard_index, shard_count=shard_count,
                                  extra=self.eval_reads)
    return ds.map(lambda example: self.eval_example(with_initial(example)))

  def example_spec(self, split):
    if split == "train":
      spec = self.train_example_spec()
    else:
      spec = first_frame.example_spec(self.eval_data, self.eval_data.num_targets)
      spec["init_rgb"] = (spec["src_rgb"][0][1:], np.float32)
      spec = self.eval_example_spec(spec)
    return {k: jax.ShapeDtypeStruct(s, d) for k, (s, d) in spec.items()}

  def synthesis_windows(self, *, seed: int, source: str = "", driving: str = "test",
                        frames: str = "", **source_options):
    """`driving="test"`: held-out clip `seed` (`synthesis_example`). A prepared dataset: its
    video `seed`, frames `frames` ("A:B"; default all) in windows of SYNTHESIS_WINDOW frames,
    animating `source` (an image file; default the range's first frame) with the motion
    relative to that first frame."""
    if driving == "test":
      if frames:
        raise ValueError("--frames selects frames of a driving video: give --driving DATASET too")
      yield self.synthesis_example(seed=seed, source=source, driving=driving, **source_options)
      return
    src, video = _driving_source(driving, self.driving_data(**source_options), seed,
                                 self.eval_reads)
    start, stop = windows.clip_range(frames, video.num_frames)
    first = src.frames(video, np.array([start]), ("rgb",) + self.eval_reads)
    initial = first["rgb"][0]
    head = (self.source_frame(source, **source_options) if source else
            {"src_rgb": first["rgb"], **{f"src_{k}": first[k] for k in self.eval_reads}})
    for numbers, keep in windows.padded_windows(start, stop, SYNTHESIS_WINDOW):
      part = src.frames(video, numbers, ("rgb", "mask", "flow_bwd") + self.eval_reads)
      yield self.synthesis_input({
          **head, "tgt_rgb": part["rgb"], "tgt_mask": part["mask"],
          "tgt_flow_bwd": part["flow_bwd"], "init_rgb": initial,
          **{f"tgt_{k}": part[k] for k in self.eval_reads}, base.KEEP_FRAMES: np.int32(keep)},
          source=source, **source_options)

  def held_out_example(self, seed: int) -> dict:
    """Held-out clip `seed` reconstructing itself: its first frame the source, its last
    `data.eval_targets` frames driving it (with `eval_reads`); a subclass with another
    evaluation protocol gives its own."""
    example = same_video.synthesis_example(self.eval_data, seed=seed, driving_seed=None,
                                           background_seed=None, extra=self.eval_reads)
    return with_initial(example)

  def synthesis_example(self, *, seed: int, source: str = "", driving: str = "test",
                        frames: str = "", **source_options):
    """Held-out clip `seed` (or the prepared dataset's held-out video) animated by its own
    frames, or by the first SYNTHESIS_FRAMES frames of video `seed` of the prepared dataset
    `driving`; `source`: an image file animated instead of the clip's first frame
    (`source_frame`, given `source_options`). (`frames`: `synthesis_windows`' option.)"""
    del frames
    if driving == "test":
      example = self.held_out_example(seed)
    else:
      example = driving_video(driving, self.driving_data(**source_options), seed,
                              self.eval_reads)
    if source:   # an image file in place of the clip's source frame and its modalities
      example = {k: v for k, v in example.items()
                 if k not in {f"src_{m}" for m in self.eval_reads}}
      example.update(self.source_frame(source, **source_options))
    return self.synthesis_input({k: v for k, v in example.items() if not k.startswith("bg_")},
                                source=source, **source_options)


def _with(data, **updates) -> ml_collections.ConfigDict:
  out = ml_collections.ConfigDict(data.to_dict())
  out.update(updates)
  return out


def with_initial(example: dict) -> dict:
  """A reconstruction example: the driving video's first frame is the source frame itself."""
  return {**example, "init_rgb": example["src_rgb"][0]}


def _driving_source(path: str, data, seed: int, reads: tuple[str, ...] = ()):
  """(the prepared dataset at `path` read as the config's `data` reads its own (resolution,
  predicted surface maps), checked for the modalities `reads`, its video `seed` modulo their
  count)."""
  src = predicted_surface.open_prepared(config_args.prepared_dataset(path), data.resolution,
                                        surface_from=data.get("surface_from", ""),
                                        surface_cache=data.get("surface_cache"))
  if reads:
    sources.require(src, reads, what=f"--driving {path}")
  videos = [v for split in ("train", "test") for v in src.videos(split)]
  if not videos:
    raise ValueError(f"--driving {path!r} holds no video; prepare one with `psrjax prepare`")
  return src, videos[int(seed) % len(videos)]


def driving_video(path: str, data, seed: int, reads: tuple[str, ...] = ()) -> dict:
  """Video `seed` (modulo their count) of a prepared dataset as driving frames: its first
  SYNTHESIS_FRAMES frames, the first of them also the source and the motion's reference
  (`reads`: more modalities of them, "src_<m>" and "tgt_<m>")."""
  src, video = _driving_source(path, data, seed, reads)
  frames = np.arange(min(video.num_frames, SYNTHESIS_FRAMES))
  part = src.frames(video, frames, ("rgb", "mask", "flow_bwd") + tuple(reads))
  return {"src_rgb": part["rgb"][:1], "tgt_rgb": part["rgb"], "tgt_mask": part["mask"],
          "tgt_flow_bwd": part["flow_bwd"], "init_rgb": part["rgb"][0],
          **{f"src_{k}": part[k][:1] for k in reads}, **{f"tgt_{k}": part[k] for k in reads}}


class KeypointAnimationTask(AnimationTask):
  """The animation task for a keypoint motion model (FOMM, INTERnet): `drive` moves the source
  by the official FOMM animation's relative motion (module docstring), frame by frame; a
  subclass implements `keypoints` and `animate`."""

  @abc.abstractmethod
  def keypoints(self, params, frames: jax.Array) -> dict[str, jax.Array]:
    """{"value": [B, K, 2] and, with Jacobians, "jacobian": [B, K, 2, 2]} of [0, 1] frames."""

  @abc.abstractmethod
  def animate(self, params, source: jax.Array, kp_source, kp_driving) -> dict[str, jax.Array]:
    """The [0, 1] `source` [B, H, W, 3] moved from `kp_source` to `kp_driving`: "prediction"
    [B, H, W, 3] in [0, 1] and whatever else the model computes."""

  def batch_norm_moments(self, params, pairs: int = POPULATION_PAIRS) -> dict:
    """The batch norms' population statistics over the first `pairs` (source, driving frame)
    training pairs, in the trainer's batches, each driving frame reconstructed with its full
    motion; {} for networks without batch norm."""
    ds = self.dataset("train", seed=0, shard_index=0, shard_count=1)
    if not len(ds):
      raise ValueError("population statistics need training examples; the training split is "
                       "empty (use --batch-norm batch)")
    size = self.config.train.batch_size   # a split smaller than a batch is repeated, as in training
    items = [ds[i % len(ds)] for i in range(max(size, min(pairs, len(ds)) // size * size))]
    batches = [{k: np.stack([e[k] for e in items[i:i + size]]) for k in items[0]}
               for i in range(0, len(items), size)]

    def forward(p, batch):
      batch = self.prepare(batch)
      source, driving = unit(batch["src_rgb"][:, 0]), unit(batch["tgt_rgb"][:, -1])
      self.animate(p, source, self.keypoints(p, source), self.keypoints(p, driving))
    return population_norm.population_moments(forward, batches, params)

  def drive(self, params, batch):
    """The source moved by the driving keypoints' motion relative to "init_rgb"'s."""
    source, initial = unit(batch["src_rgb"][:, 0]), unit(batch["init_rgb"])
    kp_source, kp_initial = self.keypoints(params, source), self.keypoints(params, initial)

    def frame(driving):
      kp = relative_keypoints(kp_source, self.keypoints(params, unit(driving)), kp_initial)
      return self.animate(params, source, kp_source, kp)["prediction"]

    frames = jax.lax.map(frame, jnp.moveaxis(batch["tgt_rgb"], 1, 0))
    return 2.0 * jnp.moveaxis(frames, 0, 1) - 1.0
