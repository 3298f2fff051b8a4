"""Face boxes from the head keypoints, and cropping a box out of a frame and pasting it back.

Face refinement (Everybody Dance Now's face GAN, the CoCosNet video pose transfer paper's face
refinement network) crops the face, refines it, and puts it back. EDN crops a fixed-size box
centred on the nose; psrjax sizes the box from the head keypoints (COCO-18 nose, neck, eyes, ears)
so that it follows the person's scale:

- centre c: the centre of the bounding box of the visible face keypoints (nose, eyes, ears), or
  the neck when none of them is visible;
- side: 2 x margin x the largest Chebyshev distance max(|x - c_x|, |y - c_y|) from c to a visible
  head keypoint (the face keypoints and the neck, which lies below the chin), at least
  `min_size`. The box is square and, for margin >= 1, contains every visible head keypoint;
- `size=S` gives EDN's rule instead: side S centred on the nose (on c when the nose is hidden).

Boxes are `[..., 4]` (x0, y0, x1, y1) in the batch contract's pixel coordinates (pixel centres at
integers: the whole W x H frame is (-0.5, -0.5, W - 0.5, H - 0.5)). `crop_box` resamples a box to
S_h x S_w pixels, output pixel (i, j) reading the frame at (x0 + (j + 0.5) (x1 - x0) / S_w,
y0 + (i + 0.5) (y1 - y0) / S_h), the half-pixel convention of bilinear resizing (a whole-frame
box gives torch's interpolate with align_corners=False); `paste_box` inverts that map and
composites the crop into the frame with `box_mask`.
Bilinear sampling is `psrjax.geometry.sampler`. All functions are jittable and batched over
leading axes (keypoints, boxes, images share them); check keypoints on the host with
`pose_labels.check_keypoints`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from psrjax.geometry.pose_labels import NUM_KEYPOINTS
from psrjax.geometry.sampler import bilinear_sample, check_padding, pixel_grid
from psrjax.nn.policy import float32_geometry

FACE_KEYPOINTS = (0, 14, 15, 16, 17)     # nose, r_eye, l_eye, r_ear, l_ear
HEAD_KEYPOINTS = (0, 1, 14, 15, 16, 17)  # the face keypoints and the neck
_NOSE, _NECK = 0, 1


def _keypoints(keypoints) -> jax.Array:
  kp = jnp.asarray(keypoints, jnp.float32)
  if kp.ndim < 2 or kp.shape[-2:] != (NUM_KEYPOINTS, 3):
    raise ValueError(f"keypoints must be [..., 18, 3] (COCO-18 x, y, visibility); got {kp.shape}")
  return kp


def has_head(keypoints) -> jax.Array:
  """bool `[...]`: some head keypoint is visible (otherwise the face box is meaningless)."""
  return jnp.any(_keypoints(keypoints)[..., list(HEAD_KEYPOINTS), 2] > 0, axis=-1)


@float32_geometry
def face_boxes(keypoints, *, margin: float = 1.2, min_size: float = 8.0,
               size: float | None = None) -> jax.Array:
  """Square face boxes `[..., 4]` (x0, y0, x1, y1) from keypoints `[..., 18, 3]` (module rule)."""
  kp = _keypoints(keypoints)
  face = kp[..., list(FACE_KEYPOINTS), :]
  seen = face[..., 2:] > 0
  lo = jnp.min(jnp.where(seen, face[..., :2], jnp.inf), axis=-2)
  hi = jnp.max(jnp.where(seen, face[..., :2], -jnp.inf), axis=-2)
  centre = jnp.where(jnp.any(seen, axis=-2), 0.5 * (lo + hi), kp[..., _NECK, :2])
  if size is not None:
    nose = kp[..., _NOSE, :]
    centre = jnp.where(nose[..., 2:] > 0, nose[..., :2], centre)
    half = jnp.full(centre.shape[:-1], 0.5 * size, jnp.float32)
  else:
    head = kp[..., list(HEAD_KEYPOINTS), :]
    offset = jnp.max(jnp.abs(head[..., :2] - centre[..., None, :]), axis=-1)
    reach = jnp.max(jnp.where(head[..., 2] > 0, offset, 0.0), axis=-1)
    half = jnp.maximum(margin * reach, 0.5 * min_size)
  return jnp.concatenate([centre - half[..., None], centre + half[..., None]], axis=-1)


def _pair(size) -> tuple[int, int]:
  pair = (size, size) if isinstance(size, int) else tuple(size)
  if len(pair) != 2 or min(pair) < 1:
    raise ValueError(f"size must be a positive int or (height, width); got {size!r}")
  return int(pair[0]), int(pair[1])


def _check_boxes(boxes, lead: tuple[int, ...], name: str) -> jax.Array:
  boxes = jnp.asarray(boxes, jnp.float32)
  if boxes.shape != lead + (4,):
    raise ValueError(f"{name}: boxes must be [..., 4] (x0, y0, x1, y1) with the image's leading "
                     f"axes {lead}; got {boxes.shape}")
  return boxes


@float32_geometry
def _crop_positions(boxes: jax.Array, height: int, width: int) -> jax.Array:
  """Frame positions `[..., S_h, S_w, 2]` of the crop's pixel centres."""
  grid = pixel_grid(height, width) + 0.5                                 # [S_h, S_w, 2]
  start, stop = boxes[..., None, None, :2], boxes[..., None, None, 2:]
  return start + grid * (stop - start) / jnp.array([width, height], jnp.float32)


