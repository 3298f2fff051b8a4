"""Long sequences: one identity performing a scripted series of actions, streamed in chunks.

Poses for the whole script are computed up front (a few KB per frame); images are rendered chunk
by chunk, so memory does not grow with the sequence length. Each chunk renders one extra frame on
each side so flows across chunk boundaries are exact; only the very first frame has
flow_bwd = 0 and the very last flow_fwd = 0. Consecutive actions are joined by easing from the
last pose of one action to the next over `transition_frames` frames; the heading accumulated by
turning actions carries over.
"""
from typing import Iterator, Sequence

import numpy as np

from psrjax.data.synthetic import actions, appearance, cameras as cams, motion, renderer, room
from psrjax.data.synthetic.clip import CLIP_FPS, check_positive_int
from psrjax.data.synthetic.rotations import matrix_to_rotvec, rotvec_to_matrix


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


def render_sequence(identity: int, script: Sequence[tuple], *, cameras: cams.Cameras | None = None,
                    num_views: int = 3, resolution: int = 128, chunk_frames: int = 16,
                    fps: float = CLIP_FPS, seed: int = 0) -> Iterator[dict]:
  """Yield consecutive chunks (render_clip keys plus `frame_index` [T]) of a scripted sequence.

  cameras: explicit calibrated cameras (their image size is used), else the undisturbed default
  rig with `num_views` views at `resolution`. The room is drawn from `seed`.
  """
  check_positive_int("identity", identity, 0)
  chunk_frames = check_positive_int("chunk_frames", chunk_frames)
  person = appearance.make_identity(int(identity))
  mot = script_motion(person.shape, script, fps=fps, seed=seed)
  if cameras is None:
    resolution = check_positive_int("resolution", resolution)
    cameras = cams.camera_ring(cams.default_yaws(check_positive_int("num_views", num_views)),
                               height=resolution, width=resolution, fov_y_deg=2 * np.rad2deg(np.arctan(1.08 / 3.0)))
  scene = room.sample_room(np.random.default_rng([0x500, int(seed)]))
  centres, dirs = renderer.pixel_rays(cameras.K, cameras.R, cameras.t, cameras.height, cameras.width)
  background = room.render_room(scene, centres, dirs).reshape(
      cameras.num_views, cameras.height, cameras.width, 3)
  background_depth = room.room_depth(scene, centres, dirs).reshape(
      cameras.num_views, cameras.height, cameras.width)
  total = mot.root_pos.shape[0]
  for start in range(0, total, chunk_frames):
    stop = min(start + chunk_frames, total)
    lo, hi = max(start - 1, 0), min(stop + 1, total)
    part = motion.Motion(mot.local_rot[lo:hi], mot.root_pos[lo:hi])
    out = renderer.render(person.shape, person.textures, part, cameras, background=background,
                          light=scene.light)
    keep = slice(start - lo, start - lo + stop - start)
    for key in ("rgb", "depth", "mask", "face", "part", "uv", "keypoints", "flow_fwd", "flow_bwd"):
      out[key] = out[key][:, keep]
    out["background_depth"] = background_depth
    out["frame_index"] = np.arange(start, stop, dtype=np.int32)
    out["identity"] = np.int32(identity)
    yield out
