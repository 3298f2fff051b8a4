"""Liquid Warping GAN's networks (Liu, Piao, Ma, Gao, Luo and Gao, ICCV 2019, "Liquid Warping GAN:
A Unified Framework for Human Motion Imitation, Appearance Transfer and Novel View Synthesis";
the authors' code svip-lab/impersonator at b041dd4: networks/generator.py `ImpersonatorGenerator`,
networks/discriminator.py `PatchDiscriminator`, built as models/impersonator_trainer.py builds
them with the options of options/*.py and scripts/train_iPER.sh).

API (NHWC arrays; images in [-1, 1]; `transform` T `[N, H, W, 2]` float32 holds, for every
target pixel, the normalised (x, y) source position to read, grid_sample's grid at the image's
size, as the authors' `SMPLRenderer.cal_bc_transform` gives it):

- `LiquidWarpingGenerator` (the authors' `ImpersonatorGenerator`):
  `__call__(bg_inputs [N, H, W, 4], src_inputs [N, H, W, 6], tsf_inputs [N, H, W, 6], transform,
  *, tsf_bg_inputs=None)` -> dict
    "background"        [N, H, W, 3]: the background network's output (tanh) on `bg_inputs`;
    "source_color", "source_mask" [N, H, W, 3] / [N, H, W, 1]: the source-identity ResUNet's
                        colour (tanh) and attention mask (sigmoid);
    "source_image"      source_mask * background + (1 - source_mask) * source_color;
    "color", "mask"     the transfer ResUNet's colour and mask;
    "target_background" the background of the target frame: the background network on
                        `tsf_bg_inputs` when given (the authors' `--bg_both`), else "background";
    "image"             mask * target_background + (1 - mask) * color, the synthesised frame.
  H and W must be divisible by 2^n_downsample.
- `PatchDiscriminator` (the authors' `PatchDiscriminator`, a `psrjax.models.patchgan.PatchGAN`):
  `__call__(image [N, H, W, 3], cond [N, H, W, 3])` -> float32 patch logits; it sees [image,
  target UV-segment map] on channels.
- `liquid_warp(features, transform)`: the Liquid Warping Block's warp (T resized to the
  features' size, then grid_sample); `liquid_warp(source_image, transform)` is also the authors'
  `syn_img`, the source pixels moved to the target pose (the transfer network's RGB input).
- `generator(variant="paper", **fields)`, `discriminator(variant="paper", **fields)`: the networks
  at `PAPER`'s sizes; `params_from_torch(state_dict, ...)` and
  `discriminator_params_from_torch(state_dict, ...)` read the authors' checkpoints
  (net_epoch_*_id_G.pth / _D.pth, with or without DataParallel's "module." prefix).

Facts from the authors' code that the networks follow:

- Sizes: `ImpersonatorGenerator(bg_dim=4, src_dim=3 + 3, tsf_dim=3 + 3, conv_dim=64,
  repeat_num=6)` with n_down = 3 fixed in its constructor; its three networks are built with
  k_size=3 (the ResNet's and ResUNet's own default is 4). The conditions are the 3-channel
  "uv_seg" maps (`map_name`'s default; `get_map_fn_dim("uv_seg")` = 3): per pixel the body
  surface's UV barycentre, (0, 0, 1) on the background.
- Every convolution pads with zeros and has no bias; every norm is an affine instance norm
  (PyTorch InstanceNorm2d(affine=True): eps 1e-5, no running statistics); ReLU throughout.
  Layer unit: conv, norm, ReLU. Stem: 7x7 conv (padding 3) to conv_dim; n_down stride-2 3x3 convs
  doubling the width (64 -> 512); residual blocks x + IN(conv3(ReLU(IN(conv3(x))))) at the
  bottleneck; n_down transposed 3x3 convs (stride 2, padding 1, output_padding 1) halving it.
- Background network (`ResNetGenerator`, bg_model): stem, downs, 6 blocks, ups, 7x7 conv to 3
  channels and tanh; no skips. Its input is the source image with the body masked out and the
  mask: [src_img * bg_mask, bg_mask], bg_mask the uv_seg map's last channel eroded by a 15x15
  window (1 on the background away from the body).
- ResUNet (src_model, tsf_model): encoders[0] is the stem, encoders[1..n_down] the downs; the
  blocks; then per decoder level i a transposed conv, the concatenation [skip, up] with skip =
  encoder output n_down - 1 - i (the stem's for the last level), and a 3x3 stride-1 conv
  ("skipper") back to half the width; then two 7x7 heads, colour (3, tanh) and attention mask
  (1, sigmoid). The source network sees [src_img * (1 - crop_mask), src_uv_seg], the source
  image with the background removed (crop_mask: the last uv_seg channel eroded 3x3), the
  transfer network [syn_img, target uv_seg] (syn_img = grid_sample(src_img, T)).
- Liquid Warping Block (`infer_front`): the source network runs normally; at every encoder level
  1..n_down (the stride-2 outputs, not the full-resolution stem) the transfer encoder's output
  gets the source encoder's output of that level warped by T, and that sum is both what the
  next level reads and the transfer decoder's skip; after each of the transfer network's
  residual blocks the output of the source network's block of the same index, warped by T, is
  added. The warp (`transform`, `resize_trans`, `stn`): T permuted to channels, resized to the
  features' H x W by F.interpolate(mode="bilinear", align_corners=True), then
  F.grid_sample(features, T) with its defaults under PyTorch 1.2 (requirements.txt), bilinear,
  zero padding, and the corner-aligned convention of every PyTorch before 1.3 (-1 and 1 are the
  corner pixels' centres; PyTorch >= 1.3 needs align_corners=True for the same values).
- Composition (models/impersonator_trainer.py `forward`): mask * background + (1 - mask) *
  colour for both networks: the mask is the weight of the background. Without `--bg_both`
  (scripts/train_iPER.sh does not set it) the target frame is composed on the source's
  background; with it the background network also runs on [tsf_img * tsf_bg_mask,
  tsf_bg_mask] (as a second half of the batch; instance norm makes that the same as a second
  call) and the target frame uses that.
- Discriminator (`_create_discriminator`): PatchDiscriminator(input_nc=3 + 3, ndf=64,
  n_layers=4, norm_type="instance", use_sigmoid=False): 4x4 convs padded by 1, stride 2 to ndf,
  2, 4, 8 ndf (n_layers = 4 stride-2 convs), one stride-1 conv to min(2^4, 8) ndf = 512 and a
  stride-1 conv to one logit channel, six convolutions in all; LeakyReLU 0.2 after all but the
  last, and after the second to fifth convs an instance norm WITHOUT affine parameters
  (`_get_norm_layer("instance")`), so every conv keeps its bias. It sees [image, target uv_seg]
  (the generated or real target frame and `input_G_tsf[:, 3:]`).
- Parameters (`jax.eval_shape` of `generator()` and `discriminator()` at 256 x 256; the PyTorch
  references of the tests built at these sizes have as many): generator 97,452,736 (background
  31,445,184, each ResUNet 33,003,776); discriminator 6,962,625.

Departures: initialisation. The authors' `init_weights` draws convolution kernels from N(0, 0.02)
as psrjax does; their affine instance norms keep PyTorch's default initialisation, here scale 1
and shift 0; the discriminator's biases start at 0 in both. The authors' `swap` and `inference`
(appearance transfer from two sources, a source encoded once for many targets) reuse these
networks' layers and are not built; nor is anything outside the networks (body recovery, T,
the masks, losses).

dtype: the networks compute in `dtype`, else the source inputs' dtype (the other inputs are cast
to it); parameters and instance-norm statistics are float32; T, its resized copies and the
sampling positions are float32; the discriminator's logits are float32. remat: "blocks"
recomputes each conv unit and residual block in the backward pass, "full" the whole generator.
"""
from __future__ import annotations

