"""pix2pixHD (Wang et al. 2018) and pix2pix (Isola et al. 2017) as a per-person pose-to-frame system.

The baseline of the pose-transfer papers (Everybody Dance Now, CoCosNet video pose transfer,
D²G-Net): one person is learnt from one long video (`per_person`), each frame generated from
its pose alone, with no temporal context. The pose enters as a label image
(`psrjax.geometry.pose_render`): OpenPose's colour stick figure (`pose.label="stick"`, what
Everybody Dance Now feeds its pix2pixHD) or the 18 joint discs plus 17 limb lines
(`pose.label="discs"`, CoCosNet video's input).

Objective (pix2pixHD, Eqs. 2-4 and Sec. 3.3), per frame x -> y with G(x) the generated frame:
  D:  sum_k LSGAN(D_k(x, y), real) + LSGAN(D_k(x, G(x)), fake)          (`loss.gan` kind)
  G:  sum_k LSGAN(D_k(x, G(x)), real) + λ_FM L_FM + λ_VGG L_VGG,
with D_k the multi-scale PatchGANs on (label, frame), L_FM their feature matching (Eq. 4, the
authors' weighting) and L_VGG the VGG19 relu1_1..relu5_1 L1 loss with weights 1/32 .. 1 (the
packaged VGG16 at the same endpoints when no VGG19 file is given). The discriminator loss is
halved, as in the authors' code. `model.generator` picks G: "global" (G1), "local" (G1 + the
local enhancer, trained jointly here rather than G1 first), or "unet" (pix2pix's U-Net; with
`loss.fm=0, loss.vgg=0, loss.l1=100` and one discriminator it is pix2pix's objective).

Evaluation runs on the held-out segment (`per_person.eval_dataset`, runs of consecutive
frames): SSIM, PSNR, masked SSIM, LPIPS, E_temp and the mask IoU of the synthesized person,
the pixels that differ from the empty room (`MASK_THRESHOLD`), with the true person mask — a
blurred blob in the wrong pose scores well on masked SSIM but not there. The nearest-pose
retrieval baseline (`psrjax.baselines.retrieval`) reports the same metrics.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from psrjax import losses
from psrjax.geometry import pose_normalize, pose_render, skeleton
from psrjax.losses import perceptual as perceptual_losses
from psrjax.metrics import perceptual as perceptual_metrics
from psrjax.models import pix2pixhd as networks
from psrjax.models import pretrained
from psrjax.baselines import retrieval
from psrjax.data.samplers import per_person
from psrjax.systems import base

LABELS = ("stick", "discs", "cocosnet")
VGG_NETS = ("vgg16", "vgg19")
UPDATE_ORDERS = ("gd", "dg")   # `gan_stage`
# A generated pixel belongs to the synthesized person when it differs from the empty room by more
# than this (max over RGB, in [-1, 1] units: 5 % of the range). On ground-truth frames it gives
# the true person mask exactly (the synthetic world casts no shadows).
MASK_THRESHOLD = 0.1
LPIPS_NET = "alexnet"


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
  return networks.discriminator("paper", num_d=model.num_d if num_d is None else num_d,
                                ndf=model.ndf, num_layers=model.d_layers, remat=model.remat,
                                conv_impl=model.conv_impl)


class Pix2PixHD(base.System):
  """pix2pixHD / pix2pix on one person's video (module docstring); configs/pix2pixhd.py."""

  eval_prediction = "frames"
  eval_target = "rgb"
  eval_groups = per_person.RUN_GROUPS   # held-out runs of seen / novel actions
  synthesis_options = (
      base.Option("driving", str, "test", "pose the learned person with run --seed of the "
                  "held-out video ('test'), of the synthetic driving person ('cross') or of a "
                  "prepared dataset of another person (its path), normalised onto the learned "
                  "person"),)
  modalities = per_person.MODALITIES

  def __init__(self, config):
    super().__init__(config)
    per_person.check_data(config.data, self.modalities, what=config.system)
    self.channels = label_channels(config.pose)
    c = config.loss
    if c.gan not in losses.adversarial.KINDS:
      raise ValueError(f"loss.gan must be one of {', '.join(losses.adversarial.KINDS)}; got "
                       f"{c.gan!r}")
    if c.vgg > 0 and c.vgg_net not in VGG_NETS:
      raise ValueError(f"loss.vgg_net must be one of {', '.join(VGG_NETS)}; got {c.vgg_net!r}")
    self.update_order = update_order(config.optim)
    self.generator = make_generator(config.model)
    self.discriminator = make_discriminator(config.model)
    self.background = per_person.background(config.data)
    self.novel = per_person.novel_frames(config.data)

  # ----------------------------------------------------------------------------- inputs
  def prepare(self, batch):
    """Adds "label" [B, T, H, W, C], the pose label image of every frame's keypoints."""
    h, w = batch["rgb"].shape[2:4] if "rgb" in batch else (self.config.data.resolution,) * 2
    label = pose_label(self.config.pose, batch["keypoints"], h, w)
    return {**batch, "label": jax.lax.stop_gradient(label)}

  def _generator_input(self, b):
    return b["label"]

  def init(self, rng, batch):
    kg, kd = jax.random.split(rng)
    x = fold(self._generator_input(batch))
    frame = fold(batch["rgb"])
    return {"g": self.generator.init(kg, x)["params"],
            "d": self.discriminator.init(kd, frame, fold(batch["label"]))["params"]}

  def optimizers(self):
    o = self.config.optim
    lr = decayed_lr(o.lr, self.config.train.steps, o.decay_fraction)
    return {g: optax.adam(lr, b1=o.b1, b2=o.b2) for g in ("g", "d")}

  def constants(self):
    """LPIPS's AlexNet (evaluation) and the frozen VGG of L_VGG when that loss is on."""
    c = self.config.loss
    out = {"lpips": perceptual_metrics.load_variables(LPIPS_NET)}
    if c.vgg > 0:
      out["vgg"] = pretrained.load_variables(c.vgg_net, c.vgg_weights or None)
    return out

  # ----------------------------------------------------------------------------- schedule
  def stages(self):
    """One stage: G and D (on label, frame pairs) in `optim.update_order`."""
    return (gan_stage("main", self.config.train.steps, self.update_order,
                      base.Phase("g", ("g",), self._g_loss),
                      base.Phase("d", ("d",), self._d_loss), forward=self._forward),)

  def _apply_g(self, params, x, rng=None):
    """G(x). With `rng` (training), pix2pix's U-Net applies its dropout, its only noise source;
    without (evaluation, synthesis) it is off, so results are deterministic (pix2pix keeps it
    at test time as well; its code's `--eval` switches it off, as here)."""
    if rng is None or self.config.model.generator != "unet":
      return self.generator.apply({"params": params["g"]}, x)
    return self.generator.apply({"params": params["g"]}, x, train=True, rngs={"dropout": rng})

  def _forward(self, params, b, rng):
    """Every frame generated from its own label: "out" [B, T, H, W, 3]."""
    length = b["label"].shape[1]
    return {"out": unfold(self._apply_g(params, fold(b["label"]), rng), length)}

  # ----------------------------------------------------------------------------- losses
  def _disc(self, params, b):
    """D on (label, image) pairs: image [N, H, W, 3] -> (logits, features)."""
    cond = fold(b["label"])
    return lambda image: self.discriminator.apply({"params": params["d"]}, image, cond)

  def _d_loss(self, params, b, outputs, rng):
    """Half the summed multi-scale loss of D on real vs generated (label, frame) pairs."""
    del rng
    d = self._disc(params, b)
    adv = losses.d_loss(d(fold(b["rgb"]))[0], d(fold(outputs["out"]))[0],
                        kind=self.config.loss.gan)
    return 0.5 * adv, {"adv": adv}

  def _g_loss(self, params, b, outputs, rng):
    """Adversarial + λ_FM feature matching + λ_VGG VGG (+ λ_L1 L1) on every frame."""
    del rng
    real, fake = fold(b["rgb"]), fold(outputs["out"])
    total, terms = self._adversarial(self._disc(params, b), real, fake)
    return self._reconstruction(params, real, fake, total, terms)

  def _adversarial(self, d, real, fake):
    """(G's adversarial loss + λ_FM feature matching, terms) against discriminator `d`
    (image -> (logits, features)) for generated `fake` and the matching `real`."""
    c = self.config.loss
    fake_logits, fake_feats = d(fake)
    terms = {"adv": losses.g_loss(fake_logits, kind=c.gan)}
    total = terms["adv"]
    if c.fm > 0:
      terms["fm"] = losses.feature_matching(d(real)[1], fake_feats)
      total = total + c.fm * terms["fm"]
    return total, terms

  def _reconstruction(self, params, real, fake, total, terms):
    c = self.config.loss
    if c.vgg > 0:
      terms["vgg"] = perceptual_losses.vgg_loss(self._vgg(params), fake, real)
      total = total + c.vgg * terms["vgg"]
    if c.l1 > 0:
      terms["l1"] = losses.l1(fake, real)
      total = total + c.l1 * terms["l1"]
    return total, terms

  def _vgg(self, params):
    module = pretrained.make_module(self.config.loss.vgg_net,
                                    final_endpoint=perceptual_losses.PIX2PIXHD_VGG_LAYERS[-1],
                                    conv_impl=self.config.model.conv_impl)
    return functools.partial(module.apply, params["vgg"])

  # ----------------------------------------------------------------------------- inference
  def generate(self, params, batch):
    """"frames" [B, T, H, W, 3] in [-1, 1], each from its own label."""
    return {"frames": jnp.clip(self._forward(params, batch, None)["out"], -1.0, 1.0)}

  def evaluate(self, params, batch):
    """Per example [B]: ssim, psnr, m_ssim, lpips, mask_iou (frame means) and tempe, and the
    run's "group" (`per_person.run_groups`: seen or novel actions)."""
    return self._run_metrics(params, batch, self.generate(params, batch)["frames"])

  def _run_metrics(self, params, batch, out):
    """`evaluate`'s values for generated runs `out` [B, T, H, W, 3]."""
    values = retrieval.run_metrics(out, synthesized_mask(out, self.background), batch["rgb"],
                                   batch["mask"], batch["flow_bwd"], params["lpips"],
                                   lpips_net=LPIPS_NET)
    novel = jnp.mean(jnp.asarray(self.novel)[batch["frame_index"]].astype(jnp.float32), axis=-1)
    return {**values, "group": (novel > 0.5).astype(jnp.int32)}

  def sample_video(self, batch, outputs):
    """pose (stick figure) | result | ground truth; driven by another person: driving frame |
    normalised pose | result."""
    return base.side_by_side(*self._sample_columns(batch, outputs))

  def _sample_columns(self, batch, outputs):
    """(videos [B, T, H, W, 3], their names) of `sample_video`."""
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
  def dataset(self, split, *, seed, shard_index, shard_count):
    data = self.config.data
    if split == "train":
      return per_person.train_dataset(data, seed=seed, shard_index=shard_index,
                                       shard_count=shard_count)
    num_runs = self.config.eval.num_examples or None
    return per_person.eval_dataset(data, shard_index=shard_index, shard_count=shard_count,
                                    num_runs=num_runs)

  def example_spec(self, split):
    spec = per_person.example_spec(self.config.data, "train" if split == "train" else "test")
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

  def synthesis_example(self, *, seed: int, driving: str = "test"):
    """`driving="test"`: run `seed` of the held-out video(s) (pose | result | ground truth);
    `"cross"` or a prepared dataset's path: run `seed` of the driving videos, its poses
    normalised onto the learned person (driving frame | normalised pose | result)."""
    data = self.config.data
    if driving == "test":
      return per_person.synthesis_example(data, driving="test", run=int(seed))
    return per_person.synthesis_example(data, driving=driving, run=int(seed),
                                        normalize=self.normalizer(driving))


