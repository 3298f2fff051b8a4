"""Preview of synthetic clips a person can look at: animated grids of views x modalities.

Columns: rgb, depth, part colours, face-id hash colours, keypoint skeleton over rgb, forward
flow on the Middlebury colour wheel (normalised per clip). One row per view. Also a still
"variety" sheet: the first frame of every view of several seeds side by side.
"""
import os

import imageio.v2 as imageio
import numpy as np

from psrjax.data.synthetic import visualize as vis
from psrjax.data.synthetic.clip import check_positive_int, render_clip

MODALITIES = ("rgb", "depth", "part", "face", "keypoints", "flow_fwd")
FORMATS = ("gif", "mp4")


def _upscale(x: np.ndarray, s: int) -> np.ndarray:
  return x if s == 1 else np.repeat(np.repeat(x, s, axis=-3), s, axis=-2)


def preview_frames(clip: dict, *, scale: int = 1) -> np.ndarray:
  """uint8 [T, V*H*scale, 6*W*scale, 3] grid of every view (rows) and modality (columns)."""
  V, T = clip["rgb"].shape[:2]
  flow_max = float(np.linalg.norm(clip["flow_fwd"], axis=-1).max())
  frames = []
  for t in range(T):
    rows = []
    for v in range(V):
      tiles = [
          _upscale(clip["rgb"][v, t], scale), _upscale(vis.depth_colors(clip["depth"][v]), scale)[t],
          _upscale(vis.part_colors(clip["part"][v, t]), scale),
          _upscale(vis.face_colors(clip["face"][v, t]), scale),
          vis.draw_skeleton(clip["rgb"][v, t], clip["keypoints"][v, t], scale),
          _upscale(vis.flow_colors(clip["flow_fwd"][v, t], flow_max), scale)]
      rows.append(np.concatenate(tiles, axis=1))
    frames.append(np.concatenate(rows, axis=0))
  return np.stack(frames)


def write_animation(frames: np.ndarray, path: str, *, fps: float = 8.0) -> str:
  """Write frames [T, H, W, 3] as .gif or .mp4 (by the file suffix)."""
  ext = os.path.splitext(path)[1].lstrip(".").lower()
  if ext not in FORMATS:
    raise ValueError(f"preview format must be one of {', '.join(FORMATS)}, got {path!r}")
  if ext == "gif":
    imageio.mimsave(path, list(frames), duration=1.0 / fps, loop=0)
  else:
    h, w = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, (-h) % 16), (0, (-w) % 16), (0, 0)))
    imageio.mimsave(path, list(frames), fps=fps, macro_block_size=16)
  return path


def render_preview(out_dir: str, *, seed: int = 0, count: int = 1, num_views: int = 3,
                   num_frames: int = 16, resolution: int = 128, action=None, fmt: str = "gif",
                   fps: float = 8.0) -> list[str]:
  """Render `count` clips from `seed` on and write one animation each plus `variety.png`."""
  count = check_positive_int("count", count)
  if fmt not in FORMATS:
    raise ValueError(f"preview format must be one of {', '.join(FORMATS)}, got {fmt!r}")
  scale = max(1, 128 // check_positive_int("resolution", resolution))
  os.makedirs(out_dir, exist_ok=True)
  paths, sheet = [], []
  for s in range(seed, seed + count):
    clip = render_clip(s, num_views=num_views, num_frames=num_frames, resolution=resolution, action=action)
    path = os.path.join(out_dir, f"synthetic_seed{s}.{fmt}")
    paths.append(write_animation(preview_frames(clip, scale=scale), path, fps=fps))
    sheet.append(np.concatenate(list(_upscale(clip["rgb"][:, 0], scale)), axis=1))
  sheet_path = os.path.join(out_dir, "variety.png")
  imageio.imwrite(sheet_path, np.concatenate(sheet, axis=0))
  return paths + [sheet_path]