import functools
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from psrjax.geometry.motion import deform
from psrjax.models.internet import resize_corner_aligned
from psrjax.models.patchgan import PatchGAN
from psrjax.models.pretrained import torch_state
from psrjax.nn import (Conv2D, ConvNormAct2D, UpBlock2D, compute_dtype, make_norm, remat_network,
                       remat_stage)
from psrjax.nn.conv import default_kernel_init

# The authors' networks as models/impersonator_trainer.py builds them (options/*.py defaults,
# scripts/train_iPER.sh): conv_dim, n_down and repeat_num of ImpersonatorGenerator, bg_dim,
# src_dim and tsf_dim; the PatchDiscriminator's ndf, n_layers and norm_type.
PAPER = {
    "generator": dict(ngf=64, n_downsample=3, n_blocks=6, bg_channels=4, src_channels=6,
                      tsf_channels=6),
    "discriminator": dict(ndf=64, num_layers=4, padding=1, norm="instance", image_channels=3,
                          cond_channels=3),
}
NORM = "instance_affine"             # the generator's InstanceNorm2d(affine=True)


def resize_transform(transform: jax.Array, size) -> jax.Array:
  """T `[N, H, W, 2]` at `size` (h, w): the authors' `resize_trans`, F.interpolate(mode=
  "bilinear", align_corners=True) of the grid's channels. float32."""
  return resize_corner_aligned(jnp.asarray(transform, jnp.float32), tuple(size))


