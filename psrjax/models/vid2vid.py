"""vid2vid's networks (Wang et al., NeurIPS 2018, "Video-to-Video Synthesis"; the authors' code
NVIDIA/vid2vid, models/networks.py, vid2vid_model_G.py and vid2vid_model_D.py).

API (NHWC arrays; sequences `[N, T, H, W, C]` with the oldest frame first):

- `CompositeGenerator` (the authors' netG "composite"):
  `__call__(labels [N, n_frames, H, W, L], previous [N, n_frames - 1, H, W, out_channels], *,
  raw_only=False, train=False)` -> dict
    "image"  [N, H, W, out]: the frame, w * raw + (1 - w) * warp(previous[:, -1], flow)
             (`raw` itself when `raw_only` or `no_flow`);
    "raw"    [N, H, W, out]: the hallucinated image, in (-1, 1);
    "flow"   [N, H, W, 2] float32: backward flow in pixels, (x, y), from the current frame to
             the last previous one (None with `no_flow`);
    "weight" [N, H, W, 1]: the occlusion mask w in (0, 1) (None with `no_flow`).
  `labels[:, -1]` is the current frame's label map; `previous` holds the n_frames - 1 frames
  generated before it. H and W must be divisible by 2^n_downsample.
- `warp(image [..., H, W, C], flow [..., H, W, 2])`: the authors' `resample`, out(p) =
  image(p + flow(p)), bilinear, border padding (also their flow-warp losses' warp).
- `ImageDiscriminator`: `__call__(labels [N, H, W, L], image [N, H, W, C])` -> (logits,
  features): num_d float32 logit maps, scale 0 at full resolution, and per scale the
  num_layers + 1 layer activations (for the feature-matching loss).
- `TemporalDiscriminator`: `__call__(frames [N, n_frames, H, W, C], flows [N, n_frames - 1, H,
  W, 2])` -> (logits, features) as above; `flows[:, t]` is the flow of `frames[:, t + 1]` (to
  frame t) in pixels.
- `generator(variant="paper", **fields)`, `image_discriminator(variant="paper", **fields)`,
  `temporal_discriminator(variant="paper", **fields)`: the networks at `PAPER`'s sizes, module
  fields overridable; `params_from_torch(state_dict, ...)` and
  `discriminator_params_from_torch(state_dict, ...)` read the authors' checkpoints.

Facts from the authors' code that the networks follow:

- Generator: two encoders of identical structure and separate weights, one on the n_frames_G = 3
  label maps concatenated on channels (pose: 6 channels a frame, 18 in all), one on the
  n_frames_G - 1 = 2 previous frames (6 channels); each is c7s1-ngf, n_downsample stride-2 3x3
  convs doubling the width, and n_blocks - n_blocks // 2 residual blocks (5 of the default 9).
  Their outputs are summed AFTER those blocks. The sum feeds two decoders: the image decoder
  (n_blocks // 2 = 4 residual blocks, n_downsample transposed 3x3 convs halving the width,
  reflection pad 3 + 7x7 conv + tanh) and the flow decoder (same blocks and transposed convs,
  separate weights), which ends in two reflection-padded 7x7 convs: the flow (2 channels, no
  activation, multiplied by 20) and the weight (1 channel, sigmoid). The other convs are
  followed by the norm and ReLU (a residual block's second conv by the norm alone); residual
  blocks pad by reflection.
- Sizes (options/base_options.py): ngf 128, n_downsample_G 3, n_blocks 9, n_frames_G 3, norm
  "batch"; the pose 256p scripts use these (the "g1" variant ngf 64). Parameters of `generator()`
  for pose (18 label and 6 previous channels): 364,826,886 at ngf 128, 91,285,638 at ngf 64
  (`jax.eval_shape`, batch norm's scale and shift included; the PyTorch reference of the tests
  built at those sizes has as many).
- Warp (`BaseNetwork.resample`): the flow in pixels is divided by ((W - 1) / 2, (H - 1) / 2),
  added to a `linspace(-1, 1)` grid and read by `grid_sample(mode="bilinear",
  padding_mode="border")` under PyTorch 0.4 (the README's version), whose grid_sample aligns
  corners: -1 and 1 are the corner pixels' centres. That is exactly out(p) = image(p + flow(p))
  in pixels with border clamping, i.e. `psrjax.geometry.warp.backward_warp`, which `warp` calls.
  (A PyTorch >= 1.3 run of that code, align_corners=False, would shift the warp by up to half a
  pixel; the tests compare with `align_corners=True`.)
- First frames (vid2vid_model_G.py `generate_first_frame`): with `--no_first_img` (the pose
  scripts) `previous` is all zeros and the frame is the raw image (`use_raw_only`; the flow and
  weight are still computed); in training that holds for every frame of a sequence's first
  forward call (its n_frames_per_gpu x n_gpus frames), at test time for the first frame only.
  Otherwise training takes the first n_frames_G - 1 real frames as `previous`, and testing
  either real frames (`--use_real_img`) or frames of a separately trained single-image
  generator (`--use_single_G`: a pix2pixHD global/local generator, `psrjax.models.pix2pixhd`).
  `raw_only` is `use_raw_only`. With `--no_first_img` the losses also include an L1 term
  pulling w toward 0 (toward the warped frame) on every frame.
- `no_flow` (also forced by `--openpose_only`) drops the flow decoder: image = raw.
- Discriminators (networks.py `MultiscaleDiscriminator`, `NLayerDiscriminator`): num_d PatchGANs
  (4x4 convs padded by 2, widths doubling up to 512, LeakyReLU 0.2, norm but on the first layer,
  a stride-1 layer and a stride-1 1-channel output) on the input average-pooled i times (3x3,
  stride 2, count_include_pad=False). The scale at pyramid level i has min(64, ndf * 2^i) first
  channels (the authors' ndf_max = 64: the coarser scales are wider when ndf < 64). Their norm is
  `--norm` too: batch norm. The image discriminator sees the current frame's label map and an
  image (real, generated, or the raw image) concatenated in that order (input_nc + output_nc
  channels); the temporal one n_frames_D = 3 consecutive frames concatenated on channels, frame by
  frame, followed by their n_frames_D - 1 flows (3 * 3 + 2 * 2 = 13 channels). Those flows are
  FlowNet2's flows of the real frames divided by 20 (`flow_ref / 20`), here `flow_scale`. The
  authors use n_scales_temporal = 2 temporal discriminators (frames 1 and 3 apart), num_D = 2.
- Batch norm: the authors' code never calls `eval()`, so batch norm always normalises with the
  current batch's statistics (at test time too); its running averages are never read. psrjax's
  "batch" norm (`psrjax.nn.BatchStatNorm`) is exactly that, without running averages; a
  checkpoint's running_mean / running_var are skipped by the readers. PyTorch's DataParallel
  computes the statistics per GPU (the pose scripts: one sequence a GPU, so the generator,
  which runs frame by frame, normalises each frame alone: instance norm with affine
  parameters), whereas under `jit` over a sharded batch they are the global batch's;
  "instance_affine" gives the one-sequence-a-GPU behaviour at any batch size.

Departures: the foreground-background generator (`--fg`, Cityscapes) and the coarse-to-fine
`CompositeLocalGenerator` (`n_scales_spatial` > 1: the 512p and 1024p pose models) are not
built. Initialisation: kernels N(0, 0.02) as the authors' `weights_init`, but biases zero (theirs
keep PyTorch's uniform init) and batch-norm scales one (theirs N(1, 0.02)).
"""
from __future__ import annotations

