"""Long sequences: one identity performing a scripted series of actions, streamed in chunks.

Poses for the whole script are computed up front (a few KB per frame); images are rendered chunk
by chunk, so memory does not grow with the sequence length. Each chunk renders one extra frame on
each side so flows across chunk boundaries are exact; only the very first frame has
flow_bwd = 0 and the very last flow_fwd = 0. Consecutive actions are joined by easing from the
last pose of one action to the next over `transition_frames` frames; the heading accumulated by
turning actions carries over. `ScriptedSequence` renders any frame range of such a sequence (random
access, e.g. for a grain pipeline) with the same exact flows.
"""
from typing import Iterator, Sequence

import numpy as np

from psrjax.data.synthetic import actions, appearance, cameras as cams, motion, renderer, room
from psrjax.data.synthetic.clip import CLIP_FPS, check_positive_int
from psrjax.data.synthetic.rotations import matrix_to_rotvec, rotvec_to_matrix

# Vertical field of view of the default rig: a standing person fills most of the frame at 3 m.
DEFAULT_FOV_Y_DEG = float(2 * np.rad2deg(np.arctan(1.08 / 3.0)))
# Per-frame keys of a render (views first, frames second).
_FRAME_KEYS = ("rgb", "depth", "mask", "face", "part", "uv", "keypoints", "flow_fwd", "flow_bwd")


def _blend(prev_rot, prev_off, rot, off, n):
  """Ease the first n frames of (rot, off) from the held pose (prev_rot, prev_off)."""
  n = min(n, rot.shape[0])
  w = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 1) / (n + 1))
  rel = matrix_to_rotvec(np.swapaxes(prev_rot, -1, -2)[None] @ rot[:n])
  rot = rot.copy()
  off = off.copy()
  rot[:n] = prev_rot[None] @ rotvec_to_matrix(rel * w[:, None, None])
  off[:n] = prev_off[None] * (1 - w[:, None]) + off[:n] * w[:, None]
  return rot, off


def script_motion(shape, script: Sequence[tuple], *, fps: float = CLIP_FPS, transition_frames: int = 8,
                  seed: int = 0, heading_deg: float = 0.0, position=(0.0, 0.0)) -> motion.Motion:
  """Motion for a script of (action, num_frames) pairs; speeds/phases/amplitudes from `seed`."""
  if len(script) == 0:
    raise ValueError("script must hold at least one (action, num_frames) pair")
  rng = np.random.default_rng([0x5E9, int(seed)])
  rots, offs, yaws, heading = [], [], [], float(heading_deg)
  for action, frames in script:
    frames = check_positive_int("num_frames of a script entry", frames)
    t = np.arange(frames) / fps
    rot, off, yaw = actions.action_pose(action, t, speed=rng.uniform(0.8, 1.2),
                                        phase=rng.uniform(0, 2 * np.pi), amplitude=rng.uniform(0.8, 1.05))
    if rots:
      rot, off = _blend(rots[-1][-1], offs[-1][-1], rot, off, transition_frames)
    rots.append(rot)
    offs.append(off)
    yaws.append(yaw + heading)
    heading = float(yaws[-1][-1])
  return motion.place_pose(shape, np.concatenate(rots), np.concatenate(offs), np.concatenate(yaws),
                           position)


