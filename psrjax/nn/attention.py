"""Self-attention over image or video positions (SAGAN, Zhang et al. 2018)."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from psrjax.nn import spectral
from psrjax.nn.policy import compute_dtype


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
  spectral: bool = False  # spectrally normalised projections (BigGAN's / CoCosNet's SN convs)
  use_bias: bool = True  # projections with biases (BigGAN and CoCosNet: without)

  @nn.compact
  def __call__(self, x, *, train=False):
    del train
    c, dtype = x.shape[-1], compute_dtype(self.dtype, x)
    if c < 8:
      raise ValueError(f"self-attention needs at least 8 channels, got {c}")
    x = x.astype(dtype)
    if self.spectral or not self.use_bias:
      dense = lambda f, name: Linear(f, use_bias=self.use_bias, spectral=self.spectral,
                                     dtype=dtype, name=name)
    else:
      dense = lambda f, name: nn.Dense(f, dtype=dtype, name=name)
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


class Linear(nn.Module):
  """`x [..., C] @ kernel [C, features]` (+ bias), the kernel optionally spectrally normalised
  (`psrjax.nn.spectral`); parameters float32, computed in `dtype` (None: the input's)."""
  features: int
  use_bias: bool = True
  spectral: bool = False
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    dtype = compute_dtype(self.dtype, x)
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features),
                        jnp.float32)
    if self.spectral:
      u = self.param(spectral.SN_PARAM, spectral.init_u, (self.features,), jnp.float32)
      kernel = spectral.normalize_kernel(kernel, u)
    y = x.astype(dtype) @ kernel.astype(dtype)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32).astype(dtype)
    return y
