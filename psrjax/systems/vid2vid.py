"""vid2vid (Wang et al., NeurIPS 2018, "Video-to-Video Synthesis") as a per-person pose-to-video
system, on the task pix2pixHD's system uses (`psrjax.systems.tasks.person_video`).

Networks (`psrjax.models.vid2vid`): the composite sequential generator G, the multi-scale image
discriminator D_I on (label, frame) and `model.n_scales_temporal` temporal discriminators D_T^s
on n_frames_D = 3 frames `n_frames_D ** s` apart (s = 0: consecutive frames; s = 1: 3 apart)
with their reference flows.

Generation, frame by frame (a `jax.lax.scan` over the clip): frame t reads the pose labels of
frames t-2, t-1, t (the label of the current frame last) and the n_frames_G - 1 = 2 frames G
generated before it. The labels before a window are those of the real frames before it (the
per-person sampler's context frames, the first frame repeated at a video's start). The first
frame of a video has no generated predecessors: its `previous` is zeros and it is G's raw image
(the authors' `--no_first_img`, which their pose scripts use); every later frame is the composite
w * raw + (1 - w) * warp(previous frame, flow). `previous` is under stop_gradient, as the
authors' `--max_frames_backpropagate 1` (their default) detaches it. Evaluation and synthesis
generate each held-out run (or driving window) the same way, from zeros at a video's start and
carrying the last two generated frames from window to window (`generate_window`).

The pose label of a frame is the authors' pose input: a DensePose-style IUV image followed by the
per-person task's label (`pose.label`, the stick figure standing in for OpenPose's rendering),
6 channels per frame as their `torch.cat([Di, Oi])`. The IUV image (`iuv_label`) is made from
the source's part and UV maps (`model.iuv`; the synthetic world's are exact, a prepared video
holds none unless its dataset has them: `model.iuv=False` then drops the IUV channels, or
`data.surface_from` predicts them from its keypoints with D²G-Net's pre-trained UV generator,
`psrjax.data.sources.predicted_surface`, in place of the authors' DensePose estimate). The
authors' training-time random removal of DensePose parts (`--random_drop_prob`) is not done. A
driving video's part and UV maps move with the pose normalisation of its keypoints onto the
learned person (`per_person.follow_keypoints`), as the stick figure does.

Objective per training clip of T frames (the authors' vid2vid_model_D.py, weights from
options/train_options.py), LSGAN, with m_t the occlusion mask of the reference flow (the
forward-backward test of `psrjax.losses.temporal`, standing in for FlowNet2's confidence):
  G:   sum over D_I's scales of the adversarial term on (label, frame) and on (label, raw image)
       + λ_feat (=10) their feature matching + λ_VGG (=10) VGG of the frame and of the raw image
       + λ_F (=10) |m (flow - flow_ref)|                              (loss.flow)
       + λ_T (=10) |m (warp(real_{t-1}, flow) - real_t)|              (loss.warp)
       + λ_T (=10) |m (frame_t - sg(warp(frame_{t-1}, flow_ref)))|    (loss.g_warp)
       + 1 x |m w|, pulling w toward the warped frame (`--no_first_img`'s weight loss; loss.weight)
       + sum_s (adversarial + λ_feat feature matching) of D_T^s
  D_I: 0.5 (real + generated + real + raw) LSGAN terms;  D_T^s: 0.5 (real + generated).
The masked L1 terms (the authors' `MaskedL1Loss`: the mean of |m a - m b|) run over frames
1..T-1: the previous real frame of a window's first frame is not in the batch. The flow
reference is the data's exact backward flow (`flow_bwd`, frame t to t-1: the synthetic world's
ground truth, or the flow `psrjax prepare` estimated for a prepared video); D_T^s reads the
reference flows of its frames (frame-to-frame flows composed `n_frames_D ** s` times for s > 0),
divided by 20, for real and generated frames alike, as the authors feed FlowNet2's. D_T^s sees
the non-overlapping 3-frame groups of the clip counted back from its last frame (the authors'
`get_skipped_frames`); a clip must be longer than a group's span, 2 x 3^s frames. Adam 2e-4,
betas (0.5, 0.999) for G, D_I and every D_T^s; G, then the discriminators, on the losses of one
forward (`optim.update_order="gd"`, the authors' train.py).

Departures: no FlowNet2 (the data's flow and its occlusion mask instead of FlowNet2's flow and
confidence); the first frame of every training clip is the raw image from zeros, as at test time
(the authors' first forward call of a sequence treats all its frames so); clips are T consecutive
frames, one update per clip (the authors' train.py loads a clip `--max_frames_per_gpu` frames
at a time, an update per load, the generated frames carried between loads; no `--max_t_step`
frame skipping, no growth of the spatial scales: one scale, the authors' 256p model); no face
discriminator (`--add_face_disc`, not in the pose scripts). Evaluation: the per-person task's
metrics on its held-out runs.

Progressive clip length (`schedule.clip_doublings`, the authors' `--n_frames_total` doubled every
`--niter_step` epochs: 12 then 24 frames over the pose script's 10 epochs): stages of equal
steps whose clips are the first `data.frames_per_example / 2^k` frames of each example, k
counting down to 0 (`clip_lengths`); a stage trains the D_T^s whose frame groups its clips hold
(as the authors skip a scale without one), and a D_T^s's learning-rate schedule starts at its
first stage.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from psrjax.data.samplers import per_person
from psrjax.data.sources import base as sources
from psrjax.data.synthetic.body import NUM_PARTS
from psrjax.losses import temporal as temporal_losses
from psrjax.models import vid2vid as networks
from psrjax.systems import base
from psrjax.systems.tasks import gan, person_video
from psrjax.systems.tasks.person_video import fold

# The source modalities the IUV label is made from.
SURFACE = ("part", "uv")


def iuv_label(part: jax.Array, uv: jax.Array) -> jax.Array:
  """The DensePose-style IUV image [..., H, W, 3] in [-1, 1] of part maps [..., H, W] (0 the
  background, 1..NUM_PARTS body parts) and (u, v) maps [..., H, W, 2] in [0, 1], as the
  authors' pose dataset reads a DensePose IUV file (written by OpenCV, read as RGB): channels
  (V, U, I), U and V mapped to [-1, 1], the part index I to 2 I / 24 - 1; the background -1 in
  every channel."""
  on = (part > 0)[..., None]
  vu = jnp.where(on, 2.0 * uv[..., ::-1].astype(jnp.float32) - 1.0, -1.0)
  index = 2.0 * part[..., None].astype(jnp.float32) / NUM_PARTS - 1.0
  return jnp.concatenate([vu, index], axis=-1)


def _clip_doublings(config) -> int:
  """`schedule.clip_doublings` (0 where a config has no schedule block: one clip length)."""
  return config.get("schedule", {}).get("clip_doublings", 0)


def _require_surface(source, what: str) -> None:
  """A one-line ValueError when `source` lacks the part or UV maps."""
  missing = [k for k in SURFACE if k not in source.modalities]
  if missing:
    raise ValueError(f"{what} reads part and UV maps, which {sources.describe(source)} does not "
                     f"hold (it has {', '.join(source.modalities)}); set --config.model.iuv=False "
                     "for the pose label alone, or predict the maps of a prepared video with "
                     "--config.data.surface_from=WORKDIR of `psrjax train --config "
                     "configs/d2gnet.py:runlocal,pretrain,label2d`")


class Vid2Vid(person_video.PersonVideoTask):
  """vid2vid on one person's video (module docstring); configs/vid2vid.py."""

  float32_inputs = ("flow_fwd", "flow_bwd")

  def __init__(self, config):
    super().__init__(config)
    person_video.label_channels(config.pose)
    m = config.model
    self._check(config)
    if m.iuv:
      _require_surface(per_person.source(config.data), "vid2vid's IUV label (model.iuv)")
    self.n_frames = m.n_frames_g
    common = dict(conv_impl=m.conv_impl, remat=m.remat)
    self.generator = networks.generator("paper", ngf=m.ngf, n_downsample=m.n_downsample,
                                        n_blocks=m.n_blocks, n_frames=m.n_frames_g,
                                        norm=m.norm_g, **common)
    d = dict(num_d=m.num_d, ndf=m.ndf, num_layers=m.d_layers, norm=m.norm_d, **common)
    self.discriminator = networks.image_discriminator("paper", **d)
    self.temporal = networks.temporal_discriminator("paper", n_frames=m.n_frames_d, **d)

  @staticmethod
  def _check(config) -> None:
    m, t = config.model, config.data.frames_per_example
    if m.n_frames_g < 2:
      raise ValueError(f"model.n_frames_g must be >= 2 (the current frame and one before); got "
                       f"{m.n_frames_g}")
    if m.n_frames_d < 2 or m.n_scales_temporal < 1:
      raise ValueError(f"model.n_frames_d must be >= 2 and model.n_scales_temporal >= 1; got "
                       f"{m.n_frames_d} and {m.n_scales_temporal}")
    doublings = _clip_doublings(config)
    if not isinstance(doublings, int) or doublings < 0 or t % 2 ** doublings:
      raise ValueError(f"schedule.clip_doublings must be an int >= 0 with data.frames_per_example "
                       f"divisible by 2^clip_doublings; got {doublings!r} and {t}")
    if t // 2 ** doublings < 2:
      raise ValueError(f"the first clip stage's clips, data.frames_per_example / 2^"
                       f"schedule.clip_doublings = {t // 2 ** doublings} frames, must hold 2")
    span = m.n_frames_d ** (m.n_scales_temporal - 1) * (m.n_frames_d - 1)
    if t <= span:
      raise ValueError(f"data.frames_per_example must exceed {span}, the span of the coarsest "
                       f"temporal discriminator's frames; got {t} (lower "
                       f"model.n_scales_temporal or lengthen the clips)")

  # ----------------------------------------------------------------------------- data
  def data_reads(self, split):
    """The keypoints of the n_frames_g - 1 frames before each window (the first frame's label
    context) and, with `model.iuv`, the part and UV maps of the window and of those frames."""
    del split
    surface = SURFACE if self.config.model.iuv else ()
    return {"context": self.n_frames - 1, "extra": surface, "context_keys": surface}

  def prepare(self, batch):
    """Adds "label" [B, T, H, W, C] and "context_label" [B, n_frames_g - 1, H, W, C]: with
    `model.iuv` the IUV image, then the pose label."""
    batch = super().prepare(batch)
    h, w = batch["label"].shape[2:4]
    label = batch["label"]
    context = person_video.pose_label(self.config.pose, batch["context_keypoints"], h, w)
    if self.config.model.iuv:
      label = jnp.concatenate([iuv_label(batch["part"], batch["uv"]).astype(label.dtype), label],
                              axis=-1)
      context = jnp.concatenate([iuv_label(batch["context_part"], batch["context_uv"])
                                 .astype(context.dtype), context], axis=-1)
    return {**batch, "label": jax.lax.stop_gradient(label),
            "context_label": jax.lax.stop_gradient(context)}

  def _check_driving(self, driving: str) -> None:
    """A driving video must hold the part and UV maps of the IUV label (`model.iuv`)."""
    super()._check_driving(driving)
    if self.config.model.iuv:
      _require_surface(per_person.driving_source(self.config.data, driving),
                       "driving vid2vid with the IUV label (model.iuv)")

  def _label_windows(self, b):
    """[T, B, n_frames_g, H, W, C]: frame t's labels t - n_frames_g + 1 .. t."""
    labels = jnp.concatenate([b["context_label"], b["label"]], axis=1)
    length = b["label"].shape[1]
    return jnp.stack([labels[:, t:t + self.n_frames] for t in range(length)])

  # ----------------------------------------------------------------------------- networks
  def init(self, rng, batch):
    kg, kd, *kt = jax.random.split(rng, 2 + self.config.model.n_scales_temporal)
    first = self._label_windows(batch)[0]
    zeros = jnp.zeros(first.shape[:2] + first.shape[2:4] + (3,), first.dtype)
    params = {"g": self.generator.init(kg, first, zeros[:, 1:])["params"],
              "d": self.discriminator.init(kd, fold(batch["label"]), fold(batch["rgb"]))["params"]}
    for s, key in enumerate(kt):
      frames, flows = self._groups(batch["rgb"], batch["flow_bwd"], s)
      params[f"d_t{s}"] = self.temporal.init(key, frames, flows)["params"]
    return params

  def _temporal_groups(self) -> tuple[str, ...]:
    return tuple(f"d_t{s}" for s in range(self.config.model.n_scales_temporal))

  def optimizers(self):
    """Adam for G, D_I and every D_T^s, each rate constant for the first half of the steps and
    then linearly to 0 (`optim.decay_fraction`), on the run's steps: a D_T^s that starts at a
    later clip stage starts its schedule there."""
    o = self.config.optim
    lr = gan.decayed_lr(o.lr, self.config.train.steps, o.decay_fraction)
    out = {g: optax.adam(lr, b1=o.b1, b2=o.b2) for g in ("g", "d")}
    for s, name in enumerate(self._temporal_groups()):
      first = self._first_step(s)
      later = lambda count, first=first: lr(count + first)
      out[name] = optax.adam(lr if first == 0 else later, b1=o.b1, b2=o.b2)
    return out

  # ----------------------------------------------------------------------------- schedule
  def clip_lengths(self) -> tuple[int, ...]:
    """The clip length of each stage: `data.frames_per_example` halved `schedule.clip_doublings`
    times, doubling at equal shares of the steps (the authors' progressive --n_frames_total,
    doubled every --niter_step epochs)."""
    doublings = _clip_doublings(self.config)
    return tuple(self.config.data.frames_per_example // 2 ** (doublings - i)
                 for i in range(doublings + 1))

  def _stage_steps(self) -> list[int]:
    n, steps = len(self.clip_lengths()), self.config.train.steps
    return [steps // n] * (n - 1) + [steps - steps // n * (n - 1)]

  def _scales(self, length: int) -> tuple[int, ...]:
    """The temporal scales whose groups a clip of `length` frames holds (the authors skip the
    D_T^s without one)."""
    n = self.config.model.n_frames_d
    return tuple(s for s in range(self.config.model.n_scales_temporal)
                 if length > n ** s * (n - 1))

  def _first_step(self, scale: int) -> int:
    """The first step of the first stage that trains D_T^scale."""
    start = 0
    for length, steps in zip(self.clip_lengths(), self._stage_steps()):
      if scale in self._scales(length):
        return start
      start += steps
    return start

  def stages(self):
    """One stage per clip length (`clip_lengths`; "main" when there is one): G, D_I and the
    D_T^s the clips hold on one forward, G first ("gd") or last ("dg")."""
    lengths = self.clip_lengths()
    out = []
    for length, steps in zip(lengths, self._stage_steps()):
      clip = lambda loss, length=length: (
          lambda params, b, outputs, rng: loss(params, self._clip(b, length), outputs, rng))
      scales = self._scales(length)
      g = base.Phase("g", ("g",), clip(functools.partial(self._g_loss, scales=scales)))
      ds = [base.Phase("d", ("d",), clip(self._d_loss))]
      ds += [base.Phase(f"d_t{s}", (f"d_t{s}",), clip(self._temporal_d_loss(s))) for s in scales]
      phases = (g, *ds) if self.update_order == "gd" else (*ds, g)
      forward = lambda params, b, rng, length=length: self._forward(params,
                                                                    self._clip(b, length), rng)
      out.append(base.Stage("main" if len(lengths) == 1 else f"clip{length}", steps, phases,
                            forward=forward, forward_phase="g"))
    return tuple(out)

  def _clip(self, b, length: int):
    """The batch's clips cut to their first `length` frames (the context frames kept)."""
    full = b["label"].shape[1]
    if length == full:
      return b
    return {k: v[:, :length] if not k.startswith("context_") and jnp.ndim(v) >= 2
            and v.shape[1] == full else v for k, v in b.items()}

  # ----------------------------------------------------------------------------- generation
  def _sequence(self, params, b, state):
    """The clip generated frame by frame from `state` ({"previous" [B, n_frames_g - 1, H, W, 3],
    "first" [B]: 1 where the clip starts a video}): ({"out", "raw", "flow", "weight"} [B, T,
    ...], the state after the clip)."""

    def step(carry, labels):
      previous, first = carry
      out = self.generator.apply({"params": params["g"]}, labels,
                                 jax.lax.stop_gradient(previous).astype(labels.dtype))
      image = jnp.where(first[:, None, None, None] > 0, out["raw"], out["image"])
      previous = jnp.concatenate([previous[:, 1:], image[:, None].astype(previous.dtype)], 1)
      frame = {"out": image, "raw": out["raw"], "flow": out["flow"], "weight": out["weight"]}
      return (previous, jnp.zeros_like(first)), frame

    (previous, first), frames = jax.lax.scan(step, (state["previous"], state["first"]),
                                             self._label_windows(b))
    return (jax.tree.map(lambda x: jnp.moveaxis(x, 0, 1), frames),
            {"previous": previous, "first": first})

  def window_state(self, batch):
    """A video's start: zero previous frames, the first frame raw."""
    b, _, h, w, _ = batch["label"].shape
    return {"previous": jnp.zeros((b, self.n_frames - 1, h, w, 3), batch["label"].dtype),
            "first": jnp.ones((b,), batch["label"].dtype)}

  def _forward(self, params, b, rng):
    """Each training clip generated from a video's start (module docstring)."""
    del rng
    return self._sequence(params, b, self.window_state(b))[0]

  def generate(self, params, batch):
    """"frames" [B, T, H, W, 3] in [-1, 1]: each run generated frame by frame from zeros."""
    return self.generate_window(params, batch, self.window_state(batch))[0]

  def generate_window(self, params, batch, state):
    """`generate` continuing from the frames generated before the window (`state`)."""
    frames, state = self._sequence(params, batch, state)
    return {"frames": jnp.clip(frames["out"], -1.0, 1.0)}, state

  # ----------------------------------------------------------------------------- temporal groups
  def _skip_flows(self, flow_bwd, skip: int):
    """Flows [B, T, H, W, 2] from frame t to frame t - `skip`, composed from the frame-to-frame
    backward flows (f_k(p) = b_t(p) + f_{k-1, t-1}(p + b_t(p))); frames before `skip` hold
    partial compositions and are never read."""
    flow_bwd = flow_bwd.astype(jnp.float32)
    flows = flow_bwd
    for _ in range(skip - 1):
      before = jnp.concatenate([jnp.zeros_like(flows[:, :1]), flows[:, :-1]], axis=1)
      flows = flow_bwd + networks.warp(before, flow_bwd)
    return flows

  def _groups(self, video, flow_bwd, scale: int):
    """D_T^scale's inputs: the non-overlapping groups of n_frames_d frames `n_frames_d ** scale`
    apart counted back from the clip's last frame, [G B, n_frames_d, H, W, C], and their
    reference flows [G B, n_frames_d - 1, H, W, 2] (the authors' `get_skipped_frames`)."""
    n = self.config.model.n_frames_d
    skip, length = n ** scale, video.shape[1]
    span = skip * (n - 1)
    flows = self._skip_flows(flow_bwd, skip)
    index = [list(range(length - 1 - t - span, length - t, skip))
             for t in range(0, length - span, n)]
    frames = jnp.concatenate([video[:, i] for i in index])
    return frames, jnp.concatenate([flows[:, i[1:]] for i in index])

  # ----------------------------------------------------------------------------- losses
  def _image_disc(self, params, b):
    cond = fold(b["label"])
    return lambda image: self.discriminator.apply({"params": params["d"]}, cond, image)

  def _temporal_disc(self, params, b, scale: int):
    """D_T^scale on a clip [B, T, H, W, 3] -> (logits, features), its groups and flows bound."""
    flows = self._groups(b["rgb"], b["flow_bwd"], scale)[1]
    return lambda video: self.temporal.apply(
        {"params": params[f"d_t{scale}"]}, self._groups(video, b["flow_bwd"], scale)[0], flows)

  def _d_loss(self, params, b, outputs, rng):
    """D_I on (label, frame) and (label, raw image), each half the summed LSGAN terms."""
    del rng
    d, real, kind = self._image_disc(params, b), fold(b["rgb"]), self.config.loss.gan
    total, terms = gan.discriminator_terms(d, real, fold(outputs["out"]), kind=kind)
    raw_total, raw = gan.discriminator_terms(d, real, fold(outputs["raw"]), kind=kind)
    return total + raw_total, {**terms, "adv_raw": raw["adv"]}

  def _temporal_d_loss(self, scale: int):
    def loss(params, b, outputs, rng):
      del rng
      return gan.discriminator_terms(self._temporal_disc(params, b, scale), b["rgb"],
                                     outputs["out"], kind=self.config.loss.gan)
    return loss

  def _g_loss(self, params, b, outputs, rng, scales=None):
    """The generator's objective (module docstring), every term reported; `scales`: the
    temporal discriminators' (None: all)."""
    del rng
    total, terms = self._image_terms(params, b, outputs["out"], "")
    raw_total, raw_terms = self._image_terms(params, b, outputs["raw"], "_raw")
    flow_total, flow_terms = self._flow_terms(b, outputs)
    total, terms = total + raw_total + flow_total, {**terms, **raw_terms, **flow_terms}
    c = self.config.loss
    for s in range(self.config.model.n_scales_temporal) if scales is None else scales:
      t_total, t_terms = gan.generator_terms(self._temporal_disc(params, b, s), b["rgb"],
                                             outputs["out"], kind=c.gan, fm=c.fm)
      total = total + t_total
      terms.update({f"t{s}_{k}": v for k, v in t_terms.items()})
    return total, terms

  def _image_terms(self, params, b, fake, suffix: str):
    """D_I's adversarial + λ_feat feature matching + λ_VGG VGG (+ λ_L1) terms of `fake` [B, T,
    H, W, 3], named with `suffix`."""
    real, fake, c = fold(b["rgb"]), fold(fake), self.config.loss
    total, terms = gan.generator_terms(self._image_disc(params, b), real, fake, kind=c.gan,
                                       fm=c.fm)
    total, terms = self.reconstruction(params, real, fake, total, terms)
    return total, {k + suffix: v for k, v in terms.items()}

  def _flow_terms(self, b, outputs):
    """The masked L1 terms on frames 1..T-1: flow, warp (the real previous frame warped by the
    predicted flow), g_warp (the generated frame against the previous one warped by the
    reference flow) and weight."""
    c = self.config.loss
    mask = temporal_losses.occlusion_mask(b["flow_fwd"], b["flow_bwd"])[:, 1:, ..., None]
    masked_l1 = lambda a, ref: jnp.mean(jnp.abs(mask * (a.astype(jnp.float32) -
                                                        ref.astype(jnp.float32))))
    ref = b["flow_bwd"][:, 1:].astype(jnp.float32)
    real, fake = b["rgb"].astype(jnp.float32), outputs["out"].astype(jnp.float32)
    flow = outputs["flow"][:, 1:]
    terms = {
        "flow": masked_l1(flow, ref),
        "warp": masked_l1(networks.warp(real[:, :-1], flow), real[:, 1:]),
        "g_warp": masked_l1(fake[:, 1:],
                            jax.lax.stop_gradient(networks.warp(fake[:, :-1], ref))),
        "weight": jnp.mean(mask * outputs["weight"][:, 1:].astype(jnp.float32)),
    }
    total = sum(c[k] * v for k, v in terms.items())
    return total, terms


def make_system(config) -> Vid2Vid:
  return Vid2Vid(config)
