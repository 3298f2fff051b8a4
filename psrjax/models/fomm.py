"""The networks of the First Order Motion Model (Siarohin, Lathuilière, Tulyakov, Ricci and Sebe,
"First Order Motion Model for Image Animation", NeurIPS 2019).

Followed from the official code (AliaksandrSiarohin/first-order-model at c0274845; file and
lines there); the motion geometry (coordinate grids, heatmaps, sparse motions, warps) is
`psrjax.geometry.motion`. Images are NHWC in [0, 1] (the official range; the networks accept any
range the caller trains them with, but the generator's output is a sigmoid):

- `Hourglass` (modules/util.py L135-L196): an encoder of `DownBlock`s (3x3 conv, batch norm,
  ReLU, 2x2 average pooling; L97-L114) and a decoder of up blocks (nearest x2, 3x3 conv, batch
  norm, ReLU; L77-L94, `psrjax.nn.UpBlock2D` in "resize" mode) each followed by the skip
  connection; channels min(max_features, block_expansion 2^(i+1)); output block_expansion +
  the input's channels at the input's size.
- `AntiAliasInterpolation2d` (util.py L199-L245): a Gaussian blur, sigma = (1 / scale - 1) / 2,
  kernel 2 round(4 sigma) + 1, then every int(1 / scale)-th pixel (computed as two strided
  1-D depthwise convolutions: the normalised Gaussian is the outer product of its normalised
  rows; the gradient of one strided 2-D convolution, 29 x 29 taps at scale 1/8, took 0.23 s of
  a 256² FOMM step on the CPU). It has no parameters, so it is a plain callable usable outside
  a module (the losses' image pyramid).
- `KeypointDetector` (modules/keypoint_detector.py L7-L75): the hourglass on the anti-aliased
  downscaled frame, a 7x7 conv (padding `pad`, 0: VALID) to K logits, a softmax over the
  positions at temperature 0.1, the keypoint the expectation of `coordinate_grid` (of the
  logits' size); the Jacobians a 7x7 conv with 4 channels per keypoint, initialised to the
  identity (kernel 0, bias [1, 0, 0, 1]), averaged with the heatmap's weights.
- `DenseMotionNetwork` (modules/dense_motion.py L7-L113): on the anti-aliased downscaled source,
  the hourglass reads Eq. 6's heatmap differences beside the source warped by each sparse
  motion (Eqs. 4, 7); a 7x7 conv (padding 3) and a softmax over the K + 1 motions give the
  masks, the deformation is the masks' mix of the sparse motions (Eq. 8), and a 7x7 conv with
  a sigmoid the occlusion map (Sec. 3.2).
- `OcclusionAwareGenerator` (modules/generator.py L8-L97): a 7x7 conv block, down blocks, the
  features warped by the deformation and multiplied by the occlusion map (both resized
  bilinearly to the features' size when they differ, as F.interpolate with align_corners=False),
  residual blocks (pre-activation: BN, ReLU, conv, BN, ReLU, conv, + x; util.py L52-L74), up
  blocks, a 7x7 conv and a sigmoid.
- `Discriminator` (modules/discriminator.py L7-L71): blocks of a 4x4 VALID conv (optionally
  spectrally normalised), instance norm (affine, not on the first), LeakyReLU 0.2 and 2x2
  average pooling (not on the last); a 1x1 conv to the prediction map; optionally the keypoint
  heatmaps as extra input channels. `MultiScaleDiscriminator` (L74-L95) is one per scale of the
  anti-aliased image pyramid.

Sizes: `networks(settings)` builds the detector, generator and discriminator from flat
settings (the keys of `PAPER`, configs/fomm.py's `model`), by default the paper's (`PAPER`:
config/fashion-256.yaml, whose discriminator has no spectral norm); smaller sizes are the
configs' (configs/fomm.py's runlocal and tiny variants). `from_torch_state_dict` reads
the official modules' state dicts (their checkpoints' "kp_detector", "generator" and, per
scale, "discriminator" entries).

dtype: convolutions compute in the input's dtype (or `dtype`), parameters are float32; batch
and instance-norm statistics, the keypoint softmax, keypoints, Jacobians, heatmaps, motion
masks, deformations and every grid are float32 (`float32_geometry`). Outputs: keypoints and the
generator's "mask" and "deformation" float32, images and feature maps in the compute dtype,
the discriminator's prediction map float32.

Departures from the official code:
- batch norm (`psrjax.nn.BatchStatNorm`) always normalises with the current batch's
  statistics, at inference too; the official SynchronizedBatchNorm keeps running statistics
  and uses them in eval mode (its reconstruction and animation scripts). Under `jit` with the
  batch sharded over devices the statistics are the global batch's, i.e. synchronised as theirs
  during training. Converted official checkpoints lose their running statistics.
- the generator takes (source, kp_source, kp_driving); the official forward (source,
  kp_driving, kp_source). It always has its dense-motion network (the official one is optional).
- convolution biases start at 0 (the official layers keep PyTorch's default uniform bias init;
  kernels use PyTorch's default, `TORCH_INIT`); the Jacobian head stores its bias as the offset
  from [1, 0, 0, 1] (zero-initialised; the same function and gradients, and
  `from_torch_state_dict` subtracts the identity).
- grids follow the official torch 1.0 align_corners=True convention (`psrjax.geometry.motion`);
  the bilinear resizes of the deformation and occlusion map (F.interpolate, align_corners=False)
  are `resize_bilinear`, in float32.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from psrjax.geometry import motion
from psrjax.nn import spectral
from psrjax.nn.blocks2d import ConvNormAct2D, UpBlock2D
from psrjax.nn.conv2d import Conv2D
from psrjax.nn.norms import BatchStatNorm, InstanceNorm2D
from psrjax.nn.policy import compute_dtype, float32_geometry, remat_block, remat_network

# PyTorch's default conv kernel init, kaiming_uniform(a=sqrt(5)): U(+-1 / sqrt(fan_in)).
TORCH_INIT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
_JACOBIAN_IDENTITY = (1.0, 0.0, 0.0, 1.0)   # a 2x2 identity, row-major

PAPER = dict(   # config/fashion-256.yaml (256 x 256 frames)
    num_kp=10, estimate_jacobian=True, kp_temperature=0.1, kp_block_expansion=32,
    kp_max_features=1024, kp_num_blocks=5, kp_scale_factor=0.25,
    block_expansion=64, max_features=512, num_down_blocks=2, num_bottleneck_blocks=6,
    estimate_occlusion=True, dm_block_expansion=64, dm_max_features=1024, dm_num_blocks=5,
    dm_scale_factor=0.25, heatmap_variance=0.01,
    d_block_expansion=32, d_max_features=512, d_num_blocks=4, d_scales=(1.0,),
    d_spectral=False)
# Settings of `networks` that are not sizes.
_RUN_SETTINGS = dict(conv_impl="auto", remat="none", dtype=None)


def _conv(module, features: int, kernel: int, padding, name: str, **kw) -> Conv2D:
  return Conv2D(features, kernel, padding=padding, impl=module.conv_impl, dtype=module.dtype,
                kernel_init=kw.pop("kernel_init", TORCH_INIT), name=name, **kw)


def _avg_pool2(x: jax.Array) -> jax.Array:
  """nn.AvgPool2d(2) / F.avg_pool2d(x, 2): the mean of each 2x2 block (odd sizes floored)."""
  return nn.avg_pool(x, (2, 2), strides=(2, 2))


def _bilinear_taps(size_in: int, size_out: int):
  """PyTorch's bilinear source taps along one axis (align_corners=False): position
  (i + 0.5) in / out - 0.5 clamped at 0, its floor i0, i1 = min(i0 + 1, in - 1) and the weight
  of i1, computed in float32 as PyTorch."""
  scale = np.float32(size_in) / np.float32(size_out)
  src = np.maximum(scale * (np.arange(size_out, dtype=np.float32) + np.float32(0.5))
                   - np.float32(0.5), np.float32(0))
  i0 = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
  return i0, np.minimum(i0 + 1, size_in - 1), (src - i0).astype(np.float32)


@float32_geometry
def resize_bilinear(x: jax.Array, size) -> jax.Array:
  """F.interpolate(x, size, mode="bilinear", align_corners=False) on `[..., H, W, C]`, in
  float32: half-pixel centres, no antialiasing when shrinking (unlike jax.image.resize's
  default). Gathers and interpolation weights, no matrix product."""
  x = x.astype(jnp.float32)
  for axis, n in ((-3, size[0]), (-2, size[1])):
    if x.shape[axis] == n:
      continue
    i0, i1, w = _bilinear_taps(x.shape[axis], n)
    w = w.reshape((-1,) + (1,) * (-axis - 1))
    x = jnp.take(x, i0, axis=axis) * (1.0 - w) + jnp.take(x, i1, axis=axis) * w
  return x


# ----------------------------------------------------------------------------- anti-aliasing
@dataclasses.dataclass(frozen=True)
class AntiAliasInterpolation2d:
  """Band-limited downscaling by `scale` of `[..., H, W, C]` -> `[..., ceil(H s'), ceil(W s'),
  C]`, s' = 1 / int(1 / scale) (module docstring; the identity at scale 1)."""
  scale: float                       # e.g. 0.25 (the detector and the dense-motion network)

  def kernel(self) -> np.ndarray:
    """The normalised Gaussian `[k, k]` float32 (util.py L205-L226)."""
    sigma = (1.0 / self.scale - 1.0) / 2.0
    size = 2 * round(sigma * 4) + 1
    axis = np.arange(size, dtype=np.float32) - np.float32((size - 1) / 2)
    g = np.exp(-np.square(axis) / np.float32(2 * sigma ** 2)).astype(np.float32)
    k = g[:, None] * g[None, :]
    return (k / k.sum()).astype(np.float32)

  def row(self) -> np.ndarray:
    """The normalised 1-D Gaussian `[k]` float32 whose outer product is `kernel()`."""
    g = self.kernel().sum(axis=1, dtype=np.float64)
    return (g / g.sum()).astype(np.float32)

  def __call__(self, x: jax.Array) -> jax.Array:
    if self.scale == 1.0:
      return x
    x = jnp.asarray(x)
    dtype = compute_dtype(None, x)
    lead, (h, w, c) = x.shape[:-3], x.shape[-3:]
    g = self.row()
    ka = g.size // 2
    kb = ka - 1 if g.size % 2 == 0 else ka
    stride = int(1.0 / self.scale)
    y = x.reshape((-1, h, w, c)).astype(dtype)
    for axis in (0, 1):   # rows, then columns
      shape = [1, 1]
      shape[axis] = g.size
      strides, padding = [1, 1], [(0, 0), (0, 0)]
      strides[axis], padding[axis] = stride, (ka, kb)
      kernel = jnp.broadcast_to(jnp.asarray(g, dtype).reshape(shape + [1, 1]),
                                tuple(shape) + (1, c))
      y = lax.conv_general_dilated(y, kernel, tuple(strides), tuple(padding),
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                   feature_group_count=c)
    return y.reshape(lead + y.shape[1:])


