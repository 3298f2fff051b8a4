"""Pose labels from COCO-18 keypoints: joint heatmaps, limb masks, body parts and their transforms.

These are the pose representations of Balakrishnan et al. (CVPR 2018, "Synthesizing images of
humans in unseen poses"), which MFCI (Cheng et al.) builds on:

- `heatmaps`: one Gaussian per joint, exp(-|p - k_j|^2 / (2 sigma^2)) times the joint's
  visibility (14 joints as in the papers, or all 18 of COCO); MFCI's pose p^t is these alone
  ("represented by a M-channel heatmap, where M = 14", Sec. 3);
- `limb_masks`: one soft mask per COCO limb (skeleton.LIMBS), exp(-d^2 / (2 w^2)) with d the
  distance of the pixel to the limb's segment, zero when an end point is not visible;
- `part_masks`: the 10 rigid body parts of Balakrishnan et al. (head, torso, upper/lower arms and
  legs), each the maximum of the limb-segment masks that make up the part;
- `part_transforms`: per part, the least-squares similarity transform (rotation, uniform scale,
  translation -- the 2x3 matrices of their `estimate_transform('similarity', ...)`) between the
  part's visible joints in two poses;
- `affine_warp`: bilinear backward warping of an image by a 2x3 matrix (zero outside).

Keypoints follow the batch contract: `[..., 18, 3]` (x, y pixels with pixel centres at integer
coordinates, visibility). All functions are jittable and broadcast over leading axes, except
`check_keypoints`, the host-side input check.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from psrjax.geometry.skeleton import COCO_NAMES, LIMBS
from psrjax.geometry._batch import lead_shape
from psrjax.geometry.sampler import bilinear_sample, pixel_grid
from psrjax.nn.policy import float32_geometry

NUM_KEYPOINTS = len(COCO_NAMES)
# The 14 joints of the papers' pose estimator: COCO-18 without eyes and ears.
JOINTS_14 = tuple(range(14))
JOINT_SETS = {14: JOINTS_14, 18: tuple(range(NUM_KEYPOINTS))}
# What `pose_labels` stacks: the joint heatmaps alone (the papers' pose) or followed by the limb
# masks (psrjax's richer option).
POSE_INPUTS = ("heatmaps", "heatmaps+limbs")

# Balakrishnan et al.'s 10 parts: name -> (joints fitted by the transform, limb segments of the mask).
PARTS = (
    ("head", (0, 1, 14, 15, 16, 17), ((0, 1), (0, 14), (0, 15), (14, 16), (15, 17))),
    ("torso", (2, 5, 8, 11), ((2, 5), (8, 11), (2, 8), (5, 11), (2, 11), (5, 8))),
    ("r_upper_arm", (2, 3), ((2, 3),)),
    ("r_lower_arm", (3, 4), ((3, 4),)),
    ("l_upper_arm", (5, 6), ((5, 6),)),
    ("l_lower_arm", (6, 7), ((6, 7),)),
    ("r_upper_leg", (8, 9), ((8, 9),)),
    ("r_lower_leg", (9, 10), ((9, 10),)),
    ("l_upper_leg", (11, 12), ((11, 12),)),
    ("l_lower_leg", (12, 13), ((12, 13),)),
)
NUM_PARTS = len(PARTS)
PART_NAMES = tuple(p[0] for p in PARTS)


def num_pose_channels(num_joints: int, inputs: str = "heatmaps+limbs") -> int:
  """Channels of `pose_labels`: the joints' heatmaps (then the limb masks)."""
  return len(_joint_set(num_joints)) + (len(LIMBS) if _limbs(inputs) else 0)


def _limbs(inputs: str) -> bool:
  if inputs not in POSE_INPUTS:
    raise ValueError(f"pose inputs must be one of {', '.join(POSE_INPUTS)}; got {inputs!r}")
  return inputs == "heatmaps+limbs"


def _joint_set(num_joints: int) -> tuple[int, ...]:
  if num_joints not in JOINT_SETS:
    raise ValueError(f"num_joints must be 14 or 18 (COCO-18 without / with eyes and ears), "
                     f"got {num_joints}")
  return JOINT_SETS[num_joints]


