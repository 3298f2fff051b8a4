"""Self-attention over image or video positions (SAGAN, Zhang et al. 2018), and softmax
attention with its query rows tiled (`softmax_attention`, CoCosNet's correspondence warp)."""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from psrjax.nn import spectral
from psrjax.nn.policy import compute_dtype


def softmax_attention(q: jax.Array, k: jax.Array, v: jax.Array, *, scale: float,
                      block: int | None = None) -> jax.Array:
  """softmax_m(scale q_n . k_m) v_m: q [B, N, D], k [B, M, D], v [B, M, E] -> [B, N, E].

  The products take the operands' dtype with float32 accumulation; the logits and the softmax
  are float32; the result has v's dtype. `block` None computes the whole [B, N, M] logit matrix
  at once (what a plain implementation does, and what autodiff then keeps for the backward
  pass). An int tiles the query rows into blocks of that many: each block's logits are computed,
  used and dropped, and recomputed in the backward pass (`jax.checkpoint` in a `lax.map`), so
  the largest live intermediate is [B, block, M] in either pass. The values are the same.
  (`jax.nn.dot_product_attention`'s fused cuDNN kernels need head sizes of at most 128 or 256;
  CoCosNet's query and key features have 2,304 channels.)
  """
  if q.ndim != 3 or k.ndim != 3 or v.ndim != 3 or q.shape[0] != k.shape[0] != v.shape[0] \
      or q.shape[2] != k.shape[2] or k.shape[1] != v.shape[1]:
    raise ValueError(f"softmax_attention expects q [B, N, D], k [B, M, D], v [B, M, E]; got "
                     f"{q.shape}, {k.shape}, {v.shape}")
  n = q.shape[1]
  if block is None or block >= n:
    return _attend(q, k, v, scale)
  if block < 1:
    raise ValueError(f"softmax_attention block must be >= 1 query rows; got {block}")
  count = -(-n // block)
  if count * block != n:
    q = jnp.pad(q, ((0, 0), (0, count * block - n), (0, 0)))
  attend = jax.checkpoint(
      lambda i: _attend(jax.lax.dynamic_slice_in_dim(q, i * block, block, axis=1), k, v, scale))
  out = jax.lax.map(attend, jnp.arange(count))                       # [count, B, block, E]
  return jnp.moveaxis(out, 0, 1).reshape(q.shape[0], count * block, -1)[:, :n]


def _probs(q, k, scale):
  """softmax_m(scale q_n . k_m) in float32 ([B, N, M])."""
  logits = jnp.einsum("bnd,bmd->bnm", q, k, preferred_element_type=jnp.float32)
  return jax.nn.softmax(logits * scale, axis=-1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _attend(q, k, v, scale):
  """One block of softmax attention. Its backward pass is written out (as flash attention's) so
  that every product takes the operands' dtype with float32 accumulation: autodiff of the
  forward would multiply the float32 cotangents of the float32-accumulated products with the
  bfloat16 operands, a float32 product on an accelerator. The probabilities are recomputed
  from q and k rather than kept ([B, N, M] is what the tiling bounds)."""
  return _attend_fwd(q, k, v, scale)[0]


def _attend_fwd(q, k, v, scale):
  p = _probs(q, k, scale).astype(v.dtype)
  out = jnp.einsum("bnm,bme->bne", p, v, preferred_element_type=jnp.float32).astype(v.dtype)
  return out, (q, k, v)


def _attend_bwd(scale, residuals, g):
  q, k, v = residuals
  p = _probs(q, k, scale)
  g = g.astype(v.dtype)
  dv = jnp.einsum("bnm,bne->bme", p.astype(v.dtype), g, preferred_element_type=jnp.float32)
  dp = jnp.einsum("bne,bme->bnm", g, v, preferred_element_type=jnp.float32)
  ds = (p * (dp - jnp.sum(p * dp, axis=-1, keepdims=True)) * scale).astype(q.dtype)
  dq = jnp.einsum("bnm,bmd->bnd", ds, k, preferred_element_type=jnp.float32)
  dk = jnp.einsum("bnm,bnd->bmd", ds, q, preferred_element_type=jnp.float32)
  return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype)


_attend.defvjp(_attend_fwd, _attend_bwd)


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
