"""Everybody Dance Now (Chan et al., ICCV 2019) on one person's video.

pix2pixHD (`psrjax.systems.pix2pixhd`) made temporally coherent and given a face GAN:

- Temporal smoothing (Sec. 3.2): G generates frame t from the pose label x_t AND the frame it
  generated before, G(x_t, G(x_{t-1})); the first frame of a sequence is conditioned on zeros.
  Training examples are consecutive pairs (x_{t-1}, x_t): G(x_{t-1}, 0), then G(x_t, G(x_{t-1})),
  with gradients through both calls. The discriminator D is temporal: the multi-scale PatchGANs
  see both frames and both labels at once, D(x_{t-1}, x_t, y_{t-1}, y_t) (Eq. 3, L_smooth).
  Objective (Eq. 4): L_smooth + λ_FM L_FM(G, D) + λ_P (L_VGG(G(x_{t-1}), y_{t-1}) + L_VGG(G(x_t),
  y_t)), LSGAN as in pix2pixHD, λ_FM = λ_P = 10.
- Face GAN (Sec. 3.4, Eqs. 5-6; `psrjax.systems.tasks.face_gan`, with its departures): after
  the main generator is trained and frozen, a residual generator G_f refines the face crop of
  each generated frame against a face discriminator D_f. Stage "main" trains G and D, stage
  "face" G_f and D_f (EDN's order).

Departures: `loss.warp` > 0 adds the occlusion-masked temporal warp loss on the generated pair
(`psrjax.losses.temporal`; not in EDN, 0 by default). Evaluation generates each held-out run
frame by frame from zeros, as at test time (`generate`), and reports the per-person task's run
metrics (`psrjax.systems.tasks.person_video`).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from psrjax import losses
from psrjax.systems import base
from psrjax.systems.tasks import face_gan, gan, person_video
from psrjax.systems.tasks.person_video import fold


class EDN(person_video.PersonVideoTask):
  """Everybody Dance Now (module docstring); configs/edn.py."""

  def __init__(self, config):
    super().__init__(config)
    if config.data.frames_per_example < 2:
      raise ValueError(f"EDN trains on consecutive frame pairs: data.frames_per_example must be "
                       f">= 2, got {config.data.frames_per_example}")
    person_video.label_channels(config.pose)
    self.generator = person_video.make_generator(config.model)
    self.discriminator = person_video.make_discriminator(config.model)
    self.face = face_gan.FaceGAN(config)

  # ----------------------------------------------------------------------------- networks
  def init(self, rng, batch):
    kg, kd, kf, kfd = jax.random.split(rng, 4)
    label, rgb = batch["label"], batch["rgb"]
    x = fold(jnp.concatenate([label, jnp.zeros_like(rgb)], axis=-1))
    params = {"g": self.generator.init(kg, x)["params"],
              "d": self.discriminator.init(kd, *self._pairs(rgb, label))["params"]}
    return {**params, **self.face.init(kf, kfd, batch)}

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

  # ----------------------------------------------------------------------------- generator
  def _step(self, params, label, previous):
    return self.generator.apply({"params": params["g"]},
                                jnp.concatenate([label, previous.astype(label.dtype)], axis=-1))

  def _sequence(self, params, labels, previous=None):
    """G(x_t, G(x_{t-1})) over labels [B, T, H, W, C] from the frame `previous` [B, H, W, 3]
    before the first (None: zeros): [B, T, H, W, 3] (a scan, so one compiled G call whatever T)."""
    b, _, h, w, _ = labels.shape

    def step(previous, label):
      frame = self._step(params, label, previous)
      return frame, frame

    first = jnp.zeros((b, h, w, 3), labels.dtype) if previous is None else previous
    _, frames = jax.lax.scan(step, first.astype(labels.dtype), jnp.moveaxis(labels, 1, 0))
    return jnp.moveaxis(frames, 0, 1)

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
    frames = lambda params, b: self._sequence(params, b["label"])
    return main, self.face.stage("face", face_steps, order, frames, self.reconstruction)

  def _forward(self, params, b, rng):
    """Stage "main": the pair (or run) generated frame by frame, "out" [B, T, H, W, 3]."""
    del rng
    return {"out": self._sequence(params, b["label"])}

  # ----------------------------------------------------------------------------- losses
  def _pair_disc(self, params, b):
    """D on consecutive (frames, labels) pairs: frames [B, T, H, W, 3] -> (logits, features)."""
    _, cond = self._pairs(b["rgb"], b["label"])
    return lambda frames: self.discriminator.apply({"params": params["d"]},
                                                   self._pairs(frames, b["label"])[0], cond)

  def _pair_d_loss(self, params, b, outputs, rng):
    del rng
    return gan.discriminator_terms(self._pair_disc(params, b), b["rgb"], outputs["out"],
                                   kind=self.config.loss.gan)

  def _pair_g_loss(self, params, b, outputs, rng):
    """Eq. 4: L_smooth + λ_FM L_FM + λ_P sum_t L_VGG (+ λ_warp the temporal warp loss)."""
    del rng
    c = self.config.loss
    total, terms = gan.generator_terms(self._pair_disc(params, b), b["rgb"], outputs["out"],
                                       kind=c.gan, fm=c.fm)
    length = b["rgb"].shape[1]
    # EDN sums L_VGG over the frames of the pair; the reconstruction terms are frame means.
    recon, recon_terms = self.reconstruction(params, fold(b["rgb"]), fold(outputs["out"]), 0.0, {})
    total, terms = total + length * recon, {**terms, **recon_terms}
    if c.warp > 0:
      terms["warp"] = losses.temporal_warp_loss(outputs["out"], b["flow_fwd"], b["flow_bwd"])
      total = total + c.warp * terms["warp"]
    return total, terms

  # ----------------------------------------------------------------------------- inference
  def generate(self, params, batch):
    """"frames" [B, T, H, W, 3]: each run generated frame by frame from zeros, faces refined."""
    return self._generate(True, params, batch)

  def window_state(self, batch):
    """The frame before a video's first window: zeros [B, H, W, 3]."""
    return jnp.zeros(batch["label"].shape[:1] + batch["label"].shape[2:4] + (3,),
                     batch["label"].dtype)

  def generate_window(self, params, batch, state):
    """`generate` continuing from the last frame G generated before the window (`state`, before
    face refinement); the state after: the window's last such frame."""
    frames = self._sequence(params, batch["label"], state)
    refined = self.face.refine(params, batch, frames)[0]
    return {"frames": jnp.clip(refined, -1.0, 1.0)}, frames[:, -1].astype(state.dtype)

  def _generate(self, refine_faces: bool, params, batch):
    """`generate`; without `refine_faces` (stage "main"'s samples) the main generator's frames."""
    frames = self._sequence(params, batch["label"])
    if refine_faces:
      frames = self.face.refine(params, batch, frames)[0]
    return {"frames": jnp.clip(frames, -1.0, 1.0)}


def make_system(config) -> EDN:
  return EDN(config)