class ScriptedSequence:
  """One identity performing a script in one room and camera rig, with random access to frames.

  Poses for the whole script are computed on construction (a few KB per frame); `render` draws
  any frame range [start, stop) with flows as exact as a render of the whole sequence (one
  extra frame is posed on each side), `render_frames` draws arbitrary frames without flows and
  `keypoints` projects the keypoints of a range without rendering. Arguments as
  `render_sequence`.
  """

  def __init__(self, identity: int, script: Sequence[tuple], *,
               cameras: cams.Cameras | None = None, num_views: int = 3, resolution: int = 128,
               fps: float = CLIP_FPS, seed: int = 0):
    self.identity = check_positive_int("identity", identity, 0)
    self.person = appearance.make_identity(self.identity)
    self.motion = script_motion(self.person.shape, script, fps=fps, seed=seed)
    if cameras is None:
      resolution = check_positive_int("resolution", resolution)
      cameras = cams.camera_ring(cams.default_yaws(check_positive_int("num_views", num_views)),
                                 height=resolution, width=resolution, fov_y_deg=DEFAULT_FOV_Y_DEG)
    self.cameras = cameras
    self.scene = room.sample_room(np.random.default_rng([0x500, int(seed)]))
    centres, dirs = renderer.pixel_rays(cameras.K, cameras.R, cameras.t, cameras.height,
                                        cameras.width)
    image = (cameras.num_views, cameras.height, cameras.width)
    self.background = room.render_room(self.scene, centres, dirs).reshape(image + (3,))
    self.background_depth = room.room_depth(self.scene, centres, dirs).reshape(image)

  def __len__(self) -> int:
    return self.motion.root_pos.shape[0]

  def _check_range(self, start: int, stop: int) -> None:
    if not 0 <= start < stop <= len(self):
      raise ValueError(f"frame range [{start}, {stop}) must be non-empty and lie within the "
                       f"sequence's {len(self)} frames")

  def _render(self, frames: np.ndarray) -> dict:
    part = motion.Motion(self.motion.local_rot[frames], self.motion.root_pos[frames])
    return renderer.render(self.person.shape, self.person.textures, part, self.cameras,
                           background=self.background, light=self.scene.light)

  def _finish(self, out: dict, frames: np.ndarray) -> dict:
    out["background_depth"] = self.background_depth
    out["frame_index"] = np.asarray(frames, np.int32)
    out["identity"] = np.int32(self.identity)
    return out

  def render(self, start: int, stop: int) -> dict:
    """Frames [start, stop): render_clip's keys (views first) plus `frame_index` [T]; flows
    are exact across the range's ends (zero only at the sequence's own first / last frame)."""
    start, stop = int(start), int(stop)
    self._check_range(start, stop)
    lo, hi = max(start - 1, 0), min(stop + 1, len(self))
    out = self._render(np.arange(lo, hi))
    keep = slice(start - lo, stop - lo)
    for key in _FRAME_KEYS:
      out[key] = out[key][:, keep]
    return self._finish(out, np.arange(start, stop))

  def render_frames(self, frames) -> dict:
    """Arbitrary frames (any order, repeats allowed) without the flow keys, which need the
    neighbouring frames: every other key of `render`."""
    frames = np.asarray(frames, np.int64).reshape(-1)
    if frames.size == 0 or frames.min() < 0 or frames.max() >= len(self):
      raise ValueError(f"frames must be a non-empty list of indices in [0, {len(self)}), got "
                       f"{frames.tolist()[:8]}")
    out = self._render(frames)
    del out["flow_fwd"], out["flow_bwd"]
    return self._finish(out, frames)

  def keypoints(self, start: int = 0, stop: int | None = None, *,
                chunk_frames: int = 512) -> np.ndarray:
    """float32 [V, T, 18, 3] keypoints (x, y pixels; visibility) of frames [start, stop) without
    rendering: the values `render` returns."""
    start, stop = int(start), len(self) if stop is None else int(stop)
    self._check_range(start, stop)
    chunk_frames = check_positive_int("chunk_frames", chunk_frames)
    parts = []
    for lo in range(start, stop, chunk_frames):
      hi = min(lo + chunk_frames, stop)
      part = motion.Motion(self.motion.local_rot[lo:hi], self.motion.root_pos[lo:hi])
      posed = motion.pose_body(np.asarray(self.person.shape, np.float64), part)
      parts.append(renderer.camera_keypoints(posed, self.cameras))
    return np.concatenate(parts, axis=1)


def render_sequence(identity: int, script: Sequence[tuple], *, cameras: cams.Cameras | None = None,
                    num_views: int = 3, resolution: int = 128, chunk_frames: int = 16,
                    fps: float = CLIP_FPS, seed: int = 0) -> Iterator[dict]:
  """Yield consecutive chunks (render_clip keys plus `frame_index` [T]) of a scripted sequence.

  cameras: explicit calibrated cameras (their image size is used), else the undisturbed default
  rig with `num_views` views at `resolution`. The room is drawn from `seed`.
  `ScriptedSequence` gives random access to the same frames.
  """
  check_positive_int("identity", identity, 0)
  chunk_frames = check_positive_int("chunk_frames", chunk_frames)
  seq = ScriptedSequence(identity, script, cameras=cameras, num_views=num_views,
                         resolution=resolution, fps=fps, seed=seed)
  for start in range(0, len(seq), chunk_frames):
    yield seq.render(start, min(start + chunk_frames, len(seq)))