# ----------------------------------------------------------------------------- blocks
class DownBlock(nn.Module):
  """util.py `DownBlock2d` (L97-L114): 3x3 conv, batch norm, ReLU, 2x2 average pooling."""
  features: int                      # output channels
  conv_impl: str = "auto"            # Conv2D implementation
  dtype: Any = None                  # computation dtype; None: the input's (params float32)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = _conv(self, self.features, 3, 1, "conv")(x)
    return _avg_pool2(nn.relu(BatchStatNorm(dtype=self.dtype, name="norm")(x)))


class ResBlock(nn.Module):
  """util.py `ResBlock2d` (L52-L74), pre-activation: x + conv2(relu(bn2(conv1(relu(bn1(x))))))
  with 3x3 convs (padding 1) of x's width."""
  conv_impl: str = "auto"
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    y = _conv(self, c, 3, 1, "conv1")(nn.relu(BatchStatNorm(dtype=self.dtype, name="norm1")(x)))
    y = _conv(self, c, 3, 1, "conv2")(nn.relu(BatchStatNorm(dtype=self.dtype, name="norm2")(y)))
    return x + y


def _up_block(module, features: int, name: str) -> UpBlock2D:
  """util.py `UpBlock2d` (L77-L94): nearest x2, 3x3 conv (padding 1), batch norm, ReLU."""
  return UpBlock2D(features, 3, mode="resize", norm="batch", activation="relu",
                   impl=module.conv_impl, dtype=module.dtype, kernel_init=TORCH_INIT,
                   remat=module.remat, name=name)


