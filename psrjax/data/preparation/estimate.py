"""Estimated modalities of a real video before a static camera: background, masks, optical flow.

Real videos have no ground truth, so `psrjax prepare` estimates what the synthetic world renders
exactly, in the same batch contract: frames uint8 [T, H, W, 3]; keypoints float32 [T, 18, 3]
(COCO-18 x, y pixels with pixel centres at integers, confidence in [0, 1], order
`psrjax.geometry.skeleton.COCO_NAMES`); masks uint8 {0, 1} [T, H, W]; flows float32
[T, H, W, 2] (x, y pixels; flow_fwd[t] moves a pixel p of frame t to p + flow_fwd[t] in frame
t + 1, flow_bwd[t] to frame t - 1; flow_fwd[-1] = flow_bwd[0] = 0). A keypoint counts when its
confidence exceeds `min_confidence`.

- `person_region`: a generous region around the drawn skeleton: thick limbs, a head disc, a
  filled torso polygon and hands extended past the wrists, all scaled by the person's size
  (`person_scale`: the neck-to-mid-hip distance), so the same defaults work at any resolution.
- `background_median`: the static camera's background plate as a masked temporal median (the
  classic static-camera background model, e.g. Piccardi, "Background subtraction techniques: a
  review", SMC 2004): per pixel, the median over the frames where the pixel lies outside the
  person region. Pixels the person never leaves (`covered` False; most of a person who acts in
  place) are inpainted from the covered ones (Telea, "An image inpainting technique based on the
  fast marching method", JGT 2004) by default, or take the unmasked median (fill="median"),
  which holds the person's own colours and so hides them from differencing.
- `masks_from_background`: background differencing (max over channels of the absolute difference
  of Gaussian-blurred frame and plate, which tolerates compression noise) with a threshold,
  then keypoint-guided cleanup: keep the pixels inside the person region, open and close with a
  disc scaled by the person, keep the connected components that touch the skeleton's core (its
  thin limb lines), fill the holes that lie on the body (the skeleton drawn 0.3 x the person's
  size thick; not gaps such as between an arm and the head), and move the edge to the
  half-covered pixels (`_refine_edges`). Defaults measured in benchmarks/prepare_check.py.
- `flow_dis`: OpenCV's DIS optical flow (Kroeger et al., "Fast optical flow using dense inverse
  search", ECCV 2016) on grayscale frames, forward and backward.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from psrjax.data.sources import base as sources
from psrjax.geometry.skeleton import COCO_NAMES, LIMBS

_K = {name: i for i, name in enumerate(COCO_NAMES)}
_FACE = [_K[n] for n in ("nose", "r_eye", "l_eye", "r_ear", "l_ear")]
_TORSO = [_K[n] for n in ("neck", "r_shoulder", "r_hip", "l_hip", "l_shoulder")]
_HANDS = ((_K["r_elbow"], _K["r_wrist"]), (_K["l_elbow"], _K["l_wrist"]))
# The torso's outline, drawn with the limbs: it holds the torso together when the neck (or a
# shoulder) is hidden, as in side views, where the COCO limbs through the neck are missing.
_BODY_LINES = tuple(LIMBS) + tuple((_K[a], _K[b]) for a, b in (
    ("r_shoulder", "r_hip"), ("l_shoulder", "l_hip"), ("r_hip", "l_hip"),
    ("r_shoulder", "l_shoulder")))
_SHIFT = 4  # sub-pixel bits of OpenCV's drawing (coordinates x 16)
_DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def _frames(frames) -> np.ndarray:
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
    raise ValueError(f"frames must be uint8 [T, H, W, 3] with T >= 1; got {frames.dtype} "
                     f"{frames.shape}, convert with np.asarray(frames, np.uint8)")
  return frames


def _keypoints(keypoints, frames: int | None = None) -> np.ndarray:
  kp = np.asarray(keypoints, np.float32)
  if kp.ndim != 3 or kp.shape[1:] != (18, 3) or (frames is not None and len(kp) != frames):
    want = "[T, 18, 3]" if frames is None else f"[{frames}, 18, 3] (one per frame)"
    raise ValueError(f"keypoints must be {want} COCO-18 (x, y, confidence); got {kp.shape}")
  return kp


def person_scale(keypoints, *, min_confidence: float = 0.0) -> np.ndarray:
  """float32 [T]: the person's size in pixels per frame, the neck-to-mid-hip distance (the
  mean of the confident hips); without a neck or hips, 0.35 x the larger side of the confident
  keypoints' bounding box; 0 when fewer than two keypoints are confident."""
  kp = _keypoints(keypoints)
  ok = kp[..., 2] > min_confidence
  hips = kp[:, [_K["r_hip"], _K["l_hip"]]]
  hip_ok = ok[:, [_K["r_hip"], _K["l_hip"]]]
  n_hip = hip_ok.sum(-1)
  mid_hip = (hips[..., :2] * hip_ok[..., None]).sum(1) / np.maximum(n_hip, 1)[:, None]
  torso = np.linalg.norm(kp[:, _K["neck"], :2] - mid_hip, axis=-1)
  hi = np.max(np.where(ok[..., None], kp[..., :2], -np.inf), axis=1)
  lo = np.min(np.where(ok[..., None], kp[..., :2], np.inf), axis=1)
  with np.errstate(invalid="ignore"):
    box = 0.35 * np.nan_to_num(np.max(hi - lo, axis=-1), nan=0.0, posinf=0.0, neginf=0.0)
  use_torso = ok[:, _K["neck"]] & (n_hip > 0) & (torso > 0)
  scale = np.where(use_torso, torso, box)
  return np.where(ok.sum(-1) >= 2, scale, 0.0).astype(np.float32)


