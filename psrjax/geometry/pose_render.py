"""Pose images drawn from COCO-18 keypoints: the multi-channel label map and OpenPose's stick figure.

- `pose_label_map`: the pose label input of pix2pixHD-style pose-to-video generators (Everybody
  Dance Now; the CoCosNet video pose transfer paper, Sec. III-A: "we fill each channel with pixels
  around the radius of corresponding keypoint and draw the lines between nearby coordinates"):
  18 channels, one hard disc of radius r around each visible joint (COCO-18 order), optionally
  followed by 17 channels, one per COCO limb (`skeleton.LIMBS`), each a line of width
  `limb_width` between two visible joints (the limb segments of `pose_labels`), values {0, 1}.
- `limb_distance_maps`: CoCosNet's 17 limb distance channels (its DeepFashion pose input is the
  stick figure followed by these, 20 channels: data/deepfashion_dataset.py L111-L169).
- `stick_figure`: OpenPose's colour rendering of a COCO-18 pose, as its Python demo draws it (CMU's
  Realtime Multi-Person Pose Estimation notebook, reused by pytorch-openpose and the systems built
  on them): on black, a filled circle of radius 4 in colour OPENPOSE_COLORS[j] at each visible
  joint j, then each of the 17 limbs, in LIMBS order, as a filled ellipse through its two joints
  (semi-axes half the limb's length and `stick_width` = 4) in colour OPENPOSE_COLORS[i], blended
  over the canvas at opacity 0.6 (cv2.addWeighted(canvas, 0.4, limb, 0.6)). Departures from the
  OpenCV drawing: shapes are exact ellipses (no integer rounding of centres, axes and angles, no
  polygon approximation; the semi-axes grow by half a pixel, as OpenCV's polygon fill covers the
  pixels its outline crosses) and colours are not rounded to uint8. On a 48 x 48 pose, 2% of the
  drawn pixels differ from OpenCV's, all at colour edges (tests/geometry/test_pose_render.py).

A pixel is inside a shape when its centre (integer coordinates, the batch contract's convention)
is: everything is drawn with distance fields, jittable and batched over leading axes, with no
OpenCV at train time. Keypoints are `[..., 18, 3]` (x, y pixels, visibility); check them on the
host with `pose_labels.check_keypoints`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from psrjax.geometry.skeleton import LIMBS
from psrjax.geometry.pose_labels import NUM_KEYPOINTS, segment_distances
from psrjax.geometry.sampler import pixel_grid
from psrjax.nn.policy import float32_geometry

# OpenPose's 18 drawing colours (RGB, uint8): joint j and limb i (of LIMBS) use entry j / i.
OPENPOSE_COLORS = np.array([
    [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0],
    [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255],
    [0, 0, 255], [85, 0, 255], [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85]],
    np.uint8)
LIMB_OPACITY = 0.6
# OpenCV's polygon fill also covers the pixels its outline passes through: the limb ellipses'
# semi-axes grow by half a pixel to match it (circles match cv2.circle without a margin).
_FILL_MARGIN = 0.5


def num_label_channels(with_limbs: bool = True) -> int:
  """Channels of `pose_label_map`: 18 joint discs (then 17 limb lines)."""
  return NUM_KEYPOINTS + (len(LIMBS) if with_limbs else 0)


def _keypoints(keypoints) -> jax.Array:
  kp = jnp.asarray(keypoints, jnp.float32)
  if kp.ndim < 2 or kp.shape[-2:] != (NUM_KEYPOINTS, 3):
    raise ValueError(f"keypoints must be [..., 18, 3] (COCO-18 x, y, visibility); got {kp.shape}")
  return kp


@float32_geometry
def joint_discs(keypoints, height: int, width: int, *, radius: float) -> jax.Array:
  """bool `[..., H, W, 18]`: pixel centres within `radius` of each visible joint."""
  kp = _keypoints(keypoints)
  grid = pixel_grid(height, width)[..., None, :]                       # [H, W, 1, 2]
  d2 = jnp.sum(jnp.square(grid - kp[..., None, None, :, :2]), axis=-1)
  return (d2 <= radius ** 2) & (kp[..., None, None, :, 2] > 0)


@float32_geometry
def limb_lines(keypoints, height: int, width: int, *, width_px: float) -> jax.Array:
  """bool `[..., H, W, 17]`: pixel centres within width_px / 2 of each limb with visible ends."""
  d2, visible = segment_distances(_keypoints(keypoints), LIMBS, height, width)
  return (d2 <= (0.5 * width_px) ** 2) & (visible[..., None, None, :] > 0)


def pose_label_map(keypoints, height: int, width: int, *, radius: float,
                   limb_width: float | None = None) -> jax.Array:
  """float32 `[..., H, W, 18]` joint discs, or `[..., H, W, 35]` followed by the limb lines when
  `limb_width` is given (see `num_label_channels`)."""
  discs = joint_discs(keypoints, height, width, radius=radius)
  if limb_width is None:
    return discs.astype(jnp.float32)
  lines = limb_lines(keypoints, height, width, width_px=limb_width)
  return jnp.concatenate([discs, lines], axis=-1).astype(jnp.float32)


@float32_geometry
def _limb_ellipses(keypoints: jax.Array, height: int, width: int, stick_width: float):
  """bool `[..., H, W, 17]`: pixel centres inside each limb's ellipse (visible ends, length > 0)."""
  a = keypoints[..., [l[0] for l in LIMBS], :]                         # [..., 17, 3]
  b = keypoints[..., [l[1] for l in LIMBS], :]
  delta = b[..., :2] - a[..., :2]
  length = jnp.sqrt(jnp.sum(jnp.square(delta), axis=-1))               # [..., 17]
  ok = (a[..., 2] > 0) & (b[..., 2] > 0) & (length > 1e-3)
  half = jnp.maximum(0.5 * length, 1e-3)[..., None, None, :] + _FILL_MARGIN
  u = delta / jnp.maximum(length, 1e-3)[..., None]                     # unit limb direction
  rel = pixel_grid(height, width)[..., None, :] - (0.5 * (a + b)[..., None, None, :, :2])
  along = rel[..., 0] * u[..., None, None, :, 0] + rel[..., 1] * u[..., None, None, :, 1]
  across = rel[..., 1] * u[..., None, None, :, 0] - rel[..., 0] * u[..., None, None, :, 1]
  inside = jnp.square(along / half) + jnp.square(across / (stick_width + _FILL_MARGIN)) <= 1.0
  return inside & ok[..., None, None, :]


