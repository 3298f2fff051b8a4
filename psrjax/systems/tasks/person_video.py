"""The per-person video task: one person learnt from one video, rendered in new poses.

pix2pixHD and pix2pix (`psrjax.systems.pix2pixhd`), Everybody Dance Now (`edn`), the CoCosNet
video pose transfer (`cocovid`) and D²G-Net (`d2gnet`) build on `PersonVideoTask`, which owns
what they share and nothing any one paper adds:

- data: windows of consecutive frames of the person's training video(s), held-out runs of
  consecutive frames for evaluation, and driving runs of another person for synthesis
  (`psrjax.data.samplers.per_person`, over any video source: the synthetic world or a prepared video);
- the pose label image the generators read (`pose.label`: OpenPose's stick figure, joint
  discs and limb lines, or CoCosNet's 20 channels; added by `prepare` as "label");
- the run metrics on held-out runs: SSIM, PSNR, masked SSIM, LPIPS, E_temp and the IoU of the
  synthesized person (the pixels that differ from the empty room) with the true mask, grouped
  by seen / novel actions (`evaluate`);
- Everybody Dance Now's global pose normalisation of a driving person onto the learned one
  (`normalizer`) and the driven synthesis (`synthesis_example`, `psrjax synthesize --driving`);
- the pix2pixHD networks every one of these papers starts from (`make_generator`,
  `make_discriminator`) and pix2pixHD's VGG and L1 reconstruction terms (`reconstruction`).

A subclass declares its networks and schedule (`init`, `optimizers`, `stages`, `generate`) and
overrides what its paper changes (its own label in `prepare`, extra metrics in `evaluate`,
extra columns in `sample_columns`, extra source reads in `data_reads`).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from psrjax.baselines import retrieval
from psrjax.data.samplers import per_person
from psrjax.data.sources import base as sources
from psrjax.geometry import pose_normalize, pose_render, skeleton
from psrjax.losses import perceptual as perceptual_losses
from psrjax.losses import reconstruction as reconstruction_losses
from psrjax.metrics import perceptual as perceptual_metrics
from psrjax.models import pix2pixhd as networks
from psrjax.models import pretrained
from psrjax.systems import base
from psrjax.systems.tasks import gan, strips, windows

LABELS = ("stick", "discs", "cocosnet")
VGG_NETS = ("vgg16", "vgg19")
# A generated pixel belongs to the synthesized person when it differs from the empty room by more
# than this (max over RGB, in [-1, 1] units: 5 % of the range). On ground-truth frames it gives
# the true person mask exactly (the synthetic world casts no shadows).
MASK_THRESHOLD = 0.1
LPIPS_NET = "alexnet"
DRIVING = base.Option(
    "driving", str, "test", "pose the learned person with run --seed of the held-out video "
    "('test'), or with the whole video --seed of the synthetic driving person ('cross') or of a "
    "prepared dataset of another person (its path), normalised onto the learned person")
def fold(x: jax.Array) -> jax.Array:
  """[B, T, ...] -> [B T, ...]."""
  return x.reshape((-1,) + x.shape[2:])


def unfold(x: jax.Array, length: int) -> jax.Array:
  """[B T, ...] -> [B, T, ...]."""
  return x.reshape((-1, length) + x.shape[1:])


def label_channels(pose) -> int:
  """Channels of the pose label image `pose.label` draws."""
  if pose.label not in LABELS:
    raise ValueError(f"pose.label must be one of {', '.join(LABELS)}; got {pose.label!r}")
  if pose.label == "cocosnet":
    return 3 + len(skeleton.LIMBS)
  return 3 if pose.label == "stick" else pose_render.num_label_channels(with_limbs=True)


def pose_label(pose, keypoints: jax.Array, height: int, width: int) -> jax.Array:
  """The label image [..., H, W, C] of keypoints [..., 18, 3]: "stick", the stick figure in
  [-1, 1]; "discs", joint discs and limb lines in {0, 1}; "cocosnet", CoCosNet's 20 channels as
  its code has them, the stick figure and the 17 limb distance maps, in [0, 1]."""
  label_channels(pose)
  if pose.label in ("stick", "cocosnet"):
    stick = pose_render.stick_figure(keypoints, height, width, joint_radius=pose.radius,
                                     stick_width=pose.width)
    if pose.label == "stick":
      return 2.0 * stick - 1.0
    dist = pose_render.limb_distance_maps(keypoints, height, width, stick_width=pose.width)
    return jnp.concatenate([stick, dist], axis=-1)
  return pose_render.pose_label_map(keypoints, height, width, radius=pose.radius,
                                    limb_width=pose.width)


def synthesized_mask(frames: jax.Array, background: jax.Array) -> jax.Array:
  """[..., H, W, 1] float {0, 1}: pixels of frames [..., H, W, 3] that differ from the empty
  room `background` [H, W, 3] (both in [-1, 1]) by more than MASK_THRESHOLD."""
  diff = jnp.max(jnp.abs(frames.astype(jnp.float32) - background), axis=-1, keepdims=True)
  return (diff > MASK_THRESHOLD).astype(jnp.float32)


def make_generator(model, out_channels: int = 3, **overrides):
  """pix2pixHD's G1 / G1 + local enhancer / pix2pix's U-Net from the `model` config block."""
  common = dict(out_channels=out_channels, remat=model.remat, conv_impl=model.conv_impl,
                **overrides)
  if model.generator == "global":
    return networks.generator("global", "paper", ngf=model.ngf, n_downsample=model.n_downsample,
                              n_blocks=model.n_blocks, **common)
  if model.generator == "local":
    return networks.generator("local", "paper", ngf=model.ngf // 2,
                              n_downsample_global=model.n_downsample,
                              n_blocks_global=model.n_blocks, n_blocks_local=model.n_blocks_local,
                              **common)
  if model.generator == "unet":
    return networks.generator("unet", "paper", ngf=model.ngf, num_downs=model.unet_downs,
                              **common)
  raise ValueError(f"model.generator must be one of {', '.join(networks.GENERATORS)}; got "
                   f"{model.generator!r}")


def make_discriminator(model, num_d: int | None = None):
  """pix2pixHD's multi-scale PatchGAN discriminator from the `model` config block."""
  return networks.discriminator("paper", num_d=model.num_d if num_d is None else num_d,
                                ndf=model.ndf, num_layers=model.d_layers, remat=model.remat,
                                conv_impl=model.conv_impl)