def _pt(xy) -> tuple[int, int]:
  return int(round(float(xy[0]) * (1 << _SHIFT))), int(round(float(xy[1]) * (1 << _SHIFT)))


def _draw_limbs(canvas, kp, ok, thickness: int) -> None:
  """Lines of `thickness` pixels along the limbs and the torso outline with two confident ends."""
  for a, b in _BODY_LINES:
    if ok[a] and ok[b]:
      cv2.line(canvas, _pt(kp[a]), _pt(kp[b]), 1, thickness, cv2.LINE_8, _SHIFT)


def _draw_region(canvas, kp, ok, scale: float, limb: float, head: float, hand: float) -> None:
  """One frame's person region (module docstring) drawn into canvas uint8 [H, W]."""
  thick = max(int(round(limb * scale)), 1)
  _draw_limbs(canvas, kp, ok, thick)
  for i in np.flatnonzero(ok):
    cv2.circle(canvas, _pt(kp[i]), int(round(thick / 2 * (1 << _SHIFT))), 1, -1, cv2.LINE_8, _SHIFT)
  torso = [i for i in _TORSO if ok[i]]
  if len(torso) >= 3:
    hull = cv2.convexHull(np.array([_pt(kp[i]) for i in torso], np.int32))
    cv2.fillConvexPoly(canvas, hull, 1, cv2.LINE_8, _SHIFT)
  face = [i for i in _FACE if ok[i]]
  if face:
    centre = kp[face, :2].mean(0)
    cv2.circle(canvas, _pt(centre), int(round(head * scale * (1 << _SHIFT))), 1, -1, cv2.LINE_8,
               _SHIFT)
  for elbow, wrist in _HANDS:
    if ok[elbow] and ok[wrist]:
      d = kp[wrist, :2] - kp[elbow, :2]
      tip = kp[wrist, :2] + d / max(float(np.linalg.norm(d)), 1e-6) * hand * scale
      cv2.line(canvas, _pt(kp[wrist]), _pt(tip), 1, thick, cv2.LINE_8, _SHIFT)


def person_region(keypoints, height: int, width: int, *, limb_width: float = 0.5,
                  head_radius: float = 0.5, hand_length: float = 0.4,
                  min_confidence: float = 0.0) -> np.ndarray:
  """bool [T, H, W]: a generous region around each frame's skeleton (module docstring).

  With s = `person_scale`: limbs are lines limb_width x s thick with discs of the same
  diameter on every confident keypoint, the head a disc of radius head_radius x s about the
  mean of the confident face keypoints, the torso the convex hull of neck, shoulders and hips,
  and each hand a thick line hand_length x s past the wrist along the forearm. Frames with
  fewer than two confident keypoints give an empty region.
  """
  kp = _keypoints(keypoints)
  ok = kp[..., 2] > min_confidence
  scale = person_scale(kp, min_confidence=min_confidence)
  out = np.zeros((len(kp), int(height), int(width)), np.uint8)
  for t in range(len(kp)):
    if scale[t] > 0:
      _draw_region(out[t], kp[t], ok[t], float(scale[t]), limb_width, head_radius, hand_length)
  return out.astype(bool)


