"""INTERnet's generator (Yang, Gao, Ren, Ma and Gao, "Intrinsic Temporal Regularization for
High-resolution Human Video Synthesis", 2021): Stage I's motion field with its intrinsic
confidence, Stage II's multi-scale residual generator with deformable skip connections.

Stage I (Sec. 3.3, Eq. 5) is the First Order Motion Model's estimator (`psrjax.models.fomm`):
the keypoint detector (a separate module, the system's "kp" group) and the dense-motion
hourglass, which mixes the K local affine motions and the identity with soft weights into the
base field F^0 at `dm_scale_factor` of the frame (the paper: 128 x 128 for 512 x 512 frames,
1/4) and gives, through one more 7x7 convolution and a sigmoid on its last feature map, the
confidence M^0 in [0, 1] (FOMM's occlusion head, which the paper attaches as "an additional
layer to the last feature map"). Both are then upsampled by 2x bilinear steps into the pyramids
{F^i}, {M^i} of the generator's scales: M^i with F.interpolate's align_corners=False, F^i with
align_corners=True. The field holds normalised sampling positions on the align_corners=True grid
(grid_sample's), so its values need no rescaling, but it must be resampled on that grid too:
resized with half-pixel centres, the identity field of 16 x 16 becomes at 64 x 64 a 5 % zoom
about the centre (63 / 60), up to 1.5 pixels off near the border, which the finest skips would
carry into the frame (the paper does not say how it upsamples; corner alignment is the reading
under which the identity motion reproduces the source at every scale).

Stage II (Sec. 3.3, Eq. 6; "a 3-stage resnet generator receiving warped features at 128, 256
and 512"): the paper gives no layer sizes, so psrjax chooses a pix2pixHD-style network
(Wang et al. 2018; instance norm, ReLU, reflection-padded residual blocks) of
`num_down_blocks` + 1 scales:

  encoder   phi_n = c7s1-ngf(S) at full size, phi_i = d3-width(phi_{i+1}) down to the base scale
            (1 / 2^num_down_blocks of the frame; widths min(max_features, ngf 2^k));
  base      x = M^0 F^0(phi_0), then `num_bottleneck_blocks` residual blocks;
  each finer scale i (deformable skips, Siarohin et al. 2018):
            x = u3(x) (nearest x2, 3x3 conv, norm, ReLU), x = c3s1([x, M^i F^i(phi_i)]) fusing the
            decoder's features with the warped source features of that scale (Eq. 6), then
            `num_stage_blocks` residual blocks;
  output    7x7 conv and a sigmoid (FOMM's [0, 1] image range).

With `deformable_skips=False` the finer scales only upsample (the paper's SS4x: a single-scale
generator that reads the base motion field only); the confidence still multiplies the base
features ("the confidence map is still used for frame generation", its footnote 1).

dtype: convolutions compute in the input's dtype, parameters float32; the motion field, the
confidence and their pyramids are float32 (`psrjax.models.fomm`). remat: "blocks" checkpoints
each block, "full" the whole generator.
"""
from __future__ import annotations

import functools
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from psrjax.geometry import motion
from psrjax.models import fomm
from psrjax.nn.blocks2d import ConvNormAct2D, ResBlock2D, UpBlock2D
from psrjax.nn.conv2d import Conv2D
from psrjax.nn.policy import compute_dtype, remat_network

_GENERATOR = dict(ngf=64, max_features=512, num_down_blocks=2, num_bottleneck_blocks=6,
                  num_stage_blocks=3, deformable_skips=True, norm="instance")
# Stage I's and the discriminator's settings are FOMM's (`psrjax.models.fomm`), less its
# generator's.
STAGE_I = {k: v for k, v in fomm.PAPER.items()
           if k not in ("block_expansion", "max_features", "num_down_blocks",
                        "num_bottleneck_blocks", "estimate_occlusion")}
# The paper's settings, `networks`' defaults; smaller sizes are the configs' (configs/internet.py).
PAPER = {**STAGE_I, **_GENERATOR,   # 512 x 512 frames, the base motion at 128 x 128 (Sec. 4.1)
         "d_scales": (1.0, 0.5)}    # pix2pixHD's two discriminator scales (the paper's [32])
