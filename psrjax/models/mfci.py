"""MFCI networks (Cheng et al., "Multi-frame content integration with a spatio-temporal attention
mechanism for person video motion transfer").

`SingleFrameNet` is the single-frame baseline the paper builds on (Balakrishnan et al., CVPR
2018): the source image is segmented into a background layer and 10 body-part layers; each part's
features are moved by the part's similarity transform from the source pose to the target pose
(`pose_labels.part_transforms`); a foreground U-Net turns the moved parts and the target pose into
foreground features F_fg; a background U-Net inpaints the source background from the background
layer into features F_bg; 3x3 conv + tanh heads give O_fg, M_fg and O_bg, composed as
O = O_fg * M_fg + O_bg * (1 - M_fg). F_fg and F_bg, the features before the heads (the
second-to-last layer), are the paper's "preliminary features" (Sec. 3.1).

`MultiFrameNet` is MFCI's multi-frame foreground refinement (Sec. 3.2) and background completion
(Sec. 3.3): each branch fuses the K preliminary feature maps with a `Fusion` module and predicts
with its own 3x3 conv + tanh head; `compose` is Sec. 3.4.

Departures from the papers (documented where they are made): the segmentation logits are
biased by pose-derived part masks; the part layers carry the masked source RGB next to the
learned features; the U-Nets are smaller than Balakrishnan et al.'s; the mask head's tanh output
is mapped to [0, 1] by (x + 1) / 2; optionally (`residual_heads`) the multi-frame heads start from
the frozen single-frame heads.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from psrjax.geometry import pose_labels
from psrjax.models.mfci_layers import KERNEL_INIT, UNet
from psrjax.nn import Conv2D, ResBlock2D, SelfAttention
from psrjax.nn.policy import compute_dtype, remat_network

FUSIONS = ("avg", "max", "rb6", "sa3d_rb6", "rb6_sa2d")


def compose(fg: jax.Array, mask: jax.Array, bg: jax.Array) -> jax.Array:
  """Sec. 3.4: O = O_fg * M_fg + O_bg * (1 - M_fg)."""
  return fg * mask + bg * (1.0 - mask)


def conv3x3(features: int, *, impl: str = "auto", dtype: Any = None,
            kernel_init: Callable = KERNEL_INIT, name: str) -> Conv2D:
  """The networks' 3x3 convolution ("same" padding; the parameters of Flax's `nn.Conv`)."""
  return Conv2D(features, 3, padding="same", impl=impl, dtype=dtype, kernel_init=kernel_init,
                name=name)


def fg_outputs(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(O_fg = tanh of channels 0..2, M_fg = (tanh(channel 3) + 1) / 2) from the fg head logits.

  M_fg = sigmoid(2 l) for l = channel 3, which the networks also return as "mask_logit" (a
  loss on M_fg itself vanishes where the tanh saturates)."""
  return jnp.tanh(logits[..., :3]), (jnp.tanh(logits[..., 3:4]) + 1.0) * 0.5