def stick_figure(keypoints, height: int, width: int, *, joint_radius: float = 4.0,
                 stick_width: float = 4.0) -> jax.Array:
  """OpenPose's colour stick figure: float32 RGB `[..., H, W, 3]` in [0, 1] (colours / 255,
  black background); `2 * x - 1` gives the batch contract's [-1, 1] range."""
  kp = _keypoints(keypoints)
  colors = jnp.asarray(OPENPOSE_COLORS, jnp.float32) / 255.0
  discs = joint_discs(kp, height, width, radius=joint_radius)          # [..., H, W, 18]
  last = NUM_KEYPOINTS - 1 - jnp.argmax(discs[..., ::-1], axis=-1)     # later joints on top
  canvas = jnp.where(jnp.any(discs, -1, keepdims=True), colors[last], 0.0)
  ellipses = _limb_ellipses(kp, height, width, stick_width)
  for i in range(len(LIMBS)):
    blended = (1.0 - LIMB_OPACITY) * canvas + LIMB_OPACITY * colors[i]
    canvas = jnp.where(ellipses[..., i, None], blended, canvas)
  return canvas


# CoCosNet divides OpenCV's distance transform by 3 and stores it as uint8 (255 at most) before
# scaling to [0, 1]; its DeepFashion frames are 256 pixels high.
_DISTANCE_DIVISOR, _DISTANCE_CAP, _DISTANCE_FRAME = 3.0, 255.0, 256.0


@float32_geometry
def limb_distance_maps(keypoints, height: int, width: int, *, stick_width: float = 4.0) -> jax.Array:
  """float32 `[..., H, W, 17]` in [0, 1]: per COCO limb (LIMBS order), the distance from each
  pixel centre to the limb's drawn stroke, 0 on it, min(distance / 3, 255) / 255 off it, 1 where
  an end joint is missing (CoCosNet: `cv2.distanceTransform(255 - joint, DIST_L1, 3) / 3`, clipped
  to uint8, of each limb's filled ellipse). Departures: the stroke is the capsule of radius
  `stick_width` (pixels of this frame, as `stick_figure`'s) around the limb segment rather than
  the ellipse of semi-axes (length / 2,
  stick_width), the distance Euclidean rather than L1, and distances count in pixels of a
  256-pixel-high frame whatever `height`, so the channels hold the same values at every
  resolution."""
  d2, visible = segment_distances(_keypoints(keypoints), LIMBS, height, width)
  scale = _DISTANCE_FRAME / height
  dist = jnp.maximum(jnp.sqrt(d2) - stick_width, 0.0) * scale
  value = jnp.minimum(dist / _DISTANCE_DIVISOR, _DISTANCE_CAP) / _DISTANCE_CAP
  return jnp.where(visible[..., None, None, :] > 0, value, 1.0)
