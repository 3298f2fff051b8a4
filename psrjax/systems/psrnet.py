"""PSR-Net (Lakhal et al.): multi-view video synthesis by progressive synthesis and refinement.

The system binds the K generators and their video discriminators to the trainer:

- inputs (`prepare_inputs`, on the accelerator, once per train step): the visibility map M_{i->j}
  (Algorithm 1) and the texture-transfer estimate x̂⁰_j (GTNet Steps I-III) from the input view's
  video and face maps and the target view's face and part maps (plus, for the optional residual
  decoders, `residual_base`: the image G¹'s decoders correct);
- layer 1 (Eqs. 2-3): x̂¹ = temporal_refine(G¹(x_i, x̂⁰_j, d_j, M)), loss L¹ = Lr + 0.01 (Lp + La);
- layers k >= 2 (Eq. 1): x̂ᵏ = α Gᵏ(x_i, x̂ᵏ⁻¹, d_j) + (1 - α) x̂ᵏ⁻¹, loss Lᵏ = Lr + 0.01 La;
  `model.residual` chooses residual or full-frame decoders per layer (`layer_residuals`);
- schedule: stage-wise by default (stage k trains Gᵏ and Dᵏ; earlier layers frozen), or one joint
  stage that trains every layer on the sum of the layer losses.

Lr is the Huber loss, Lp the I3D temporal perceptual loss (four endpoints), La the generator's
adversarial loss against a MoCoGAN-style video discriminator conditioned on the input view.
Evaluation reports SSIM, PSNR, their foreground-masked versions and the background alone
(b_ssim, b_psnr: the complement of the target mask, where the paper locates layer 2's and 3's
gain, "correcting the lighting of the room") for every layer, for each
Gᵏ's own output before Eq. 1 ("raw<k>", k >= 2: how much of layer k's score the blend makes) and
for the baselines "copy the input view" and "texture transfer x̂⁰", overall and per view pair
(Table 3, Fig. 8).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from psrjax import losses
from psrjax.metrics import runs
from psrjax.data import synthetic
from psrjax.data.sources import estimated_geometry
from psrjax.geometry.texture_transfer import texture_transfer
from psrjax.geometry.visibility import visibility_map
from psrjax.geometry.warp import inverse_temporal_refine, temporal_refine
from psrjax.models import discriminators
from psrjax.models import psrnet as psrnet_models
from psrjax.models import pretrained
from psrjax.systems import base
from psrjax.systems.tasks import strips
from psrjax.data.samplers import view_pairs

# Outputs of `generate` besides the layers, in sample-strip order.
BASELINES = ("copy", "texture")


def prepare_inputs(batch, *, knn_visibility: int, knn_texture: int) -> dict[str, jax.Array]:
  """Visibility map "vis" M_{i->j} (int32 [B,T,H,W]) and texture transfer "x0" x̂⁰_j
  ([B,T,H,W,3])."""
  vis_table = jnp.asarray(synthetic.nearest_faces(knn_visibility))
  tex_table = jnp.asarray(synthetic.nearest_faces(knn_texture + 1))  # the face itself + n
  vis = visibility_map(batch["src_face"], batch["tgt_face"], vis_table)
  x0 = texture_transfer(batch["src_rgb"], batch["src_face"], batch["tgt_face"], batch["tgt_part"],
                        tex_table, jnp.asarray(synthetic.SYMMETRIC_PART),
                        num_faces=synthetic.NUM_FACES)
  return {"vis": vis, "x0": jax.lax.stop_gradient(x0)}


def residual_base(batch, vis, x0, *, zeta: float, plate: bool = True) -> jax.Array:
  """What G¹'s residual decoders correct: the Eq. 3 pre-image of the Eq. 2 composite of a
  background start (the input view's person-free background plate with `plate`, else x̂⁰'s
  mid-grey) and x̂⁰ (person pixels), so that the layer's output starts exactly at that composite
  despite Eq. 3's additive term. [B, T, H, W, 3]."""
  start_bg = background_plate(batch["src_rgb"], batch["src_face"]) if plate else x0
  start = psrnet_models.composite(start_bg, x0, x0, vis)
  return inverse_temporal_refine(start, batch["tgt_flow_bwd"], zeta=zeta)


def background_plate(rgb, face) -> jax.Array:
  """The input view's background without the person: per pixel, the mean colour over the frames
  where the input-view mesh does not cover it (the camera is static); pixels covered in every
  frame take the mean background colour of the clip. [B, T, H, W, 3] (constant over T)."""
  free = (face < 0)[..., None].astype(rgb.dtype)                       # [B, T, H, W, 1]
  count = jnp.sum(free, axis=1, keepdims=True)
  mean = jnp.sum(rgb * free, axis=1, keepdims=True) / jnp.maximum(count, 1.0)
  clip_mean = (jnp.sum(rgb * free, axis=(1, 2, 3), keepdims=True)
               / jnp.maximum(jnp.sum(free, axis=(1, 2, 3), keepdims=True), 1.0))
  plate = jnp.where(count > 0, mean, clip_mean)
  return jax.lax.stop_gradient(jnp.broadcast_to(plate, rgb.shape))