def _hourglass_width(block_expansion: int, max_features: int, i: int) -> int:
  return min(max_features, block_expansion * 2 ** i)


class Encoder(nn.Module):
  """util.py `Encoder` (L135-L154): [x, down_0(x), down_1(down_0(x)), ...]."""
  block_expansion: int
  num_blocks: int = 3
  max_features: int = 256
  conv_impl: str = "auto"
  dtype: Any = None
  remat: str = "none"                # "none" | "blocks" | "full" (psrjax.nn.policy)

  @nn.compact
  def __call__(self, x: jax.Array) -> list[jax.Array]:
    block = remat_block(DownBlock, self.remat)
    outs = [x]
    for i in range(self.num_blocks):
      width = _hourglass_width(self.block_expansion, self.max_features, i + 1)
      outs.append(block(width, self.conv_impl, self.dtype, name=f"down_blocks_{i}")(outs[-1]))
    return outs


class Decoder(nn.Module):
  """util.py `Decoder` (L157-L181): from the deepest encoder output, each up block followed by
  the concatenation [up, skip] of the encoder output of its size."""
  block_expansion: int
  num_blocks: int = 3
  max_features: int = 256
  conv_impl: str = "auto"
  dtype: Any = None
  remat: str = "none"

  @nn.compact
  def __call__(self, skips: list[jax.Array]) -> jax.Array:
    skips = list(skips)
    out = skips.pop()
    for j, i in enumerate(reversed(range(self.num_blocks))):
      width = _hourglass_width(self.block_expansion, self.max_features, i)
      out = _up_block(self, width, f"up_blocks_{j}")(out)
      out = jnp.concatenate([out, skips.pop().astype(out.dtype)], axis=-1)
    return out


