"""Feature networks of the distribution evaluations, by name.

  inception_pool3  FID / KID: pytorch-fid's InceptionV3 pool3 [2048] of every frame (images
                   [B, H, W, 3] or videos [B, T, H, W, 3], whose frames each count); resized to
                   299x299 by the network. No package ships these weights: pass `weights`
                   (pytorch-fid's pt_inception-2015-12-05 file or a converted .msgpack).
  inception_logits IS: the same network's 1008 class logits (its "fc" layer) of every frame.
  i3d_logits       FVD: Kinetics-400 I3D logits [400] of clips [B, T, H, W, 3] after the TF1
                   bilinear resize to `resolution` (224 in the reference protocol, 16 frames).
  i3d_pool         VFID: I3D Mixed_5c averaged over time and space [1024], no resize.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from psrjax import metrics
from psrjax.metrics import video
from psrjax.models import pretrained

NAMES = ("inception_pool3", "inception_logits", "i3d_logits", "i3d_pool")


@dataclasses.dataclass(frozen=True)
class FeatureNet:
  """A frozen network mapping a batch of images or clips to feature rows."""
  name: str  # one of NAMES
  module: Any  # the Flax module (weightless)
  embed: Callable[[Any, Any, jax.Array], jax.Array]  # (module, variables, x [B, ...]) -> [N, D]
  clips: bool  # inputs must be videos [B, T, H, W, 3]


def _frames(endpoint: str):
  def embed(module, variables, x):
    if x.ndim not in (4, 5) or x.shape[-1] != 3:
      raise ValueError(f"inception features: expected images [B, H, W, 3] or videos "
                       f"[B, T, H, W, 3], got shape {x.shape}")
    frames = x.reshape((-1,) + x.shape[-3:]).astype(jnp.float32)
    return module.apply(variables, frames)[endpoint]
  return embed


def load(name: str, *, weights: str = "", resolution: int = 0) -> tuple[FeatureNet, Any]:
  """(FeatureNet, variables) of feature network `name`; `weights` "" = the packaged file."""
  path = weights or None
  if name in ("inception_pool3", "inception_logits"):
    endpoint = "pool3" if name == "inception_pool3" else "logits"
    module, variables = pretrained.load("inception_v3_fid", path, final_endpoint=endpoint)
    return FeatureNet(name, module, _frames(endpoint), clips=False), variables
  if name == "i3d_logits":
    size = resolution or video.FVD_RESOLUTION
    module, variables = pretrained.load("i3d", path)
    embed = lambda m, v, x: metrics.fvd_features(lambda y: m.apply(v, y), x, resolution=size)
    return FeatureNet(name, module, embed, clips=True), variables
  if name == "i3d_pool":
    module, variables = pretrained.load("i3d", path, final_endpoint="Mixed_5c")
    embed = lambda m, v, x: metrics.pooled_i3d_features(lambda y: m.apply(v, y), x)
    return FeatureNet(name, module, embed, clips=True), variables
  raise ValueError(f"unknown feature network {name!r}; allowed: {', '.join(NAMES)}")