_RUN_SETTINGS = dict(conv_impl="auto", remat="none", dtype=None)


def upsample_pyramid(field: jax.Array, sizes, *, align_corners: bool = False) -> list[jax.Array]:
  """The pyramid of `field` `[N, h, w, C]` at `sizes` (coarse to fine): each level larger than
  `field` the previous one resized bilinearly to its size (F.interpolate with `align_corners`:
  True for a field of grid_sample positions, which keeps an affine field, the identity among
  them, exact), i.e. by 2x steps when the sizes double; a level no larger than `field` is
  `field` resized to it directly (the base level when the motion is estimated at the base
  scale; every level, the finest being `field` itself, when it is estimated at the frame's
  size, `dm_scale_factor=1`). float32."""
  resize = resize_corner_aligned if align_corners else fomm.resize_bilinear
  levels = []
  current = field
  for size in sizes:
    larger = size[0] > field.shape[-3] or size[1] > field.shape[-2]
    current = resize(current if larger else field, tuple(size))
    levels.append(current)
  return levels


def resize_corner_aligned(x: jax.Array, size) -> jax.Array:
  """F.interpolate(x, size, mode="bilinear", align_corners=True) on `[..., H, W, C]`, in
  float32: the corner pixels' centres map onto each other."""
  x = x.astype(jnp.float32)
  for axis, n in ((-3, size[0]), (-2, size[1])):
    m = x.shape[axis]
    if m == n:
      continue
    src = np.arange(n, dtype=np.float64) * ((m - 1) / (n - 1) if n > 1 else 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), m - 1)
    i1 = np.minimum(i0 + 1, m - 1)
    w = (src - i0).astype(np.float32).reshape((-1,) + (1,) * (-axis - 1))
    x = jnp.take(x, i0, axis=axis) * (1.0 - w) + jnp.take(x, i1, axis=axis) * w
  return x