class Hourglass(nn.Module):
  """`[N, H, W, C]` -> `[N, H, W, block_expansion + C]` (H, W divisible by 2^num_blocks)."""
  block_expansion: int
  num_blocks: int = 3
  max_features: int = 256
  conv_impl: str = "auto"
  dtype: Any = None
  remat: str = "none"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h, w = x.shape[-3:-1]
    if h % 2 ** self.num_blocks or w % 2 ** self.num_blocks:
      raise ValueError(f"an hourglass of {self.num_blocks} blocks needs H and W divisible by "
                       f"{2 ** self.num_blocks}; got {h}x{w}")
    kw = dict(block_expansion=self.block_expansion, num_blocks=self.num_blocks,
              max_features=self.max_features, conv_impl=self.conv_impl, dtype=self.dtype,
              remat=self.remat)
    return Decoder(**kw, name="decoder")(Encoder(**kw, name="encoder")(x))


# ----------------------------------------------------------------------------- keypoints
@float32_geometry
def heatmap_expectation(heatmap: jax.Array) -> jax.Array:
  """keypoint_detector.py `gaussian2kp` (L37-L47): sum_z heatmap_k(z) z over the grid of the
  heatmap's size, for heatmaps `[N, H, W, K]` -> `[N, K, 2]` float32."""
  grid = motion.coordinate_grid(*heatmap.shape[1:3])
  return jnp.sum(heatmap[..., None] * grid[:, :, None, :], axis=(1, 2))


@float32_geometry
def spatial_softmax(logits: jax.Array, temperature: float) -> jax.Array:
  """softmax(logits / temperature) over the positions of each channel `[N, H, W, K]`, float32."""
  n, h, w, k = logits.shape
  flat = logits.astype(jnp.float32).reshape(n, h * w, k) / temperature
  return jax.nn.softmax(flat, axis=1).reshape(n, h, w, k)


@float32_geometry
def heatmap_jacobians(heatmap: jax.Array, maps: jax.Array) -> jax.Array:
  """keypoint_detector.py L63-L73: sum_z heatmap_k(z) J_k(z) for heatmaps `[N, H, W, K]` and
  Jacobian maps `[N, H, W, M 4]` (M = K, or 1 map shared by every keypoint) -> `[N, K, 2, 2]`."""
  n, h, w, k = heatmap.shape
  maps = maps.astype(jnp.float32).reshape(n, h, w, -1, 4)
  return jnp.sum(heatmap[..., None] * maps, axis=(1, 2)).reshape(n, k, 2, 2)


