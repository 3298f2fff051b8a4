"""pix2pixHD's networks (Wang et al. 2018, "High-Resolution Image Synthesis and Semantic
Manipulation with Conditional GANs", Sec. 3.2 and appendix; the authors' models/networks.py).

- `GlobalGenerator` G1: c7s1-ngf, n_downsample d-layers (stride-2 3x3 convs doubling the width),
  n_blocks residual blocks, as many u-layers (transposed 3x3 convs halving it), c7s1-3 + tanh; all
  with instance norm (no affine) and ReLU; reflection padding in the 7x7 convs and the blocks.
  The paper's G1 (1024x512 inputs) is ngf 64, 4 downsamplings, 9 blocks.
- `LocalEnhancer` G = {G1, G2}: G1 runs at half resolution without its output layers; G2's front
  end (c7s1 + one d-layer) sees the full image and its features are summed with G1's before G2's
  residual blocks, u-layer and c7s1-3 output (Sec. 3.2, "coarse-to-fine generator").
- `MultiScaleDiscriminator`: num_d PatchGANs (`patchgan.PatchGAN`, padding 2 as in the authors'
  code) on the image pyramid made by 3x3 stride-2 average pooling (count_include_pad=False);
  each returns its logits and every layer's activations, for the feature-matching loss (Eq. 4,
  `psrjax.losses.feature_matching`).
- pix2pix's U-Net generator is `psrjax.models.unet.UNetGenerator`; `generator(name)` builds any
  of the three, `discriminator()` the discriminator, at the paper's sizes (`PAPER`) unless
  keyword arguments say otherwise (the configs' runlocal and tiny sizes: configs/pix2pixhd.py).

Departures: the generators accept `bottleneck_features` (below), a hook for systems built on
pix2pixHD (D²G-Net, INTERnet); biases start at zero (the authors' `weights_init` sets only the
kernels, to N(0, 0.02), leaving PyTorch's uniform bias init); the paper's 3 discriminators are
`discriminator()`'s default (the authors' code defaults to 2).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from psrjax.models.patchgan import PatchGAN
from psrjax.models.unet import UNetGenerator
from psrjax.nn import (Conv2D, ConvNormAct2D, ResBlock2D, UpBlock2D, compute_dtype,
                       downsample_avg, remat_network)
from psrjax.nn.blocks2d import check_norm_act
from psrjax.nn.conv import default_kernel_init

BOTTLENECK_MODES = ("add", "concat")
GENERATORS = ("global", "local", "unet")
# The paper's networks (its 2048x1024 Cityscapes model: G1 at 1024x512), the factories' defaults.
PAPER = {
    "global": dict(ngf=64, n_downsample=4, n_blocks=9),
    "local": dict(ngf=32, n_downsample_global=4, n_blocks_global=9, n_local_enhancers=1,
                  n_blocks_local=3),
    "unet": dict(ngf=64, num_downs=8),                 # pix2pix at 256x256
    "discriminator": dict(num_d=3, ndf=64, num_layers=3),
}


def _check_divisible(x: jax.Array, factor: int, what: str) -> None:
  h, w = x.shape[-3:-1]
  if h % factor or w % factor:
    raise ValueError(f"{what} needs H and W divisible by {factor}; got {h}x{w} (crop or pad the "
                     f"images, or use fewer downsampling layers)")


class GlobalGenerator(nn.Module):
  """G1: `__call__(x [N, H, W, C], bottleneck_features=None)` -> image [N, H, W, out] in (-1, 1).

  H and W must be divisible by 2^n_downsample. `bottleneck_features` `[N, H / 2^n_downsample,
  W / 2^n_downsample, F]`, when given, enters before the residual blocks through its own 1x1
  conv ("bottleneck"): "add" adds its projection to the bottleneck width (zero-initialised, so
  the generator starts as the plain G1), "concat" projects the concatenation [bottleneck,
  features] back to the width. With `head=False` the output layers are dropped and the last
  u-layer's ngf-channel features are returned (G1 inside `LocalEnhancer`).
  Parameters: stem, down{i}, bottleneck, block{i}, up{i}, head.
  """
  out_channels: int = 3
  ngf: int = 64                      # channels of the first layer (paper: 64)
  n_downsample: int = 4              # stride-2 layers (paper: 4; width ngf * 2^n_downsample)
  n_blocks: int = 9                  # residual blocks at the bottleneck (paper: 9)
  norm: str = "instance"             # psrjax.nn.NORMS (pix2pixHD: "instance", no affine)
  pad_mode: str = "reflect"          # padding of the residual blocks (pix2pixHD: reflect)
  up_mode: str = "transpose"         # "transpose" (pix2pixHD) | "resize" (nearest + conv)
  bottleneck_mode: str = "add"       # how `bottleneck_features` enter: "add" | "concat"
  head: bool = True                  # False: return the features before the c7s1 + tanh output
  conv_impl: str = "auto"            # Conv2D implementation
  dtype: Any = None                  # computation dtype; None: the input's (params float32)
  remat: str = "none"                # "none" | "blocks" | "full" (psrjax.nn.policy)

  @nn.compact
  def __call__(self, x: jax.Array, bottleneck_features: jax.Array | None = None, *,
               train: bool = False) -> jax.Array:
    check_norm_act(self.norm, "relu")
    if self.bottleneck_mode not in BOTTLENECK_MODES:
      raise ValueError(f"unknown bottleneck_mode {self.bottleneck_mode!r}; allowed: "
                       f"{', '.join(BOTTLENECK_MODES)}")
    if x.ndim != 4:
      raise ValueError(f"GlobalGenerator expects images [N, H, W, C]; got shape {x.shape}")
    _check_divisible(x, 2 ** self.n_downsample, f"GlobalGenerator with {self.n_downsample} "
                     f"downsampling layers")
    x = x.astype(compute_dtype(self.dtype, x))
    forward = functools.partial(GlobalGenerator._forward, train=train)
    return remat_network(forward, self.remat)(self, x, bottleneck_features)

  def _kw(self) -> dict:
    return dict(norm=self.norm, impl=self.conv_impl, dtype=self.dtype, remat=self.remat)

  def _forward(self, x, bottleneck_features, *, train: bool):
    x = ConvNormAct2D(self.ngf, 7, padding=3, pad_mode="reflect", name="stem", **self._kw())(x)
    for i in range(self.n_downsample):
      x = ConvNormAct2D(self.ngf * 2 ** (i + 1), 3, 2, 1, name=f"down{i}", **self._kw())(x)
    if bottleneck_features is not None:
      x = self._inject(x, bottleneck_features)
    for i in range(self.n_blocks):
      x = ResBlock2D(self.pad_mode, name=f"block{i}", **self._kw())(x, train=train)
    for i in range(self.n_downsample):
      width = self.ngf * 2 ** (self.n_downsample - i - 1)
      x = UpBlock2D(width, mode=self.up_mode, name=f"up{i}", **self._kw())(x)
    if not self.head:
      return x
    return output_layer(self.out_channels, self.conv_impl, self.dtype)(x)

  def _inject(self, x, features):
    if features.ndim != 4 or features.shape[:3] != x.shape[:3]:
      raise ValueError(f"bottleneck_features must be [N, h, w, F] at the bottleneck "
                       f"{x.shape[:3]} (the input / 2^{self.n_downsample}); got {features.shape}")
    features = features.astype(x.dtype)
    if self.bottleneck_mode == "add":
      return x + Conv2D(x.shape[-1], 1, impl=self.conv_impl, dtype=self.dtype,
                        kernel_init=nn.initializers.zeros, name="bottleneck")(features)
    both = jnp.concatenate([x, features], axis=-1)
    return Conv2D(x.shape[-1], 1, impl=self.conv_impl, dtype=self.dtype, name="bottleneck")(both)


def output_layer(out_channels: int, impl: str, dtype: Any, name: str = "head"):
  """c7s1-out + tanh: reflection pad 3, 7x7 conv, tanh."""
  conv = Conv2D(out_channels, 7, padding=3, pad_mode="reflect", impl=impl, dtype=dtype, name=name)
  return lambda x: jnp.tanh(conv(x))


class LocalEnhancer(nn.Module):
  """G = {G1, G2}: `__call__(x [N, H, W, C], bottleneck_features=None)` -> image in (-1, 1).

  G1 ("global", a `GlobalGenerator` of width ngf * 2^n_local_enhancers without its head) runs on
  the input average-pooled n_local_enhancers times; enhancer n ("local{n}_*") adds its front end's
  features of the input at its scale to the previous output features, then its residual blocks
  and u-layer; the last enhancer ends in c7s1-out + tanh ("head"). As in the paper, G1 can be
  trained alone first (a `GlobalGenerator` of that width at half resolution, whose parameters
  without "head" are "global"'s). H and W must be divisible by 2^(n_downsample_global +
  n_local_enhancers). `bottleneck_features` go to G1 (at its bottleneck).
  """
  out_channels: int = 3
  ngf: int = 32                      # width of the finest enhancer (paper: 32)
  n_downsample_global: int = 4       # G1's stride-2 layers
  n_blocks_global: int = 9           # G1's residual blocks
  n_local_enhancers: int = 1         # local enhancers (paper: 1, i.e. 2x G1's resolution)
  n_blocks_local: int = 3            # residual blocks per enhancer (paper: 3)
  norm: str = "instance"
  pad_mode: str = "reflect"
  bottleneck_mode: str = "add"
  conv_impl: str = "auto"
  dtype: Any = None                  # computation dtype; None: the input's (params float32)
  remat: str = "none"                # "none" | "blocks" | "full" (G1 and each enhancer whole)

  @nn.compact
  def __call__(self, x: jax.Array, bottleneck_features: jax.Array | None = None, *,
               train: bool = False) -> jax.Array:
    check_norm_act(self.norm, "relu")
    if x.ndim != 4:
      raise ValueError(f"LocalEnhancer expects images [N, H, W, C]; got shape {x.shape}")
    _check_divisible(x, 2 ** (self.n_downsample_global + self.n_local_enhancers), "LocalEnhancer")
    x = x.astype(compute_dtype(self.dtype, x))
    pyramid = [x]
    for _ in range(self.n_local_enhancers):
      pyramid.append(downsample_avg(pyramid[-1]))
    y = GlobalGenerator(self.out_channels, self.ngf * 2 ** self.n_local_enhancers,
                        self.n_downsample_global, self.n_blocks_global, self.norm, self.pad_mode,
                        bottleneck_mode=self.bottleneck_mode, head=False,
                        conv_impl=self.conv_impl, dtype=self.dtype, remat=self.remat,
                        name="global")(pyramid[-1], bottleneck_features, train=train)
    for n in range(1, self.n_local_enhancers + 1):
      enhance = functools.partial(LocalEnhancer._enhance, n=n, train=train)
      y = remat_network(enhance, self.remat)(self, pyramid[self.n_local_enhancers - n], y)
    return output_layer(self.out_channels, self.conv_impl, self.dtype)(y)

  def _enhance(self, image, previous, *, n: int, train: bool):
    """Enhancer n: front end on `image`, + `previous` features, blocks, u-layer."""
    kw = dict(norm=self.norm, impl=self.conv_impl, dtype=self.dtype, remat=self.remat)
    width = self.ngf * 2 ** (self.n_local_enhancers - n)
    y = ConvNormAct2D(width, 7, padding=3, pad_mode="reflect", name=f"local{n}_stem", **kw)(image)
    y = ConvNormAct2D(2 * width, 3, 2, 1, name=f"local{n}_down", **kw)(y) + previous
    for i in range(self.n_blocks_local):
      y = ResBlock2D(self.pad_mode, name=f"local{n}_block{i}", **kw)(y, train=train)
    return UpBlock2D(width, name=f"local{n}_up", **kw)(y)


class MultiScaleDiscriminator(nn.Module):
  """`__call__(image [N, H, W, C], cond=None)` -> (logits, features).

  logits: num_d float32 patch-logit maps, scale 0 at full resolution, scale i on the input
  average-pooled i times; features: per scale the num_layers + 1 activations of its layers
  (compute dtype). The condition (pix2pixHD: the label map) is concatenated on channels before
  pooling. Scale i's parameters are "scale{i}" (the authors' code names the full-resolution
  discriminator scale{num_D - 1}).
  """
  num_d: int = 2                     # discriminators (paper: 3; the authors' code: 2)
  ndf: int = 64
  num_layers: int = 3                # stride-2 layers of each PatchGAN (pix2pixHD: 3)
  norm: str = "instance"
  padding: int = 2                   # of every 4x4 conv (pix2pixHD: 2)
  conv_impl: str = "auto"
  dtype: Any = None                  # computation dtype; None: the image's (params, logits f32)
  remat: str = "none"                # each PatchGAN's (psrjax.nn.policy)
  spectral: bool = False             # PatchGAN.spectral (CoCosNet's discriminator)
  attention_after: int = -1          # PatchGAN.attention_after (CoCosNet: 2)
  kernel_init: Callable = default_kernel_init

  @nn.compact
  def __call__(self, image: jax.Array, cond: jax.Array | None = None, *, train: bool = False):
    del train
    if image.ndim != 4 or (cond is not None and cond.shape[:3] != image.shape[:3]):
      raise ValueError(f"MultiScaleDiscriminator expects image [N, H, W, C] and a condition "
                       f"[N, H, W, L]; got {image.shape} and "
                       f"{None if cond is None else cond.shape}")
    x = image if cond is None else jnp.concatenate([image, cond.astype(image.dtype)], axis=-1)
    x = x.astype(compute_dtype(self.dtype, image))
    logits, features = [], []
    for i in range(self.num_d):
      d = PatchGAN(self.ndf, self.num_layers, self.padding, self.norm, intermediate=True,
                   conv_impl=self.conv_impl, kernel_init=self.kernel_init, dtype=self.dtype,
                   remat=self.remat, spectral=self.spectral,
                   attention_after=self.attention_after, name=f"scale{i}")
      scale_logits, scale_features = d(x)
      logits.append(scale_logits)
      features.append(scale_features)
      if i < self.num_d - 1:
        x = downsample_avg(x)
    return logits, features


def _paper(variant: str, part: str) -> dict:
  if variant != "paper":
    raise ValueError(f"unknown pix2pixHD variant {variant!r}: the networks have the paper's sizes "
                     "(\"paper\"); give others as keyword arguments (the configs' runlocal and tiny "
                     "sizes: configs/pix2pixhd.py)")
  return dict(PAPER[part])


def generator(name: str = "global", variant: str = "paper", **overrides) -> nn.Module:
  """The generator `name` ("global": pix2pixHD's G1, "local": G1 + local enhancer, "unet":
  pix2pix's U-Net) at the paper's sizes (`PAPER`; `variant` "paper", the only one); keyword
  arguments override module fields (sizes, out_channels, norm, dtype, remat, ...)."""
  if name not in GENERATORS:
    raise ValueError(f"unknown generator {name!r}; allowed: {', '.join(GENERATORS)}")
  cls = {"global": GlobalGenerator, "local": LocalEnhancer, "unet": UNetGenerator}[name]
  return cls(**{**_paper(variant, name), **overrides})


def discriminator(variant: str = "paper", **overrides) -> MultiScaleDiscriminator:
  """The multi-scale discriminator at the paper's sizes (`PAPER`), fields overridable."""
  return MultiScaleDiscriminator(**{**_paper(variant, "discriminator"), **overrides})
