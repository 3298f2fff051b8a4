"""PatchGAN image discriminator (Isola et al. 2017, pix2pix `NLayerDiscriminator`), also the
per-scale discriminator of pix2pixHD (Wang et al. 2018).

Conv(k=4, stride 2) layers of ndf, 2 ndf, 4 ndf, ... channels (at most 8 ndf) with LeakyReLU(0.2)
and a norm (not after the first), then one stride-1 such layer and a final stride-1 conv to one
channel of patch logits (no sigmoid: pair it with a logits-based GAN loss, e.g. LSGAN as in
pix2pixHD / vid2vid). A conditional discriminator sees its condition concatenated on channels.
pix2pix pads every conv by 1; pix2pixHD by 2 (`padw = ceil((kw - 1) / 2)` in its code) and caps
the width at 512 channels, which is 8 ndf for its ndf = 64. With `intermediate` the activations
of every layer are returned too, for pix2pixHD's feature-matching loss.

CoCosNet's discriminator (SPADE's `NLayerDiscriminator` with `norm_D="spectralinstance"` and its
attention) is this module with `spectral=True` (the normed layers' convolutions spectrally
normalised and without bias; the first and the final conv keep theirs, as in its code) and
`attention_after=i` (SAGAN self-attention on layer i's output before layer i + 1; the
intermediate features stay the layers' activations, without it).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from psrjax.nn.attention import SelfAttention
from psrjax.nn.blocks2d import check_norm_act, make_norm
from psrjax.nn.conv2d import Conv2D
from psrjax.nn.policy import compute_dtype, remat_network, remat_stage


def _out_size(n: int, num_layers: int, padding: int) -> int:
  """Logit positions along an axis of n pixels."""
  for i in range(num_layers + 2):
    n = (n + 2 * padding - 4) // (2 if i < num_layers else 1) + 1
  return n


class PatchGAN(nn.Module):
  """`__call__(image [N, H, W, C], cond=None)` -> logits float32 [N, H', W', 1], or with
  `intermediate` (logits, features): the num_layers + 1 activations after each LeakyReLU.

  With padding 1 and `num_layers` stride-2 layers the output is H / 2^num_layers - 2 patches a
  side; with padding 2 about H / 2^num_layers + 3.
  """
  ndf: int = 64  # channels of the first layer
  num_layers: int = 3  # stride-2 layers (pix2pix: 3, a 70x70 receptive field)
  padding: int = 1  # zero padding of every 4x4 conv (pix2pix: 1, pix2pixHD: 2)
  norm: str = "instance"  # psrjax.nn.NORMS: "instance" (no affine), "batch", ...
  intermediate: bool = False  # also return every layer's activations (pix2pixHD getIntermFeat)
  conv_impl: str = "auto"  # Conv2D implementation
  kernel_init: Callable = nn.initializers.lecun_normal()  # pix2pix(HD): normal(0, 0.02)
  dtype: Any = None  # computation dtype; None: the image's (params and logits float32)
  remat: str = "none"  # "none" | "blocks" (each layer) | "full" (psrjax.nn.policy)
  spectral: bool = False  # spectrally normalised convolutions in the normed layers (CoCosNet)
  attention_after: int = -1  # self-attention after this layer (CoCosNet: 2); -1: none

  @nn.compact
  def __call__(self, image: jax.Array, cond: jax.Array | None = None, *, train=False):
    del train
    check_norm_act(self.norm, "none")
    x = image if cond is None else jnp.concatenate([image, cond.astype(image.dtype)], axis=-1)
    h, w = x.shape[-3:-1]
    if min(_out_size(h, self.num_layers, self.padding),
           _out_size(w, self.num_layers, self.padding)) < 1:
      least = next(n for n in range(1, 1 << 20) if _out_size(n, self.num_layers, self.padding) > 0)
      raise ValueError(f"PatchGAN with {self.num_layers} stride-2 layers (padding "
                       f"{self.padding}) needs images of at least {least} pixels a side; "
                       f"got {h}x{w}")
    x = x.astype(compute_dtype(self.dtype, image))
    logits, features = remat_network(PatchGAN._forward, self.remat)(self, x)
    return (logits, features) if self.intermediate else logits

  def _forward(self, x):
    features = []
    for i in range(self.num_layers + 1):
      x = remat_stage(functools.partial(PatchGAN._layer, i=i), self.remat)(self, x)
      features.append(x)
      if i == self.attention_after:
        x = SelfAttention(dtype=self.dtype, spectral=True, use_bias=False, name="attention")(x)
    logits = self._conv(1, 1, f"conv{self.num_layers + 1}")(x)
    return logits.astype(jnp.float32), features

  def _conv(self, features: int, stride: int, name: str, spectral: bool = False) -> Conv2D:
    return Conv2D(features, 4, stride, self.padding, use_bias=not spectral, impl=self.conv_impl,
                  dtype=self.dtype, kernel_init=self.kernel_init, spectral=spectral, name=name)

  def _layer(self, x, *, i: int):
    """Layer i: 4x4 conv (stride 2 but on the last), norm (not on layer 0), LeakyReLU."""
    stride = 2 if i < self.num_layers else 1
    x = self._conv(self.ndf * min(2 ** i, 8), stride, f"conv{i}", self.spectral and i > 0)(x)
    norm = make_norm(self.norm, dtype=self.dtype, name=f"norm{i}") if i > 0 else None
    return nn.leaky_relu(x if norm is None else norm(x), 0.2)