class KeypointDetector(nn.Module):
  """`__call__(image [N, H, W, C])` -> {"value": `[N, K, 2]`, "jacobian": `[N, K, 2, 2]` (with
  `estimate_jacobian`)}, float32, in the normalised coordinates of `psrjax.geometry.motion`."""
  num_kp: int = 10                   # K
  block_expansion: int = 32          # the hourglass's channels at full scale
  max_features: int = 1024           # ... at most
  num_blocks: int = 5                # ... down / up blocks
  temperature: float = 0.1           # of the spatial softmax
  estimate_jacobian: bool = True     # the local affine transforms J_k
  single_jacobian_map: bool = False  # one Jacobian map shared by every keypoint
  scale_factor: float = 0.25         # the frame is anti-aliased and downscaled by this first
  pad: int = 0                       # padding of the 7x7 heads (official: 0, VALID)
  conv_impl: str = "auto"
  dtype: Any = None                  # computation dtype; None: the input's (params float32)
  remat: str = "none"                # "none" | "blocks" | "full" (psrjax.nn.policy)

  @nn.compact
  def __call__(self, image: jax.Array) -> dict:
    x = image.astype(compute_dtype(self.dtype, image))
    logits, maps = remat_network(KeypointDetector._forward, self.remat)(self, x)
    heatmap = spatial_softmax(logits, self.temperature)
    out = {"value": heatmap_expectation(heatmap)}
    if maps is not None:
      out["jacobian"] = heatmap_jacobians(heatmap, maps)
    return out

  def _forward(self, x):
    x = AntiAliasInterpolation2d(self.scale_factor)(x)
    features = Hourglass(self.block_expansion, self.num_blocks, self.max_features,
                         self.conv_impl, self.dtype, self.remat, name="predictor")(x)
    logits = _conv(self, self.num_kp, 7, self.pad, "kp")(features)
    if not self.estimate_jacobian:
      return logits, None
    num_maps = 1 if self.single_jacobian_map else self.num_kp
    maps = _conv(self, 4 * num_maps, 7, self.pad, "jacobian",
                 kernel_init=nn.initializers.zeros)(features)
    identity = jnp.tile(jnp.asarray(_JACOBIAN_IDENTITY, maps.dtype), num_maps)
    return logits, maps + identity


# ----------------------------------------------------------------------------- dense motion
class DenseMotionNetwork(nn.Module):
  """`__call__(source [N, H, W, C], kp_source, kp_driving)` -> {"sparse_deformed": the source
  warped by each sparse motion `[N, K + 1, h, w, C]`, "mask": `[N, h, w, K + 1]` float32,
  "deformation": normalised source positions `[N, h, w, 2]` float32, "occlusion_map":
  `[N, h, w, 1]` (with `estimate_occlusion_map`)} at the downscaled size (h, w).

  `keep_background` (optional, `[N]` bool): where False, the mask's softmax leaves out the
  background (identity) motion, so the keypoints' motions must explain the frame (the training
  option `loss.background_dropout`, `psrjax.systems.tasks.keypoint_motion`); None (the
  official network) keeps it everywhere."""
  block_expansion: int = 64
  num_blocks: int = 5
  max_features: int = 1024
  estimate_occlusion_map: bool = True
  scale_factor: float = 0.25         # the source is anti-aliased and downscaled by this
  kp_variance: float = 0.01          # of the heatmap Gaussians (normalised coordinates)
  conv_impl: str = "auto"
  dtype: Any = None
  remat: str = "none"

  @nn.compact
  def __call__(self, source: jax.Array, kp_source: Mapping, kp_driving: Mapping,
               keep_background: jax.Array | None = None) -> dict:
    dtype = compute_dtype(self.dtype, source)
    source = AntiAliasInterpolation2d(self.scale_factor)(source.astype(dtype))
    n, h, w, c = source.shape
    heatmaps = motion.heatmap_difference(kp_source, kp_driving, h, w, self.kp_variance)
    motions = motion.sparse_motions(kp_source, kp_driving, h, w)          # [N, K+1, h, w, 2]
    k1 = motions.shape[1]
    deformed = motion.deform(jnp.broadcast_to(source[:, None], (n, k1, h, w, c)), motions)
    # Per motion [heatmap, warped source] (dense_motion.py L93-L94's channel order).
    inputs = jnp.concatenate([heatmaps[..., None].astype(dtype), jnp.moveaxis(deformed, 1, 3)],
                             axis=-1).reshape(n, h, w, k1 * (c + 1))
    forward = functools.partial(DenseMotionNetwork._forward, num_motions=k1)
    logits, occlusion = remat_network(forward, self.remat)(self, inputs)
    mask = _softmax_channels(logits, keep_background)
    out = {"sparse_deformed": deformed, "mask": mask, "deformation": _mix(mask, motions)}
    if occlusion is not None:
      out["occlusion_map"] = jax.nn.sigmoid(occlusion.astype(jnp.float32)).astype(dtype)
    return out

  def _forward(self, inputs, *, num_motions: int):
    features = Hourglass(self.block_expansion, self.num_blocks, self.max_features,
                         self.conv_impl, self.dtype, self.remat, name="hourglass")(inputs)
    logits = _conv(self, num_motions, 7, 3, "mask")(features)
    occlusion = (_conv(self, 1, 7, 3, "occlusion")(features) if self.estimate_occlusion_map
                 else None)
    return logits, occlusion


