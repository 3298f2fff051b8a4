"""Global pose normalisation for cross-person driving (Everybody Dance Now, Chan et al. 2019).

EDN (Sec. 3.3 and its supplementary) maps the source (driving) poses into the target video so
that the source person stands where, and is as tall as, the target person would be at the same
distance from the camera. From each video's keypoints:

- a frame's position a: the mean y of its visible ankles (r_ankle, l_ankle);
- the far / close positions: the smallest / largest position over the video (s_far, s_close for
  the source, t_far, t_close for the target), taken as the `percentile`-th and
  (100 - `percentile`)-th percentiles so that a few bad detections do not set them (EDN instead
  clusters the positions around the median);
- the heights at those positions, h = a - the top visible head keypoint's y (nose, eyes, ears):
  the (100 - `percentile`)-th percentile of the heights of frames whose position lies within
  `window` x (close - far) of the far / close position (EDN takes the tallest such pose).

A source frame at position a, with alpha = (a - s_far) / (s_close - s_far) (0.5 when the source
never changes depth), gets EDN's scale and translation,
  s = t_far_h / s_far_h + alpha (t_close_h / s_close_h - t_far_h / s_far_h),
  a' = t_far + alpha (t_close - t_far)   (EDN's b = a' - a),
and every keypoint moves to y' = a' + s (y - a), x' = x_a + s (x - x_a) with x_a the frame's mean
ankle x: the ankle line maps onto the target's and the pose is scaled about the feet (EDN does not
say where x is anchored). Modes:
- "similarity": the above (EDN);
- "vertical": y only, x unchanged;
- "translate": y' = y + a' - a, no scale: the CoCosNet video pose transfer paper's Eq. 1,
  N = t_min + (L - s_min) / (s_max - s_min) (t_max - t_min), which with anchor="head" measures
  positions by the mean y of the visible head keypoints (nose, eyes, ears) instead of the ankles.
Positions beyond far / close extrapolate linearly (as EDN's formulas do). Visibility is kept; a
frame with no visible anchor keypoint is placed as at alpha = 0.5.
Fitting and applying are jittable; fit checks concrete inputs on the host.
"""
from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from psrjax.geometry.pose_labels import NUM_KEYPOINTS
from psrjax.nn.policy import float32_geometry

MODES = ("similarity", "vertical", "translate")
ANCHORS = {"ankles": (10, 13), "head": (0, 14, 15, 16, 17)}
_HEAD = ANCHORS["head"]


@flax.struct.dataclass
class PoseNormalization:
  """Fitted parameters (float32 scalars) of the source -> target pose normalisation."""
  src_far: jax.Array       # source far / close anchor positions (y, pixels)
  src_close: jax.Array
  tgt_far: jax.Array       # target far / close anchor positions
  tgt_close: jax.Array
  ratio_far: jax.Array     # target height / source height at the far / close positions
  ratio_close: jax.Array
  mode: str = flax.struct.field(pytree_node=False, default="similarity")
  anchor: str = flax.struct.field(pytree_node=False, default="ankles")


def _check_options(mode: str, anchor: str) -> None:
  if mode not in MODES:
    raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
  if anchor not in ANCHORS:
    raise ValueError(f"anchor must be one of {', '.join(ANCHORS)}; got {anchor!r}")


def _check_keypoints(kp, name: str, sequence: bool) -> jax.Array:
  kp = jnp.asarray(kp, jnp.float32)
  if kp.shape[-2:] != (NUM_KEYPOINTS, 3) or (sequence and kp.ndim != 3):
    want = "[N, 18, 3]" if sequence else "[..., 18, 3]"
    raise ValueError(f"{name} must be {want} (COCO-18 x, y, visibility); got {kp.shape}")
  return kp


def _mean_visible(kp: jax.Array, joints, axis: int) -> jax.Array:
  """Mean coordinate `axis` of the visible `joints` `[...]`, NaN when none is visible."""
  sel = kp[..., list(joints), :]
  vis = sel[..., 2] > 0
  total = jnp.sum(jnp.where(vis, sel[..., axis], 0.0), axis=-1)
  count = jnp.sum(vis, axis=-1)
  return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)


def _heights(kp: jax.Array) -> jax.Array:
  """Ankle y minus the top visible head keypoint's y `[N]` (NaN where either is missing)."""
  head = kp[..., list(_HEAD), :]
  top = jnp.min(jnp.where(head[..., 2] > 0, head[..., 1], jnp.inf), axis=-1)
  return jnp.where(jnp.isfinite(top), _mean_visible(kp, ANCHORS["ankles"], 1) - top, jnp.nan)


