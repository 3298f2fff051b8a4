"""2D building blocks of the MFCI networks: conv units, a U-Net, residual blocks, self-attention.

MFCI (Cheng et al.) generates videos frame by frame, so its networks are 2D: frames (and source
frames) are folded into the batch axis. Images are NHWC.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from psrjax.nn.policy import compute_dtype, remat_block, remat_network


def instance_norm(x: jax.Array, eps: float = 1e-5) -> jax.Array:
  """Instance normalisation over (H, W) per image and channel, no affine (statistics in float32)."""
  x32 = x.astype(jnp.float32)
  mean = jnp.mean(x32, axis=(-3, -2), keepdims=True)
  var = jnp.mean(jnp.square(x32 - mean), axis=(-3, -2), keepdims=True)
  return ((x32 - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


class ConvAct(nn.Module):
  """3x3 convolution (optionally strided) followed by LeakyReLU(0.2)."""
  features: int  # output channels
  strides: int = 1  # 2 halves H and W
  dtype: Any = None  # computation dtype; None: the input's

  @nn.compact
  def __call__(self, x):
    dtype = compute_dtype(self.dtype, x)
    x = nn.Conv(self.features, (3, 3), strides=self.strides, dtype=dtype, name="conv")(x)
    return nn.leaky_relu(x, 0.2)


class UNet(nn.Module):
  """Encoder-decoder with skip connections (Balakrishnan et al.'s U-Nets, without their exact
  layer counts): `depth` stride-2 levels of `base * 2^i` channels (capped at 8 base), nearest
  upsampling with skip concatenation, and a last 3x3 conv + LeakyReLU to `out_features`.

  Returns the last features `[N, H, W, out_features]` (no output head); H and W must be
  divisible by 2^depth.
  """
  base: int  # channels of the first level
  depth: int  # number of stride-2 levels
  out_features: int  # channels of the returned features
  dtype: Any = None  # computation dtype; None: the input's
  remat: str = "none"  # "none" | "blocks" (each conv unit) | "full" (psrjax.nn.policy)

  @nn.compact
  def __call__(self, x, *, train=False):
    del train
    h, w = x.shape[-3:-1]
    if h % 2 ** self.depth or w % 2 ** self.depth:
      raise ValueError(f"U-Net of depth {self.depth} needs H and W divisible by "
                       f"{2 ** self.depth}; got {h}x{w}")
    return remat_network(UNet._forward, self.remat)(self, x.astype(compute_dtype(self.dtype, x)))

  def _forward(self, x):
    width = lambda i: self.base * min(2 ** i, 8)
    unit = remat_block(ConvAct, self.remat)
    x = unit(width(0), dtype=self.dtype, name="in")(x)
    skips = []
    for i in range(self.depth):
      skips.append(x)
      x = unit(width(i + 1), strides=2, dtype=self.dtype, name=f"down{i}")(x)
    x = unit(width(self.depth), dtype=self.dtype, name="mid")(x)
    for i in reversed(range(self.depth)):
      n, hh, ww, c = x.shape
      x = jax.image.resize(x, (n, hh * 2, ww * 2, c), "nearest")
      x = jnp.concatenate([x, skips[i].astype(x.dtype)], axis=-1)
      x = unit(width(i), dtype=self.dtype, name=f"up{i}")(x)
    return unit(self.out_features, dtype=self.dtype, name="out")(x)


class ResBlock(nn.Module):
  """x + IN(conv(ReLU(IN(conv(x))))), 3x3 convolutions (pix2pixHD / vid2vid residual block)."""
  dtype: Any = None  # computation dtype; None: the input's

  @nn.compact
  def __call__(self, x):
    c, dtype = x.shape[-1], compute_dtype(self.dtype, x)
    y = nn.relu(instance_norm(nn.Conv(c, (3, 3), dtype=dtype, name="conv1")(x)))
    y = instance_norm(nn.Conv(c, (3, 3), dtype=dtype, name="conv2")(y))
    return x.astype(dtype) + y


class SelfAttention(nn.Module):
  """SAGAN self-attention (Zhang et al. 2018) over every position of `x [N, ..., C]`.

  q = W_q x, k = W_k x (C/8 channels), v = W_v x (C/2 channels), o = W_o softmax(q k^T) v,
  out = x + gamma o with gamma initialised to 0. Positions are all axes between the batch and
  the channels, so `[N, H, W, C]` is SAGAN's spatial "SA2D" and `[N, K, H, W, C]` is MFCI's
  spatio-temporal "SA3D" (a (K H W) x (K H W) attention map). As in BigGAN's implementation the
  keys and values are max-pooled spatially by `kv_pool` (1 = SAGAN exactly) to bound memory.
  """
  kv_pool: int = 2  # spatial max-pool factor of keys and values (1 = none)
  dtype: Any = None  # computation dtype; None: the input's

  @nn.compact
  def __call__(self, x, *, train=False):
    del train
    c, dtype = x.shape[-1], compute_dtype(self.dtype, x)
    if c < 8:
      raise ValueError(f"self-attention needs at least 8 channels, got {c}")
    x = x.astype(dtype)
    dense = lambda f, name, **kw: nn.Dense(f, dtype=dtype, name=name, **kw)
    q, k, v = dense(c // 8, "query")(x), dense(c // 8, "key")(x), dense(c // 2, "value")(x)
    k, v = self._pool(k), self._pool(v)
    n = x.shape[0]
    logits = jnp.einsum("nqc,nkc->nqk", q.reshape(n, -1, c // 8), k.reshape(n, -1, c // 8))
    attn = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
    o = jnp.einsum("nqk,nkc->nqc", attn, v.reshape(n, -1, c // 2)).reshape(x.shape[:-1] + (-1,))
    o = dense(c, "out")(o)
    gamma = self.param("gamma", nn.initializers.zeros, (), jnp.float32)
    return x + gamma.astype(x.dtype) * o

  def _pool(self, y):
    if self.kv_pool == 1:
      return y
    lead, (h, w, c) = y.shape[:-3], y.shape[-3:]
    y = y.reshape((-1, h, w, c))
    y = nn.max_pool(y, (self.kv_pool, self.kv_pool), strides=(self.kv_pool, self.kv_pool))
    return y.reshape(lead + y.shape[1:])