@float32_geometry
def _softmax_channels(logits: jax.Array, keep_background: jax.Array | None = None) -> jax.Array:
  """The softmax over the K + 1 motions; channel 0 (the background) left out of the examples
  where `keep_background` `[N]` is False."""
  logits = logits.astype(jnp.float32)
  if keep_background is not None:
    dropped = jnp.where(keep_background[:, None, None], logits[..., 0], -jnp.inf)
    logits = logits.at[..., 0].set(dropped)
  return jax.nn.softmax(logits, axis=-1)


@float32_geometry
def _mix(mask: jax.Array, motions: jax.Array) -> jax.Array:
  """Eq. 8: sum_k mask_k(z) motion_k(z), mask `[N, h, w, K + 1]`, motions `[N, K + 1, h, w, 2]`."""
  return jnp.sum(mask[..., None] * jnp.moveaxis(motions, 1, 3), axis=3)


# ----------------------------------------------------------------------------- generator
class Bottleneck(nn.Module):
  """The generator's residual blocks r0, r1, ... (generator.py L41-L44)."""
  num_blocks: int
  conv_impl: str = "auto"
  dtype: Any = None
  remat: str = "none"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    block = remat_block(ResBlock, self.remat)
    for i in range(self.num_blocks):
      x = block(self.conv_impl, self.dtype, name=f"r{i}")(x)
    return x


def deform_input(x: jax.Array, deformation: jax.Array) -> jax.Array:
  """generator.py `deform_input` (L50-L57): x `[N, H, W, C]` read at the deformation `[N, h, w,
  2]` resized bilinearly to (H, W) when it differs."""
  return motion.deform(x, resize_bilinear(deformation, x.shape[1:3]))


class OcclusionAwareGenerator(nn.Module):
  """`__call__(source [N, H, W, C], kp_source, kp_driving)` -> {"prediction": `[N, H, W, C]` in
  (0, 1), "deformed": the source warped by the dense deformation `[N, H, W, C]`, and the dense
  motion's "mask", "sparse_deformed", "deformation" and "occlusion_map"} (H, W divisible by
  2^num_down_blocks and by 2^dm_num_blocks / dm_scale_factor). `keep_background`: the dense
  motion's (`DenseMotionNetwork`)."""
  block_expansion: int = 64
  max_features: int = 512
  num_down_blocks: int = 2
  num_bottleneck_blocks: int = 6
  estimate_occlusion_map: bool = True
  dm_block_expansion: int = 64       # the dense-motion network's hourglass
  dm_max_features: int = 1024
  dm_num_blocks: int = 5
  dm_scale_factor: float = 0.25
  kp_variance: float = 0.01
  conv_impl: str = "auto"
  dtype: Any = None
  remat: str = "none"

  @nn.compact
  def __call__(self, source: jax.Array, kp_source: Mapping, kp_driving: Mapping,
               keep_background: jax.Array | None = None) -> dict:
    source = source.astype(compute_dtype(self.dtype, source))
    return remat_network(OcclusionAwareGenerator._forward, self.remat)(
        self, source, kp_source, kp_driving, keep_background)

  def _forward(self, source, kp_source, kp_driving, keep_background):
    width = functools.partial(_hourglass_width, self.block_expansion, self.max_features)
    x = ConvNormAct2D(self.block_expansion, 7, padding=3, norm="batch", impl=self.conv_impl,
                      dtype=self.dtype, kernel_init=TORCH_INIT, remat=self.remat,
                      name="first")(source)
    down = remat_block(DownBlock, self.remat)
    for i in range(self.num_down_blocks):
      x = down(width(i + 1), self.conv_impl, self.dtype, name=f"down_blocks_{i}")(x)
    dense = DenseMotionNetwork(   # (recomputed with the whole generator under "full")
        self.dm_block_expansion, self.dm_num_blocks, self.dm_max_features,
        self.estimate_occlusion_map, self.dm_scale_factor, self.kp_variance, self.conv_impl,
        self.dtype, "none" if self.remat == "full" else self.remat,
        name="dense_motion_network")(source, kp_source, kp_driving, keep_background)
    x = deform_input(x, dense["deformation"])
    if "occlusion_map" in dense:
      x = x * resize_bilinear(dense["occlusion_map"], x.shape[1:3]).astype(x.dtype)
    x = Bottleneck(self.num_bottleneck_blocks, self.conv_impl, self.dtype, self.remat,
                   name="bottleneck")(x)
    for i in range(self.num_down_blocks):
      x = _up_block(self, width(self.num_down_blocks - i - 1), f"up_blocks_{i}")(x)
    x = _conv(self, source.shape[-1], 7, 3, "final")(x)
    return {**dense, "prediction": jax.nn.sigmoid(x),
            "deformed": deform_input(source, dense["deformation"])}