class SingleFrameNet(nn.Module):
  """Balakrishnan et al.'s single-frame pose transfer; one (source, target pose) pair per image.

  Inputs are per image, NHWC: source RGB [N, H, W, 3], source / target pose labels
  [N, H, W, P] (`pose_labels.pose_labels`), source part masks [N, H, W, 10]
  (`pose_labels.part_masks`) and target->source part transforms [N, 10, 2, 3].
  """
  base: int = 32  # U-Net base channels
  depth: int = 4  # U-Net stride-2 levels
  features: int = 64  # C of the preliminary features F_fg and F_bg (paper: 64)
  part_features: int = 8  # learned channels per part layer (plus the masked RGB)
  prior_strength: float = 4.0  # weight of the pose part masks added to the segmentation logits
  conv_impl: str = "auto"  # Conv2D implementation (psrjax.nn.CONV_IMPLS)
  dtype: Any = None  # computation dtype; None: the inputs' (outputs in it, params float32)
  remat: str = "none"  # "none" | "blocks" | "full" (each U-Net whole; psrjax.nn.policy)

  def setup(self):
    unet = lambda out, name: UNet(self.base, self.depth, out, conv_impl=self.conv_impl,
                                  dtype=self.dtype, remat=self.remat, name=name)
    conv = lambda features, name: conv3x3(features, impl=self.conv_impl, dtype=self.dtype,
                                          name=name)
    self.seg_net = unet(self.base, "segment")
    self.seg_out = conv(pose_labels.NUM_PARTS + 1, "segment_out")
    self.encoder = conv(self.part_features, "encoder")
    self.fg_net = unet(self.features, "foreground")
    self.bg_net = unet(self.features, "background")
    self.fg_head = conv(4, "fg_head")
    self.bg_head = conv(3, "bg_head")

  def segment(self, src_rgb, src_pose, src_parts):
    """Soft layers [N, H, W, 11] (channel 0 background, then PARTS), a softmax over layers.

    Departure: the network's logits are biased by `prior_strength` times the pose part masks
    (and 1 - their maximum for the background), so the layers follow the pose from the start.
    """
    x = jnp.concatenate([src_rgb, src_pose], axis=-1).astype(compute_dtype(self.dtype, src_rgb))
    logits = self.seg_out(self.seg_net(x)).astype(jnp.float32)
    prior = jnp.concatenate([1.0 - jnp.max(src_parts, -1, keepdims=True), src_parts], -1)
    return jax.nn.softmax(logits + self.prior_strength * prior, axis=-1)

  def part_layers(self, src_rgb, src_pose, layers):
    """Per-part source layers [N, H, W, 10, 3 + part_features]: (RGB, features) x part mask."""
    x = jnp.concatenate([src_rgb, src_pose], -1).astype(compute_dtype(self.dtype, src_rgb))
    feats = nn.leaky_relu(self.encoder(x), 0.2)
    x = jnp.concatenate([src_rgb.astype(feats.dtype), feats], axis=-1)
    return x[..., None, :] * layers[..., 1:, None].astype(x.dtype)

  def foreground_features(self, parts, transforms, tgt_pose):
    """F_fg [N, H, W, C]: every part layer warped by its transform, with the target pose."""
    n, h, w, p, c = parts.shape
    flat = jnp.moveaxis(parts, 3, 1).reshape(n * p, h, w, c)
    moved = pose_labels.affine_warp(flat, transforms.reshape(n * p, 2, 3))
    moved = jnp.moveaxis(moved.reshape(n, p, h, w, c), 1, 3).reshape(n, h, w, p * c)
    return self.fg_net(jnp.concatenate([moved, tgt_pose.astype(moved.dtype)], axis=-1))

  def background_features(self, src_rgb, src_pose, layers):
    """F_bg [N, H, W, C]: the source background layer (RGB x mask, mask, pose) inpainted."""
    dtype = compute_dtype(self.dtype, src_rgb)
    bg = layers[..., :1].astype(dtype)
    x = jnp.concatenate([src_rgb.astype(dtype) * bg, bg, src_pose.astype(dtype)], axis=-1)
    return self.bg_net(x)

  def head_logits(self, f_fg, f_bg):
    """(fg logits [N, H, W, 4], bg logits [N, H, W, 3]) of the 3x3 prediction heads."""
    return self.fg_head(f_fg), self.bg_head(f_bg)

  def __call__(self, src_rgb, src_pose, src_parts, tgt_pose, transforms, *, train=False):
    """Dict with "out", "fg", "mask", "bg" [N, H, W, *] and the preliminary "f_fg", "f_bg"."""
    del train
    layers = self.segment(src_rgb, src_pose, src_parts)
    f_fg = self.foreground_features(self.part_layers(src_rgb, src_pose, layers), transforms,
                                    tgt_pose)
    f_bg = self.background_features(src_rgb, src_pose, layers)
    fg_logits, bg_logits = self.head_logits(f_fg, f_bg)
    fg, mask = fg_outputs(fg_logits)
    bg = jnp.tanh(bg_logits)
    return {"out": compose(fg, mask, bg), "fg": fg, "mask": mask, "mask_logit": fg_logits[..., 3:4],
            "bg": bg, "layers": layers,
            "f_fg": f_fg, "f_bg": f_bg}