def _sample(features: jax.Array, grid: jax.Array) -> jax.Array:
  """The authors' `stn`: grid_sample(features, grid) under PyTorch 1.2 (bilinear, zeros,
  corner-aligned), in the features' dtype."""
  return deform(features, grid, padding="zeros").astype(features.dtype)


def liquid_warp(features: jax.Array, transform: jax.Array) -> jax.Array:
  """The authors' `transform(x, T)`: `features` `[N, h, w, C]` read at T resized to h x w.

  At the image's size it is their `syn_img = F.grid_sample(src_img, T)`.
  """
  if features.ndim != 4 or transform.ndim != 4 or transform.shape[-1] != 2 \
      or transform.shape[0] != features.shape[0]:
    raise ValueError(f"liquid_warp expects features [N, h, w, C] and T [N, H, W, 2] of the same "
                     f"N; got {features.shape} and {transform.shape}")
  return _sample(features, resize_transform(transform, features.shape[1:3]))


# ------------------------------------------------------------------ building blocks
class ResidualBlock(nn.Module):
  """The authors' `ResidualBlock`: x + IN(conv3(ReLU(IN(conv3(x))))), zero padding, no conv
  bias, affine instance norms. Parameters conv1, norm1, conv2, norm2."""
  conv_impl: str = "auto"
  dtype: Any = None                  # computation dtype; None: the input's (params float32)
  remat: str = "none"                # "blocks": recomputed in the backward pass

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return remat_stage(ResidualBlock._forward, self.remat)(self, x)

  def _forward(self, x):
    conv = lambda name: Conv2D(x.shape[-1], 3, 1, 1, use_bias=False, impl=self.conv_impl,
                               dtype=self.dtype, name=name)
    y = nn.relu(make_norm(NORM, dtype=self.dtype, name="norm1")(conv("conv1")(x)))
    y = make_norm(NORM, dtype=self.dtype, name="norm2")(conv("conv2")(y))
    return x.astype(y.dtype) + y


class _Layers(nn.Module):
  """What the background network and the ResUNets share: the conv units' settings."""
  ngf: int = 64                      # conv_dim: the stem's width
  n_downsample: int = 3              # n_down: stride-2 convs (widths ngf 2^i)
  n_blocks: int = 6                  # repeat_num: residual blocks at the bottleneck
  conv_impl: str = "auto"
  dtype: Any = None
  remat: str = "none"

  def _kw(self) -> dict:
    return dict(norm=NORM, use_bias=False, impl=self.conv_impl, dtype=self.dtype,
                remat=self.remat)

  def _stem(self, x):
    return ConvNormAct2D(self.ngf, 7, 1, 3, name="stem", **self._kw())(x)

  def _down(self, x, i: int):
    return ConvNormAct2D(self.ngf * 2 ** (i + 1), 3, 2, 1, name=f"down{i}", **self._kw())(x)

  def _block(self, x, b: int):
    return ResidualBlock(self.conv_impl, self.dtype, self.remat, name=f"block{b}")(x)

  def _up(self, x, i: int):
    width = self.ngf * 2 ** (self.n_downsample - i - 1)
    return UpBlock2D(width, 3, name=f"up{i}", **self._kw())(x)

  def _head(self, x, features: int, name: str):
    return Conv2D(features, 7, 1, 3, use_bias=False, impl=self.conv_impl, dtype=self.dtype,
                  name=name)(x)