# ----------------------------------------------------------------------------- discriminator
class DiscriminatorBlock(nn.Module):
  """discriminator.py `DownBlock2d` (L7-L33): 4x4 VALID conv (spectrally normalised with
  `spectral`), affine instance norm (`norm`), LeakyReLU 0.2, 2x2 average pooling (`pool`)."""
  features: int
  norm: bool = False
  pool: bool = False
  spectral: bool = False
  conv_impl: str = "auto"
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = _conv(self, self.features, 4, 0, "conv", spectral=self.spectral)(x)
    if self.norm:
      x = InstanceNorm2D(use_scale=True, use_bias=True, dtype=self.dtype, name="norm")(x)
    x = nn.leaky_relu(x, 0.2)
    return _avg_pool2(x) if self.pool else x


class Discriminator(nn.Module):
  """`__call__(image [N, H, W, C], kp=None)` -> (the blocks' feature maps, prediction map
  `[N, h, w, 1]` float32); with `use_kp` the keypoints' heatmaps (of `kp`) are concatenated to
  the image."""
  block_expansion: int = 64
  num_blocks: int = 4
  max_features: int = 512
  spectral: bool = False             # the official `sn`
  use_kp: bool = False
  kp_variance: float = 0.01
  conv_impl: str = "auto"
  dtype: Any = None
  remat: str = "none"

  @nn.compact
  def __call__(self, image: jax.Array, kp: Mapping | None = None):
    x = image.astype(compute_dtype(self.dtype, image))
    if self.use_kp:
      if kp is None:
        raise ValueError("Discriminator(use_kp=True) needs the keypoints `kp`")
      heatmaps = motion.keypoint_heatmaps(kp, *x.shape[1:3], self.kp_variance)
      x = jnp.concatenate([x, heatmaps.astype(x.dtype)], axis=-1)
    return remat_network(Discriminator._forward, self.remat)(self, x)

  def _forward(self, x):
    block = remat_block(DiscriminatorBlock, self.remat)
    features = []
    for i in range(self.num_blocks):
      x = block(_hourglass_width(self.block_expansion, self.max_features, i + 1), norm=i != 0,
                pool=i != self.num_blocks - 1, spectral=self.spectral, conv_impl=self.conv_impl,
                dtype=self.dtype, name=f"down_blocks_{i}")(x)
      features.append(x)
    prediction = _conv(self, 1, 1, 0, "conv", spectral=self.spectral)(x)
    return features, prediction.astype(jnp.float32)


def scale_name(scale: float) -> str:
  """The parameter name of a scale's discriminator: "scale_1", "scale_0_5", ..."""
  return f"scale_{scale:g}".replace(".", "_")


