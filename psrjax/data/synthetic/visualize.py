"""Colour codings for looking at synthetic-world modalities (uint8 RGB outputs)."""
import numpy as np
from PIL import Image, ImageDraw

from psrjax.geometry.skeleton import LIMBS

# 25 part colours (0 = background black), spread over hue with alternating brightness.
_h = np.arange(24) / 24.0
PART_COLORS = np.concatenate([[[0, 0, 0]], np.stack([
    np.clip(np.abs(((_h * 6 + k) % 6) - 3) - 1, 0, 1) for k in (0, 4, 2)], -1)
    * np.where(np.arange(24) % 2 == 0, 255, 170)[:, None]]).astype(np.uint8)
# OpenPose-like limb colours.
LIMB_COLORS = [tuple(int(c) for c in PART_COLORS[1 + (3 * i) % 24]) for i in range(len(LIMBS))]


def part_colors(part: np.ndarray) -> np.ndarray:
  return PART_COLORS[np.clip(part, 0, 24)]


def face_colors(face: np.ndarray) -> np.ndarray:
  """Stable pseudo-random colour per face id (black for -1)."""
  h = (face.astype(np.int64) * 2654435761) % (2**32)
  rgb = np.stack([(h >> 8) & 255, (h >> 16) & 255, (h >> 24) & 255], -1)
  rgb = 64 + (rgb * 191) // 255
  return np.where(face[..., None] >= 0, rgb, 0).astype(np.uint8)


def depth_colors(depth: np.ndarray) -> np.ndarray:
  """Near = bright yellow, far = dark blue, background black; range taken from the array."""
  fg = depth > 0
  if not fg.any():
    return np.zeros(depth.shape + (3,), np.uint8)
  lo, hi = depth[fg].min(), depth[fg].max()
  x = np.clip((hi - depth) / max(hi - lo, 1e-6), 0, 1)
  anchors = np.array([[40, 20, 110], [30, 140, 160], [120, 200, 80], [250, 230, 50]], np.float64)
  pos = x * (len(anchors) - 1)
  i = np.minimum(pos.astype(np.int64), len(anchors) - 2)
  w = (pos - i)[..., None]
  col = anchors[i] * (1 - w) + anchors[i + 1] * w
  return np.where(fg[..., None], col, 0).astype(np.uint8)


def _colorwheel() -> np.ndarray:
  """Middlebury flow colour wheel (Baker et al. 2011): 55 hues RY, YG, GC, CB, BM, MR."""
  segs = [(15, (255, 0, 0), (255, 255, 0)), (6, (255, 255, 0), (0, 255, 0)),
          (4, (0, 255, 0), (0, 255, 255)), (11, (0, 255, 255), (0, 0, 255)),
          (13, (0, 0, 255), (255, 0, 255)), (6, (255, 0, 255), (255, 0, 0))]
  rows = []
  for n, a, b in segs:
    w = np.arange(n)[:, None] / n
    rows.append(np.array(a) * (1 - w) + np.array(b) * w)
  return np.concatenate(rows) / 255.0


_WHEEL = _colorwheel()


def flow_colors(flow: np.ndarray, max_radius: float | None = None) -> np.ndarray:
  """Flow [..., 2] as colour (hue = direction, saturation = magnitude / max_radius)."""
  u, v = flow[..., 0], flow[..., 1]
  rad = np.sqrt(u * u + v * v)
  max_radius = max(float(rad.max()) if max_radius is None else max_radius, 1e-6)
  rad = np.clip(rad / max_radius, 0, 1)
  ang = np.arctan2(-v, -u) / np.pi
  k = (ang + 1) / 2 * (len(_WHEEL) - 1)
  k0 = np.floor(k).astype(np.int64)
  k1 = (k0 + 1) % len(_WHEEL)
  f = (k - k0)[..., None]
  col = _WHEEL[k0] * (1 - f) + _WHEEL[k1] * f
  col = 1 - rad[..., None] * (1 - col)
  return (255 * col).astype(np.uint8)


def draw_skeleton(image: np.ndarray, keypoints: np.ndarray, scale: int = 1) -> np.ndarray:
  """Overlay COCO-18 keypoints [18, 3] (visible ones only) on an RGB image (upscaled by scale)."""
  img = Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
  draw = ImageDraw.Draw(img)
  pts = (keypoints[:, :2] + 0.5) * scale - 0.5
  width = max(1, scale)
  for (a, b), col in zip(LIMBS, LIMB_COLORS):
    if keypoints[a, 2] > 0 and keypoints[b, 2] > 0:
      draw.line([tuple(pts[a]), tuple(pts[b])], fill=col, width=width)
  for (x, y), vis in zip(pts, keypoints[:, 2]):
    if vis > 0:
      r = max(1.0, 1.5 * scale)
      draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255))
  return np.asarray(img)