import functools
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from psrjax.geometry.warp import backward_warp
from psrjax.models.patchgan import PatchGAN
from psrjax.models.pretrained import torch_state
from psrjax.models.pix2pixhd import output_layer
from psrjax.nn import (Conv2D, ConvNormAct2D, ResBlock2D, UpBlock2D, compute_dtype,
                       downsample_avg, remat_network)
from psrjax.nn.blocks2d import check_norm_act
from psrjax.nn.conv import default_kernel_init

# The authors' default options (options/*.py) and the pose 256p script's sizes.
PAPER = {
    "generator": dict(ngf=128, n_downsample=3, n_blocks=9, n_frames=3, norm="batch"),
    "image_discriminator": dict(num_d=2, ndf=64, num_layers=3, norm="batch"),
    "temporal_discriminator": dict(num_d=2, ndf=64, num_layers=3, norm="batch", n_frames=3),
}
NDF_MAX = 64                         # the authors' cap on a scale's first width


def warp(image: jax.Array, flow: jax.Array) -> jax.Array:
  """The authors' `resample`: out(p) = image(p + flow(p)), bilinear, border padding.

  image `[..., H, W, C]`, flow `[..., H, W, 2]` in pixels, (x, y) order (the authors' flow
  channels 0 and 1). Interpolates in float32, returns the image's dtype.
  """
  return backward_warp(image, flow, padding="border")