class MultiScaleDiscriminator(nn.Module):
  """discriminator.py `MultiScaleDiscriminator` (L74-L95): `__call__(image, kp=None)` ->
  {scale: (feature maps, prediction map)}, one `Discriminator` (`scale_name(scale)`) per scale
  of the anti-aliased image pyramid."""
  scales: tuple = (1.0,)
  discriminator: dict = dataclasses.field(default_factory=dict)   # Discriminator's fields

  @nn.compact
  def __call__(self, image: jax.Array, kp: Mapping | None = None) -> dict:
    return {s: Discriminator(**self.discriminator, name=scale_name(s))(
        AntiAliasInterpolation2d(s)(image), kp) for s in self.scales}


# ----------------------------------------------------------------------------- factories
def networks(settings: Mapping | None = None, **overrides):
  """(KeypointDetector, OcclusionAwareGenerator, Discriminator) from flat settings: the keys of
  `PAPER` plus conv_impl, remat and dtype (defaults: PAPER's, "auto", "none", None)."""
  s = {**PAPER, **_RUN_SETTINGS, **dict(settings or {}), **overrides}
  unknown = set(s) - set(PAPER) - set(_RUN_SETTINGS)
  if unknown:
    raise ValueError(f"unknown FOMM network settings {sorted(unknown)}; known: "
                     f"{sorted(set(PAPER) | set(_RUN_SETTINGS))}")
  run = {k: s[k] for k in _RUN_SETTINGS}
  detector = KeypointDetector(
      num_kp=s["num_kp"], block_expansion=s["kp_block_expansion"],
      max_features=s["kp_max_features"], num_blocks=s["kp_num_blocks"],
      temperature=s["kp_temperature"], estimate_jacobian=s["estimate_jacobian"],
      scale_factor=s["kp_scale_factor"], **run)
  generator = OcclusionAwareGenerator(
      block_expansion=s["block_expansion"], max_features=s["max_features"],
      num_down_blocks=s["num_down_blocks"], num_bottleneck_blocks=s["num_bottleneck_blocks"],
      estimate_occlusion_map=s["estimate_occlusion"], dm_block_expansion=s["dm_block_expansion"],
      dm_max_features=s["dm_max_features"], dm_num_blocks=s["dm_num_blocks"],
      dm_scale_factor=s["dm_scale_factor"], kp_variance=s["heatmap_variance"], **run)
  discriminator = Discriminator(
      block_expansion=s["d_block_expansion"], num_blocks=s["d_num_blocks"],
      max_features=s["d_max_features"], spectral=s["d_spectral"],
      kp_variance=s["heatmap_variance"], **run)
  return detector, generator, discriminator


# ----------------------------------------------------------------------------- official weights
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked", "weight_v")


def _torch_leaf(path: list[str], leaf: str, value: np.ndarray):
  """(flax leaf name, value) of one official parameter."""
  if leaf in ("weight", "weight_orig"):
    if value.ndim == 4:                          # conv [out, in, kh, kw] -> [kh, kw, in, out]
      return "kernel", value.transpose(2, 3, 1, 0)
    return "scale", value                        # batch / instance norm
  if leaf == "weight_u":
    return spectral.SN_PARAM, value
  if leaf == "bias" and path and path[-1] == "jacobian":
    return "bias", value - np.tile(np.asarray(_JACOBIAN_IDENTITY, np.float32), value.size // 4)
  return leaf, value


def from_torch_state_dict(state_dict: Mapping[str, Any], prefix: str = "") -> dict:
  """Flax params of this module's network from an official module's state dict (names ->
  tensors or arrays; e.g. a checkpoint's "kp_detector" or "generator", or "discriminator" with
  prefix "discs.1." for the scale-1 `Discriminator`). Running statistics, spectral norm's v and
  the anti-aliasing kernels (buffers) are skipped; spectral norm's u becomes `sn_u`."""
  params: dict = {}
  for name, value in state_dict.items():
    if not name.startswith(prefix):
      continue
    *parts, leaf = name[len(prefix):].split(".")
    if leaf in _BUFFERS or "down" in parts:      # `down`: AntiAliasInterpolation2d's buffer
      continue
    path: list[str] = []
    for p in parts:                              # ModuleList index i -> "<list>_i"
      if p.isdigit() and path:
        path[-1] = f"{path[-1]}_{p}"
      else:
        path.append(p)
    array = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value,
                       np.float32)
    key, array = _torch_leaf(path, leaf, array)
    node = params
    for p in path:
      node = node.setdefault(p, {})
    node[key] = jnp.asarray(array)
  return params
