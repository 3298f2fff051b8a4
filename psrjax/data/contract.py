"""The batch contract: what every data pipeline of psrjax yields, as code.

Every pipeline yields a dict of numpy arrays, channels last (NHWC). A video source's frames
(`psrjax.data.sources.base.VideoSource.frames`) and a sampler's example hold one example, without
a batch axis: frames first, e.g. rgb [T, H, W, 3] (a single frame drops T: [H, W, 3]). The
trainer's batches put the batch axis first: videos [B, T, H, W, C].

`FIELDS` is every key the data knows: its dtype, its values and the trailing axes every array
of it ends with. Pixel coordinates (keypoints, flows, face boxes, K) put pixel centres at integer
coordinates, x to the right, y down.

Prefixed keys follow their base key's rules (`PREFIXES`): "tgt_mask" is a mask, "src_rgb"
frames. Multi-view examples carry the views as "src_*" / "tgt_*" keys (PSR-Net's input and target
views) or a leading views axis (`psrjax.data.synthetic.render_clip`: [V, T, ...]); cameras travel
as K, R, t. Keys the table does not know are a system's own and pass.

`check_example(example, where=...)` checks every known key of an example: dtype, trailing axes
and value range (one min and one max per array), with a one-line ValueError naming the key, the
problem and where the example came from. The video sources call it on every read
(`psrjax.data.sources.base.checked`): the synthetic clips (rendered or pre-rendered) and the
synthetic person, prepared videos and multi-view datasets, on their `frames` and `keypoints`. It
reads each array twice (min, max): ~10 us per key, 0.3 ms for 8 frames at 256 x 256; measured on
a 2-core CPU, under 0.1 % of a synthetic example (its render) and about 1 % of a prepared
video's (its PNG decoding).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Mapping

import numpy as np

NUM_KEYPOINTS = 18   # COCO-18 (`psrjax.geometry.skeleton.COCO_NAMES`)
NUM_PARTS = 24       # DensePose-style body parts (`psrjax.data.synthetic.body.PART_NAMES`)


@dataclasses.dataclass(frozen=True)
class Field:
  """One key of the contract. `trailing`: the axes every array of the key ends with (None: no
  fixed channel axis, e.g. label maps [..., H, W]). `low` / `high`: the checked range of its
  values (of index `column` of the last axis only, where set); `finite`: NaN and Inf refused."""
  key: str
  dtype: type
  values: str
  trailing: tuple[int, ...] | None
  meaning: str
  low: float | None = None
  high: float | None = None
  column: int | None = None
  finite: bool = True


FIELDS: dict[str, Field] = {f.key: f for f in (
    Field("rgb", np.float32, "[-1, 1]", (3,), "frames (RGB)", -1.0, 1.0),
    Field("background", np.float32, "[-1, 1]", (3,),
          "the empty room (synthetic) or the static camera's background plate (prepared), "
          "repeated on every frame", -1.0, 1.0),
    Field("depth", np.float32, "metres >= 0, 0 on background", None,
          "camera z of the person ([..., H, W]; PSR-Net's d_j tgt_depth [..., H, W, 1], which "
          "with data.depth='scene' holds the room's depth on background)", 0.0),
    Field("background_depth", np.float32, "metres >= 0", None,
          "camera z of the empty room (synthetic), repeated on every frame", 0.0),
    Field("mask", np.float32, "{0, 1}", (1,), "person foreground", 0.0, 1.0),
    Field("face", np.int32, "-1 on background, else >= 0", None,
          "index of the body-mesh face seen at the pixel", -1),
    Field("part", np.int32, f"0 background, 1..{NUM_PARTS}", None,
          "DensePose-style body part", 0, NUM_PARTS),
    Field("uv", np.float32, "[0, 1], 0 on background", (2,),
          "surface coordinates within the part", 0.0, 1.0),
    Field("keypoints", np.float32, "x, y pixels; visibility / confidence in [0, 1]",
          (NUM_KEYPOINTS, 3),
          "COCO-18 in OpenPose's order, (x, y, v): v is the exact visibility {0, 1} on the "
          "synthetic world (x, y of hidden points kept) and a detector's confidence on real "
          "videos, where missing points are (0, 0, 0)", 0.0, 1.0, column=2),
    Field("flow_fwd", np.float32, "pixels", (2,),
          "motion (dx, dy) of frame t's pixel to frame t+1; 0 where undefined (a video's last "
          "frame; the synthetic world's static background)"),
    Field("flow_bwd", np.float32, "pixels", (2,),
          "motion (dx, dy) of frame t's pixel to frame t-1; 0 where undefined (a video's first "
          "frame; the synthetic world's static background)"),
    Field("face_box", np.float32, "pixels", (4,),
          "the face crop (x0, y0, x1, y1) of prepared videos (`psrjax.geometry.face_crop`)"),
    Field("frame_index", np.int32, ">= 0", None,
          "frame numbers over the source's videos in order (per-person examples)", 0),
    Field("points3d", np.float32, "metres, NaN = missing", (NUM_KEYPOINTS, 3),
          "COCO-18 keypoints in the world (multi-view records)", finite=False),
    Field("K", np.float32, "pixels", (3, 3),
          "camera intrinsics: pixel = K x_cam / z"),
    Field("R", np.float32, "rotation", (3, 3), "world -> camera rotation: x_cam = R x + t"),
    Field("t", np.float32, "metres", (3,), "world -> camera translation"),
)}

# Prefixes of keys that follow their base key's rules: multi-view pairs and MFCI's source and
# target frames (src_, tgt_), a driving video (driving_), CoCosNet's exemplar, D²G-Net's context
# frames, INTERnet / FOMM's initial frame and MFCI's background branch (bg_).
PREFIXES = ("src_", "tgt_", "driving_", "exemplar_", "context_", "init_", "bg_")

# Float ranges are checked with this slack (resizing may round a bound by an ulp).
_SLACK = 1e-5


@functools.lru_cache(maxsize=None)
def field_of(key: str) -> Field | None:
  """The field `key` follows (its own, or its base key's after a prefix); None: a system's own."""
  if key in FIELDS:
    return FIELDS[key]
  for prefix in PREFIXES:
    if key.startswith(prefix) and key[len(prefix):] in FIELDS:
      return FIELDS[key[len(prefix):]]
  return None


def _fail(key: str, where: str, field: Field, problem: str):
  shape = "" if field.trailing is None else f" [..., {', '.join(map(str, field.trailing))}]"
  raise ValueError(f"batch contract: {key!r} from {where} {problem}; {field.key} is "
                   f"{np.dtype(field.dtype)}{shape}, {field.values} (psrjax.data.contract)")


def _check(key: str, value, field: Field, where: str) -> None:
  a = np.asarray(value)
  if a.dtype != field.dtype:
    _fail(key, where, field, f"has dtype {a.dtype}")
  trailing = field.trailing
  if trailing is not None and a.shape[max(a.ndim - len(trailing), 0):] != trailing:
    _fail(key, where, field, f"has shape {a.shape}, which does not end with {trailing}")
  bounded = field.low is not None or field.high is not None
  if not a.size or not (bounded or (field.finite and a.dtype.kind == "f")):
    return
  lo, hi = float(a.min()), float(a.max())   # NaN propagates to both
  if field.finite and not (math.isfinite(lo) and math.isfinite(hi)):
    _fail(key, where, field, "holds NaN or Inf")
  if field.column is not None:
    column = a[..., field.column]
    lo, hi = float(column.min()), float(column.max())
  slack = _SLACK if a.dtype.kind == "f" else 0
  if ((field.low is not None and not lo >= field.low - slack)
      or (field.high is not None and not hi <= field.high + slack)):
    what = "values" if field.column is None else f"column {field.column} (of x, y, v)"
    _fail(key, where, field, f"has {what} in [{lo:.6g}, {hi:.6g}]")


def check_example(example: Mapping[str, object], *, where: str) -> None:
  """Checks every key of `example` the contract knows (`FIELDS`, prefixed keys by their base):
  dtype, trailing axes, value range; a one-line ValueError naming the key, the problem and
  `where` (e.g. the source and video) otherwise. Keys it does not know pass."""
  for key, value in example.items():
    field = field_of(key)
    if field is not None:
      _check(key, value, field, where)
