"""Everybody Dance Now (Chan et al., ICCV 2019) on one person's video.

pix2pixHD (`psrjax.systems.pix2pixhd`) made temporally coherent and given a face GAN:

- Temporal smoothing (Sec. 3.2): G generates frame t from the pose label x_t AND the frame it
  generated before, G(x_t, G(x_{t-1})); the first frame of a sequence is conditioned on zeros.
  Training examples are consecutive pairs (x_{t-1}, x_t): G(x_{t-1}, 0), then G(x_t, G(x_{t-1})),
  with gradients through both calls. The discriminator D is temporal: the multi-scale PatchGANs
  see both frames and both labels at once, D(x_{t-1}, x_t, y_{t-1}, y_t) (Eq. 3, L_smooth).
  Objective (Eq. 4): L_smooth + λ_FM L_FM(G, D) + λ_P (L_VGG(G(x_{t-1}), y_{t-1}) + L_VGG(G(x_t),
  y_t)), LSGAN as in pix2pixHD, λ_FM = λ_P = 10.
- Face GAN (Sec. 3.4, Eqs. 5-6): after the main generator is trained and frozen, a residual
  generator G_f sees the face crop of the label and of the generated frame and predicts a
  residual r, the face becomes r + G(x)_F, and a face discriminator D_f judges (x_F, y_F) against
  (x_F, r + G(x)_F); L_face = L_GAN(G_f, D_f) + λ_P L_VGG(r + G(x)_F, y_F). The refined face is
  pasted back (`psrjax.geometry.face_crop`). Stage "main" trains G and D, stage "face" G_f and D_f
  (EDN's order).

Departures: the face box is square around the head keypoints and follows the person's scale
(EDN: a fixed-size box around the nose; `face.size` gives that rule); G_f is a small pix2pixHD G1
with a tanh residual head whose output conv starts at zero, so the face stage starts from the main
generator's face (EDN's face generator is not specified beyond "residual"); frames
without any visible head keypoint keep the main generator's face; `loss.warp` > 0 adds the
occlusion-masked temporal warp loss on the generated pair (`psrjax.losses.temporal`; not in EDN,
0 by default). Evaluation generates each held-out run frame by frame from zeros, as at test time
(`generate`), and reports pix2pixHD's metrics.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from psrjax import losses
from psrjax.geometry import face_crop
from psrjax.systems import base
from psrjax.systems.tasks import gan
from psrjax.systems import pix2pixhd
from psrjax.systems.pix2pixhd import fold, unfold


class EDN(pix2pixhd.Pix2PixHD):
  """Everybody Dance Now (module docstring); configs/edn.py."""

  def __init__(self, config):
    super().__init__(config)
    if config.data.frames_per_example < 2:
      raise ValueError(f"EDN trains on consecutive frame pairs: data.frames_per_example must be "
                       f">= 2, got {config.data.frames_per_example}")
    self._build_face_networks(config)

  def _build_face_networks(self, config):
    """G_f (a small pix2pixHD G1 with a residual head) and D_f from `config.face`."""
    f = config.face
    self.face_generator = pix2pixhd.networks.generator(
        "global", "paper", ngf=f.ngf, n_downsample=f.n_downsample, n_blocks=f.n_blocks,
        remat=config.model.remat, conv_impl=config.model.conv_impl)
    self.face_discriminator = pix2pixhd.make_discriminator(config.model, num_d=f.num_d)

  # ----------------------------------------------------------------------------- networks
  def init(self, rng, batch):
    kg, kd, kf, kfd = jax.random.split(rng, 4)
    label, rgb = batch["label"], batch["rgb"]
    x = fold(jnp.concatenate([label, jnp.zeros_like(rgb)], axis=-1))
    params = {"g": self.generator.init(kg, x)["params"],
              "d": self.discriminator.init(kd, *self._pairs(rgb, label))["params"]}
    return {**params, **self._face_init(kf, kfd, batch)}

  def _face_init(self, kf, kfd, batch):
    """{"g_face", "d_face"}: the face GAN's parameters, G_f's residual head zeroed."""
    face_label, face_rgb = self._crops(batch, batch["label"]), self._crops(batch, batch["rgb"])
    g_face = self.face_generator.init(kf, jnp.concatenate([face_label, face_rgb], axis=-1))
    # The residual starts at 0 (the output conv zeroed): G_f begins as the identity on the face.
    g_face = dict(g_face["params"])
    g_face["head"] = jax.tree.map(jnp.zeros_like, g_face["head"])
    return {"g_face": g_face,
            "d_face": self.face_discriminator.init(kfd, face_rgb, face_label)["params"]}

  def optimizers(self):
    o = self.config.optim
    main, face = (s.steps for s in self.stages())
    adam = lambda steps: optax.adam(gan.decayed_lr(o.lr, steps, o.decay_fraction),
                                    b1=o.b1, b2=o.b2)
    return {"g": adam(main), "d": adam(main), "g_face": adam(face), "d_face": adam(face)}

  @staticmethod
  def _pairs(frames, labels):
    """(frames t-1 and t, labels t-1 and t) of every consecutive pair, channel-stacked:
    [B (T-1), H, W, 6] and [B (T-1), H, W, 2C] for videos [B, T, H, W, *]."""
    stack = lambda v: fold(jnp.concatenate([v[:, :-1], v[:, 1:]], axis=-1))
    return stack(frames), stack(labels)

  def _boxes(self, batch):
    f = self.config.face
    return face_crop.face_boxes(batch["keypoints"], margin=f.margin, min_size=f.min_size,
                                size=f.size or None)

  def _crops(self, batch, images):
    """Face crops [B T, S, S, C] of images [B, T, H, W, C] (zeros outside the frame)."""
    return fold(face_crop.crop_box(images, self._boxes(batch), self.config.face.crop))

  # ----------------------------------------------------------------------------- generator
  def _step(self, params, label, previous):
    return self.generator.apply({"params": params["g"]},
                                jnp.concatenate([label, previous.astype(label.dtype)], axis=-1))

  def _sequence(self, params, labels):
    """G(x_t, G(x_{t-1})) over labels [B, T, H, W, C] from a zero first previous frame:
    [B, T, H, W, 3] (a scan, so one compiled G call whatever T)."""
    b, _, h, w, _ = labels.shape

    def step(previous, label):
      frame = self._step(params, label, previous)
      return frame, frame

    zeros = jnp.zeros((b, h, w, 3), labels.dtype)
    _, frames = jax.lax.scan(step, zeros, jnp.moveaxis(labels, 1, 0))
    return jnp.moveaxis(frames, 0, 1)

  def _refine_faces(self, params, batch, frames):
    """(frames with G_f's residual added in the face boxes, the refined face crops
    r + G(x)_F [B T, S, S, 3])."""
    boxes = self._boxes(batch)
    size = self.config.face.crop
    face_label = fold(face_crop.crop_box(batch["label"], boxes, size))
    face = fold(face_crop.crop_box(frames, boxes, size))
    residual = self.face_generator.apply({"params": params["g_face"]},
                                         jnp.concatenate([face_label, face], axis=-1))
    residual = residual.astype(face.dtype)
    # Only the residual is resampled back into the frame (pasted onto zeros, added): outside the
    # box and where r = 0 the frame is exactly the main generator's.
    back = face_crop.paste_box(jnp.zeros_like(frames),
                               unfold(residual, frames.shape[1]).astype(frames.dtype), boxes)
    head = face_crop.has_head(batch["keypoints"])[..., None, None, None]
    return jnp.where(head, frames + back, frames), face + residual

  # ----------------------------------------------------------------------------- schedule
  def stages(self):
    """"main": G and D on consecutive pairs; "face": G_f and D_f with G frozen; each in
    `optim.update_order` (`gan.gan_stage`)."""
    steps = self.config.train.steps
    face_steps = int(round(steps * self.config.schedule.face_fraction))
    order = self.update_order
    # Its samples show the main generator's frames (the face GAN trains next).
    main = gan.gan_stage("main", steps - face_steps, order,
                               base.Phase("g", ("g",), self._pair_g_loss),
                               base.Phase("d", ("d",), self._pair_d_loss), forward=self._forward,
                               generate=functools.partial(self._generate, False))
    face = gan.gan_stage("face", face_steps, order,
                               base.Phase("g", ("g_face",), self._face_g_loss),
                               base.Phase("d", ("d_face",), self._face_d_loss),
                               forward=self._face_forward)
    return main, face

  def _forward(self, params, b, rng):
    """Stage "main": the pair (or run) generated frame by frame, "out" [B, T, H, W, 3]."""
    del rng
    return {"out": self._sequence(params, b["label"])}

  def _face_forward(self, params, b, rng):
    """Stage "face": the frozen G's frames and G_f's refined face crops "face" [B T, S, S, 3]."""
    del rng
    frames = jax.lax.stop_gradient(self._sequence(params, b["label"]))
    return {"face": self._refine_faces(params, b, frames)[1]}

  # ----------------------------------------------------------------------------- losses
  def _pair_d_loss(self, params, b, outputs, rng):
    real, cond = self._pairs(b["rgb"], b["label"])
    fake, _ = self._pairs(outputs["out"], b["label"])
    d = lambda image: self.discriminator.apply({"params": params["d"]}, image, cond)[0]
    adv = losses.d_loss(d(real), d(fake), kind=self.config.loss.gan)
    return 0.5 * adv, {"adv": adv}

  def _pair_g_loss(self, params, b, outputs, rng):
    """Eq. 4: L_smooth + λ_FM L_FM + λ_P sum_t L_VGG (+ λ_warp the temporal warp loss)."""
    del rng
    c = self.config.loss
    real, cond = self._pairs(b["rgb"], b["label"])
    fake, _ = self._pairs(outputs["out"], b["label"])
    d = lambda image: self.discriminator.apply({"params": params["d"]}, image, cond)
    total, terms = self._adversarial(d, real, fake)
    length = b["rgb"].shape[1]
    # EDN sums L_VGG over the frames of the pair; the reconstruction terms are frame means.
    recon, recon_terms = self._reconstruction(params, fold(b["rgb"]), fold(outputs["out"]),
                                              0.0, {})
    total, terms = total + length * recon, {**terms, **recon_terms}
    if c.warp > 0:
      terms["warp"] = losses.temporal_warp_loss(outputs["out"], b["flow_fwd"], b["flow_bwd"])
      total = total + c.warp * terms["warp"]
    return total, terms

  def _face_d_loss(self, params, b, outputs, rng):
    del rng
    cond, real = self._crops(b, b["label"]), self._crops(b, b["rgb"])
    d = lambda image: self.face_discriminator.apply({"params": params["d_face"]}, image, cond)[0]
    adv = losses.d_loss(d(real), d(outputs["face"]), kind=self.config.loss.gan)
    return 0.5 * adv, {"adv": adv}

  def _face_g_loss(self, params, b, outputs, rng):
    """Eq. 6: L_GAN(G_f, D_f) + λ_P L_VGG(r + G(x)_F, y_F)."""
    del rng
    c = self.config.loss
    cond, real = self._crops(b, b["label"]), self._crops(b, b["rgb"])
    logits, _ = self.face_discriminator.apply({"params": params["d_face"]}, outputs["face"], cond)
    terms = {"adv": losses.g_loss(logits, kind=c.gan)}
    return self._reconstruction(params, real, outputs["face"], terms["adv"], terms)

  # ----------------------------------------------------------------------------- inference
  def generate(self, params, batch):
    """"frames" [B, T, H, W, 3]: each run generated frame by frame from zeros, faces refined."""
    return self._generate(True, params, batch)

  def _generate(self, refine_faces: bool, params, batch):
    """`generate`; without `refine_faces` (stage "main"'s samples) the main generator's frames."""
    frames = self._sequence(params, batch["label"])
    if refine_faces:
      frames = self._refine_faces(params, batch, frames)[0]
    return {"frames": jnp.clip(frames, -1.0, 1.0)}


def make_system(config) -> EDN:
  return EDN(config)