def heatmaps(keypoints, height: int, width: int, *, sigma: float,
             num_joints: int = 18) -> jax.Array:
  """Gaussian joint heatmaps `[..., H, W, J]` from keypoints `[..., 18, 3]` (zero if invisible)."""
  kp = jnp.asarray(keypoints, jnp.float32)[..., _joint_set(num_joints), :]
  grid = pixel_grid(height, width)                                     # [H, W, 2]
  d2 = jnp.sum(jnp.square(grid[..., None, :] - kp[..., None, None, :, :2]), axis=-1)
  return jnp.exp(-d2 / (2.0 * sigma ** 2)) * kp[..., None, None, :, 2]


def segment_distances(keypoints, segments, height: int, width: int):
  """(squared distances `[..., H, W, S]` of every pixel centre to each segment, visibility
  `[..., S]`: 1 when both end points are visible) of segments (pairs of keypoint indices)."""
  kp = jnp.asarray(keypoints, jnp.float32)
  a = kp[..., [s[0] for s in segments], :]                             # [..., S, 3]
  b = kp[..., [s[1] for s in segments], :]
  p = pixel_grid(height, width)[..., None, :]                          # [H, W, 1, 2]
  pa, pb = a[..., None, None, :, :2], b[..., None, None, :, :2]
  ab = pb - pa
  u = jnp.sum((p - pa) * ab, -1) / jnp.maximum(jnp.sum(jnp.square(ab), -1), 1e-6)
  closest = pa + jnp.clip(u, 0.0, 1.0)[..., None] * ab
  return jnp.sum(jnp.square(p - closest), axis=-1), a[..., 2] * b[..., 2]


def _segment_masks(keypoints, segments, height: int, width: int, width_px: float) -> jax.Array:
  """Soft masks `[..., H, W, S]` of segments (pairs of keypoint indices)."""
  d2, visible = segment_distances(keypoints, segments, height, width)
  return jnp.exp(-d2 / (2.0 * width_px ** 2)) * visible[..., None, None, :]


def limb_masks(keypoints, height: int, width: int, *, width_px: float) -> jax.Array:
  """Soft masks `[..., H, W, 17]` of the COCO limbs (skeleton.LIMBS)."""
  return _segment_masks(keypoints, LIMBS, height, width, width_px)


def pose_labels(keypoints, height: int, width: int, *, sigma: float, limb_width: float = 1.0,
                num_joints: int = 18, inputs: str = "heatmaps+limbs") -> jax.Array:
  """The pose tensor p of a frame: the J joint heatmaps `[..., H, W, J]` ("heatmaps"), or
  followed by the 17 limb masks `[..., H, W, J + 17]` ("heatmaps+limbs")."""
  maps = heatmaps(keypoints, height, width, sigma=sigma, num_joints=num_joints)
  if not _limbs(inputs):
    return maps
  return jnp.concatenate([maps, limb_masks(keypoints, height, width, width_px=limb_width)],
                         axis=-1)


def part_masks(keypoints, height: int, width: int, *, width_px: float) -> jax.Array:
  """Soft masks `[..., H, W, 10]` of the PARTS (max over each part's segment masks)."""
  masks = []
  for _, _, segments in PARTS:
    masks.append(jnp.max(_segment_masks(keypoints, segments, height, width, width_px), axis=-1))
  return jnp.stack(masks, axis=-1)


@float32_geometry
def estimate_similarity(src, dst, weights) -> jax.Array:
  """Weighted least-squares similarity `[..., 2, 3]` mapping points src -> dst (`[..., N, 2]`).

  Closed form (Umeyama 1991 without reflections) in the parametrisation x' = a x - b y + t_x,
  y' = b x + a y + t_y. With one usable point it is the translation between them, with none the
  identity.
  """
  w = jnp.asarray(weights, jnp.float32)
  total = jnp.sum(w, axis=-1, keepdims=True)                           # [..., 1]
  safe = jnp.maximum(total, 1e-6)
  mu_s = jnp.sum(src * w[..., None], axis=-2) / safe
  mu_d = jnp.sum(dst * w[..., None], axis=-2) / safe
  s, d = src - mu_s[..., None, :], dst - mu_d[..., None, :]
  norm = jnp.sum(w * jnp.sum(jnp.square(s), -1), -1)
  dot = jnp.sum(w * (s[..., 0] * d[..., 0] + s[..., 1] * d[..., 1]), -1)
  cross = jnp.sum(w * (s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0]), -1)
  ok = norm > 1e-6
  a = jnp.where(ok, dot / jnp.where(ok, norm, 1.0), 1.0)
  b = jnp.where(ok, cross / jnp.where(ok, norm, 1.0), 0.0)
  rot = jnp.stack([jnp.stack([a, -b], -1), jnp.stack([b, a], -1)], -2)   # [..., 2, 2]
  shift = mu_d - jnp.einsum("...ij,...j->...i", rot, mu_s)
  shift = jnp.where(total > 0, shift, 0.0)
  return jnp.concatenate([rot, shift[..., None]], axis=-1)