class PersonVideoTask(base.System):
  """One person learnt from one video (module docstring); a base for per-person systems."""

  eval_prediction = "frames"
  eval_target = "rgb"
  eval_groups = per_person.RUN_GROUPS   # held-out runs of seen / novel actions
  synthesis_options = (DRIVING, windows.FRAMES)
  modalities = per_person.MODALITIES
  # The last VGG layer the system's perceptual terms read.
  vgg_endpoint = perceptual_losses.PIX2PIXHD_VGG_LAYERS[-1]

  def __init__(self, config, *, person_data: bool = True):
    """`person_data=False`: a mode of the system that trains on other data (D²G-Net's
    person-agnostic pre-training); the per-person data checks and statistics are skipped."""
    super().__init__(config)
    self.person_data = person_data
    if not person_data:
      return
    per_person.check_data(config.data, self.modalities, what=config.system)
    gan.check_kind(config.loss.gan)
    if self.uses_vgg() and config.loss.vgg_net not in VGG_NETS:
      raise ValueError(f"loss.vgg_net must be one of {', '.join(VGG_NETS)}; got "
                       f"{config.loss.vgg_net!r}")
    self.update_order = gan.update_order(config.optim)
    self.background = per_person.background(config.data)
    self.novel = per_person.novel_frames(config.data)

  # ----------------------------------------------------------------------------- inputs
  def prepare(self, batch):
    """Adds "label" [B, T, H, W, C], the pose label image of every frame's keypoints."""
    h, w = batch["rgb"].shape[2:4] if "rgb" in batch else (self.config.data.resolution,) * 2
    label = pose_label(self.config.pose, batch["keypoints"], h, w)
    return {**batch, "label": jax.lax.stop_gradient(label)}

  def uses_vgg(self) -> bool:
    """Whether a loss term reads the frozen VGG (`constants()["vgg"]`)."""
    return self.config.loss.vgg > 0

  def constants(self):
    """LPIPS's AlexNet (evaluation) and the frozen VGG of the perceptual terms when one is on."""
    if not self.person_data:
      return {}
    c = self.config.loss
    out = {"lpips": perceptual_metrics.load_variables(LPIPS_NET)}
    if self.uses_vgg():
      out["vgg"] = pretrained.load_variables(c.vgg_net, c.vgg_weights or None)
    return out

  def vgg(self, params):
    """The frozen VGG up to `vgg_endpoint`: image -> {layer: features}."""
    module = pretrained.make_module(self.config.loss.vgg_net, final_endpoint=self.vgg_endpoint,
                                    conv_impl=self.config.model.conv_impl)
    return functools.partial(module.apply, params["vgg"])

  def reconstruction(self, params, real, fake, total, terms):
    """(`total` + λ_VGG pix2pixHD's VGG loss + λ_L1 L1 of `fake` against `real` [N, H, W, 3],
    `terms` with "vgg" / "l1" added) for the terms whose weights are on."""
    c = self.config.loss
    if c.vgg > 0:
      terms["vgg"] = perceptual_losses.vgg_loss(self.vgg(params), fake, real)
      total = total + c.vgg * terms["vgg"]
    if c.l1 > 0:
      terms["l1"] = reconstruction_losses.l1(fake, real)
      total = total + c.l1 * terms["l1"]
    return total, terms

  # ----------------------------------------------------------------------------- evaluation
  def evaluate(self, params, batch):
    """Per example [B]: ssim, psnr, m_ssim, lpips, mask_iou (frame means) and tempe, and the
    run's "group" (`per_person.run_groups`: seen or novel actions)."""
    return self.run_metrics(params, batch, self.generate(params, batch)["frames"])

  def run_metrics(self, params, batch, out):
    """`evaluate`'s values for generated runs `out` [B, T, H, W, 3]."""
    values = retrieval.run_metrics(out, synthesized_mask(out, self.background), batch["rgb"],
                                   batch["mask"], batch["flow_bwd"], params["lpips"],
                                   lpips_net=LPIPS_NET)
    novel = jnp.mean(jnp.asarray(self.novel)[batch["frame_index"]].astype(jnp.float32), axis=-1)
    return {**values, "group": (novel > 0.5).astype(jnp.int32)}

  def sample_video(self, batch, outputs):
    return strips.side_by_side(*self.sample_columns(batch, outputs))

  def sample_columns(self, batch, outputs):
    """(videos [T, H, W, 3], their names): pose (stick figure) | result | ground truth; driven by
    another person: driving frame | normalised pose | result."""
    frames = outputs["frames"]
    p = self.config.pose
    pose = 2.0 * pose_render.stick_figure(batch["keypoints"], *frames.shape[1:3],
                                          joint_radius=p.radius, stick_width=p.width) - 1.0
    if "driving_rgb" in batch:
      return ([batch["driving_rgb"], np.asarray(pose), frames],
              ["driving", "normalised pose", "result"])
    columns, names = [np.asarray(pose), frames], ["pose", "result"]
    if "rgb" in batch:
      columns.append(batch["rgb"])
      names.append("ground truth")
    return columns, names

  # ----------------------------------------------------------------------------- data
  def data_reads(self, split: str) -> dict:
    """Keyword arguments of the per-person sampler for examples of `split` ("train", "test"):
    extra source modalities and context frames (`per_person.example`). Default: none."""
    del split
    return {}

  def dataset(self, split, *, seed, shard_index, shard_count):
    data = self.config.data
    if split == "train":
      return per_person.train_dataset(data, seed=seed, shard_index=shard_index,
                                      shard_count=shard_count, **self.data_reads("train"))
    return per_person.eval_dataset(data, shard_index=shard_index, shard_count=shard_count,
                                   num_runs=self.config.eval.num_examples or None,
                                   **self.data_reads("test"))

  def example_spec(self, split):
    which = "train" if split == "train" else "test"
    spec = per_person.example_spec(self.config.data, which, **self.data_reads(which))
    return {k: jax.ShapeDtypeStruct(s, d) for k, (s, d) in spec.items()}

  def normalizer(self, driving: str = "cross"):
    """Everybody Dance Now's global pose normalisation fitted from the driving videos' poses
    ("cross" or a prepared dataset's path) to the learned person's training poses
    (`psrjax.geometry.pose_normalize`). Videos that never show the ankles (a head-and-shoulders
    recording) cannot be measured that way; they get the head-anchored vertical translation of
    the CoCosNet video pose transfer paper (Eq. 1) instead."""
    data = self.config.data
    source = per_person.driving_keypoints(data, driving=driving)
    target = per_person.train_keypoints(data)
    try:
      params = pose_normalize.fit_pose_normalization(source, target)
    except ValueError:
      params = pose_normalize.fit_pose_normalization(source, target, mode="translate",
                                                     anchor="head")
    return lambda kp: np.asarray(pose_normalize.apply_pose_normalization(params, kp))

  def synthesis_example(self, *, seed: int, driving: str = "test", frames: str = "",
                        **options):
    """`driving="test"`: run `seed` of the held-out video(s) (pose | result | ground truth);
    `"cross"` or a prepared dataset's path: run `seed` of the driving videos, its poses
    normalised onto the learned person (driving frame | normalised pose | result). `options`:
    the system's own (`with_synthesis_inputs`)."""
    if not self.person_data:
      return super().synthesis_example(seed=seed)
    del frames   # one run; `synthesis_windows` renders frame ranges
    data, reads = self.config.data, self.data_reads("test")
    if driving == "test":
      example = per_person.synthesis_example(data, driving="test", run=int(seed), **reads)
    else:
      self._check_driving(driving)
      example = per_person.synthesis_example(data, driving=driving, run=int(seed),
                                             normalize=self.normalizer(driving), **reads)
    return self.with_synthesis_inputs(example, **options)

  def synthesis_windows(self, *, seed: int, driving: str = "test", frames: str = "",
                        **options):
    """`driving="test"`: the held-out run `seed` (`synthesis_example`). Otherwise the driving
    video `seed` of "cross" or of a prepared dataset, its frames `frames` ("A:B"; default all)
    in windows of `data.eval_run_frames`, rendered one after another with the system's temporal
    state carried over (`generate_window`)."""
    if not self.person_data or driving == "test":
      if frames:
        raise ValueError("--frames selects frames of a driving video: give --driving cross or a "
                         "prepared dataset too")
      yield self.synthesis_example(seed=seed, driving=driving, **options)
      return
    start, stop = windows.frame_range(frames)
    self._check_driving(driving)
    data = self.config.data
    runs = per_person.driving_windows(
        data, driving=driving, video=int(seed), start=start, stop=stop,
        length=data.eval_run_frames, normalize=self.normalizer(driving), **self.data_reads("test"))
    for window in runs:
      yield self.with_synthesis_inputs(window, **options)

  def with_synthesis_inputs(self, example: dict, **options) -> dict:
    """`example` (a held-out run or a driving window) with what the system's synthesis options
    add (e.g. an exemplar, a background image). Default: no options."""
    if options:
      raise ValueError(f"{type(self).__name__} takes no synthesis options "
                       f"{', '.join(sorted(options))}")
    return example

  def _check_driving(self, driving: str) -> None:
    """A driving video must hold what the system's driving runs read (face maps)."""
    if "face" in self.data_reads("test").get("extra", ()):
      sources.require(per_person.driving_source(self.config.data, driving), ("face",),
                      what="driving a model with the 3D pose label (pose.surface)")
