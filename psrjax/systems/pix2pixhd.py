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

import jax
import jax.numpy as jnp
import optax

from psrjax.systems import base
from psrjax.systems.tasks import gan, person_video
from psrjax.systems.tasks.person_video import fold, unfold


class Pix2PixHD(person_video.PersonVideoTask):
  """pix2pixHD / pix2pix on one person's video (module docstring); configs/pix2pixhd.py."""

  def __init__(self, config):
    super().__init__(config)
    person_video.label_channels(config.pose)
    self.generator = person_video.make_generator(config.model)
    self.discriminator = person_video.make_discriminator(config.model)

  def init(self, rng, batch):
    kg, kd = jax.random.split(rng)
    label = fold(batch["label"])
    return {"g": self.generator.init(kg, label)["params"],
            "d": self.discriminator.init(kd, fold(batch["rgb"]), label)["params"]}

  def optimizers(self):
    o = self.config.optim
    lr = gan.decayed_lr(o.lr, self.config.train.steps, o.decay_fraction)
    return {g: optax.adam(lr, b1=o.b1, b2=o.b2) for g in ("g", "d")}

  # ----------------------------------------------------------------------------- schedule
  def stages(self):
    """One stage: G and D (on label, frame pairs) in `optim.update_order`."""
    return (gan.gan_stage("main", self.config.train.steps, self.update_order,
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
    return gan.discriminator_terms(self._disc(params, b), fold(b["rgb"]), fold(outputs["out"]),
                                   kind=self.config.loss.gan)

  def _g_loss(self, params, b, outputs, rng):
    """Adversarial + λ_FM feature matching + λ_VGG VGG (+ λ_L1 L1) on every frame."""
    del rng
    c = self.config.loss
    real, fake = fold(b["rgb"]), fold(outputs["out"])
    total, terms = gan.generator_terms(self._disc(params, b), real, fake, kind=c.gan, fm=c.fm)
    return self.reconstruction(params, real, fake, total, terms)

  # ----------------------------------------------------------------------------- inference
  def generate(self, params, batch):
    """"frames" [B, T, H, W, 3] in [-1, 1], each from its own label."""
    return {"frames": jnp.clip(self._forward(params, batch, None)["out"], -1.0, 1.0)}


def make_system(config) -> Pix2PixHD:
  return Pix2PixHD(config)