class ResNetGenerator(_Layers):
  """The background network (the authors' `ResNetGenerator`): stem, down{i}, block{b}, up{i},
  head (7x7 conv to 3 channels, tanh). `__call__(x [N, H, W, C])` -> [N, H, W, 3]."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = self._stem(x)
    for i in range(self.n_downsample):
      x = self._down(x, i)
    for b in range(self.n_blocks):
      x = self._block(x, b)
    for i in range(self.n_downsample):
      x = self._up(x, i)
    return jnp.tanh(self._head(x, 3, "head"))


class ResUNet(_Layers):
  """The authors' `ResUnetGenerator`: stem, down{i}, block{b}, up{i}, skip{i} (the skipper after
  each up), image_head (tanh) and mask_head (sigmoid).

  `__call__(x [N, H, W, C], encoder_adds=None, block_adds=None)` -> (colour, mask, encoder
  outputs [stem, down0, ...], block outputs): `encoder_adds[i]` is added to down{i}'s output and
  `block_adds[b]` to block{b}'s (the Liquid Warping Block's sums; the sums are what the next layer
  and the skips read).
  """

  @nn.compact
  def __call__(self, x: jax.Array, encoder_adds=None, block_adds=None):
    x = self._stem(x)
    encoder_outs = [x]
    for i in range(self.n_downsample):
      x = self._down(x, i)
      if encoder_adds is not None:
        x = x + encoder_adds[i].astype(x.dtype)
      encoder_outs.append(x)
    block_outs = []
    for b in range(self.n_blocks):
      x = self._block(x, b)
      if block_adds is not None:
        x = x + block_adds[b].astype(x.dtype)
      block_outs.append(x)
    for i in range(self.n_downsample):
      x = self._up(x, i)
      x = jnp.concatenate([encoder_outs[self.n_downsample - 1 - i], x], axis=-1)
      x = ConvNormAct2D(x.shape[-1] // 2, 3, 1, 1, name=f"skip{i}", **self._kw())(x)
    color = jnp.tanh(self._head(x, 3, "image_head"))
    mask = jax.nn.sigmoid(self._head(x, 1, "mask_head"))
    return color, mask, encoder_outs, block_outs


# ------------------------------------------------------------------ the networks
class LiquidWarpingGenerator(nn.Module):
  """Liquid Warping GAN's generator (module docstring): `__call__(bg_inputs, src_inputs,
  tsf_inputs, transform, *, tsf_bg_inputs=None)` -> dict.

  Parameters: "background" (`ResNetGenerator`), "source" and "transfer" (`ResUNet`s), the
  authors' bg_model, src_model and tsf_model.
  """
  ngf: int = 64                      # conv_dim (authors: 64)
  n_downsample: int = 3              # n_down (authors: 3, fixed)
  n_blocks: int = 6                  # repeat_num (authors: 6)
  bg_channels: int = 4               # bg_dim: masked source image + mask
  src_channels: int = 6              # src_dim: source image + its uv_seg map
  tsf_channels: int = 6              # tsf_dim: warped source image + the target uv_seg map
  conv_impl: str = "auto"
  dtype: Any = None                  # computation dtype; None: src_inputs' (params float32)
  remat: str = "none"                # "none" | "blocks" | "full" (psrjax.nn.policy)

  @nn.compact
  def __call__(self, bg_inputs: jax.Array, src_inputs: jax.Array, tsf_inputs: jax.Array,
               transform: jax.Array, *, tsf_bg_inputs: jax.Array | None = None) -> dict:
    self._check(bg_inputs, src_inputs, tsf_inputs, transform, tsf_bg_inputs)
    dtype = compute_dtype(self.dtype, src_inputs)
    cast = lambda x: None if x is None else x.astype(dtype)
    transform = jnp.asarray(transform, jnp.float32)
    return remat_network(LiquidWarpingGenerator._forward, self.remat)(
        self, cast(bg_inputs), cast(src_inputs), cast(tsf_inputs), transform, cast(tsf_bg_inputs))

  def _check(self, bg, src, tsf, transform, tsf_bg):
    n, h, w = src.shape[:3] if src.ndim == 4 else (None,) * 3
    for x, name, c in ((bg, "bg_inputs", self.bg_channels), (src, "src_inputs", self.src_channels),
                       (tsf, "tsf_inputs", self.tsf_channels),
                       (tsf_bg, "tsf_bg_inputs", self.bg_channels)):
      if x is not None and (x.ndim != 4 or x.shape != (n, h, w, c)):
        raise ValueError(f"{name} must be [N, H, W, {c}] with src_inputs' N, H, W; got {x.shape} "
                         f"(src_inputs {src.shape})")
    if transform.shape != (n, h, w, 2):
      raise ValueError(f"transform must be [N, H, W, 2] = {(n, h, w, 2)} (grid_sample's normalised "
                       f"(x, y) per target pixel); got {transform.shape}")
    factor = 2 ** self.n_downsample
    if h % factor or w % factor:
      raise ValueError(f"LiquidWarpingGenerator with {self.n_downsample} downsampling layers needs "
                       f"H and W divisible by {factor}; got {h}x{w}")

  def _forward(self, bg, src, tsf, transform, tsf_bg) -> dict:
    sizes = dict(ngf=self.ngf, n_downsample=self.n_downsample, n_blocks=self.n_blocks,
                 conv_impl=self.conv_impl, dtype=self.dtype,
                 remat="none" if self.remat == "full" else self.remat)
    background_net = ResNetGenerator(**sizes, name="background")
    background = background_net(bg)
    target_background = background if tsf_bg is None else background_net(tsf_bg)
    src_color, src_mask, src_encoder, src_blocks = ResUNet(**sizes, name="source")(src)
    grids = [resize_transform(transform, x.shape[1:3]) for x in src_encoder[1:]]
    encoder_adds = [_sample(x, g) for x, g in zip(src_encoder[1:], grids)]
    block_adds = [_sample(x, grids[-1]) for x in src_blocks]
    color, mask, _, _ = ResUNet(**sizes, name="transfer")(tsf, encoder_adds, block_adds)
    compose = lambda m, bg_, fg: m * bg_ + (1 - m) * fg
    return {"background": background, "source_color": src_color, "source_mask": src_mask,
            "source_image": compose(src_mask, background, src_color),
            "color": color, "mask": mask, "target_background": target_background,
            "image": compose(mask, target_background, color)}


class PatchDiscriminator(PatchGAN):
  """The authors' `PatchDiscriminator` (module docstring): `__call__(image [N, H, W, 3], cond
  [N, H, W, 3])` -> float32 logits; a `PatchGAN` on [image, cond] (parameters conv0 ... conv5)."""
  image_channels: int = 3
  cond_channels: int = 3             # the target uv_seg map

  def __call__(self, image: jax.Array, cond: jax.Array, *, train: bool = False):
    if image.ndim != 4 or image.shape[-1] != self.image_channels or \
        cond.shape != image.shape[:3] + (self.cond_channels,):
      raise ValueError(f"PatchDiscriminator expects image [N, H, W, {self.image_channels}] and "
                       f"cond [N, H, W, {self.cond_channels}] of the same N, H, W; got "
                       f"{image.shape} and {cond.shape}")
    return super().__call__(image, cond, train=train)


# ------------------------------------------------------------------ factories
def _paper(variant: str, part: str) -> dict:
  if variant != "paper":
    raise ValueError(f"unknown Liquid Warping GAN variant {variant!r}: the networks have the "
                     f"authors' sizes (\"paper\"); give others as keyword arguments")
  return dict(PAPER[part])


def generator(variant: str = "paper", **overrides) -> LiquidWarpingGenerator:
  """`LiquidWarpingGenerator` at `PAPER["generator"]` (conv_dim 64, 3 downsamplings, 6 blocks,
  4 / 6 / 6 input channels); keyword arguments override module fields."""
  return LiquidWarpingGenerator(**{**_paper(variant, "generator"), **overrides})


def discriminator(variant: str = "paper", **overrides) -> PatchDiscriminator:
  """`PatchDiscriminator` at `PAPER["discriminator"]` (ndf 64, 4 stride-2 layers, padding 1,
  instance norm without affine parameters, kernels N(0, 0.02)), fields overridable."""
  fields = {**_paper(variant, "discriminator"), "kernel_init": default_kernel_init, **overrides}
  return PatchDiscriminator(**fields)


# ------------------------------------------------------------------ the authors' checkpoints
def _unit(theirs: str, ours: tuple, kind: str = "conv") -> list:
  """A Sequential(conv, InstanceNorm2d, ReLU) at `theirs`: its indices 0 and 1."""
  return [(f"{theirs}.0", ours + ("conv",), kind), (f"{theirs}.1", ours + ("norm",), "norm")]


def _block(theirs: str, ours: tuple) -> list:
  """A ResidualBlock's main: 0 conv, 1 norm, 3 conv, 4 norm."""
  return [(f"{theirs}.main.0", ours + ("conv1",), "conv"),
          (f"{theirs}.main.1", ours + ("norm1",), "norm"),
          (f"{theirs}.main.3", ours + ("conv2",), "conv"),
          (f"{theirs}.main.4", ours + ("norm2",), "norm")]


def _background_layers(n_down: int, n_blocks: int) -> list:
  """bg_model.model: [conv, norm, ReLU], n_down x [conv, norm, ReLU], blocks, n_down x
  [convT, norm, ReLU], conv, Tanh."""
  seq, ours = "bg_model.model", ("background",)
  layers = [(f"{seq}.0", ours + ("stem", "conv"), "conv"), (f"{seq}.1", ours + ("stem", "norm"),
                                                            "norm")]
  for i in range(n_down):
    layers += [(f"{seq}.{3 + 3 * i}", ours + (f"down{i}", "conv"), "conv"),
               (f"{seq}.{4 + 3 * i}", ours + (f"down{i}", "norm"), "norm")]
  base = 3 + 3 * n_down
  for b in range(n_blocks):
    layers += _block(f"{seq}.{base + b}", ours + (f"block{b}",))
  base += n_blocks
  for i in range(n_down):
    layers += [(f"{seq}.{base + 3 * i}", ours + (f"up{i}", "conv"), "conv_transpose"),
               (f"{seq}.{base + 3 * i + 1}", ours + (f"up{i}", "norm"), "norm")]
  return layers + [(f"{seq}.{base + 3 * n_down}", ours + ("head",), "conv")]


def _resunet_layers(theirs: str, ours: str, n_down: int, n_blocks: int) -> list:
  """src_model / tsf_model: encoders, resnets, decoders, skippers, img_reg, attetion_reg."""
  layers = _unit(f"{theirs}.encoders.0", (ours, "stem"))
  for i in range(n_down):
    layers += _unit(f"{theirs}.encoders.{i + 1}", (ours, f"down{i}"))
  for b in range(n_blocks):
    layers += _block(f"{theirs}.resnets.{b}", (ours, f"block{b}"))
  for i in range(n_down):
    layers += _unit(f"{theirs}.decoders.{i}", (ours, f"up{i}"), "conv_transpose")
    layers += _unit(f"{theirs}.skippers.{i}", (ours, f"skip{i}"))
  return layers + [(f"{theirs}.img_reg.0", (ours, "image_head"), "conv"),
                   (f"{theirs}.attetion_reg.0", (ours, "mask_head"), "conv")]


def _convert(state_dict: Mapping[str, Any], layers: list, what: str) -> dict:
  """Nested params from `state_dict` by `layers` [(prefix, path, kind)]; every entry must be
  used. A leading "module." (DataParallel's) is dropped."""
  arrays = {k.removeprefix("module."): np.asarray(v, np.float32) for k, v in state_dict.items()}
  return torch_state.params_from_layers(arrays, layers, what)


def params_from_torch(state_dict: Mapping[str, Any], *, n_downsample: int = 3,
                      n_blocks: int = 6) -> dict:
  """`LiquidWarpingGenerator` params from the authors' `ImpersonatorGenerator.state_dict()`
  (values numpy-convertible, e.g. CPU tensors)."""
  layers = (_background_layers(n_downsample, n_blocks) +
            _resunet_layers("src_model", "source", n_downsample, n_blocks) +
            _resunet_layers("tsf_model", "transfer", n_downsample, n_blocks))
  return _convert(state_dict, layers, "n_downsample and n_blocks")


def discriminator_params_from_torch(state_dict: Mapping[str, Any], *, num_layers: int = 4) -> dict:
  """`PatchDiscriminator` params from the authors' `PatchDiscriminator(norm_type="instance")
  .state_dict()`: model.0 is conv0, model.{3 i - 1} conv{i} for i = 1 ... num_layers, model.{3
  num_layers + 2} the logit conv conv{num_layers + 1}; the norms have no parameters."""
  layers = [("model.0", ("conv0",), "conv")]
  layers += [(f"model.{3 * i - 1}", (f"conv{i}",), "conv") for i in range(1, num_layers + 2)]
  return _convert(state_dict, layers, "num_layers (and norm_type 'instance')")
