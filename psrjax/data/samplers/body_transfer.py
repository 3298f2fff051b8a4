"""Liquid Warping GAN's body conditions of an example: the transform T and the UV-segment maps.

Examples of the animation task (`psrjax.data.samplers.same_video` for training, `first_frame`
for evaluation) read, besides their frames, the body surface maps of the source frame and of
every driving frame (SURFACE: "src_face", "src_part", "src_uv", "tgt_face", ...: the synthetic
world's exact maps, or a prepared multi-view dataset's rendered body fit). `with_conditions`
turns them, on the host (numpy, in the data workers), into what the networks read
(`psrjax.geometry.liquid_warp`):

  transform [L, H, W, 2] float32   per driving frame, the source position of each pixel's surface
                                   point (grid_sample's corner-aligned normalised (x, y); -2 off
                                   the body and where the source does not show the point's face);
  src_uvseg [1, H, W, 3] float32   the source's UV-segment map ((U, V, 0) on the body, (0, 0, 1)
  tgt_uvseg [L, H, W, 3] float32   off it) and the driving frames';

and drops the raw maps. Faces are matched within charts (`CHARTS`): "synthetic", the synthetic
body's (its primitive and DensePose part, `FACE_GROUP`), which a prepared body fit shares; "part",
each face its own chart, for maps whose "face" is the DensePose part
(`psrjax.data.sources.predicted_surface`).
"""
from __future__ import annotations

import numpy as np

from psrjax.data.synthetic import faces
from psrjax.geometry import liquid_warp

SURFACE = ("face", "part", "uv")
# The chart of every face of the synthetic body: faces of one primitive and part share one
# continuous (u, v) parameterisation (`liquid_warp.correspondence`).
FACE_GROUP = (faces.FACE_PRIMITIVE.astype(np.int64) * (liquid_warp.NUM_PARTS + 1)
              + faces.FACE_PART.astype(np.int64))
CONDITIONS = ("transform", "src_uvseg", "tgt_uvseg")
CHARTS = ("synthetic", "part")


def surface_keys() -> tuple[str, ...]:
  """The example keys `with_conditions` reads (and drops)."""
  return tuple(f"{p}_{m}" for p in ("src", "tgt") for m in SURFACE)


def conditions(src_face, src_part, src_uv, tgt_face, tgt_part, tgt_uv, *,
               charts: str = "synthetic") -> dict[str, np.ndarray]:
  """{"transform" [L, H, W, 2], "src_uvseg" [1, H, W, 3], "tgt_uvseg" [L, H, W, 3]} of one
  source frame's maps ([1, H, W] face and part, [1, H, W, 2] uv) and L driving frames';
  `charts`: what the faces are (module docstring)."""
  if charts not in CHARTS:
    raise ValueError(f"charts must be one of {', '.join(CHARTS)}; got {charts!r}")
  src_face, tgt_face = np.asarray(src_face), np.asarray(tgt_face)
  if src_face.ndim != 3 or src_face.shape[0] != 1 or tgt_face.ndim != 3:
    raise ValueError(f"the body conditions need one source frame's face map [1, H, W] and the "
                     f"driving frames' [L, H, W]; got {src_face.shape} and {tgt_face.shape}")
  length = tgt_face.shape[0]
  repeat = lambda x: np.repeat(np.asarray(x), length, axis=0)
  transform, _ = liquid_warp.transform(repeat(src_face).astype(np.int64), repeat(src_uv),
                                       tgt_face.astype(np.int64), np.asarray(tgt_uv),
                                       face_group=FACE_GROUP if charts == "synthetic" else None)
  return {"transform": transform,
          "src_uvseg": liquid_warp.uv_segment_map(src_face, src_uv, src_part),
          "tgt_uvseg": liquid_warp.uv_segment_map(tgt_face, tgt_uv, tgt_part)}


def with_conditions(example: dict, charts: str = "synthetic") -> dict:
  """`example` with its surface maps (`surface_keys`) replaced by the body conditions."""
  missing = [k for k in surface_keys() if k not in example]
  if missing:
    raise ValueError(f"Liquid Warping GAN's body conditions need the body surface maps of the "
                     f"source and the driving frames; the example lacks {', '.join(missing)} "
                     "(an image file has none: animate a prepared video's frame, with "
                     "--config.data.surface_from=WORKDIR of a D²G-Net label2d UV pre-training "
                     "where the dataset has no body fit)")
  out = {k: v for k, v in example.items() if k not in surface_keys()}
  out.update(conditions(*(example[f"src_{m}"] for m in SURFACE),
                        *(example[f"tgt_{m}"] for m in SURFACE), charts=charts))
  return out


def conditions_spec(resolution: int, num_targets: int) -> dict[str, tuple[tuple[int, ...], type]]:
  """{key: (shape, dtype)} of the conditions of an example with `num_targets` driving frames."""
  h = resolution
  return {"transform": ((num_targets, h, h, 2), np.float32),
          "src_uvseg": ((1, h, h, 3), np.float32),
          "tgt_uvseg": ((num_targets, h, h, 3), np.float32)}
