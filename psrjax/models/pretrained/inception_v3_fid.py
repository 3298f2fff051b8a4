"""The FID InceptionV3: pytorch-fid's port of the TF 2015-12-05 Inception graph (Heusel et al. 2017).

torchvision's Inception3 layout with pytorch-fid's FID-specific blocks: average pools in
Mixed_5b-d, 6b-e and 7b exclude padding from the count, and Mixed_7c's pool branch is a max pool.
Input: images [B, H, W, 3] in [-1, 1], resized (bilinear, half-pixel centres, no antialiasing:
torch's `F.interpolate(..., align_corners=False)`) to 299x299 unless resize=False. pytorch-fid
scales [0, 1] to [-1, 1] after resizing; resizing commutes with that affine map.
Endpoints: every named layer, "MaxPool_1" (64 channels) and "MaxPool_2" (192), pytorch-fid's
feature blocks with Mixed_6e (768) and "pool3" ([B, 2048], the FID features), and "logits"
([B, 1008], the fc layer, for the Inception Score). Weights: pytorch-fid's
pt_inception-2015-12-05-6726825d.pth (a torchvision-format state dict); no package ships them.
"""
from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from psrjax.models.pretrained import inputs, weights
from psrjax.nn.conv2d import Conv2D
from psrjax.nn.policy import compute_dtype

ENDPOINTS = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
             "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
             "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "pool3", "logits")
EXAMPLE_INPUT_SHAPE = (1, 75, 75, 3)
BN_EPSILON = 1e-3


def _pad(p):
  return ((p[0], p[0]), (p[1], p[1])) if isinstance(p, tuple) else ((p, p), (p, p))


class BasicConv(nn.Module):
  """torchvision's BasicConv2d: conv (no bias) -> batch norm (eps 1e-3, frozen) -> ReLU."""
  features: int                       # output channels
  kernel: Any = 1                     # int or (kh, kw)
  stride: int = 1
  padding: Any = 0                    # int or (ph, pw), symmetric
  dtype: Any = None                   # computation dtype; None: the input's
  conv_impl: str = "auto"             # Conv2D implementation (psrjax.nn.conv2d)

  @nn.compact
  def __call__(self, x):
    k = self.kernel if isinstance(self.kernel, tuple) else (self.kernel, self.kernel)
    dtype = compute_dtype(self.dtype, x)
    x = Conv2D(self.features, k, strides=self.stride, padding=_pad(self.padding), use_bias=False,
               impl=self.conv_impl, dtype=dtype, name="conv")(x)
    c = self.features
    scale = self.param("bn_scale", nn.initializers.ones, (c,))
    bias = self.param("bn_bias", nn.initializers.zeros, (c,))
    mean = self.variable("batch_stats", "bn_mean", jnp.zeros, (c,)).value   # frozen statistics
    var = self.variable("batch_stats", "bn_var", jnp.ones, (c,)).value
    mul = jax.lax.rsqrt(var + BN_EPSILON) * scale
    return nn.relu((x - mean.astype(dtype)) * mul.astype(dtype) + bias.astype(dtype))


def _avg3(x):   # FID blocks: 3x3 average pool, stride 1, padding 1, padding excluded from the count
  y = nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)
  return y.astype(x.dtype)   # flax divides by float32 counts: keep the compute dtype


def _max3s2(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2))


