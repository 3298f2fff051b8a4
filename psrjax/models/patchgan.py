"""PatchGAN image discriminator (Isola et al. 2017, pix2pix `NLayerDiscriminator`).

Conv(k=4, stride 2, padding 1) layers of ndf, 2 ndf, 4 ndf, ... channels (at most 8 ndf) with
LeakyReLU(0.2) and instance normalisation (not after the first), then one stride-1 such layer and
a final stride-1 conv to one channel of patch logits (no sigmoid: pair it with a logits-based GAN
loss, e.g. LSGAN as in pix2pixHD / vid2vid). A conditional discriminator sees its condition
concatenated on channels.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from psrjax.models.mfci_layers import instance_norm


class PatchGAN(nn.Module):
  """`__call__(image [N, H, W, C], cond=None)` -> logits float32 [N, H', W', 1].

  With `num_layers` stride-2 layers the output is H / 2^num_layers - 2 patches a side.
  """
  ndf: int = 64  # channels of the first layer
  num_layers: int = 3  # stride-2 layers (pix2pix: 3, a 70x70 receptive field)
  dtype: Any = jnp.float32  # computation dtype (logits float32)

  @nn.compact
  def __call__(self, image: jax.Array, cond: jax.Array | None = None, *, train=False):
    del train
    x = image if cond is None else jnp.concatenate([image, cond.astype(image.dtype)], axis=-1)
    h, w = x.shape[-3:-1]
    if min(h, w) < 2 ** self.num_layers * 3:
      raise ValueError(f"PatchGAN with {self.num_layers} stride-2 layers needs images of at "
                       f"least {2 ** self.num_layers * 3} pixels a side; got {h}x{w}")
    pad = ((1, 1), (1, 1))
    for i in range(self.num_layers + 1):
      stride = 2 if i < self.num_layers else 1
      x = nn.Conv(self.ndf * min(2 ** i, 8), (4, 4), strides=stride, padding=pad,
                  dtype=self.dtype, name=f"conv{i}")(x)
      if i > 0:
        x = instance_norm(x)
      x = nn.leaky_relu(x, 0.2)
    logits = nn.Conv(1, (4, 4), padding=pad, dtype=self.dtype, name=f"conv{self.num_layers + 1}")(x)
    return logits.astype(jnp.float32)