def _video_stats(kp: jax.Array, anchor: str, percentile: float, window: float):
  """(far, close, far height, close height) of one video `[N, 18, 3]`."""
  pos = _mean_visible(kp, ANCHORS[anchor], 1)
  far = jnp.nanpercentile(pos, percentile)
  close = jnp.nanpercentile(pos, 100.0 - percentile)
  reach = window * (close - far)
  heights = _heights(kp)

  def height_near(at):
    near = jnp.abs(pos - at) <= reach
    return jnp.nanpercentile(jnp.where(near, heights, jnp.nan), 100.0 - percentile)

  return far, close, height_near(far), height_near(close)


def _check_fit(params: PoseNormalization) -> None:
  """Host-side: every statistic is finite and the heights are positive (skipped under jit)."""
  if isinstance(params.src_far, jax.core.Tracer):
    return
  values = {k: float(getattr(params, k)) for k in
            ("src_far", "src_close", "tgt_far", "tgt_close", "ratio_far", "ratio_close")}
  bad = [k for k, v in values.items() if not jnp.isfinite(v) or (k.startswith("ratio") and v <= 0)]
  if bad:
    raise ValueError(f"fit_pose_normalization: could not measure {', '.join(bad)}; each video "
                     f"needs frames with visible {params.anchor} keypoints and, unless "
                     "mode='translate', frames with both ankles and head keypoints visible")


@float32_geometry
def fit_pose_normalization(source, target, *, mode: str = "similarity", anchor: str = "ankles",
                           percentile: float = 5.0, window: float = 0.1) -> PoseNormalization:
  """Fits the normalisation of the module docstring.

  Args:
    source: `[N, 18, 3]` the driving video's keypoints (x, y pixels, visibility).
    target: `[M, 18, 3]` the target video's keypoints.
    mode: "similarity" (EDN), "vertical" or "translate" (CoCosNet's Eq. 1).
    anchor: "ankles" (EDN) or "head" (CoCosNet) keypoints give a frame's position.
    percentile: the far / close positions are the percentile-th / (100 - percentile)-th ones.
    window: heights come from frames within window x (close - far) of far / close.
  """
  _check_options(mode, anchor)
  if not 0.0 <= percentile < 50.0 or window < 0.0:
    raise ValueError(f"need 0 <= percentile < 50 and window >= 0; got {percentile}, {window}")
  src = _check_keypoints(source, "source", sequence=True)
  tgt = _check_keypoints(target, "target", sequence=True)
  s_far, s_close, s_far_h, s_close_h = _video_stats(src, anchor, percentile, window)
  t_far, t_close, t_far_h, t_close_h = _video_stats(tgt, anchor, percentile, window)
  one = jnp.ones((), jnp.float32)
  ratio_far = one if mode == "translate" else t_far_h / s_far_h
  ratio_close = one if mode == "translate" else t_close_h / s_close_h
  params = PoseNormalization(s_far, s_close, t_far, t_close, ratio_far, ratio_close, mode, anchor)
  _check_fit(params)
  return params


@float32_geometry
def apply_pose_normalization(params: PoseNormalization, keypoints) -> jax.Array:
  """Source keypoints `[..., 18, 3]` moved into the target video (visibility kept)."""
  kp = _check_keypoints(keypoints, "keypoints", sequence=False)
  pos = _mean_visible(kp, ANCHORS[params.anchor], 1)
  span = params.src_close - params.src_far
  moves = jnp.abs(span) > 1e-6
  alpha = jnp.where(moves, (pos - params.src_far) / jnp.where(moves, span, 1.0), 0.5)
  alpha = jnp.where(jnp.isnan(pos), 0.5, alpha)[..., None]
  pos = jnp.where(jnp.isnan(pos), params.src_far + 0.5 * span, pos)[..., None]
  new_pos = params.tgt_far + alpha * (params.tgt_close - params.tgt_far)
  scale = params.ratio_far + alpha * (params.ratio_close - params.ratio_far)
  y = new_pos + scale * (kp[..., 1] - pos)
  x = kp[..., 0]
  if params.mode == "similarity":
    x_anchor = _mean_visible(kp, ANCHORS[params.anchor], 0)
    x_anchor = jnp.where(jnp.isnan(x_anchor), _mean_visible(kp, range(NUM_KEYPOINTS), 0), x_anchor)
    x_anchor = jnp.where(jnp.isnan(x_anchor), 0.0, x_anchor)[..., None]
    x = x_anchor + scale * (x - x_anchor)
  return jnp.stack([x, y, kp[..., 2]], axis=-1)