def update_order(optim) -> str:
  """`optim.update_order`, checked; configs saved before the field existed trained "dg"."""
  order = optim.get("update_order", "dg")
  if order not in UPDATE_ORDERS:
    raise ValueError(f"optim.update_order must be one of {', '.join(UPDATE_ORDERS)}; got "
                     f"{order!r}")
  return order


def gan_stage(name: str, steps: int, order: str, g: base.Phase, d: base.Phase, **kw) -> base.Stage:
  """A stage of generator phase `g` (the forward's) and discriminator phase `d` in `order`.

  "gd", pix2pixHD's and Everybody Dance Now's train scripts: both networks step on the losses of
  one forward with the weights the step starts from (G's loss reads D before D's update), G
  first. The discriminator's passes over the real and the generated frames are then the same
  computation in both phases, which XLA computes once. "dg", pix2pix's `optimize_parameters`:
  D steps first and G's loss reads the updated D.
  """
  phases = (g, d) if order == "gd" else (d, g)
  return base.Stage(name, steps, phases, forward_phase=g.name, **kw)


def decayed_lr(lr: float, steps: int, decay_fraction: float) -> optax.Schedule:
  """pix2pixHD's schedule: `lr` for the first (1 - decay_fraction) of `steps` updates, then
  linearly to 0 at the last (`decay_fraction` = 0: constant)."""
  if not 0.0 <= decay_fraction <= 1.0:
    raise ValueError(f"optim.decay_fraction must lie in [0, 1]; got {decay_fraction}")
  decay = int(round(steps * decay_fraction))
  if decay == 0:
    return optax.constant_schedule(lr)
  return optax.join_schedules([optax.constant_schedule(lr), optax.linear_schedule(lr, 0.0, decay)],
                              [steps - decay])


def make_system(config) -> Pix2PixHD:
  return Pix2PixHD(config)
