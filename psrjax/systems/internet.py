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
and psrjax takes FOMM's where FOMM has the term (`psrjax.systems.fomm`: the pyramid perceptual
L1 x 10 per layer and scale, LSGAN x 1 with feature matching x 10, equivariance x 10 + 10;
Eq. 8's multi-scale adversarial loss is pix2pixHD's, which is least squares as FOMM's).
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
(the same pixel pairs, `psrjax.losses.temporal`). Eq. 4 alone is minimised by M -> 0; what
prevents it is Eq. 6, where M multiplies the warped source features, so that a vanishing M
blanks the generator's view of the source and L_frame rises. The mean of M is logged
("g/confidence") to show where the balance settles.

Training (Sec. 3.3): the source is a video's first frame, the driving frame t a random frame at
least `data.min_driving_frame` frames into it (the paper: 2 s), frame t - 1 the previous one
(`psrjax.data.samplers.first_frame`); RAdam lr 2e-4 for the detector, the generator and the
discriminator, x 0.1 at 60 % and 90 % of the steps. Generator and discriminator step on one
forward, G then D (FOMM's trainer).

Evaluation and inference are FOMM's (`psrjax.systems.fomm`: Table 2's self-imitation on
held-out identities, the first frame of each held-out clip animating its last
`data.eval_targets` frames, with SSIM and MS-SSIM, LPIPS, Interp-PSNR, Act-Recog-L1, E_temp; FID
as the "fid" eval type), so that the two systems' rows are measured alike; `psrjax synthesize
--source IMAGE --driving PATH` animates an image file.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from psrjax.data.samplers import first_frame
from psrjax.losses import perceptual as perceptual_losses
from psrjax.losses import temporal as temporal_losses
from psrjax.models import internet as internet_models
from psrjax.systems import fomm

SCHEMES = ("none", "flow", "external", "intrinsic")   # Fig. 4: -, (a), (b), (c)


class INTERnet(fomm.FOMM):
  """INTERnet over videos of many people (module docstring)."""

  def __init__(self, config):
    c = config.loss
    if c.temporal not in SCHEMES:
      raise ValueError(f"loss.temporal must be one of {', '.join(SCHEMES)}; got {c.temporal!r}")
    if c.style > 0 and (c.perceptual <= 0 or 1.0 not in tuple(c.scales)):
      raise ValueError("loss.style reads the full-size frame's VGG features of the perceptual "
                       "loss: set loss.perceptual > 0 with 1.0 in loss.scales, or loss.style=0")
    super().__init__(config)

  def _check_data(self, d):
    first_frame.check_min_frame(d.num_frames, d.min_driving_frame)
    if d.eval_targets < 3:
      raise ValueError(f"data.eval_targets must be >= 3 driving frames (Interp-PSNR); got "
                       f"{d.eval_targets}")
    fomm.same_video.check_lengths(d.num_frames, 1, d.eval_targets)

  def _networks(self, settings):
    return internet_models.networks(settings)

  def optimizers(self):
    o = self.config.optim
    steps = self.config.train.steps
    schedule = optax.piecewise_constant_schedule(
        o.lr, {int(round(f * steps)): 0.1 for f in o.milestones})
    radam = lambda: optax.radam(schedule, b1=o.b1, b2=o.b2)
    return {"kp": radam(), "g": radam(), "d": radam()}

  # ----------------------------------------------------------------------------- losses
  def _g_loss(self, params, b, outputs, rng):
    total, terms = super()._g_loss(params, b, outputs, rng)
    c = self.config.loss
    if c.temporal != "none":
      terms["reg"] = self._regularisation(b, outputs)
      total = total + c.reg * terms["reg"]
    terms["confidence"] = jnp.mean(outputs["confidence"])
    return total, terms

  def _vgg_terms(self, params, prediction, target) -> dict:
    """FOMM's pyramid perceptual loss and, on the full-size frame's features, the style loss."""
    c = self.config.loss
    total, (pred_features, target_features) = self._vgg_pyramid(params, prediction, target)
    out = {"perceptual": (c.perceptual, total)}
    if c.style > 0:
      out["style"] = (c.style, perceptual_losses.style_loss(pred_features, target_features,
                                                            fomm.VGG_LAYERS))
    return out

  def _regularisation(self, b, outputs):
    """L_reg of `loss.temporal` (module docstring) for frame t, a float32 scalar."""
    scheme = self.config.loss.temporal
    previous = jax.lax.stop_gradient(fomm._unit(b["tgt_rgb"][:, -2].astype(jnp.float32)))
    frames = jnp.stack([previous, outputs["prediction"].astype(jnp.float32)], axis=1)
    mask = None
    if scheme == "intrinsic":
      confidence = outputs["confidence_full"]
      mask = jnp.stack([jnp.zeros_like(confidence), confidence], axis=1)
    return temporal_losses.temporal_warp_loss(
        frames, b["tgt_flow_fwd"][:, -2:], b["tgt_flow_bwd"][:, -2:],
        previous=jnp.stack([previous, previous], axis=1), mask=mask,
        occlusion=scheme == "external", motion_boundaries=scheme == "external")

  # ----------------------------------------------------------------------------- data
  def dataset(self, split, *, seed, shard_index, shard_count):
    if split != "train":
      return super().dataset(split, seed=seed, shard_index=shard_index, shard_count=shard_count)
    return first_frame.train_dataset(self.config.data, seed=seed, shard_index=shard_index,
                                     shard_count=shard_count)

  def example_spec(self, split):
    if split != "train":
      return super().example_spec(split)
    spec = first_frame.example_spec(self.config.data)
    return {k: jax.ShapeDtypeStruct(s, d) for k, (s, d) in spec.items()}


def make_system(config) -> INTERnet:
  return INTERnet(config)
