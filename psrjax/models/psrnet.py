"""PSR-Net generators (Lakhal et al., "Multi-View Video Synthesis Through Progressive Synthesis and
Refinement").

PSR-Net synthesises the target view j from the input view i with K generators ("layers"), Eq. 1:

  x̂ᵏ_j = G¹(xⁱ, x̂⁰_j, d_j)                           for k = 1,
  x̂ᵏ_j = αₖ Gᵏ(xⁱ, x̂ᵏ⁻¹_j, d_j) + (1 - αₖ) x̂ᵏ⁻¹_j     for k >= 2   (`blend`, α = 0.5).

Every generator is a 6-block ResNet (Zhu et al. 2017) with 3D convolutions: a 7x7x7 stem, two
stride-(1, 2, 2) downsamplings, residual blocks, two transposed-convolution upsamplings, a 7x7x7
output convolution and tanh, with instance norm. Following the paper's Figs. 4 and 6, the encoder
part (stem + downsamplings) is replicated per input and the encodings are fused by a convolution
before the residual blocks:

- `ReconstructionLayer` (G¹, "separate heads", Sec. 3.1): encoders for xⁱ, x̂⁰_j and d_j, three
  decoders for background, visible and occluded pixels composited by the visibility map (Eq. 2).
  The temporal term of Eq. 3 (`psrjax.geometry.temporal_refine`) is applied by the caller.
- `RecurrenceLayer` (Gᵏ, k >= 2, "concat videos", Sec. 3.2): one encoder for the channel
  concatenation of xⁱ and x̂ᵏ⁻¹_j, one for d_j, one decoder.

Residual decoders (`residual`, not in the paper) are chosen per layer (`layer_residuals`): the
paper's generators paint full frames; a residual layer starts at the identity on the estimate it
corrects. With a residual Gᵏ (k >= 2) Eq. 1 scales its correction by αₖ; with a full-frame Gᵏ it
averages two estimates of the frame, the paper's reading.

The model ablations of Sec. 4.2-4.3 are options: `ReconstructionLayer.decoders` (Table 1,
Fig. 4: "separate" heads, "common" head, "context"-based) and `RecurrenceLayer.encoders`
(Table 2: "concat_videos", "separate" encoders, "concat_all"). The defaults are the paper's
choices.

Choices the paper leaves open: the fusion is a 3x3x3 convolution + instance norm + ReLU to
4 * base channels; downsampling/upsampling kernels are 3 spatially and `temporal_kernel` in time
with temporal stride 1 (time is never resampled); stem/output convolutions use
`stem_temporal_kernel` in time; padding is reflection (CycleGAN) for the stem, output and residual
convolutions and zeros for the strided ones; weights ~ N(0, 0.02) (CycleGAN). Heights and widths
must be multiples of 4.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from psrjax.geometry.visibility import BACKGROUND, OCCLUDED, VISIBLE
from psrjax.nn import (Conv3D, ConvNormReLU3D, ConvTranspose3D, InstanceNorm, ResBlock3D,
                       compute_dtype, remat_block, remat_network, remat_stage)
from psrjax.nn.conv import default_kernel_init

# The model ablations' options (Tables 1 and 2); the first of each is the paper's choice.
DECODERS = ("separate", "common", "context")
ENCODERS = ("concat_videos", "separate", "concat_all")


def composite(background: jax.Array, visible: jax.Array, occluded: jax.Array, vis: jax.Array) -> jax.Array:
  """Eq. 2: x̃ = x̂_b ⊙ [M = 1] + x̂_v ⊙ [M = 2] + x̂_o ⊙ [M = 3]; vis int [..., T, H, W].

  Pixels with any other label are 0. Each pixel's gradient reaches only its own branch.
  """
  m = vis[..., None]
  zero = jnp.zeros((), background.dtype)
  return (jnp.where(m == BACKGROUND, background, zero) + jnp.where(m == VISIBLE, visible, zero)
          + jnp.where(m == OCCLUDED, occluded, zero))


def composite_context(background: jax.Array, foreground: jax.Array, vis: jax.Array) -> jax.Array:
  """The context-based composite (Table 1, Fig. 4(b)): x̂_b where M = 1, x̂_f elsewhere."""
  return jnp.where(vis[..., None] == BACKGROUND, background, foreground)


def blend(g_out: jax.Array, prev: jax.Array, alpha: float = 0.5) -> jax.Array:
  """Eq. 1 for k >= 2: αₖ Gᵏ(...) + (1 - αₖ) x̂ᵏ⁻¹ (the paper fixes α = 0.5)."""
  if isinstance(alpha, (int, float)) and not 0.0 <= alpha <= 1.0:
    raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
  return alpha * g_out + (1.0 - alpha) * prev


class _Parts(nn.Module):
  """Fields shared by the encoders, fusion trunk and decoders."""
  base_channels: int = 64            # ngf: stem width; the bottleneck has 4 * base_channels
  num_blocks: int = 6                # residual blocks after the fusion
  temporal_kernel: int = 3           # kt of the 3x3 (down/up/fusion/residual) convolutions, odd
  stem_temporal_kernel: int = 7      # kt of the 7x7 stem and output convolutions, odd
  pad_mode: str = "reflect"          # padding of stem/output/residual convs: "reflect" | "zero" | "edge"
  conv_impl: str = "auto"            # Conv3D implementation: "auto" | "xla" | "fold_time" | "onednn"
  dtype: Any = None                  # computation dtype; None: the inputs' (params float32)
  remat: str = "none"                # "none" | "blocks" | "full" (psrjax.nn.policy)

  def _conv_args(self) -> dict:
    return dict(impl=self.conv_impl, dtype=self.dtype)


class Encoder3D(_Parts):
  """Stem (kt0 x 7 x 7) and two stride-(1, 2, 2) downsamplings, each conv + IN + ReLU."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kt0, kt = self.stem_temporal_kernel, self.temporal_kernel
    unit = remat_block(ConvNormReLU3D, self.remat)
    x = unit(self.base_channels, (kt0, 7, 7), 1, (kt0 // 2, 3, 3), self.pad_mode,
             **self._conv_args(), name="stem")(x)
    for i in range(2):
      x = unit(self.base_channels * 2 ** (i + 1), (kt, 3, 3), (1, 2, 2), (kt // 2, 1, 1),
               "zero", **self._conv_args(), name=f"down{i}")(x)
    return x


class FusionTrunk(_Parts):
  """Concatenated encodings -> fusion conv + IN + ReLU -> `num_blocks` residual blocks."""

  @nn.compact
  def __call__(self, encodings: Sequence[jax.Array]) -> jax.Array:
    kt = self.temporal_kernel
    x = jnp.concatenate(list(encodings), axis=-1)
    x = remat_block(ConvNormReLU3D, self.remat)(
        self.base_channels * 4, (kt, 3, 3), 1, (kt // 2, 1, 1), "zero", **self._conv_args(),
        name="fusion")(x)
    block = remat_block(ResBlock3D, self.remat)
    for i in range(self.num_blocks):
      x = block(kt, self.pad_mode, **self._conv_args(), name=f"block{i}")(x)
    return x


class Decoder3D(_Parts):
  """Two transposed-conv upsamplings (+ IN + ReLU) and the kt0 x 7 x 7 output conv with tanh.

  `skip` (residual mode): a full-resolution video concatenated to the output conv's input (the
  estimate the decoder corrects, so fine per-pixel corrections need not pass the bottleneck).
  `heads` (the "common head" of Fig. 4(c)): output convs "out_<head>" on the one shared
  upsampling trunk, returned as {head: video}; () (default): one output conv "out", one video.
  """
  out_channels: int = 3
  zero_out: bool = False        # zero-initialised output conv (a residual branch that starts at 0)
  heads: tuple[str, ...] = ()   # () = one output conv "out"; else one "out_<head>" per head

  @nn.compact
  def __call__(self, x: jax.Array,
               skip: jax.Array | None = None) -> jax.Array | dict[str, jax.Array]:
    for i in range(2):
      x = remat_stage(functools.partial(Decoder3D._up, i=i), self.remat)(self, x)
    if skip is not None:
      x = jnp.concatenate([x, skip.astype(x.dtype)], axis=-1)
    if not self.heads:
      return self._out(x, "out")
    return {head: self._out(x, f"out_{head}") for head in self.heads}

  def _out(self, x: jax.Array, name: str) -> jax.Array:
    """The kt0 x 7 x 7 output conv `name` and tanh."""
    kt0 = self.stem_temporal_kernel
    init = nn.initializers.zeros if self.zero_out else default_kernel_init
    x = Conv3D(self.out_channels, (kt0, 7, 7), 1, (kt0 // 2, 3, 3), self.pad_mode,
               **self._conv_args(), kernel_init=init, name=name)(x)
    return jnp.tanh(x)

  def _up(self, x: jax.Array, *, i: int) -> jax.Array:
    """Upsampling i: transposed conv (stride (1, 2, 2)) + IN + ReLU."""
    kt = self.temporal_kernel
    x = ConvTranspose3D(self.base_channels * 2 ** (1 - i), (kt, 3, 3), (1, 2, 2), (kt // 2, 1, 1),
                        (0, 1, 1), **self._conv_args(), name=f"up{i}")(x)
    return nn.relu(InstanceNorm(dtype=self.dtype, name=f"up{i}_norm")(x))


def per_layer(value, layers: int, *, field: str, valid, allowed: str) -> tuple:
  """A config value given for every layer or as a non-empty tuple, one per layer (the last
  repeated for extra layers, like `schedule.layer_weights`) -> one value per layer; a one-line
  ValueError naming `allowed` when a value fails `valid`."""
  values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
  if not values or not all(valid(v) for v in values):
    raise ValueError(f"{field} must be {allowed}; got {value!r}")
  return (values + values[-1:] * layers)[:layers]


def layer_residuals(residual, layers: int) -> tuple[bool, ...]:
  """`model.residual` per layer: a bool (every layer) or a non-empty tuple of bools."""
  return per_layer(residual, layers, field="model.residual",
                   valid=lambda v: isinstance(v, bool),
                   allowed="True, False or a non-empty tuple of them (one per layer, e.g. "
                           "(True, False, False))")


def layer_adversarial(weight, layers: int) -> tuple[float, ...]:
  """`loss.adversarial` per layer: a number >= 0 (every layer) or a non-empty tuple of them."""
  valid = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
  return tuple(float(v) for v in per_layer(
      weight, layers, field="loss.adversarial", valid=valid,
      allowed="a number >= 0 or a non-empty tuple of them (one per layer, e.g. (0.001, 0.0))"))


def _check_choice(field: str, value: str, allowed: Sequence[str]) -> None:
  if value not in allowed:
    raise ValueError(f"{field} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def _check_inputs(videos: dict[str, jax.Array], d_j: jax.Array) -> None:
  ref_name, ref = next(iter(videos.items()))
  if ref.ndim != 5 or ref.shape[-1] != 3:
    raise ValueError(f"{ref_name} must be [B, T, H, W, 3]; got {ref.shape}")
  for name, v in videos.items():
    if v.shape != ref.shape:
      raise ValueError(f"{name} {v.shape} must match {ref_name} {ref.shape}")
  if d_j.shape != ref.shape[:-1] + (1,):
    raise ValueError(f"d_j must be [B, T, H, W, 1] = {ref.shape[:-1] + (1,)}; got {d_j.shape}")
  h, w = ref.shape[2:4]
  if h % 4 or w % 4:
    raise ValueError(f"frame height and width must be multiples of 4 (two 2x downsamplings); got {h}x{w}")


class _Generator(_Parts):
  # Option (off in the paper's variant): every decoder predicts a correction to the input it
  # relates to -- G¹'s background branch to x_i, its visible and occluded branches to x̂⁰ (or
  # all three to one `base` image the caller passes), Gᵏ's decoder to x̂ᵏ⁻¹ -- with
  # zero-initialised output convolutions that also see that estimate at full resolution, so a
  # short training schedule starts from those estimates instead of from a blank image. The
  # paper does not describe such skips; `psrnet_layer(..., residual=True)` enables them.
  residual: bool = False

  def _decoder(self, name: str, heads: tuple[str, ...] = ()) -> "Decoder3D":
    return Decoder3D(**self._parts(), zero_out=self.residual, heads=heads, name=name)

  def _branch(self, name: str, h: jax.Array, base: jax.Array | None,
              heads: tuple[str, ...] = ()) -> jax.Array | dict[str, jax.Array]:
    """Decoder `name` on the trunk features `h`; with a `base` (residual mode) its output(s)
    are corrections of `base`, which also reaches its output conv(s) as the skip."""
    out = self._decoder(name, heads)(h, base)
    if base is None:
      return out
    return jax.tree.map(lambda o: o + base, out)

  def _check_kernels(self) -> None:
    for name in ("temporal_kernel", "stem_temporal_kernel"):
      if getattr(self, name) % 2 != 1:
        raise ValueError(f"{name} must be odd to keep the number of frames; got {getattr(self, name)}")

  def _parts(self) -> dict:
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(_Parts)
            if f.name not in ("parent", "name")}


class ReconstructionLayer(_Generator):
  """G¹ (Sec. 3.1, "separate heads"): separate encoders, fusion, three decoders, Eq. 2 composite.

  `__call__(x_i, x_hat0, d_j, vis, *, train=False)` with x_i, x_hat0 float [B, T, H, W, 3] in
  [-1, 1], d_j float [B, T, H, W, 1], vis int [B, T, H, W] (1/2/3). Returns a dict:
  "x_tilde" (the composite x̃¹ of Eq. 2), "background", "visible", "occluded" (branch outputs),
  all [B, T, H, W, 3] in the compute dtype (`dtype`, else x_i's). `train` changes nothing (no
  dropout or running statistics).

  `decoders` (Table 1, Fig. 4): "separate" (the paper's: decoders "decoder_background",
  "decoder_visible", "decoder_occluded", Eq. 2); "common" (a "decoder_background" and one
  "decoder_foreground" whose upsampling trunk is shared by two output heads, "out_visible" and
  "out_occluded", Eq. 2); "context" ("decoder_background" and "decoder_foreground"; the
  background where M = 1, the foreground elsewhere, which is then both "visible" and "occluded").
  """
  decoders: str = "separate"   # Table 1: "separate" (heads) | "common" (head) | "context"(-based)

  def __post_init__(self):
    _check_choice("decoders", self.decoders, DECODERS)
    super().__post_init__()

  @nn.compact
  def __call__(self, x_i, x_hat0, d_j, vis, *, base=None,
               train: bool = False) -> dict[str, jax.Array]:
    """`base` (residual mode): one [B, T, H, W, 3] image all branches correct."""
    del train
    self._check_kernels()
    _check_inputs({"x_i": x_i, "x_hat0": x_hat0, **({} if base is None else {"base": base})}, d_j)
    if vis.shape != x_i.shape[:-1]:
      raise ValueError(f"vis must be [B, T, H, W] = {x_i.shape[:-1]}; got {vis.shape}")
    dtype = compute_dtype(self.dtype, x_i)
    x_i, x_hat0, d_j = (v.astype(dtype) for v in (x_i, x_hat0, d_j))
    base = None if base is None else base.astype(dtype)
    return remat_network(ReconstructionLayer._forward, self.remat)(self, x_i, x_hat0, d_j, vis, base)

  def _forward(self, x_i, x_hat0, d_j, vis, base) -> dict[str, jax.Array]:
    parts = self._parts()
    encodings = [Encoder3D(**parts, name=f"encoder_{n}")(v)
                 for n, v in (("x", x_i), ("x_hat0", x_hat0), ("depth", d_j))]
    h = FusionTrunk(**parts, name="trunk")(encodings)
    bases = self._bases(x_i, x_hat0, base)
    background = self._branch("decoder_background", h, bases["background"])
    if self.decoders == "context":
      foreground = self._branch("decoder_foreground", h, bases["visible"])
      return {"background": background, "visible": foreground, "occluded": foreground,
              "x_tilde": composite_context(background, foreground, vis)}
    if self.decoders == "common":   # visible and occluded share their base
      out = self._branch("decoder_foreground", h, bases["visible"], heads=("visible", "occluded"))
    else:
      out = {n: self._branch(f"decoder_{n}", h, bases[n]) for n in ("visible", "occluded")}
    out = {"background": background, **out}
    out["x_tilde"] = composite(out["background"], out["visible"], out["occluded"], vis)
    return out

  def _bases(self, x_i, x_hat0, base) -> dict[str, jax.Array | None]:
    """What each branch corrects in residual mode (x_i, x̂⁰, x̂⁰, or `base` for all), else None."""
    names = ("background", "visible", "occluded")
    if not self.residual:
      return dict.fromkeys(names)
    if base is not None:
      return dict.fromkeys(names, base)
    return {"background": x_i, "visible": x_hat0, "occluded": x_hat0}


class RecurrenceLayer(_Generator):
  """Gᵏ, k >= 2 (Sec. 3.2, "concat videos"): encoder E_v of [xⁱ, x̂ᵏ⁻¹] and E_d of d_j, one decoder.

  `__call__(x_i, x_prev, d_j, *, train=False)` -> Gᵏ(xⁱ, x̂ᵏ⁻¹, d_j) [B, T, H, W, 3] in the
  compute dtype (`dtype`, else x_i's), before the Eq. 1 `blend`.

  `encoders` (Table 2): "concat_videos" (the paper's: "encoder_videos" of [xⁱ, x̂ᵏ⁻¹] and
  "encoder_depth" of d_j); "separate" ("encoder_x", "encoder_prev", "encoder_depth");
  "concat_all" (one "encoder_all" of [xⁱ, x̂ᵏ⁻¹, d_j]).
  """
  encoders: str = "concat_videos"   # Table 2: "concat_videos" | "separate" | "concat_all"

  def __post_init__(self):
    _check_choice("encoders", self.encoders, ENCODERS)
    super().__post_init__()

  @nn.compact
  def __call__(self, x_i, x_prev, d_j, *, train: bool = False) -> jax.Array:
    del train
    self._check_kernels()
    _check_inputs({"x_i": x_i, "x_prev": x_prev}, d_j)
    dtype = compute_dtype(self.dtype, x_i)
    x_i, x_prev, d_j = (v.astype(dtype) for v in (x_i, x_prev, d_j))
    return remat_network(RecurrenceLayer._forward, self.remat)(self, x_i, x_prev, d_j)

  def _forward(self, x_i, x_prev, d_j) -> jax.Array:
    parts = self._parts()
    encodings = [Encoder3D(**parts, name=f"encoder_{n}")(v)
                 for n, v in self._encoder_inputs(x_i, x_prev, d_j)]
    h = FusionTrunk(**parts, name="trunk")(encodings)
    return self._branch("decoder", h, x_prev if self.residual else None)

  def _encoder_inputs(self, x_i, x_prev, d_j) -> tuple[tuple[str, jax.Array], ...]:
    """(encoder name, its input) pairs of the `encoders` option."""
    if self.encoders == "separate":
      return (("x", x_i), ("prev", x_prev), ("depth", d_j))
    if self.encoders == "concat_all":
      return (("all", jnp.concatenate([x_i, x_prev, d_j], axis=-1)),)
    return (("videos", jnp.concatenate([x_i, x_prev], axis=-1)), ("depth", d_j))


# Named sizes. "paper": the paper's generators; "runlocal": trains in minutes on a laptop CPU;
# "tiny": for tests. PSR-Net's configs name them (`model.variant`, a field of every saved PSR-Net
# config: configs/psrnet.py), so, unlike the other models' smaller sizes, they live here.
VARIANTS: dict[str, dict[str, Any]] = {
    "paper": dict(base_channels=64, num_blocks=6, temporal_kernel=3, stem_temporal_kernel=7),
    "runlocal": dict(base_channels=8, num_blocks=2, temporal_kernel=3, stem_temporal_kernel=3),
    "tiny": dict(base_channels=4, num_blocks=1, temporal_kernel=3, stem_temporal_kernel=3),
}


def psrnet_layer(k: int, variant: str = "paper", **overrides) -> ReconstructionLayer | RecurrenceLayer:
  """The k-th PSR-Net layer: `ReconstructionLayer` for k = 1, `RecurrenceLayer` for k >= 2.

  variant: "paper" | "runlocal" | "tiny" (see VARIANTS); overrides: any field of that layer
  (base_channels, num_blocks, temporal_kernel, stem_temporal_kernel, pad_mode, conv_impl, dtype,
  remat, residual; `decoders` for k = 1 only, `encoders` for k >= 2 only: the other layer kind's
  option is an error rather than silently ignored).
  """
  if not isinstance(k, int) or k < 1:
    raise ValueError(f"layer index k must be an int >= 1; got {k!r}")
  if variant not in VARIANTS:
    raise ValueError(f"unknown PSR-Net variant {variant!r}; choose one of {sorted(VARIANTS)}")
  cls = ReconstructionLayer if k == 1 else RecurrenceLayer
  allowed = _fields(cls)
  either = _fields(ReconstructionLayer) | _fields(RecurrenceLayer)
  other = sorted((set(overrides) - allowed) & either)
  if other:
    raise ValueError(f"PSR-Net layer {k} ({cls.__name__}) has no field(s) {other}: "
                     f"decoders applies to layer 1 only, encoders to layers >= 2")
  unknown = sorted(set(overrides) - allowed)
  if unknown:
    raise ValueError(f"unknown PSR-Net layer field(s) {unknown}; allowed: {sorted(allowed)}")
  return cls(**{**VARIANTS[variant], **overrides})


def _fields(cls) -> set[str]:
  return {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