@float32_geometry
def apply_affine(matrix, points) -> jax.Array:
  """Points `[..., N, 2]` mapped by 2x3 matrices `[..., 2, 3]`."""
  return jnp.einsum("...ij,...nj->...ni", matrix[..., :2], points) + matrix[..., None, :, 2]


def part_transforms(from_keypoints, to_keypoints) -> jax.Array:
  """Per-part similarities `[..., 10, 2, 3]` mapping `from_keypoints` onto `to_keypoints`.

  Each part's transform is fitted to the part's joints visible in both poses. For the backward
  warp of source features into a target pose, pass (target, source): the result maps every
  target pixel to where the part's content lies in the source.
  """
  a = jnp.asarray(from_keypoints, jnp.float32)
  b = jnp.asarray(to_keypoints, jnp.float32)
  out = []
  for _, joints, _ in PARTS:
    idx = list(joints)
    w = a[..., idx, 2] * b[..., idx, 2]
    out.append(estimate_similarity(a[..., idx, :2], b[..., idx, :2], (w > 0).astype(jnp.float32)))
  return jnp.stack(out, axis=-3)


def affine_warp(image, matrix) -> jax.Array:
  """out(p) = image(M p) bilinearly, zero outside: image `[..., H, W, C]`, matrix `[..., 2, 3]`.

  The sampler is `psrjax.geometry.sampler.bilinear_sample` (zeros padding, computed in the
  image's dtype).
  """
  image, matrix = jnp.asarray(image), jnp.asarray(matrix)
  if image.ndim < 3 or matrix.shape != image.shape[:-3] + (2, 3):
    raise ValueError(f"affine_warp: expected image [..., H, W, C] and matrix [..., 2, 3] with the "
                     f"same leading axes; got {image.shape} and {matrix.shape}")
  h, w = image.shape[-3:-1]
  lead = lead_shape(image, 3, "image")
  grid = pixel_grid(h, w).reshape(-1, 2)
  positions = apply_affine(matrix.astype(jnp.float32), grid).reshape(lead + (h, w, 2))
  return bilinear_sample(image, positions, padding="zeros")


def check_keypoints(keypoints, height: int, width: int, *, name: str = "keypoints") -> None:
  """Host-side check: `[..., 18, 3]` with every visible keypoint inside the frame.

  Invisible keypoints (visibility 0) may lie anywhere; visible ones must be within half a pixel
  of the pixel centres 0..W-1 / 0..H-1.
  """
  kp = np.asarray(keypoints)
  if kp.ndim < 2 or kp.shape[-2:] != (NUM_KEYPOINTS, 3):
    raise ValueError(f"{name} must be [..., 18, 3] (COCO-18 x, y, visibility); got {kp.shape}")
  if not np.all(np.isfinite(kp)):
    raise ValueError(f"{name} contain NaN or Inf values")
  x, y, visible = kp[..., 0], kp[..., 1], kp[..., 2] > 0
  outside = visible & ((x < -0.5) | (x > width - 0.5) | (y < -0.5) | (y > height - 0.5))
  if outside.any():
    where = tuple(int(i) for i in np.argwhere(outside)[0])
    px = kp[where][:2]
    raise ValueError(f"{name}: {int(outside.sum())} visible keypoints lie outside the {width}x"
                     f"{height} frame (first: index {where} at x={px[0]:.1f}, y={px[1]:.1f}); "
                     "fix the coordinates (pixels) or set their visibility to 0")
