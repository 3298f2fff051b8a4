"""CoCosNet (Zhang et al., CVPR 2020, "Cross-domain Correspondence Learning for Exemplar-based
Image Translation"): the networks of its pose-to-image configuration, the generator of the
CoCosNet-based video pose transfer paper (Wang et al. 2021, Sec. III-C, Eqs. 2-7).

Followed from the authors' code (microsoft/CoCosNet at de0c1bb; file and line there), its
DeepFashion training command (`--use_attention --PONO --PONO_C --warp_patch --match_kernel 3
--adaptor_kernel 3`, `norm_G spectralspadesyncbatch3x3`, `norm_E/norm_D spectralinstance`):

- `Correspondence` (correspondence.py `NoVGGCorrespondence`, L150-L374): two domain adaptors
  without shared weights (generator.py `AdaptiveFeatureGenerator`, L91-L160) map the pose label
  and an image to features at 1/4 of the resolution (64 x 64 x 256 at 256 px, Eqs. 2-3), each
  channel-normalised; a stack of 4 residual blocks shared by both branches, 1x1 theta / phi
  convolutions, 3x3 patches of those unfolded (`match_kernel`), centred over the patch and
  L2-normalised (Eq. 4's correlation is their dot product), softmax over the exemplar's positions
  at temperature 0.01 (Eq. 5), and the exemplar's 4x4 pixel patches averaged with those weights
  (`--warp_patch`: the warped exemplar keeps full resolution). The attention is computed with its
  query rows tiled (`psrjax.nn.softmax_attention`, `warp_block`): the authors' code builds the
  whole 4096 x 4096 matrix.
- `Generator` (generator.py `SPADEGenerator`, L17-L89): SPADE residual blocks (architecture.py
  L19-L95) with positional normalisation (PONO, normalization.py L63-L151) and spectrally
  normalised convolutions, from the conditioning map resized to 1/32 through five nearest
  upsamplings, a SAGAN attention block at 1/2 resolution, then LeakyReLU, a 3x3 conv and tanh.
  The conditioning map of every SPADE and of the first conv is the WARPED exemplar concatenated
  with the pose label (the code's `CBN_intype warp_mask`, pix2pix_model.py L317-L320); the seed's
  Eqs. 6-7 name the raw exemplar y_I, the code (followed here) the warped one. Extra channels of
  the conditioning map (the temporal stage's previous frames) are simply more label channels.
- Initialisation: Xavier normal with gain 0.02 for every convolution, biases 0 (base_network.py
  L28-L59); PReLU slopes 0.25 and the attention's gamma 0.

Sizes: the modules' defaults are the paper's (ngf 64: 256 feature channels at 1/4 resolution,
SPADE hidden 128); smaller ones are the configs' (configs/cocovid.py's runlocal and tiny).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from psrjax.nn.attention import SelfAttention, softmax_attention
from psrjax.nn.conv2d import Conv2D
from psrjax.nn.norms import InstanceNorm2D
from psrjax.nn.policy import compute_dtype, remat_block, remat_network
from psrjax.nn.resize import resize_nearest
from psrjax.nn.spade import SPADE

# Xavier normal with gain 0.02: std 0.02 sqrt(2 / (fan_in + fan_out)) (the authors' init_weights).
XAVIER_002 = nn.initializers.variance_scaling(0.02 ** 2, "fan_avg", "normal")
_NORM_EPS = 2.220446049250313e-16   # sys.float_info.epsilon, the code's feature-norm epsilon

def _lrelu(x):
  return nn.leaky_relu(x, 0.2)


def feature_normalize(x: jax.Array) -> jax.Array:
  """x / (|x|_2 over channels + eps) (the code's util.feature_normalize), in x's dtype; the norm
  is a float32 statistic."""
  x32 = x.astype(jnp.float32)
  norm = jnp.sqrt(jnp.sum(jnp.square(x32), axis=-1, keepdims=True)) + _NORM_EPS
  return (x32 / norm).astype(x.dtype)


class SPADEResBlock(nn.Module):
  """SPADE's residual block (architecture.py `SPADEResnetBlock`) with CoCosNet's PONO SPADEs:
  shortcut = x or conv_s(SPADE_s(x)) (1x1, no bias) when the width changes;
  dx = conv_1(lrelu(SPADE_1(conv_0(lrelu(SPADE_0(x)))))) (3x3, reflection padding); x_s + dx.
  Convolutions spectrally normalised (`spectral`)."""
  features: int
  spade_hidden: int = 128
  spectral: bool = True
  conv_impl: str = "auto"
  dtype: Any = None
  kernel_init: Callable = XAVIER_002

  @nn.compact
  def __call__(self, x: jax.Array, seg: jax.Array) -> jax.Array:
    middle = min(x.shape[-1], self.features)
    spade = lambda name: SPADE(hidden=self.spade_hidden, norm="positional", pad_mode="reflect",
                               impl=self.conv_impl, dtype=self.dtype,
                               kernel_init=self.kernel_init, name=name)
    conv = lambda f, k, name, bias=True: Conv2D(
        f, k, padding=k // 2, pad_mode="reflect", use_bias=bias, impl=self.conv_impl,
        dtype=self.dtype, kernel_init=self.kernel_init, spectral=self.spectral, name=name)
    shortcut = x
    if x.shape[-1] != self.features:
      shortcut = conv(self.features, 1, "conv_s", bias=False)(spade("norm_s")(x, seg))
    dx = conv(middle, 3, "conv_0")(_lrelu(spade("norm_0")(x, seg)))
    dx = conv(self.features, 3, "conv_1")(_lrelu(spade("norm_1")(dx, seg)))
    return shortcut + dx


class Adaptor(nn.Module):
  """A domain adaptor (generator.py `AdaptiveFeatureGenerator`, L91-L160): five 3x3
  conv + instance norm layers (spectrally normalised, no bias; LeakyReLU after the first four;
  strides 1, 2, 1, 2, 1 with `kernel` for the strided ones), then three SPADE blocks conditioned
  on the adaptor's own input: `[N, H, W, C]` -> `[N, H / 4, W / 4, 4 ngf]`."""
  ngf: int = 64
  kernel: int = 3                    # adaptor_kernel of the stride-2 layers (DeepFashion: 3)
  spade_hidden: int = 128
  remat: str = "none"
  conv_impl: str = "auto"
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.astype(compute_dtype(self.dtype, x))
    seg, n = x, self.ngf
    layers = ((n, 3, 1), (2 * n, self.kernel, 2), (4 * n, 3, 1), (8 * n, self.kernel, 2),
              (8 * n, 3, 1))
    for i, (features, k, stride) in enumerate(layers):
      x = Conv2D(features, k, stride, padding=1, use_bias=False, impl=self.conv_impl,
                 dtype=self.dtype, kernel_init=XAVIER_002, spectral=True, name=f"layer{i + 1}")(x)
      x = InstanceNorm2D(dtype=self.dtype, name=f"norm{i + 1}")(x)
      x = _lrelu(x) if i < len(layers) - 1 else x
    block = remat_block(SPADEResBlock, self.remat)
    kw = dict(spade_hidden=self.spade_hidden, conv_impl=self.conv_impl, dtype=self.dtype)
    x = block(8 * n, name="head_0", **kw)(x, seg)
    x = block(8 * n, name="G_middle_0", **kw)(x, seg)
    return block(4 * n, name="G_middle_1", **kw)(x, seg)


class ResidualBlock(nn.Module):
  """The correspondence's residual block (correspondence.py L13-L36): reflection-padded 3x3
  convs with instance norm, one PReLU (a single slope, 0.25 at first) after the first and after
  the sum."""
  conv_impl: str = "auto"
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    slope = self.param("prelu", nn.initializers.constant(0.25), (), jnp.float32).astype(x.dtype)
    prelu = lambda v: jnp.where(v >= 0, v, slope * v)
    conv = lambda name: Conv2D(c, 3, padding=1, pad_mode="reflect", impl=self.conv_impl,
                               dtype=self.dtype, kernel_init=XAVIER_002, name=name)
    y = prelu(InstanceNorm2D(dtype=self.dtype)(conv("conv1")(x)))
    y = InstanceNorm2D(dtype=self.dtype)(conv("conv2")(y))
    return prelu(y + x)


def add_coordinates(x: jax.Array) -> jax.Array:
  """`[N, H, W, C]` -> `[N, H, W, C + 3]`: x and y in [-1, 1] and their radius appended
  (correspondence.py `addcoords`, L190-L207)."""
  n, h, w, _ = x.shape
  yy, xx = jnp.meshgrid(jnp.linspace(-1.0, 1.0, h), jnp.linspace(-1.0, 1.0, w), indexing="ij")
  coords = jnp.stack([xx, yy, jnp.sqrt(xx ** 2 + yy ** 2)], axis=-1).astype(x.dtype)
  return jnp.concatenate([x, jnp.broadcast_to(coords, (n, h, w, 3))], axis=-1)


def unfold_patches(x: jax.Array, size: int) -> jax.Array:
  """`[N, H, W, C]` -> `[N, H W, size^2 C]`: every position's size x size neighbourhood (zero
  padded, F.unfold's `padding=size // 2`), for odd `size`."""
  pad = size // 2
  h, w = x.shape[1:3]
  padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  shifts = [padded[:, dy:dy + h, dx:dx + w] for dy in range(size) for dx in range(size)]
  return jnp.concatenate(shifts, axis=-1).reshape(x.shape[0], h * w, -1)


def match_features(x: jax.Array, size: int) -> jax.Array:
  """Eq. 4's operands: the unfolded patches `[N, P, D]` centred over their D values and
  L2-normalised (`--PONO_C`, correspondence.py L271-L292); statistics float32."""
  f = unfold_patches(x, size).astype(jnp.float32)
  f = f - jnp.mean(f, axis=-1, keepdims=True)
  f = f / (jnp.sqrt(jnp.sum(jnp.square(f), axis=-1, keepdims=True)) + _NORM_EPS)
  return f.astype(x.dtype)


def to_blocks(image: jax.Array, size: int) -> jax.Array:
  """`[N, H, W, C]` -> `[N, (H / size)(W / size), size^2 C]`: non-overlapping pixel blocks."""
  n, h, w, c = image.shape
  x = image.reshape(n, h // size, size, w // size, size, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, (h // size) * (w // size), size * size * c)


def from_blocks(blocks: jax.Array, height: int, width: int, size: int) -> jax.Array:
  """The inverse of `to_blocks`."""
  n = blocks.shape[0]
  x = blocks.reshape(n, height // size, width // size, size, size, -1).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, height, width, -1)


def warp(query: jax.Array, key: jax.Array, exemplar: jax.Array, *, temperature: float,
         block: int | None) -> jax.Array:
  """Eq. 5: every query position's softmax(corr / temperature) over the key positions, applied to
  the exemplar's pixel blocks (one block per feature position). query, key: `[N, P, D]`
  normalised features; exemplar `[N, H, W, C]` with H W / P pixels per position."""
  n, h, w, _ = exemplar.shape
  size = int(round((h * w / key.shape[1]) ** 0.5))
  if size * size * key.shape[1] != h * w or h % size or w % size:
    raise ValueError(f"the exemplar {exemplar.shape[1:3]} is not a whole number of pixel blocks "
                     f"per feature position ({key.shape[1]} positions)")
  values = to_blocks(exemplar, size)
  out = softmax_attention(query, key, values, scale=1.0 / temperature, block=block)
  return from_blocks(out, h, w, size)


class Correspondence(nn.Module):
  """`__call__(label, exemplar, real=None, reference=None)` -> (warped exemplar `[N, H, W, 3]`,
  the pose adaptor's normalised features, the image adaptor's normalised features of `real` or
  None).

  The last two are the domain alignment loss's operands (Eq. 10; the code's `novgg_featpair`:
  the pose label's features against the ground-truth frame's, correspondence.py L249-L252).
  `reference(exemplar)` is the exemplar's side of Eq. 4 (its matching features `[N, P, D]`):
  computed once, it serves every frame warped from that exemplar (`reference=`).
  """
  ngf: int = 64
  adaptor_kernel: int = 3
  match_kernel: int = 3
  temperature: float = 0.01
  warp_block: int | None = 1024      # query rows per attention tile (None: the whole matrix)
  coordconv: bool = False            # (x, y, r) coordinate channels on both features (--use_coordconv)
  spade_hidden: int = 128
  remat: str = "none"
  conv_impl: str = "auto"
  dtype: Any = None

  def setup(self):
    kw = dict(ngf=self.ngf, kernel=self.adaptor_kernel, spade_hidden=self.spade_hidden,
              remat=self.remat, conv_impl=self.conv_impl, dtype=self.dtype)
    self.adaptor_seg, self.adaptor_img = Adaptor(**kw), Adaptor(**kw)
    self.stack = [ResidualBlock(self.conv_impl, self.dtype) for _ in range(4)]
    conv = lambda: Conv2D(4 * self.ngf, 1, impl=self.conv_impl, dtype=self.dtype,
                          kernel_init=XAVIER_002)
    self.theta, self.phi = conv(), conv()

  def _matching(self, features, projection):
    """Eq. 4's operand of normalised adaptor features: (coordinates,) the shared residual
    stack, theta or phi, unfolded, centred and normalised."""
    x = add_coordinates(features) if self.coordconv else features
    for block in self.stack:
      x = block(x)
    return match_features(projection(x), self.match_kernel)

  def reference(self, exemplar: jax.Array) -> jax.Array:
    dtype = compute_dtype(self.dtype, exemplar)
    return self._matching(feature_normalize(self.adaptor_img(exemplar.astype(dtype))), self.phi)

  def __call__(self, label: jax.Array, exemplar: jax.Array, real: jax.Array | None = None,
               reference: jax.Array | None = None):
    dtype = compute_dtype(self.dtype, exemplar)
    exemplar = exemplar.astype(dtype)
    pose = feature_normalize(self.adaptor_seg(label.astype(dtype)))
    real_features = None
    if reference is None and real is not None:
      # The exemplar and the real frame through the image adaptor in one batch (per-example
      # norms: the same as two calls).
      both = feature_normalize(self.adaptor_img(jnp.concatenate([exemplar, real.astype(dtype)])))
      n = exemplar.shape[0]
      reference, real_features = self._matching(both[:n], self.phi), both[n:]
    elif real is not None:
      real_features = feature_normalize(self.adaptor_img(real.astype(dtype)))
    if reference is None:
      reference = self.reference(exemplar)
    query = self._matching(pose, self.theta)
    warped = warp(query, reference, exemplar, temperature=self.temperature,
                  block=self.warp_block)
    return warped, pose, real_features


class Generator(nn.Module):
  """`__call__(seg [N, H, W, L])` -> image `[N, H, W, 3]` in (-1, 1) (H, W divisible by 32):
  SPADEGenerator (module docstring); `seg` is the warped exemplar and the pose label (and any
  further conditioning channels)."""
  ngf: int = 64
  spade_hidden: int = 128
  attention: bool = True             # the SAGAN block at 1/2 resolution (--use_attention)
  remat: str = "none"
  conv_impl: str = "auto"
  dtype: Any = None

  @nn.compact
  def __call__(self, seg: jax.Array) -> jax.Array:
    h, w = seg.shape[1:3]
    if h % 32 or w % 32:
      raise ValueError(f"the CoCosNet generator upsamples 5 times: H and W must be multiples of "
                       f"32; got {h}x{w}")
    seg = seg.astype(compute_dtype(self.dtype, seg))
    return remat_network(Generator._forward, self.remat)(self, seg)

  def _forward(self, seg):
    n = self.ngf
    h, w = seg.shape[1:3]
    block = functools.partial(remat_block(SPADEResBlock, self.remat),
                              spade_hidden=self.spade_hidden, conv_impl=self.conv_impl,
                              dtype=self.dtype)
    up = lambda v: jnp.repeat(jnp.repeat(v, 2, axis=1), 2, axis=2)   # nn.Upsample(2), nearest
    x = resize_nearest(seg, (h // 32, w // 32))
    x = Conv2D(16 * n, 3, padding=1, impl=self.conv_impl, dtype=self.dtype,
               kernel_init=XAVIER_002, name="fc")(x)
    x = up(block(16 * n, name="head_0")(x, seg))
    x = block(16 * n, name="G_middle_0")(x, seg)
    x = up(block(16 * n, name="G_middle_1")(x, seg))
    x = up(block(8 * n, name="up_0")(x, seg))
    x = up(block(4 * n, name="up_1")(x, seg))
    if self.attention:
      x = SelfAttention(dtype=self.dtype, spectral=True, use_bias=False, name="attn")(x)
    x = up(block(2 * n, name="up_2")(x, seg))
    x = block(n, name="up_3")(x, seg)
    x = Conv2D(3, 3, padding=1, impl=self.conv_impl, dtype=self.dtype, kernel_init=XAVIER_002,
               name="conv_img")(_lrelu(x))
    return jnp.tanh(x)