class INTERnetGenerator(nn.Module):
  """`__call__(source [N, H, W, C], kp_source, kp_driving)` -> {"prediction": `[N, H, W, C]` in
  (0, 1), "deformation" F^0 and "confidence" M^0 (the base scale, float32), "confidence_full"
  M at the frame's size (float32 `[N, H, W, 1]`, the intrinsic loss's mask), "deformed" the
  source warped by F at full size, and the dense motion's "mask" and "sparse_deformed"} (H, W
  divisible by 2^num_down_blocks and by 2^dm_num_blocks / dm_scale_factor)."""
  ngf: int = 64                      # the encoder's channels at full size
  max_features: int = 512            # ... at most
  num_down_blocks: int = 2           # stride-2 encoder blocks: the base scale is 1 / 2^this
  num_bottleneck_blocks: int = 6     # residual blocks at the base scale
  num_stage_blocks: int = 3          # residual blocks after each deformable skip
  deformable_skips: bool = True      # MS (True) or SS (False: the base motion field only)
  norm: str = "instance"             # Stage II's normalisation (pix2pixHD: instance; "batch":
                                     # FOMM's generator's, the batch's statistics)
  dm_block_expansion: int = 64       # Stage I's dense-motion hourglass (FOMM's)
  dm_max_features: int = 1024
  dm_num_blocks: int = 5
  dm_scale_factor: float = 0.25      # the motion field's share of the frame size (the paper:
                                     # the base scale's; 1: at the frame's size, resized down
                                     # to the coarser scales)
  kp_variance: float = 0.01
  conv_impl: str = "auto"
  dtype: Any = None
  remat: str = "none"

  @nn.compact
  def __call__(self, source: jax.Array, kp_source: Mapping, kp_driving: Mapping,
               keep_background: jax.Array | None = None) -> dict:
    source = source.astype(compute_dtype(self.dtype, source))
    dense = fomm.DenseMotionNetwork(
        self.dm_block_expansion, self.dm_num_blocks, self.dm_max_features, True,
        self.dm_scale_factor, self.kp_variance, self.conv_impl, self.dtype,
        "none" if self.remat == "full" else self.remat,
        name="dense_motion_network")(source, kp_source, kp_driving, keep_background)
    features = remat_network(INTERnetGenerator._encode, self.remat)(self, source)
    sizes = [f.shape[1:3] for f in reversed(features)]          # base ... full size
    flows = upsample_pyramid(dense["deformation"], sizes, align_corners=True)
    confidences = upsample_pyramid(dense["occlusion_map"], sizes)
    x = remat_network(INTERnetGenerator._decode, self.remat, static_argnums=(4,))(
        self, list(reversed(features)), flows, confidences, source.shape[-1])
    return {"prediction": jax.nn.sigmoid(x.astype(jnp.float32)).astype(x.dtype),
            "deformation": dense["deformation"],
            "confidence": dense["occlusion_map"].astype(jnp.float32),
            "confidence_full": confidences[-1], "mask": dense["mask"],
            "sparse_deformed": dense["sparse_deformed"],
            "deformed": motion.deform(source, flows[-1])}

  def _kw(self) -> dict:
    return dict(norm=self.norm, impl=self.conv_impl, dtype=self.dtype, remat=self.remat)

  def _width(self, level: int) -> int:
    return min(self.max_features, self.ngf * 2 ** level)

  def _encode(self, source) -> list[jax.Array]:
    """[phi at full size, 1/2, ..., the base scale]."""
    x = ConvNormAct2D(self.ngf, 7, padding=3, pad_mode="reflect", name="stem",
                      **self._kw())(source)
    out = [x]
    for i in range(self.num_down_blocks):
      x = ConvNormAct2D(self._width(i + 1), 3, 2, 1, name=f"down{i}", **self._kw())(x)
      out.append(x)
    return out

  def _decode(self, features, flows, confidences, channels: int):
    """features, flows, confidences: base scale first."""
    def skip(i):   # Eq. 6: M^i F^i(phi_i)
      warped = motion.deform(features[i], flows[i])
      return warped * confidences[i].astype(warped.dtype)

    x = skip(0)
    for j in range(self.num_bottleneck_blocks):
      x = ResBlock2D("reflect", name=f"block{j}", **self._kw())(x)
    for i in range(1, self.num_down_blocks + 1):
      width = self._width(self.num_down_blocks - i)
      x = UpBlock2D(width, mode="resize", pad_mode="reflect", name=f"up{i}", **self._kw())(x)
      if self.deformable_skips:
        x = jnp.concatenate([x, skip(i).astype(x.dtype)], axis=-1)
        x = ConvNormAct2D(width, 3, padding=1, pad_mode="reflect", name=f"fuse{i}",
                          **self._kw())(x)
        for j in range(self.num_stage_blocks):
          x = ResBlock2D("reflect", name=f"stage{i}_block{j}", **self._kw())(x)
    return Conv2D(channels, 7, padding=3, pad_mode="reflect",
                  impl=self.conv_impl, dtype=self.dtype, name="final")(x)


def networks(settings: Mapping | None = None, **overrides):
  """(FOMM's KeypointDetector, INTERnetGenerator, FOMM's Discriminator) from flat settings: the
  keys of `PAPER` plus conv_impl, remat and dtype (defaults: PAPER's, "auto", "none", None)."""
  s = {**PAPER, **_RUN_SETTINGS, **dict(settings or {}), **overrides}
  unknown = set(s) - set(PAPER) - set(_RUN_SETTINGS)
  if unknown:
    raise ValueError(f"unknown INTERnet network settings {sorted(unknown)}; known: "
                     f"{sorted(set(PAPER) | set(_RUN_SETTINGS))}")
  fomm_settings = {k: v for k, v in s.items() if k in STAGE_I or k in _RUN_SETTINGS}
  detector, _, discriminator = fomm.networks(fomm_settings)
  generator = INTERnetGenerator(
      ngf=s["ngf"], max_features=s["max_features"], num_down_blocks=s["num_down_blocks"],
      num_bottleneck_blocks=s["num_bottleneck_blocks"], num_stage_blocks=s["num_stage_blocks"],
      deformable_skips=s["deformable_skips"], dm_block_expansion=s["dm_block_expansion"],
      dm_max_features=s["dm_max_features"], dm_num_blocks=s["dm_num_blocks"],
      dm_scale_factor=s["dm_scale_factor"], kp_variance=s["heatmap_variance"], norm=s["norm"],
      **{k: s[k] for k in _RUN_SETTINGS})
  return detector, generator, discriminator
