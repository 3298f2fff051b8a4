"""D²G-Net's networks (Sun et al., "Robust Pose Transfer with Dynamic Details using Neural Video
Rendering", TPAMI 2022): the UV generator, the dynamic-details generator and the hybrid texture.

- `UVGenerator` G_uv (Sec. 3.2, "UV Generation"): the pose label [N, H, W, L] -> per-pixel
  coordinates C_i in each of the N = 24 parts ([N, H, W, 24, 2], tanh) and the logits of the
  part probabilities P_0..P_24 ([N, H, W, 25], P_0 the background). The authors' network is
  pix2pixHD's global generator with two heads (Neural-Human-Video-Rendering at ad21d8b,
  models/networks.py L562-L611, `MultiHeadGeneraotr`): c7s1-ngf, n_downsample d-layers,
  n_blocks residual blocks, as many u-layers (instance norm, ReLU), then c7s1-48 + tanh for the
  coordinates (channels 2 (i - 1), 2 i - 1 are part i's u, v) and c7s1-25 for the logits; ngf
  64, 4 downsamplings, 9 blocks (`MultiHeadGeneraotr` via define_G, options
  ngf_translate / n_downsample_translate / n_blocks_translate).
- `DynamicDetailsGenerator` D²G (Sec. 3.2, Eq. 2, Fig. 3): pix2pixHD's global generator
  (`psrjax.models.pix2pixhd.GlobalGenerator`) on the sampled hybrid texture I_fg^ht [N, H, W, C]
  with the pose label "concatenated at the intermediate level": a pose encoder of the
  generator's front-end shape (c7s1 + the same d-layers) brings the label to the bottleneck,
  where it is concatenated and projected back to the width by a 1x1 conv (the generator's
  `bottleneck_features` hook, mode "concat"); `pose_condition=False` is the "w/o Pose cond"
  ablation (the label is not read). Output in (-1, 1) (tanh).
- The hybrid texture T [24, S, S, C] (C = 18: 3 RGB channels, initialised by unwrapping the
  training frames, + 15 learnable ones starting at 0; ad21d8b models/pix2pixHD_Avatar.py L84-L90)
  is a parameter group of the system, sampled by `psrjax.geometry.uv_texture`.

Departures: the authors' released D²G-Net (FgFeature2RGB, networks.py L838-L886; the Jittor port
concatenates the pose at the input) is not conditioned at the bottleneck; the paper's Fig. 3 is
followed here. Biases start at zero (pix2pixHD's convention in psrjax).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from psrjax.models.pix2pixhd import GlobalGenerator, output_layer
from psrjax.nn import Conv2D, ConvNormAct2D, compute_dtype

NUM_PARTS = 24
TEXTURE_RGB = 3   # the texture's explicit colour channels, first


class UVGenerator(nn.Module):
  """G_uv: `__call__(label [N, H, W, L])` -> (coords [N, H, W, P, 2] in (-1, 1),
  logits [N, H, W, P + 1]); P = num_parts. Parameters: trunk (a `GlobalGenerator` without its
  output layers), uv_head, part_head."""
  num_parts: int = NUM_PARTS
  ngf: int = 64                      # the authors': 64
  n_downsample: int = 4              # their n_downsample_translate: 4
  n_blocks: int = 9                  # their n_blocks_translate: 9 (5 in the pre-training script)
  conv_impl: str = "auto"
  dtype: Any = None                  # computation dtype; None: the input's (params float32)
  remat: str = "none"

  @nn.compact
  def __call__(self, label: jax.Array, *, train: bool = False):
    features = GlobalGenerator(1, self.ngf, self.n_downsample, self.n_blocks, head=False,
                               conv_impl=self.conv_impl, dtype=self.dtype, remat=self.remat,
                               name="trunk")(label, train=train)
    coords = output_layer(2 * self.num_parts, self.conv_impl, self.dtype, name="uv_head")(features)
    logits = Conv2D(self.num_parts + 1, 7, padding=3, pad_mode="reflect", impl=self.conv_impl,
                    dtype=self.dtype, name="part_head")(features)
    return coords.reshape(coords.shape[:-1] + (self.num_parts, 2)), logits


class PoseEncoder(nn.Module):
  """The pose label brought to the D²G generator's bottleneck: c7s1-ngf and n_downsample
  d-layers doubling the width (the generator's own front end), [N, H / 2^n, W / 2^n, ngf 2^n]."""
  ngf: int
  n_downsample: int
  conv_impl: str = "auto"
  dtype: Any = None
  remat: str = "none"

  @nn.compact
  def __call__(self, label: jax.Array) -> jax.Array:
    kw = dict(norm="instance", impl=self.conv_impl, dtype=self.dtype, remat=self.remat)
    x = ConvNormAct2D(self.ngf, 7, padding=3, pad_mode="reflect", name="stem", **kw)(label)
    for i in range(self.n_downsample):
      x = ConvNormAct2D(self.ngf * 2 ** (i + 1), 3, 2, 1, name=f"down{i}", **kw)(x)
    return x


class DynamicDetailsGenerator(nn.Module):
  """D²G (Eq. 2): `__call__(features [N, H, W, C], label [N, H, W, L] | None)` -> I_fg
  [N, H, W, 3] in (-1, 1). Parameters: generator (a `GlobalGenerator`, "bottleneck" its 1x1
  projection of the concatenated pose features) and, with pose_condition, pose_encoder."""
  ngf: int = 64
  n_downsample: int = 4
  n_blocks: int = 9
  pose_condition: bool = True        # False: "w/o Pose cond" (Table 2)
  conv_impl: str = "auto"
  dtype: Any = None
  remat: str = "none"

  @nn.compact
  def __call__(self, features: jax.Array, label: jax.Array | None = None, *,
               train: bool = False) -> jax.Array:
    pose = None
    if self.pose_condition:
      if label is None:
        raise ValueError("DynamicDetailsGenerator with pose_condition needs the pose label")
      label = label.astype(compute_dtype(self.dtype, features))
      pose = PoseEncoder(self.ngf, self.n_downsample, self.conv_impl, self.dtype, self.remat,
                         name="pose_encoder")(label)
    return GlobalGenerator(3, self.ngf, self.n_downsample, self.n_blocks,
                           bottleneck_mode="concat", conv_impl=self.conv_impl, dtype=self.dtype,
                           remat=self.remat, name="generator")(features, pose, train=train)


def part_probabilities(logits: jax.Array) -> jax.Array:
  """P_0..P_N: the softmax of the part logits, float32 (they sum to one at every pixel)."""
  return jax.nn.softmax(jnp.asarray(logits, jnp.float32), axis=-1)