class PSRNet(base.System):
  """The PSR-Net system (see module docstring); `config` is configs/psrnet.py's."""

  synthesis_options = (
      base.Option("source_view", int, 1, "input view i (1-based, as in the paper)"),
      base.Option("target_view", int, 2, "target view j (1-based)"))

  def __init__(self, config):
    super().__init__(config)
    m = config.model
    if m.layers < 1:
      raise ValueError(f"model.layers must be >= 1 (the paper uses 3), got {m.layers}")
    if config.schedule.mode not in ("stagewise", "joint"):
      raise ValueError(f"schedule.mode must be 'stagewise' or 'joint', got {config.schedule.mode!r}")
    self.num_layers = m.layers
    self.residual = psrnet_models.layer_residuals(m.residual, m.layers)   # one bool per layer
    self.adversarial = psrnet_models.layer_adversarial(config.loss.adversarial, m.layers)
    nets = dict(conv_impl=m.conv_impl, remat=m.remat)
    self.generators = [   # Table 1's decoders option is layer 1's, Table 2's encoders the others'
        psrnet_models.psrnet_layer(k, variant=m.variant, residual=self.residual[k - 1], **nets, **(
            {"decoders": m.get("decoders", "separate")} if k == 1
            else {"encoders": m.get("encoders", "concat_videos")}))
        for k in range(1, m.layers + 1)]
    self.discriminator = discriminators.VideoDiscriminator(ndf=m.disc_channels, **nets)
    self.eval_groups = view_pairs.pair_names(config.data.num_views)
    self.eval_prediction, self.eval_target = f"layer{m.layers}", "tgt_rgb"   # config.evals

  # ----------------------------------------------------------------------------- schedule
  def stages(self):
    """Stage-wise: "layer1".."layerK", stage k training Dᵏ then Gᵏ on x̂¹..x̂ᵏ (earlier layers
    frozen); joint: one stage "joint" training every layer on the sum of the layer losses."""
    k, steps = self.num_layers, self.config.train.steps
    if self.config.schedule.mode == "joint":
      return (self._stage("joint", steps, tuple(range(1, k + 1))),)
    per_layer = _split(steps, _layer_weights(self.config.schedule.layer_weights, k))
    return tuple(self._stage(f"layer{i}", n, (i,)) for i, n in enumerate(per_layer, start=1))

  def _stage(self, name: str, steps: int, layers: tuple[int, ...]) -> base.Stage:
    """Layers `layers` train: the forward builds x̂¹..x̂^max(layers), phase "d" updates the
    discriminators of those with an adversarial weight > 0 on it, phase "g" their generators;
    samples show the layers up to theirs."""
    adversarial = tuple(k for k in layers if self.adversarial[k - 1] > 0)
    phases = (base.Phase("d", tuple(f"d{k}" for k in adversarial),
                         functools.partial(self._d_loss, adversarial)),) if adversarial else ()
    g = base.Phase("g", tuple(f"g{k}" for k in layers), functools.partial(self._g_loss, layers))
    upto = max(layers)
    generate = None if upto == self.num_layers else functools.partial(self._generate, upto)
    return base.Stage(name, steps, phases + (g,), forward=functools.partial(self._forward, upto),
                      generate=generate)

  def optimizers(self):
    o = self.config.optim
    names = [f"{p}{i}" for p in "gd" for i in range(1, self.num_layers + 1)]
    return {n: optax.adam(o.lr, b1=o.b1, b2=o.b2) for n in names}

  # ----------------------------------------------------------------------------- networks
  def prepare(self, batch):
    """Adds "vis", "x0" (`prepare_inputs`) and, with residual decoders in layer 1,
    "residual_base"."""
    m = self.config.model
    inputs = prepare_inputs(batch, knn_visibility=m.knn_visibility, knn_texture=m.knn_texture)
    if self.residual[0]:
      inputs["residual_base"] = residual_base(batch, inputs["vis"], inputs["x0"], zeta=m.zeta,
                                              plate=m.get("residual_plate", True))
    return {**batch, **inputs}

  def init(self, rng, batch):
    x_i, d_j = batch["src_rgb"], batch["tgt_depth"]
    params, prev = {}, batch["x0"]
    for k, (g, key) in enumerate(zip(self.generators, jax.random.split(rng, self.num_layers)), 1):
      g_key, d_key = jax.random.split(key)
      args = (x_i, prev, d_j, batch["vis"]) if k == 1 else (x_i, prev, d_j)
      params[f"g{k}"] = g.init(g_key, *args)["params"]
      params[f"d{k}"] = self.discriminator.init(d_key, batch["tgt_rgb"], x_i)["params"]
    return params

  def _outputs(self, params, batch, upto: int) -> dict[str, jax.Array]:
    """{"layer1": x̂¹, "raw2": G²(x_i, x̂¹, d_j), "layer2": x̂², ..., "layer<upto>"} by Eqs. 1-3
    (on a prepared batch): "raw<k>" is Gᵏ's output before Eq. 1 blends it with x̂ᵏ⁻¹."""
    m = self.config.model
    x_i, d_j = batch["src_rgb"], batch["tgt_depth"]
    x_tilde = self.generators[0].apply({"params": params["g1"]}, x_i, batch["x0"], d_j,
                                       batch["vis"], base=batch.get("residual_base"))["x_tilde"]
    out = {"layer1": temporal_refine(x_tilde, batch["tgt_flow_bwd"], zeta=m.zeta)}
    for k in range(2, upto + 1):
      prev = out[f"layer{k - 1}"]
      raw = self.generators[k - 1].apply({"params": params[f"g{k}"]}, x_i, prev, d_j)
      out[f"raw{k}"], out[f"layer{k}"] = raw, psrnet_models.blend(raw, prev, m.alpha)
    return out

  def _layers(self, params, batch, upto: int) -> list[jax.Array]:
    """[x̂¹, ..., x̂^upto] by Eqs. 1-3 (on a prepared batch)."""
    outs = self._outputs(params, batch, upto)
    return [outs[f"layer{k}"] for k in range(1, upto + 1)]

  def _forward(self, upto, params, batch, rng):
    """{"layer1": x̂¹, ..., "layer<upto>": x̂^upto}: a stage's forward."""
    del rng
    return {f"layer{k}": x for k, x in enumerate(self._layers(params, batch, upto), 1)}

  def _disc(self, params, k, video, cond):
    return self.discriminator.apply({"params": params[f"d{k}"]}, video, cond)[0]

  # ----------------------------------------------------------------------------- losses
  @staticmethod
  def _named(layers, k, parts):
    """Loss terms of layer k, suffixed with k when a stage trains several layers."""
    return {f"{name}{k}" if len(layers) > 1 else name: v for name, v in parts.items()}

  def _d_loss(self, layers, params, batch, outputs, rng):
    """Σ_k Dᵏ's adversarial loss: the real target view vs x̂ᵏ (given under stop_gradient)."""
    del rng
    x_i, x_j = batch["src_rgb"], batch["tgt_rgb"]
    total, terms = 0.0, {}
    for k in layers:
      fake = outputs[f"layer{k}"]
      loss = losses.d_loss(self._disc(params, k, x_j, x_i), self._disc(params, k, fake, x_i),
                           kind=self.config.loss.gan)
      total = total + loss
      terms.update(self._named(layers, k, {"adv": loss}))
    return total, terms

  def _g_loss(self, layers, params, batch, outputs, rng):
    """Σ_k Lᵏ: Huber + 0.01 adversarial (+ 0.01 I3D perceptual for layer 1)."""
    del rng
    total, terms = 0.0, {}
    for k in layers:
      loss, parts = self._layer_loss(params, k, outputs[f"layer{k}"], batch)
      total = total + loss
      terms.update(self._named(layers, k, parts))
    return total, terms

  def _layer_loss(self, params, k, pred, batch):
    """Lᵏ; the adversarial term (and Dᵏ) only where layer k's weight is > 0."""
    c = self.config.loss
    x_i, x_j = batch["src_rgb"], batch["tgt_rgb"]
    rec = losses.huber(pred, x_j, delta=c.huber_delta)
    parts, total = {"rec": rec}, rec
    if self.adversarial[k - 1] > 0:
      parts["adv"] = losses.g_loss(self._disc(params, k, pred, x_i), kind=c.gan)
      total = total + self.adversarial[k - 1] * parts["adv"]
    if k == 1 and c.perceptual > 0:
      i3d = functools.partial(self._i3d_module().apply, params["i3d"])
      parts["perc"] = losses.temporal_perceptual_loss(i3d, pred, x_j)
      total = total + c.perceptual * parts["perc"]
    return total, parts

  def _i3d_module(self):
    return pretrained.make_module("i3d", final_endpoint="Mixed_5c",
                                  conv_impl=self.config.model.conv_impl)

  def constants(self):
    """The frozen I3D (Kinetics-400) of the temporal perceptual loss, when that loss is on."""
    if self.config.loss.perceptual <= 0:
      return {}
    weights = self.config.loss.i3d_weights or None
    return {"i3d": pretrained.load("i3d", weights, final_endpoint="Mixed_5c")[1]}

  # ----------------------------------------------------------------------------- inference
  def generate(self, params, batch):
    """"copy", "texture" (x̂⁰), "vis", "layer1".."layerK" of every layer and "raw2".."rawK"
    (Gᵏ before Eq. 1), all clipped to [-1, 1]."""
    return self._generate(self.num_layers, params, batch)

  def _generate(self, upto, params, batch):
    """`generate` with the layers up to `upto` (a stage's samples: the layers trained so far)."""
    out = {"copy": batch["src_rgb"], "texture": batch["x0"], "vis": batch["vis"]}
    for name, x in self._outputs(params, batch, upto).items():
      out[name] = jnp.clip(x, -1.0, 1.0)
    return out

  def evaluate(self, params, batch):
    outputs = self.generate(params, batch)
    target, mask = batch["tgt_rgb"], batch["tgt_mask"]
    names = BASELINES + tuple(n for n in outputs if n.startswith(("layer", "raw")))
    result = {"group": batch["pair"]}
    for name in names:
      pred = outputs[name]
      values = runs.run_metrics(pred, target, mask, masked_psnr=True, background=True)  # -> [B]
      result.update({f"{metric}/{name}": value for metric, value in values.items()})
    return result

  def sample_video(self, batch, outputs):
    """input view | texture transfer x̂⁰ | layer 1 ... K | target, one uint8 strip per frame,
    under a caption row naming the columns."""
    layers = [k for k in range(1, self.num_layers + 1) if f"layer{k}" in outputs]
    columns = [batch["src_rgb"], outputs["texture"]] + [outputs[f"layer{k}"] for k in layers]
    names = ["input", "texture"] + [f"layer {k}" for k in layers] + ["target"]
    return strips.side_by_side(columns + [batch["tgt_rgb"]], names)

  # ----------------------------------------------------------------------------- data
  def dataset(self, split, *, seed, shard_index, shard_count):
    data = self.config.data
    if split == "train":
      return view_pairs.train_dataset(data, seed=seed, shard_index=shard_index,
                                       shard_count=shard_count)
    num_pairs = len(view_pairs.pairs(data.num_views))
    num_clips = max(1, -(-self.config.eval.num_examples // num_pairs))
    return view_pairs.eval_dataset(data, split, num_clips=num_clips, shard_index=shard_index,
                                    shard_count=shard_count)

  def synthesis_example(self, *, seed: int, source_view: int = 1, target_view: int = 2):
    """One example of synthetic clip `seed` (of a dataset: its held-out window `seed`) from view
    `source_view` to `target_view` (1-based)."""
    d = self.config.data
    views = range(1, d.num_views + 1)
    if source_view not in views or target_view not in views or source_view == target_view:
      raise ValueError(f"source and target views must differ and lie in 1..{d.num_views}; got "
                       f"{source_view} -> {target_view}")
    if d.get("dataset", ""):
      pair = view_pairs.pairs(d.num_views).index((source_view - 1, target_view - 1))
      return view_pairs.recording_example(d, seed=seed, pair_index=pair)
    clip = synthetic.render_clip(seed, num_views=d.num_views, num_frames=d.num_frames,
                                 resolution=d.resolution, rooms=d.get("rooms", 0))
    estimate = view_pairs.estimate_of(d)
    if estimate is not None:
      clip = estimated_geometry.estimate_clip(clip, estimate, seed)
    pair = view_pairs.pairs(d.num_views).index((source_view - 1, target_view - 1))
    return view_pairs.make_example(clip, pair, d.num_views, d.get("depth", "person"))

  def example_spec(self, split):
    del split
    spec = view_pairs.example_spec(self.config.data.num_frames, self.config.data.resolution)
    return {k: jax.ShapeDtypeStruct(s, d) for k, (s, d) in spec.items()}


def _layer_weights(weights, k: int) -> tuple[float, ...]:
  """The first k stage weights (the last one repeated for extra layers); () means equal."""
  weights = tuple(float(w) for w in weights) or (1.0,)
  if any(w <= 0 for w in weights):
    raise ValueError(f"schedule.layer_weights must be positive, got {weights}")
  return (weights + weights[-1:] * k)[:k]


def _split(total: int, weights: tuple[float, ...]) -> tuple[int, ...]:
  """Integer steps proportional to `weights`, summing exactly to `total`."""
  bounds = [round(total * sum(weights[:i]) / sum(weights)) for i in range(len(weights) + 1)]
  return tuple(b - a for a, b in zip(bounds, bounds[1:]))


def make_system(config) -> PSRNet:
  return PSRNet(config)
