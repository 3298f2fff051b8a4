"""INTERnet (Yang, Gao, Ren, Ma and Gao, "Intrinsic Temporal Regularization for High-resolution
Human Video Synthesis", 2021): one network for every person that animates a source image with a
driving video, whose temporal loss is masked by the motion estimator's own confidence.

Networks (`psrjax.models.internet`): Stage I is the First Order Motion Model's estimator (group
"kp": keypoints and Jacobians; inside group "g": the dense motion F^0 and its confidence M^0 at
the base scale, upsampled into pyramids); Stage II, in group "g", a multi-scale residual
generator whose deformable skips warp the source's features at each scale by F^i and multiply
them by M^i (Eq. 6); group "d": one FOMM discriminator per scale of the image pyramid
(`model.d_scales`, pix2pixHD's multi-scale discriminator [32]).

Objective (Eq. 1): L_frame + lambda_reg L_reg, with L_frame (Eq. 7) the adversarial loss, the
VGG perceptual loss, the style loss and FOMM's equivariance losses. The paper gives no weights
and psrjax takes FOMM's where FOMM has the term (`psrjax.systems.tasks.keypoint_motion`, as
`psrjax.systems.fomm` trains: the pyramid perceptual L1 x 10 per layer and scale, LSGAN x 1 with
feature matching x 10, equivariance x 10 + 10; Eq. 8's multi-scale adversarial loss is
pix2pixHD's, which is least squares as FOMM's).
The style loss (Eqs. 10-11, `psrjax.losses.style_loss` on relu1_1..relu5_1 of the full-size
frame) and lambda_reg have no FOMM weight: `loss.style` and `loss.reg` (configs/internet.py
says how they were chosen).

L_reg, `loss.temporal` (Fig. 4), on [0, 1] frames with the exact flow of the synthetic world or
a prepared dataset's DIS flow:
- "none": no temporal loss;
- "flow" (a, Eq. 2): mean |O_t - W(I_{t-1})| over every pixel;
- "external" (b, Eq. 3): masked by the forward-backward consistency of the flows and Sundaram
  et al.'s motion boundaries (`psrjax.losses.temporal.occlusion_mask`);
- "intrinsic" (c, Eq. 4): masked by the estimator's own confidence M at the frame's size, its
  gradient reaching Stage I (the dense-motion network and the keypoint detector) directly
  through M, besides the path through Stage II that every scheme has.
W warps the previous ground-truth frame into frame t with the backward flow: psrjax compares in
frame t's coordinates, where M_t lives, instead of warping O_t into frame t-1 as Eq. 2 writes
(the same pixel pairs, `psrjax.losses.temporal`). The masked norms of Eqs. 3-4 are read as the
mean error over the mask (`loss.reg_average="mask"`: the weighted sum over the sum of the
weights), the usual reading of a masked loss. Averaged over every pixel instead ("pixels"),
Eq. 4 is minimised by M -> 0, and Eq. 6 does not hold M up: Stage II normalises its features
right after M multiplies them, so a uniformly smaller M costs L_frame almost nothing
(docs/systems/internet.md: measured). The mean of M is logged ("g/confidence").

Training (Sec. 3.3): the source is a video's first frame, the driving frame t a random frame at
least `data.min_driving_frame` frames into it (the paper: 2 s), frame t - 1 the previous one
(`psrjax.data.samplers.first_frame`); RAdam lr 2e-4 for the detector, the generator and the
discriminator, x 0.1 at 60 % and 90 % of the steps. Generator and discriminator step on one
forward, G then D (FOMM's trainer).

Evaluation and inference are the animation task's (`psrjax.systems.tasks.animation`), which
FOMM shares, so that the two systems' rows are measured alike: Table 2's self-imitation on
held-out identities, the first frame of each held-out clip animating its last
`data.eval_targets` (>= 3) frames with FOMM's relative motion, with SSIM and MS-SSIM, LPIPS,
Interp-PSNR, Act-Recog-L1, E_temp (FID as the "fid" eval type); `psrjax synthesize --source
IMAGE --driving PATH` animates an image file.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from psrjax.data.samplers import first_frame
from psrjax.losses import perceptual as perceptual_losses
from psrjax.losses import temporal as temporal_losses
from psrjax.models import internet as internet_models
from psrjax.systems.tasks import animation
from psrjax.systems.tasks import keypoint_motion

SCHEMES = ("none", "flow", "external", "intrinsic")   # Fig. 4: -, (a), (b), (c)


class INTERnet(animation.KeypointAnimationTask):
  """INTERnet over videos of many people (module docstring)."""

  min_eval_targets = (3, "Interp-PSNR")

  def __init__(self, config):
    c = config.loss
    if c.temporal not in SCHEMES:
      raise ValueError(f"loss.temporal must be one of {', '.join(SCHEMES)}; got {c.temporal!r}")
    if c.style > 0 and (c.perceptual <= 0 or 1.0 not in tuple(c.scales)):
      raise ValueError("loss.style reads the full-size frame's VGG features of the perceptual "
                       "loss: set loss.perceptual > 0 with 1.0 in loss.scales, or loss.style=0")
    keypoint_motion.check_loss(c, config.data.resolution)
    super().__init__(config)
    self.motion = keypoint_motion.KeypointMotion(config, internet_models.networks(config.model))

  def check_training_data(self, d):
    first_frame.check_min_frame(d.num_frames, d.min_driving_frame)

  def train_dataset(self, *, seed, shard_index, shard_count):
    return first_frame.train_dataset(self.config.data, seed=seed, shard_index=shard_index,
                                     shard_count=shard_count)

  def train_example_spec(self):
    return first_frame.example_spec(self.config.data)

  # ----------------------------------------------------------------------------- training
  def stages(self):
    return (self.motion.stage(self._g_loss),)

  def optimizers(self):
    o = self.config.optim
    schedule = keypoint_motion.schedule(o, self.config.train.steps)
    radam = lambda: optax.radam(schedule, b1=o.b1, b2=o.b2)
    return {"kp": radam(), "g": radam(), "d": radam()}

  def init(self, rng, batch):
    return self.motion.init(rng, batch)

  def constants(self):
    return {**super().constants(), **self.motion.constants()}

  def _g_loss(self, params, b, outputs, rng):
    """L_frame (FOMM's terms and the style loss) + lambda_reg L_reg; the confidence's mean."""
    del rng
    total, terms = self.motion.generator_terms(params, b, outputs, self._style)
    c = self.config.loss
    if c.temporal != "none":
      terms["reg"] = self._regularisation(b, outputs)
      total = total + c.reg * terms["reg"]
    terms["confidence"] = jnp.mean(outputs["confidence"])
    return total, terms

  def _style(self, pred_features, target_features) -> dict:
    """The style loss on the full-size frame's VGG features (none with `loss.style` 0)."""
    c = self.config.loss
    if c.style <= 0:
      return {}
    return {"style": (c.style, perceptual_losses.style_loss(pred_features, target_features,
                                                            keypoint_motion.VGG_LAYERS))}

  def _regularisation(self, b, outputs):
    """L_reg of `loss.temporal` (module docstring) for frame t, a float32 scalar."""
    scheme = self.config.loss.temporal
    previous = jax.lax.stop_gradient(animation.unit(b["tgt_rgb"][:, -2].astype(jnp.float32)))
    frames = jnp.stack([previous, outputs["prediction"].astype(jnp.float32)], axis=1)
    mask = None
    if scheme == "intrinsic":
      confidence = outputs["confidence_full"]
      mask = jnp.stack([jnp.zeros_like(confidence), confidence], axis=1)
    return temporal_losses.temporal_warp_loss(
        frames, b["tgt_flow_fwd"][:, -2:], b["tgt_flow_bwd"][:, -2:],
        previous=jnp.stack([previous, previous], axis=1), mask=mask,
        occlusion=scheme == "external", motion_boundaries=scheme == "external",
        average=self.config.loss.get("reg_average", "mask"))

  # ----------------------------------------------------------------------------- the model
  def keypoints(self, params, frames):
    return self.motion.keypoints(params, frames)

  def animate(self, params, source, kp_source, kp_driving):
    return self.motion.animate(params, source, kp_source, kp_driving)


def make_system(config) -> INTERnet:
  return INTERnet(config)
