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
(`psrjax.data.first_frame`); RAdam lr 2e-4 for the detector, the generator and the
discriminator, x 0.1 at 60 % and 90 % of the steps. Generator and discriminator step on one
forward, G then D (FOMM's trainer).

Evaluation (Table 2, self-imitation on held-out identities): the first frame of each held-out
clip animates its last `data.eval_targets` frames; SSIM, MS-SSIM (both: the paper's text says
SSIM, its table MS-SSIM), PSNR, L1, LPIPS, E_temp, and Interp-PSNR: each frame t of the output
predicted from O_{t-1} and O_{t+1} by flow-based midpoint interpolation with the ground-truth
flows (`psrjax.metrics.interpolation_psnr`; the paper's Super SloMo is not available here) and
compared with the ground-truth frame I_t ("interp_psnr", the paper's wording) and with O_t
itself ("interp_psnr_self"). FID is the "fid" eval type; Act-Recog-L1 (the packaged Kinetics I3D,
`psrjax.metrics.action_feature_distance`) is computed per clip with `eval.act_recog`.
Inference is FOMM's relative-motion animation; `psrjax synthesize --source IMAGE --driving PATH`
animates an image file.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from psrjax.data import first_frame
from psrjax.losses import perceptual as perceptual_losses
from psrjax.losses import temporal as temporal_losses
from psrjax.metrics import temporal as temporal_metrics, video as video_metrics
from psrjax.models import internet as internet_models
from psrjax.models import pretrained
from psrjax.systems import fomm

SCHEMES = ("none", "flow", "external", "intrinsic")   # Fig. 4: -, (a), (b), (c)


class INTERnet(fomm.FOMM):
  """INTERnet over videos of many people (module docstring)."""

  modalities = first_frame.MODALITIES

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

  def constants(self):
    out = super().constants()
    if self.config.eval.act_recog:
      out["i3d"] = pretrained.load("i3d", self.config.eval.i3d_weights or None,
                                   final_endpoint="Mixed_5c")[1]
    return out

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

  # ----------------------------------------------------------------------------- evaluation
  def evaluate(self, params, batch):
    """FOMM's values per example [B] and interp_psnr, interp_psnr_self (and act_recog_l1 with
    `eval.act_recog`)."""
    pred = self.generate(params, batch)["frames"]
    target = batch["tgt_rgb"]
    values = self._frame_metrics(params, pred, batch)
    flows = (batch["tgt_flow_fwd"], batch["tgt_flow_bwd"])
    values["interp_psnr"] = temporal_metrics.interpolation_psnr(pred, *flows, target)
    values["interp_psnr_self"] = temporal_metrics.interpolation_psnr(pred, *flows, pred)
    if "i3d" in params:
      i3d = functools.partial(self._i3d().apply, params["i3d"])
      values["act_recog_l1"] = video_metrics.action_feature_distance(i3d, pred, target)
    return values

  def _i3d(self):
    return pretrained.make_module("i3d", final_endpoint="Mixed_5c",
                                  conv_impl=self.config.model.conv_impl)

  # ----------------------------------------------------------------------------- data
  def dataset(self, split, *, seed, shard_index, shard_count):
    if split == "train":
      return first_frame.train_dataset(self.config.data, seed=seed, shard_index=shard_index,
                                       shard_count=shard_count)
    ds = first_frame.eval_dataset(self.eval_data, split,
                                  num_clips=max(1, self.config.eval.num_examples),
                                  shard_index=shard_index, shard_count=shard_count)
    return ds.map(fomm._with_initial)

  def example_spec(self, split):
    if split == "train":
      spec = first_frame.example_spec(self.config.data)
    else:
      spec = first_frame.example_spec(self.eval_data, self.eval_data.num_targets)
      spec["init_rgb"] = (spec["src_rgb"][0][1:], np.float32)
    return {k: jax.ShapeDtypeStruct(s, d) for k, (s, d) in spec.items()}


def make_system(config) -> INTERnet:
  return INTERnet(config)