class RB6(nn.Module):
  """MFCI's "RB6": six residual blocks over [F_1, p_1, ..., F_K, p_K, p_T] computing a K x H x W
  spatio-temporal attention map (softmax over K); fused = sum_k F_k * A_k (Sec. 3.2).

  The last convolution is zero-initialised, so training starts from the average of the K maps.
  """
  width: int = 64  # channels of the residual blocks
  blocks: int = 6  # residual blocks (paper: 6)
  conv_impl: str = "auto"  # Conv2D implementation (psrjax.nn.CONV_IMPLS)
  dtype: Any = None  # computation dtype; None: the features'
  remat: str = "none"  # "none" | "blocks" | "full" (psrjax.nn.policy)

  @nn.compact
  def __call__(self, feats, src_pose, tgt_pose, *, train=False):
    del train
    n, k, h, w, c = feats.shape
    feats = feats.astype(compute_dtype(self.dtype, feats))
    x = jnp.concatenate([feats, src_pose.astype(feats.dtype)], axis=-1)
    x = jnp.moveaxis(x, 1, 3).reshape(n, h, w, -1)
    x = jnp.concatenate([x, tgt_pose.astype(x.dtype)], axis=-1)
    logits = remat_network(functools.partial(RB6._logits, k=k), self.remat)(self, x)

    attention = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)     # [N, H, W, K]
    attention = jnp.moveaxis(attention, -1, 1)                          # [N, K, H, W]
    fused = jnp.sum(feats * attention[..., None].astype(feats.dtype), axis=1)
    return fused, attention

  def _logits(self, x, *, k: int):
    """The residual blocks over the stacked features and poses -> K attention logits."""
    x = nn.relu(conv3x3(self.width, impl=self.conv_impl, dtype=x.dtype, name="in")(x))
    for i in range(self.blocks):
      # MFCI's blocks: zero padding (pix2pixHD's block pads by reflection).
      x = ResBlock2D(pad_mode="zero", impl=self.conv_impl, dtype=self.dtype,
                     kernel_init=KERNEL_INIT, remat=self.remat, name=f"block{i}")(x)
    return conv3x3(k, impl=self.conv_impl, dtype=x.dtype, kernel_init=nn.initializers.zeros,
                   name="attention")(x)


class Fusion(nn.Module):
  """One of the paper's feature fusion modules over K preliminary feature maps.

  `__call__(feats [N, K, H, W, C], src_pose [N, K, H, W, P], tgt_pose [N, H, W, P])` returns
  (fused [N, H, W, C], attention [N, K, H, W] or None for avg / max). kinds:
  "avg" / "max" pool over K; "rb6" (`RB6`); "sa3d_rb6": SA3D, a self-attention over all
  K x H x W positions, then RB6; "rb6_sa2d": RB6, then SAGAN's spatial self-attention SA2D.
  """
  kind: str = "rb6_sa2d"  # one of FUSIONS
  width: int = 64  # RB6 channels
  blocks: int = 6  # RB6 residual blocks
  kv_pool: int = 2  # key/value max-pool of the self-attention (1 = exact SAGAN)
  conv_impl: str = "auto"  # Conv2D implementation of RB6 (psrjax.nn.CONV_IMPLS)
  dtype: Any = None  # computation dtype; None: the features'
  remat: str = "none"  # of RB6 (psrjax.nn.policy)

  @nn.compact
  def __call__(self, feats, src_pose, tgt_pose, *, train=False):
    del train
    if self.kind not in FUSIONS:
      raise ValueError(f"unknown fusion {self.kind!r}; allowed: {', '.join(FUSIONS)}")
    if feats.ndim != 5 or src_pose.shape[:2] != feats.shape[:2]:
      raise ValueError(f"fusion expects feats [N, K, H, W, C] and source poses [N, K, H, W, P]; "
                       f"got {feats.shape} and {src_pose.shape}")
    if self.kind == "avg":
      return jnp.mean(feats, axis=1), None
    if self.kind == "max":
      return jnp.max(feats, axis=1), None
    if self.kind == "sa3d_rb6":
      feats = SelfAttention(self.kv_pool, dtype=self.dtype, name="sa3d")(feats)
    rb6 = RB6(self.width, self.blocks, conv_impl=self.conv_impl, dtype=self.dtype,
              remat=self.remat, name="rb6")
    fused, attention = rb6(feats, src_pose, tgt_pose)
    if self.kind == "rb6_sa2d":
      fused = SelfAttention(self.kv_pool, dtype=self.dtype, name="sa2d")(fused)
    return fused, attention