def skeleton_core(keypoints, height: int, width: int, *, width_frac: float = 0.05,
                  min_confidence: float = 0.0) -> np.ndarray:
  """bool [T, H, W]: the skeleton's thin limb lines (width_frac x `person_scale`, at least one
  pixel), the seeds that mask components must touch."""
  kp = _keypoints(keypoints)
  ok = kp[..., 2] > min_confidence
  scale = person_scale(kp, min_confidence=min_confidence)
  out = np.zeros((len(kp), int(height), int(width)), np.uint8)
  for t in range(len(kp)):
    _draw_limbs(out[t], kp[t], ok[t], max(int(round(width_frac * scale[t])), 1))
  return out.astype(bool)


def _even_subsample(count: int, max_frames: int) -> np.ndarray:
  """At most max_frames indices spread evenly over range(count), first and last included."""
  if max_frames < 1:
    raise ValueError(f"max_frames must be a positive integer; got {max_frames}")
  return np.unique(sources.evenly_spaced(min(count, max_frames), count))


def _masked_median(values: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(median over axis 0 of values [N, H, W, C] where free [N, H, W], free count [H, W]);
  the median of an even count is the rounded mean of the two middle values."""
  v = np.where(free[..., None], values.astype(np.int16), np.int16(np.iinfo(np.int16).max))
  v.sort(axis=0)
  n = free.sum(0)
  lo = np.maximum(n - 1, 0) // 2
  hi = n // 2
  take = lambda i: np.take_along_axis(v, np.broadcast_to(i[None, ..., None], (1,) + v.shape[1:]), 0)[0]
  return (take(lo).astype(np.int32) + take(hi) + 1) // 2, n


def background_median(frames, person=None, *, max_frames: int = 64,
                      fill: str = "inpaint") -> tuple[np.ndarray, np.ndarray]:
  """(background uint8 [H, W, 3], covered bool [H, W]): the static camera's background plate.

  Per pixel, the median over the frames where `person` (bool [T, H, W], e.g. `person_region`
  or a mask; None: no frame excluded) is False; pixels the person covers in every frame are
  False in `covered` and, by `fill`, inpainted from the covered pixels (Telea, radius 2% of the
  larger side, at least 3 px) or given the unmasked median. At most `max_frames` frames,
  spread evenly over the video, enter the median (memory N x H x W x 3 int16).
  """
  frames = _frames(frames)
  if person is None:
    person = np.zeros(frames.shape[:3], bool)
  person = np.asarray(person, bool)
  if person.shape != frames.shape[:3]:
    raise ValueError(f"person must be bool {frames.shape[:3]} like the frames; got {person.shape}")
  idx = _even_subsample(len(frames), int(max_frames))
  values, free = frames[idx], ~person[idx]
  masked, count = _masked_median(values, free)
  covered = count > 0
  if fill not in ("inpaint", "median"):
    raise ValueError(f"fill must be 'inpaint' or 'median'; got {fill!r}")
  if covered.all():
    return masked.astype(np.uint8), covered
  if fill == "median" or not covered.any():
    plain = np.round(np.median(values, axis=0))
    return np.where(covered[..., None], masked, plain).astype(np.uint8), covered
  hole = (~covered).astype(np.uint8)
  radius = max(3, round(0.02 * max(hole.shape)))
  return cv2.inpaint(masked.astype(np.uint8), hole, radius, cv2.INPAINT_TELEA), covered


def _disc(radius: int) -> np.ndarray:
  return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def colour_distance(frames, background, *, blur_sigma: float = 0.5) -> np.ndarray:
  """float32 [T, H, W]: max over channels of |blurred frame - blurred background| (0..255)."""
  frames = _frames(frames)
  bg = _blur(np.asarray(background, np.uint8), blur_sigma)
  return np.stack([np.abs(_blur(f, blur_sigma) - bg).max(-1) for f in frames])


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
  image = image.astype(np.float32)
  return cv2.GaussianBlur(image, (0, 0), sigma) if sigma > 0 else image


def _clean(fg: np.ndarray, region: np.ndarray, core: np.ndarray, body: np.ndarray,
           radius: int) -> np.ndarray:
  """One frame's keypoint-guided cleanup (module docstring) of a raw foreground [H, W]."""
  m = (fg & region).astype(np.uint8)
  m = cv2.morphologyEx(m, cv2.MORPH_OPEN, _disc(radius))
  m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, _disc(radius))
  count, labels = cv2.connectedComponents(m, connectivity=8)
  keep = np.zeros(count, bool)
  keep[np.unique(labels[core & (m > 0)])] = True
  keep[0] = False
  mask = keep[labels] & region
  return mask | (ndimage.binary_fill_holes(mask) & body)


