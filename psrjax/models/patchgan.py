"""PatchGAN image discriminator (Isola et al. 2017, pix2pix `NLayerDiscriminator`).

Conv(k=4, stride 2, padding 1) layers of ndf, 2 ndf, 4 ndf, ... channels (at most 8 ndf) with
LeakyReLU(0.2) and instance normalisation (not after the first), then one stride-1 such layer and
a final stride-1 conv to one channel of patch logits (no sigmoid: pair it with a logits-based GAN
loss, e.g. LSGAN as in pix2pixHD / vid2vid). A conditional discriminator sees its condition
concatenated on channels.
"""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from psrjax.models.mfci_layers import instance_norm
from psrjax.nn.policy import compute_dtype, remat_network, remat_stage


class PatchGAN(nn.Module):
  """`__call__(image [N, H, W, C], cond=None)` -> logits float32 [N, H', W', 1].

  With `num_layers` stride-2 layers the output is H / 2^num_layers - 2 patches a side.
  """
  ndf: int = 64  # channels of the first layer
  num_layers: int = 3  # stride-2 layers (pix2pix: 3, a 70x70 receptive field)
  dtype: Any = None  # computation dtype; None: the image's (params and logits float32)
  remat: str = "none"  # "none" | "blocks" (each layer) | "full" (psrjax.nn.policy)

  @nn.compact
  def __call__(self, image: jax.Array, cond: jax.Array | None = None, *, train=False):
    del train
    x = image if cond is None else jnp.concatenate([image, cond.astype(image.dtype)], axis=-1)
    h, w = x.shape[-3:-1]
    if min(h, w) < 2 ** self.num_layers * 3:
      raise ValueError(f"PatchGAN with {self.num_layers} stride-2 layers needs images of at "
                       f"least {2 ** self.num_layers * 3} pixels a side; got {h}x{w}")
    x = x.astype(compute_dtype(self.dtype, image))
    return remat_network(PatchGAN._forward, self.remat)(self, x)

  def _forward(self, x):
    for i in range(self.num_layers + 1):
      x = remat_stage(functools.partial(PatchGAN._layer, i=i), self.remat)(self, x)
    logits = nn.Conv(1, (4, 4), padding=((1, 1), (1, 1)), dtype=x.dtype,
                     name=f"conv{self.num_layers + 1}")(x)
    return logits.astype(jnp.float32)

  def _layer(self, x, *, i: int):
    """Layer i: 4x4 conv (stride 2 but on the last), instance norm (not on layer 0), LeakyReLU."""
    stride = 2 if i < self.num_layers else 1
    x = nn.Conv(self.ndf * min(2 ** i, 8), (4, 4), strides=stride, padding=((1, 1), (1, 1)),
                dtype=x.dtype, name=f"conv{i}")(x)
    if i > 0:
      x = instance_norm(x)
    return nn.leaky_relu(x, 0.2)
