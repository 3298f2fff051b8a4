"""Everybody Dance Now's face GAN (Chan et al. 2019, Sec. 3.4, Eqs. 5-6) as a component.

After the main generator is trained and frozen, a residual generator G_f sees the face crop of
the pose label and of the generated frame and predicts a residual r; the face becomes
r + G(x)_F, and a face discriminator D_f judges (x_F, y_F) against (x_F, r + G(x)_F):
L_face = L_GAN(G_f, D_f) + λ_P L_VGG(r + G(x)_F, y_F). The refined face is pasted back into the
frame (`psrjax.geometry.face_crop`). Everybody Dance Now (`psrjax.systems.edn`) and the CoCosNet
video pose transfer (`psrjax.systems.cocovid`, its Eq. 9) train it as their last stage.

Departures: the face box is square around the head keypoints and follows the person's scale
(EDN: a fixed-size box around the nose; `face.size` gives that rule); G_f is a small pix2pixHD G1
with a tanh residual head whose output conv starts at zero, so the face stage starts from the
main generator's face (EDN's face generator is not specified beyond "residual"); frames without
any visible head keypoint keep the main generator's face.

Parameter groups: "g_face" (G_f) and "d_face" (D_f); configuration: the `face` block (`ngf`,
`n_downsample`, `n_blocks`, `num_d`, `margin`, `min_size`, `size`, `crop`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from psrjax import losses
from psrjax.geometry import face_crop
from psrjax.models import pix2pixhd as networks
from psrjax.systems import base
from psrjax.systems.tasks import gan
from psrjax.systems.tasks.person_video import fold, make_discriminator, unfold

GROUPS = ("g_face", "d_face")


class FaceGAN:
  """G_f and D_f on the face crops of a per-person system's frames (module docstring)."""

  def __init__(self, config):
    f, m = config.face, config.model
    self.config = config
    self.generator = networks.generator("global", "paper", ngf=f.ngf,
                                        n_downsample=f.n_downsample, n_blocks=f.n_blocks,
                                        remat=m.remat, conv_impl=m.conv_impl)
    self.discriminator = make_discriminator(m, num_d=f.num_d)

  def init(self, kf, kfd, batch):
    """{"g_face", "d_face"}: the face GAN's parameters, G_f's residual head zeroed."""
    face_label, face_rgb = self.crops(batch, batch["label"]), self.crops(batch, batch["rgb"])
    g_face = self.generator.init(kf, jnp.concatenate([face_label, face_rgb], axis=-1))
    # The residual starts at 0 (the output conv zeroed): G_f begins as the identity on the face.
    g_face = dict(g_face["params"])
    g_face["head"] = jax.tree.map(jnp.zeros_like, g_face["head"])
    return {"g_face": g_face,
            "d_face": self.discriminator.init(kfd, face_rgb, face_label)["params"]}

  def boxes(self, batch):
    f = self.config.face
    return face_crop.face_boxes(batch["keypoints"], margin=f.margin, min_size=f.min_size,
                                size=f.size or None)

  def crops(self, batch, images):
    """Face crops [B T, S, S, C] of images [B, T, H, W, C] (zeros outside the frame)."""
    return fold(face_crop.crop_box(images, self.boxes(batch), self.config.face.crop))

  def refine(self, params, batch, frames):
    """(frames [B, T, H, W, 3] with G_f's residual added in the face boxes, the refined face
    crops r + G(x)_F [B T, S, S, 3])."""
    boxes = self.boxes(batch)
    size = self.config.face.crop
    face_label = fold(face_crop.crop_box(batch["label"], boxes, size))
    face = fold(face_crop.crop_box(frames, boxes, size))
    residual = self.generator.apply({"params": params["g_face"]},
                                    jnp.concatenate([face_label, face], axis=-1))
    residual = residual.astype(face.dtype)
    # Only the residual is resampled back into the frame (pasted onto zeros, added): outside the
    # box and where r = 0 the frame is exactly the main generator's.
    back = face_crop.paste_box(jnp.zeros_like(frames),
                               unfold(residual, frames.shape[1]).astype(frames.dtype), boxes)
    head = face_crop.has_head(batch["keypoints"])[..., None, None, None]
    return jnp.where(head, frames + back, frames), face + residual

  def stage(self, name: str, steps: int, order: str, frames, reconstruction) -> base.Stage:
    """The stage training G_f and D_f ("g" and "d" phases in `order`) on the faces of
    `frames(params, batch)` [B, T, H, W, 3], the frozen main generator's; `reconstruction(params,
    real, fake, total, terms) -> (total, terms)` adds the perceptual terms of Eq. 6."""

    def forward(params, b, rng):
      del rng
      return {"face": self.refine(params, b, jax.lax.stop_gradient(frames(params, b)))[1]}

    def d_loss(params, b, outputs, rng):
      del rng
      cond, real = self.crops(b, b["label"]), self.crops(b, b["rgb"])
      d = lambda image: self.discriminator.apply({"params": params["d_face"]}, image, cond)
      return gan.discriminator_terms(d, real, outputs["face"], kind=self.config.loss.gan)

    def g_loss(params, b, outputs, rng):
      """Eq. 6: L_GAN(G_f, D_f) + λ_P L_VGG(r + G(x)_F, y_F)."""
      del rng
      cond, real = self.crops(b, b["label"]), self.crops(b, b["rgb"])
      logits, _ = self.discriminator.apply({"params": params["d_face"]}, outputs["face"], cond)
      terms = {"adv": losses.g_loss(logits, kind=self.config.loss.gan)}
      return reconstruction(params, real, outputs["face"], terms["adv"], terms)

    return gan.gan_stage(name, steps, order, base.Phase("g", ("g_face",), g_loss),
                         base.Phase("d", ("d_face",), d_loss), forward=forward)
