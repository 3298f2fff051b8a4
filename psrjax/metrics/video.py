"""Fréchet Video Distance (Unterthiner et al. 2019) on psrjax's Kinetics-400 I3D.

Protocol of the reference implementation (google-research/frechet_video_distance): every frame
is resized to 224x224 with TF1's `resize_bilinear` (align_corners=False, no half-pixel
centres), the clip (16 frames in the paper) goes through I3D in [-1, 1], and the 400 Kinetics
logits (averaged over time) are the features. FVD is the Fréchet distance between the
Gaussians fitted to real and generated clips' features (`distribution.FeatureStats`).
"""
from __future__ import annotations

from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from psrjax.metrics import distribution

FVD_RESOLUTION = 224
FVD_FRAMES = 16


def _legacy_axis(n_in: int, n_out: int):
  """Source indices and weights of TF1 resize_bilinear along one axis (x_in = x_out * n_in / n_out)."""
  x = np.arange(n_out) * (n_in / n_out)
  lo = np.floor(x).astype(np.int32)
  hi = np.minimum(lo + 1, n_in - 1)
  return lo, hi, (x - lo).astype(np.float32)


def resize_bilinear_legacy(frames: jax.Array, size: tuple[int, int]) -> jax.Array:
  """TF1 `tf.image.resize_bilinear(frames, size)` for frames [..., H, W, C] (no antialiasing)."""
  h, w = frames.shape[-3:-1]
  lo, hi, f = _legacy_axis(h, size[0])
  frames = frames[..., lo, :, :] * (1 - f)[:, None, None] + frames[..., hi, :, :] * f[:, None, None]
  lo, hi, f = _legacy_axis(w, size[1])
  return frames[..., lo, :] * (1 - f)[:, None] + frames[..., hi, :] * f[:, None]


def fvd_features(i3d_apply: Callable[[jax.Array], Mapping], videos: jax.Array, *,
                 resolution: int = FVD_RESOLUTION) -> jax.Array:
  """I3D logits [B, 400] of videos [B, T, H, W, 3] in [-1, 1] after the FVD resize.

  i3d_apply: e.g. `functools.partial(module.apply, variables)` from `pretrained.load("i3d")`.
  The paper's protocol is T = 16 frames at resolution 224; other values are not comparable
  with published FVDs.
  """
  if videos.ndim != 5 or videos.shape[-1] != 3:
    raise ValueError(f"fvd_features: expected videos [B, T, H, W, 3], got shape {videos.shape}")
  resized = resize_bilinear_legacy(jnp.asarray(videos, jnp.float32), (resolution, resolution))
  return i3d_apply(resized)["Logits"]


def fvd(real: distribution.FeatureStats, generated: distribution.FeatureStats) -> float:
  """FVD from accumulated I3D-logit statistics of real and generated clips."""
  return distribution.stats_frechet_distance(real, generated)


def pooled_i3d_features(i3d_apply: Callable[[jax.Array], Mapping], videos: jax.Array) -> jax.Array:
  """Mixed_5c averaged over time and space, [B, 1024]: the I3D features of VFID and Act-Recog-L1.

  VFID (Wang et al. 2018, used by the multi-frame content integration paper) fits its Gaussians
  to these clip features; no resize is applied (feed clips at the evaluation resolution).
  """
  if videos.ndim != 5 or videos.shape[-1] != 3:
    raise ValueError(f"pooled_i3d_features: expected videos [B, T, H, W, 3], got shape {videos.shape}")
  return jnp.mean(i3d_apply(videos)["Mixed_5c"].astype(jnp.float32), axis=(1, 2, 3))


def action_feature_distance(i3d_apply: Callable[[jax.Array], Mapping], generated: jax.Array,
                            real: jax.Array) -> jax.Array:
  """INTERnet's Act-Recog-L1 per clip pair: mean |f(generated) - f(real)| of `pooled_i3d_features`.

  INTERnet does not name the layer; psrjax uses the pooled Mixed_5c features of the Kinetics
  I3D (the action representation right before the classifier). Returns [B].
  """
  if generated.shape != real.shape:
    raise ValueError(f"action_feature_distance: shapes differ: {generated.shape} vs {real.shape}")
  diff = pooled_i3d_features(i3d_apply, generated) - pooled_i3d_features(i3d_apply, real)
  return jnp.mean(jnp.abs(diff), axis=-1)