def crop_box(image, boxes, size, *, padding: str = "zeros") -> jax.Array:
  """Crops `[..., S_h, S_w, C]` of boxes `[..., 4]` from image `[..., H, W, C]` (bilinear).

  size: S or (S_h, S_w). Outside the image: `padding` ("zeros" or "border", see the sampler).
  """
  check_padding(padding)
  image = jnp.asarray(image)
  if image.ndim < 3:
    raise ValueError(f"crop_box: image must be [..., H, W, C]; got {image.shape}")
  boxes = _check_boxes(boxes, image.shape[:-3], "crop_box")
  return bilinear_sample(image, _crop_positions(boxes, *_pair(size)), padding=padding)


@float32_geometry
def box_mask(boxes, height: int, width: int, *, feather: float = 0.0) -> jax.Array:
  """float32 `[..., H, W]`: 1 inside boxes `[..., 4]` (pixel centre within the box), 0 outside;
  with feather = f > 0 it rises linearly from 0 at the box edge to 1 at f pixels inside."""
  boxes = jnp.asarray(boxes, jnp.float32)[..., None, None, :]
  p = pixel_grid(height, width)
  inside = jnp.minimum(jnp.min(p - boxes[..., :2], -1), jnp.min(boxes[..., 2:] - p, -1))
  if feather > 0:
    return jnp.clip(inside / feather, 0.0, 1.0)
  return (inside >= 0).astype(jnp.float32)


@float32_geometry
def _paste_positions(boxes: jax.Array, crop_h: int, crop_w: int, height: int, width: int):
  """Crop positions `[..., H, W, 2]` of the frame's pixel centres (inverse of _crop_positions)."""
  start, stop = boxes[..., None, None, :2], boxes[..., None, None, 2:]
  extent = jnp.maximum(stop - start, 1e-6)
  return (pixel_grid(height, width) - start) * jnp.array([crop_w, crop_h], jnp.float32) / extent - 0.5


def paste_box(canvas, crop, boxes, *, feather: float = 0.0) -> jax.Array:
  """canvas `[..., H, W, C]` with crop `[..., S_h, S_w, C]` pasted into boxes `[..., 4]`.

  The crop is resampled bilinearly by the inverse of `crop_box`'s map (border padding) and
  composited as m crop + (1 - m) canvas with m = `box_mask(boxes, H, W, feather=feather)`:
  pixels outside the box keep the canvas exactly. Pixels within half a crop pixel of the box
  edge repeat the crop's edge samples. Returns the canvas's floating dtype.
  """
  canvas, crop = jnp.asarray(canvas), jnp.asarray(crop)
  if canvas.ndim < 3 or crop.ndim != canvas.ndim or crop.shape[:-3] != canvas.shape[:-3] \
      or crop.shape[-1] != canvas.shape[-1]:
    raise ValueError(f"paste_box: canvas [..., H, W, C] and crop [..., S_h, S_w, C] must share "
                     f"leading axes and channels; got {canvas.shape} and {crop.shape}")
  boxes = _check_boxes(boxes, canvas.shape[:-3], "paste_box")
  (h, w), (ch, cw) = canvas.shape[-3:-1], crop.shape[-3:-1]
  moved = bilinear_sample(crop.astype(canvas.dtype), _paste_positions(boxes, ch, cw, h, w),
                          padding="border")
  mask = box_mask(boxes, h, w, feather=feather)[..., None].astype(moved.dtype)
  return mask * moved + (1 - mask) * canvas