def _refine_edges(mask: np.ndarray, dist: np.ndarray, passes: int) -> np.ndarray:
  """Moves the mask's edge to where the person covers half a pixel: a pixel just outside joins
  when its distance reaches half the largest distance of its mask neighbours, a pixel on the
  inside edge leaves when its distance is below half that of its interior neighbours (a mixed
  pixel's distance is about its covered fraction x the contrast; compression halos and low
  contrast edges otherwise shift a fixed threshold's edge)."""
  m = mask.astype(bool)
  for _ in range(passes):
    interior = ndimage.binary_erosion(m)
    outside_c = ndimage.grey_dilation(np.where(m, dist, 0), size=(3, 3))
    inside_c = ndimage.grey_dilation(np.where(interior, dist, 0), size=(3, 3))
    join = ndimage.binary_dilation(m) & ~m & (dist >= 0.5 * outside_c)
    leave = m & ~interior & (inside_c > 0) & (dist < 0.5 * inside_c)
    m = (m | join) & ~leave
  return m


def masks_from_background(frames, background, keypoints, *, threshold: float = 14.0,
                          blur_sigma: float = 0.5, morph_radius: float = 0.04,
                          body_width: float = 0.3, edge_passes: int = 1,
                          covered=None, uncovered_threshold: float = 20.0,
                          min_confidence: float = 0.0, **region_kwargs) -> np.ndarray:
  """uint8 {0, 1} [T, H, W]: person masks by background differencing and keypoint cleanup.

  A pixel is foreground when `colour_distance` (blur_sigma pixels) to the plate exceeds
  `threshold` (0..255). Cleanup per frame: keep foreground inside `person_region`
  (region_kwargs pass on), open then close with a disc of radius morph_radius x
  `person_scale` (at least one pixel), keep the 8-connected components that touch
  `skeleton_core`, fill holes within the body (`person_region` with limb_width=body_width),
  then `edge_passes` passes of `_refine_edges`. Where the plate was inpainted (`covered` False,
  from `background_median`) it is a guess, and `uncovered_threshold` applies instead. Frames
  without a confident skeleton give empty masks.
  """
  frames = _frames(frames)
  kp = _keypoints(keypoints, len(frames))
  _, h, w, _ = frames.shape
  dist = colour_distance(frames, background, blur_sigma=blur_sigma)
  region = person_region(kp, h, w, min_confidence=min_confidence, **region_kwargs)
  core = skeleton_core(kp, h, w, min_confidence=min_confidence)
  body = person_region(kp, h, w, min_confidence=min_confidence, limb_width=body_width,
                       head_radius=0.7 * body_width, hand_length=0.0)
  scale = person_scale(kp, min_confidence=min_confidence)
  thr = threshold if covered is None else np.where(covered, threshold, uncovered_threshold)
  out = np.zeros(dist.shape, np.uint8)
  for t in range(len(frames)):
    radius = max(int(round(morph_radius * scale[t])), 1)
    mask = _clean(dist[t] > thr, region[t], core[t], body[t], radius)
    out[t] = _refine_edges(mask, dist[t], edge_passes) & region[t]
  return out


def flow_dis(frames, *, preset: str = "medium") -> tuple[np.ndarray, np.ndarray]:
  """(flow_fwd, flow_bwd) float32 [T, H, W, 2]: DIS optical flow between grayscale neighbours.

  flow_fwd[t] = DIS(frame t -> frame t + 1), flow_bwd[t] = DIS(frame t -> frame t - 1): OpenCV's
  flow maps a pixel p of its first image to p + flow in the second, the contract's convention;
  flow_fwd[-1] and flow_bwd[0] are 0. preset: "ultrafast", "fast" or "medium".
  """
  frames = _frames(frames)
  if preset not in _DIS_PRESETS:
    raise ValueError(f"preset must be one of {sorted(_DIS_PRESETS)}; got {preset!r}")
  dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
  gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
  fwd = np.zeros(frames.shape[:3] + (2,), np.float32)
  bwd = np.zeros_like(fwd)
  for t in range(len(frames) - 1):
    fwd[t] = dis.calc(gray[t], gray[t + 1], None)
    bwd[t + 1] = dis.calc(gray[t + 1], gray[t], None)
  return fwd, bwd