class InceptionA(nn.Module):
  pool_features: int
  dtype: Any = None  # computation dtype; None: the input's
  conv_impl: str = "auto"  # Conv2D implementation (psrjax.nn.conv2d)

  @nn.compact
  def __call__(self, x):
    conv = lambda name, *a, **k: BasicConv(*a, dtype=self.dtype, conv_impl=self.conv_impl,
                                                name=name, **k)
    b1 = conv("branch1x1", 64)(x)
    b5 = conv("branch5x5_2", 64, 5, padding=2)(conv("branch5x5_1", 48)(x))
    b3 = conv("branch3x3dbl_1", 64)(x)
    b3 = conv("branch3x3dbl_3", 96, 3, padding=1)(conv("branch3x3dbl_2", 96, 3, padding=1)(b3))
    bp = conv("branch_pool", self.pool_features)(_avg3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  dtype: Any = None  # computation dtype; None: the input's
  conv_impl: str = "auto"  # Conv2D implementation (psrjax.nn.conv2d)

  @nn.compact
  def __call__(self, x):
    conv = lambda name, *a, **k: BasicConv(*a, dtype=self.dtype, conv_impl=self.conv_impl,
                                                name=name, **k)
    b3 = conv("branch3x3", 384, 3, stride=2)(x)
    bd = conv("branch3x3dbl_2", 96, 3, padding=1)(conv("branch3x3dbl_1", 64)(x))
    bd = conv("branch3x3dbl_3", 96, 3, stride=2)(bd)
    return jnp.concatenate([b3, bd, _max3s2(x)], axis=-1)


class InceptionC(nn.Module):
  channels_7x7: int
  dtype: Any = None  # computation dtype; None: the input's
  conv_impl: str = "auto"  # Conv2D implementation (psrjax.nn.conv2d)

  @nn.compact
  def __call__(self, x):
    conv = lambda name, *a, **k: BasicConv(*a, dtype=self.dtype, conv_impl=self.conv_impl,
                                                name=name, **k)
    c = self.channels_7x7
    b1 = conv("branch1x1", 192)(x)
    b7 = conv("branch7x7_1", c)(x)
    b7 = conv("branch7x7_3", 192, (7, 1), padding=(3, 0))(conv("branch7x7_2", c, (1, 7), padding=(0, 3))(b7))
    bd = conv("branch7x7dbl_1", c)(x)
    for i, (k, p, f) in enumerate([((7, 1), (3, 0), c), ((1, 7), (0, 3), c), ((7, 1), (3, 0), c),
                                   ((1, 7), (0, 3), 192)], start=2):
      bd = conv(f"branch7x7dbl_{i}", f, k, padding=p)(bd)
    bp = conv("branch_pool", 192)(_avg3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  dtype: Any = None  # computation dtype; None: the input's
  conv_impl: str = "auto"  # Conv2D implementation (psrjax.nn.conv2d)

  @nn.compact
  def __call__(self, x):
    conv = lambda name, *a, **k: BasicConv(*a, dtype=self.dtype, conv_impl=self.conv_impl,
                                                name=name, **k)
    b3 = conv("branch3x3_2", 320, 3, stride=2)(conv("branch3x3_1", 192)(x))
    b7 = conv("branch7x7x3_1", 192)(x)
    b7 = conv("branch7x7x3_2", 192, (1, 7), padding=(0, 3))(b7)
    b7 = conv("branch7x7x3_3", 192, (7, 1), padding=(3, 0))(b7)
    b7 = conv("branch7x7x3_4", 192, 3, stride=2)(b7)
    return jnp.concatenate([b3, b7, _max3s2(x)], axis=-1)


class InceptionE(nn.Module):
  max_pool: bool = False    # pytorch-fid's FIDInceptionE_2 (Mixed_7c) pools with max, E_1 with avg
  dtype: Any = None  # computation dtype; None: the input's
  conv_impl: str = "auto"  # Conv2D implementation (psrjax.nn.conv2d)

  @nn.compact
  def __call__(self, x):
    conv = lambda name, *a, **k: BasicConv(*a, dtype=self.dtype, conv_impl=self.conv_impl,
                                                name=name, **k)
    b1 = conv("branch1x1", 320)(x)
    b3 = conv("branch3x3_1", 384)(x)
    b3 = jnp.concatenate([conv("branch3x3_2a", 384, (1, 3), padding=(0, 1))(b3),
                          conv("branch3x3_2b", 384, (3, 1), padding=(1, 0))(b3)], axis=-1)
    bd = conv("branch3x3dbl_2", 384, 3, padding=1)(conv("branch3x3dbl_1", 448)(x))
    bd = jnp.concatenate([conv("branch3x3dbl_3a", 384, (1, 3), padding=(0, 1))(bd),
                          conv("branch3x3dbl_3b", 384, (3, 1), padding=(1, 0))(bd)], axis=-1)
    pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1))) if self.max_pool else _avg3(x)
    bp = conv("branch_pool", 192)(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3FID(nn.Module):
  """The FID InceptionV3 returning a dict of endpoints up to `final_endpoint` (inclusive)."""
  final_endpoint: str = "logits"    # one of ENDPOINTS; "pool3" for FID features only
  resize: bool = True               # resize inputs to 299x299 first, as pytorch-fid does
  dtype: Any = None                 # computation dtype; None: the input's (parameters float32)
  conv_impl: str = "auto"           # Conv2D implementation (psrjax.nn.conv2d): "auto" | "xla" | ...

  @nn.compact
  def __call__(self, x, *, train=False):
    """`train` has no effect: the network is inference-only (frozen batch statistics)."""
    if self.final_endpoint not in ENDPOINTS:
      raise ValueError(f"unknown InceptionV3 endpoint {self.final_endpoint!r}; allowed: {', '.join(ENDPOINTS)}")
    inputs.check_images(x, ndim=4, name="InceptionV3 input [B, H, W, 3]")
    x = x.astype(compute_dtype(self.dtype, x))
    if self.resize:
      x = jax.image.resize(x, (x.shape[0], 299, 299, 3), "bilinear", antialias=False)
    layers, out = self._layers(), {}
    for name in ENDPOINTS[:ENDPOINTS.index(self.final_endpoint) + 1]:
      x = layers[name](x)
      out[name] = x
    return out

  def _layers(self):
    d = {"dtype": self.dtype, "conv_impl": self.conv_impl}
    return {
        "Conv2d_1a_3x3": BasicConv(32, 3, stride=2, **d, name="Conv2d_1a_3x3"),
        "Conv2d_2a_3x3": BasicConv(32, 3, **d, name="Conv2d_2a_3x3"),
        "Conv2d_2b_3x3": BasicConv(64, 3, padding=1, **d, name="Conv2d_2b_3x3"),
        "MaxPool_1": _max3s2,
        "Conv2d_3b_1x1": BasicConv(80, 1, **d, name="Conv2d_3b_1x1"),
        "Conv2d_4a_3x3": BasicConv(192, 3, **d, name="Conv2d_4a_3x3"),
        "MaxPool_2": _max3s2,
        "Mixed_5b": InceptionA(32, **d, name="Mixed_5b"),
        "Mixed_5c": InceptionA(64, **d, name="Mixed_5c"),
        "Mixed_5d": InceptionA(64, **d, name="Mixed_5d"),
        "Mixed_6a": InceptionB(**d, name="Mixed_6a"),
        "Mixed_6b": InceptionC(128, **d, name="Mixed_6b"),
        "Mixed_6c": InceptionC(160, **d, name="Mixed_6c"),
        "Mixed_6d": InceptionC(160, **d, name="Mixed_6d"),
        "Mixed_6e": InceptionC(192, **d, name="Mixed_6e"),
        "Mixed_7a": InceptionD(**d, name="Mixed_7a"),
        "Mixed_7b": InceptionE(**d, name="Mixed_7b"),
        "Mixed_7c": InceptionE(max_pool=True, **d, name="Mixed_7c"),
        "pool3": lambda x: jnp.mean(x, axis=(1, 2)),
        "logits": nn.Dense(1008, dtype=self.dtype, name="fc"),
    }


def make_module(**kwargs) -> InceptionV3FID:
  """The FID InceptionV3; keyword arguments override the module's fields."""
  return InceptionV3FID(**kwargs)


# psrjax leaf -> (torch leaf, transposition of the torch array into the flax layout or None)
_LEAVES = {("params", "kernel"): ("weight", (2, 3, 1, 0)), ("params", "bn_scale"): ("weight", None),
           ("params", "bn_bias"): ("bias", None), ("batch_stats", "bn_mean"): ("running_mean", None),
           ("batch_stats", "bn_var"): ("running_var", None)}


def _torch_key(key: tuple[str, ...]) -> tuple[str, tuple[int, ...] | None]:
  collection, *path, leaf = key
  if path == ["fc"]:
    return f"fc.{'weight' if leaf == 'kernel' else 'bias'}", ((1, 0) if leaf == "kernel" else None)
  name, perm = _LEAVES[(collection, leaf)]
  module = ".".join(p for p in path if p != "conv")
  return f"{module}.{'conv' if leaf == 'kernel' else 'bn'}.{name}", perm


def from_torch(state: Mapping[str, np.ndarray]) -> weights.Flat:
  """torchvision-format Inception3 state dict (pytorch-fid's FID weights) -> psrjax variables."""
  from psrjax.models import pretrained
  flat = {}
  for key, spec in pretrained.expected_shapes("inception_v3_fid").items():
    torch_key, perm = _torch_key(key)
    shape = tuple(spec.shape) if perm is None else tuple(spec.shape[i] for i in np.argsort(perm))
    value = weights.take_torch(state, torch_key, shape, "inception_v3_fid")
    flat[key] = value if perm is None else value.transpose(perm)
  return flat


WEIGHTS = weights.WeightSource(network="inception_v3_fid", from_torch=from_torch,
                               torch_hint="pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