def _frames_on_channels(x: jax.Array) -> jax.Array:
  """`[N, T, H, W, C]` -> `[N, H, W, T * C]`, frame by frame (PyTorch's `view(N, T * C, H, W)`)."""
  n, t, h, w, c = x.shape
  return jnp.moveaxis(x, 1, 3).reshape(n, h, w, t * c)


def _check_sequence(x: jax.Array, frames: int, what: str, fix: str) -> None:
  if x.ndim != 5 or x.shape[1] != frames:
    raise ValueError(f"{what} must be [N, {frames}, H, W, C] ({fix}); got shape {x.shape}")


class CompositeGenerator(nn.Module):
  """vid2vid's sequential generator (module docstring): `__call__(labels, previous, *,
  raw_only=False, train=False)` -> {"image", "raw", "flow", "weight"}.

  Parameters: label_stem, label_down{i}, label_block{i} (label encoder); prev_* (previous-frame
  encoder, same names); image_block{i}, image_up{i}, image_head; flow_block{i}, flow_up{i},
  flow_head, weight_head.
  """
  out_channels: int = 3
  ngf: int = 128                     # first layer's channels (authors: 128; pose g1: 64)
  n_downsample: int = 3              # stride-2 layers (authors: 3)
  n_blocks: int = 9                  # residual blocks: n - n // 2 per encoder, n // 2 per decoder
  n_frames: int = 3                  # n_frames_G: label maps seen; previous frames n_frames - 1
  norm: str = "batch"                # psrjax.nn.NORMS (authors: "batch", batch statistics)
  no_flow: bool = False              # no flow decoder: the frame is the raw image
  flow_scale: float = 20.0           # the flow conv's output is multiplied by it (authors: 20)
  conv_impl: str = "auto"            # Conv2D implementation
  dtype: Any = None                  # computation dtype; None: the labels' (params float32)
  remat: str = "none"                # "none" | "blocks" | "full" (psrjax.nn.policy)

  @nn.compact
  def __call__(self, labels: jax.Array, previous: jax.Array, *, raw_only: bool = False,
               train: bool = False) -> dict:
    check_norm_act(self.norm, "relu")
    self._check(labels, previous)
    dtype = compute_dtype(self.dtype, labels)
    labels = _frames_on_channels(labels).astype(dtype)
    previous = previous.astype(dtype)
    forward = functools.partial(CompositeGenerator._forward, raw_only=raw_only, train=train)
    return remat_network(forward, self.remat)(self, labels, previous)

  def _check(self, labels, previous):
    _check_sequence(labels, self.n_frames, "labels", f"n_frames={self.n_frames} label maps")
    _check_sequence(previous, self.n_frames - 1, "previous",
                    f"the n_frames - 1 = {self.n_frames - 1} frames generated before")
    if previous.shape[-1] != self.out_channels or previous.shape[2:4] != labels.shape[2:4] \
        or previous.shape[0] != labels.shape[0]:
      raise ValueError(f"previous must be [N, {self.n_frames - 1}, H, W, {self.out_channels}] "
                       f"with the labels' N, H, W; got {previous.shape} for labels {labels.shape}")
    h, w = labels.shape[2:4]
    factor = 2 ** self.n_downsample
    if h % factor or w % factor:
      raise ValueError(f"CompositeGenerator with {self.n_downsample} downsampling layers needs H "
                       f"and W divisible by {factor}; got {h}x{w} (crop or pad the frames, or "
                       f"lower n_downsample)")

  def _kw(self) -> dict:
    return dict(norm=self.norm, impl=self.conv_impl, dtype=self.dtype, remat=self.remat)

  def _forward(self, labels, previous, *, raw_only: bool, train: bool) -> dict:
    last = previous[:, -1]
    x = (self._encoder(labels, "label", train) +
         self._encoder(_frames_on_channels(previous), "prev", train))
    raw = output_layer(self.out_channels, self.conv_impl, self.dtype, "image_head")(
        self._decoder(x, "image", train))
    if self.no_flow:
      return {"image": raw, "raw": raw, "flow": None, "weight": None}
    features = self._decoder(x, "flow", train)
    flow = self._head(2, "flow_head")(features).astype(jnp.float32) * self.flow_scale
    weight = jax.nn.sigmoid(self._head(1, "weight_head")(features))
    image = raw if raw_only else weight * raw + (1 - weight) * warp(last, flow)
    return {"image": image, "raw": raw, "flow": flow, "weight": weight}

  def _encoder(self, x, prefix: str, train: bool):
    """c7s1-ngf, n_downsample d-layers, n_blocks - n_blocks // 2 residual blocks."""
    x = ConvNormAct2D(self.ngf, 7, padding=3, pad_mode="reflect", name=f"{prefix}_stem",
                      **self._kw())(x)
    for i in range(self.n_downsample):
      x = ConvNormAct2D(self.ngf * 2 ** (i + 1), 3, 2, 1, name=f"{prefix}_down{i}",
                        **self._kw())(x)
    for i in range(self.n_blocks - self.n_blocks // 2):
      x = ResBlock2D("reflect", name=f"{prefix}_block{i}", **self._kw())(x, train=train)
    return x

  def _decoder(self, x, prefix: str, train: bool):
    """n_blocks // 2 residual blocks, n_downsample u-layers (transposed 3x3 convs)."""
    for i in range(self.n_blocks // 2):
      x = ResBlock2D("reflect", name=f"{prefix}_block{i}", **self._kw())(x, train=train)
    for i in range(self.n_downsample):
      width = self.ngf * 2 ** (self.n_downsample - i - 1)
      x = UpBlock2D(width, name=f"{prefix}_up{i}", **self._kw())(x)
    return x

  def _head(self, features: int, name: str) -> Conv2D:
    return Conv2D(features, 7, padding=3, pad_mode="reflect", impl=self.conv_impl,
                  dtype=self.dtype, name=name)


class _MultiscalePatchGAN(nn.Module):
  """The authors' `MultiscaleDiscriminator` (getIntermFeat) on an assembled input."""
  num_d: int = 2                     # scales (authors: num_D 2)
  ndf: int = 64                      # first width at full resolution; level i: min(64, ndf 2^i)
  num_layers: int = 3                # stride-2 layers of each PatchGAN (authors: n_layers_D 3)
  norm: str = "batch"                # authors: "batch" (batch statistics)
  conv_impl: str = "auto"
  dtype: Any = None                  # computation dtype; None: the input's (params, logits f32)
  remat: str = "none"                # each PatchGAN's (psrjax.nn.policy)

  def _scales(self, x: jax.Array):
    logits, features = [], []
    for i in range(self.num_d):
      d = PatchGAN(min(NDF_MAX, self.ndf * 2 ** i), self.num_layers, 2, self.norm,
                   intermediate=True, conv_impl=self.conv_impl, dtype=self.dtype,
                   kernel_init=default_kernel_init, remat=self.remat,
                   name=f"scale{i}")
      scale_logits, scale_features = d(x)
      logits.append(scale_logits)
      features.append(scale_features)
      if i < self.num_d - 1:
        x = downsample_avg(x)
    return logits, features


class ImageDiscriminator(_MultiscalePatchGAN):
  """`__call__(labels [N, H, W, L], image [N, H, W, C])` -> (logits, features); the PatchGANs
  see [labels, image] on channels. Scale i's parameters are "scale{i}" (pyramid level i; the
  authors name it scale{num_D - 1 - i})."""

  @nn.compact
  def __call__(self, labels: jax.Array, image: jax.Array, *, train: bool = False):
    del train
    if image.ndim != 4 or labels.shape[:3] != image.shape[:3]:
      raise ValueError(f"ImageDiscriminator expects labels [N, H, W, L] and image [N, H, W, C] "
                       f"of the same N, H, W; got {labels.shape} and {image.shape}")
    dtype = compute_dtype(self.dtype, image)
    return self._scales(jnp.concatenate([labels.astype(dtype), image.astype(dtype)], axis=-1))


class TemporalDiscriminator(_MultiscalePatchGAN):
  """`__call__(frames [N, n_frames, H, W, C], flows [N, n_frames - 1, H, W, 2])` -> (logits,
  features); the PatchGANs see the frames on channels frame by frame, then the flows divided by
  `flow_scale` (the authors feed FlowNet2's flow / 20), in that order."""
  n_frames: int = 3                  # n_frames_D
  flow_scale: float = 20.0

  @nn.compact
  def __call__(self, frames: jax.Array, flows: jax.Array, *, train: bool = False):
    del train
    _check_sequence(frames, self.n_frames, "frames", f"n_frames={self.n_frames} frames")
    _check_sequence(flows, self.n_frames - 1, "flows", "one flow per frame after the first")
    if flows.shape[-1] != 2 or flows.shape[2:4] != frames.shape[2:4] \
        or flows.shape[0] != frames.shape[0]:
      raise ValueError(f"flows must be [N, {self.n_frames - 1}, H, W, 2] with the frames' N, H, "
                       f"W; got {flows.shape} for frames {frames.shape}")
    dtype = compute_dtype(self.dtype, frames)
    flows = flows.astype(jnp.float32) / self.flow_scale
    x = jnp.concatenate([_frames_on_channels(frames).astype(dtype),
                         _frames_on_channels(flows).astype(dtype)], axis=-1)
    return self._scales(x)


# ------------------------------------------------------------------ factories
def _paper(variant: str, part: str) -> dict:
  if variant != "paper":
    raise ValueError(f"unknown vid2vid variant {variant!r}: the networks have the authors' sizes "
                     f"(\"paper\"); give others as keyword arguments")
  return dict(PAPER[part])


def generator(variant: str = "paper", **overrides) -> CompositeGenerator:
  """`CompositeGenerator` at `PAPER["generator"]` (ngf 128, 3 downsamplings, 9 blocks, 3
  frames, batch norm); keyword arguments override module fields."""
  return CompositeGenerator(**{**_paper(variant, "generator"), **overrides})


def image_discriminator(variant: str = "paper", **overrides) -> ImageDiscriminator:
  """`ImageDiscriminator` at `PAPER["image_discriminator"]` (2 scales, ndf 64, 3 layers, batch
  norm), fields overridable."""
  return ImageDiscriminator(**{**_paper(variant, "image_discriminator"), **overrides})


def temporal_discriminator(variant: str = "paper", **overrides) -> TemporalDiscriminator:
  """`TemporalDiscriminator` at `PAPER["temporal_discriminator"]` (3 frames, 2 scales, ndf 64,
  3 layers, batch norm), fields overridable."""
  return TemporalDiscriminator(**{**_paper(variant, "temporal_discriminator"), **overrides})


# ------------------------------------------------------------------ the authors' checkpoints
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _block_layers(prefix: str, ours: str) -> list:
  """A `ResnetBlock`'s conv_block: 1 conv, 2 norm, 5 conv, 6 norm."""
  return [(f"{prefix}.conv_block.1", (ours, "conv1"), "conv"),
          (f"{prefix}.conv_block.2", (ours, "norm1"), "norm"),
          (f"{prefix}.conv_block.5", (ours, "conv2"), "conv"),
          (f"{prefix}.conv_block.6", (ours, "norm2"), "norm")]


def _encoder_layers(seq: str, ours: str, n_downsample: int, n_blocks: int) -> list:
  """model_down_seg / model_down_img: pad, conv, norm, ReLU; d-layers (conv, norm, ReLU); blocks."""
  layers = [(f"{seq}.1", (f"{ours}_stem", "conv"), "conv"),
            (f"{seq}.2", (f"{ours}_stem", "norm"), "norm")]
  for i in range(n_downsample):
    layers += [(f"{seq}.{4 + 3 * i}", (f"{ours}_down{i}", "conv"), "conv"),
               (f"{seq}.{5 + 3 * i}", (f"{ours}_down{i}", "norm"), "norm")]
  for b in range(n_blocks - n_blocks // 2):
    layers += _block_layers(f"{seq}.{4 + 3 * n_downsample + b}", f"{ours}_block{b}")
  return layers


def _decoder_layers(res: str, up: str, ours: str, n_downsample: int, n_blocks: int) -> list:
  """model_res_* blocks, then model_up_*: per u-layer transposed conv, norm, ReLU."""
  layers = []
  for b in range(n_blocks // 2):
    layers += _block_layers(f"{res}.{b}", f"{ours}_block{b}")
  for i in range(n_downsample):
    layers += [(f"{up}.{3 * i}", (f"{ours}_up{i}", "conv"), "conv_transpose"),
               (f"{up}.{3 * i + 1}", (f"{ours}_up{i}", "norm"), "norm")]
  return layers


def _generator_layers(n_downsample: int, n_blocks: int, no_flow: bool) -> list:
  layers = (_encoder_layers("model_down_seg", "label", n_downsample, n_blocks) +
            _encoder_layers("model_down_img", "prev", n_downsample, n_blocks) +
            _decoder_layers("model_res_img", "model_up_img", "image", n_downsample, n_blocks) +
            [("model_final_img.1", ("image_head",), "conv")])
  if not no_flow:
    layers += (_decoder_layers("model_res_flow", "model_up_flow", "flow", n_downsample, n_blocks)
               + [("model_final_flow.1", ("flow_head",), "conv"),
                  ("model_final_w.1", ("weight_head",), "conv")])
  return layers


def _convert(state_dict: Mapping[str, Any], layers: list) -> dict:
  """Nested params from `state_dict` by `layers` [(prefix, path, kind)]; every learnable entry
  must be used (batch norm's running statistics are skipped)."""
  arrays = {k: np.asarray(v, np.float32) for k, v in state_dict.items()
            if k.rsplit(".", 1)[-1] not in _BUFFERS}
  return torch_state.params_from_layers(arrays, layers,
                                        "n_downsample, n_blocks, no_flow and num_d")


def params_from_torch(state_dict: Mapping[str, Any], *, n_downsample: int = 3, n_blocks: int = 9,
                      no_flow: bool = False) -> dict:
  """`CompositeGenerator` params from the authors' `CompositeGenerator.state_dict()` (their
  net_G0 checkpoints; values numpy-convertible, e.g. CPU tensors). Batch norm's running
  statistics are skipped (never used: module docstring)."""
  return _convert(state_dict, _generator_layers(n_downsample, n_blocks, no_flow))


def discriminator_params_from_torch(state_dict: Mapping[str, Any], *, num_d: int = 2,
                                    num_layers: int = 3) -> dict:
  """`ImageDiscriminator` / `TemporalDiscriminator` params from the authors'
  `MultiscaleDiscriminator(getIntermFeat=True).state_dict()` (net_D, net_D_T{s}): their
  scale{num_d - 1 - i}_layer{j} is our scale{i}'s conv{j} (index 0) and norm{j} (index 1)."""
  layers = []
  for i in range(num_d):
    theirs = f"scale{num_d - 1 - i}"
    for j in range(num_layers + 2):
      layers.append((f"{theirs}_layer{j}.0", (f"scale{i}", f"conv{j}"), "conv"))
      if 0 < j <= num_layers:
        layers.append((f"{theirs}_layer{j}.1", (f"scale{i}", f"norm{j}"), "norm"))
  return _convert(state_dict, layers)