class MultiFrameNet(nn.Module):
  """MFCI's multi-frame foreground refinement and background completion branches (Secs. 3.2-3.3).

  Each branch fuses its K preliminary feature maps (with the source poses and the target pose)
  and predicts through a 3x3 conv + tanh head: O_fg and M_fg from the foreground, O_bg from the
  background. `base_logits(fused_fg, fused_bg) -> (fg logits, bg logits)`, when given, is added
  to the heads' logits and the heads start at zero: the frozen single-frame heads applied to the
  fused features (`residual_heads`, a departure that starts training from the single-frame
  prediction of the averaged features instead of from random heads).
  """
  fusion: str = "rb6_sa2d"  # Fusion.kind
  width: int = 64  # RB6 channels
  blocks: int = 6  # RB6 residual blocks
  kv_pool: int = 2  # self-attention key/value pooling
  residual_heads: bool = False  # heads zero-initialised and added to `base_logits`
  conv_impl: str = "auto"  # Conv2D implementation (psrjax.nn.CONV_IMPLS)
  dtype: Any = None  # computation dtype; None: the features' (outputs in it, params float32)
  remat: str = "none"  # of the fusions' RB6 (psrjax.nn.policy)

  @nn.compact
  def __call__(self, f_fg, f_bg, src_pose, tgt_pose, *, bg_pose=None,
               base_logits: Callable | None = None, train=False):
    """Dict with "out", "fg", "mask", "bg" [N, H, W, *] and "attention_fg" / "attention_bg".

    `bg_pose`: poses of the frames behind F_bg when they are not the source frames
    (background substitution); default `src_pose`.
    """
    del train
    if self.residual_heads != (base_logits is not None):
      raise ValueError("MultiFrameNet: base_logits must be given exactly when residual_heads")
    fuse = lambda name: Fusion(self.fusion, self.width, self.blocks, self.kv_pool,
                               conv_impl=self.conv_impl, dtype=self.dtype, remat=self.remat,
                               name=name)
    fused_fg, att_fg = fuse("fg_fusion")(f_fg, src_pose, tgt_pose)
    bg_pose = src_pose if bg_pose is None else bg_pose
    fused_bg, att_bg = fuse("bg_fusion")(f_bg, bg_pose, tgt_pose)
    init = nn.initializers.zeros if self.residual_heads else KERNEL_INIT
    dtype = compute_dtype(self.dtype, f_fg)
    head = lambda features, name: conv3x3(features, impl=self.conv_impl, dtype=dtype,
                                          kernel_init=init, name=name)
    fg_logits = head(4, "fg_head")(fused_fg)
    bg_logits = head(3, "bg_head")(fused_bg)
    if base_logits is not None:
      base_fg, base_bg = base_logits(fused_fg, fused_bg)
      fg_logits, bg_logits = fg_logits + base_fg, bg_logits + base_bg
    fg, mask = fg_outputs(fg_logits)
    bg = jnp.tanh(bg_logits)
    out = {"out": compose(fg, mask, bg), "fg": fg, "mask": mask, "mask_logit": fg_logits[..., 3:4],
           "bg": bg}
    if att_fg is not None:
      out["attention_fg"], out["attention_bg"] = att_fg, att_bg
    return out
