"""Long scripted sequences stream chunk by chunk with exact flow across chunk boundaries."""
import inspect

import numpy as np
import pytest

import psrjax.data.synthetic as S
from psrjax.data.synthetic import motion, renderer, room, sequence

SCRIPT = (("wave", 14), ("turn_around", 12), ("squat", 10))


def test_stream_matches_one_shot_render():
  cams = S.camera_ring([-30.0, 40.0], height=20, width=24)
  gen = sequence.render_sequence(11, SCRIPT, cameras=cams, chunk_frames=16, seed=3)
  assert inspect.isgenerator(gen)
  chunks = list(gen)
  assert [len(c["frame_index"]) for c in chunks] == [16, 16, 4]
  np.testing.assert_array_equal(np.concatenate([c["frame_index"] for c in chunks]), np.arange(36))
  person = S.make_identity(11)
  mot = sequence.script_motion(person.shape, SCRIPT, seed=3)
  scene = room.sample_room(np.random.default_rng([0x500, 3]))
  full = renderer.render(person.shape, person.textures, mot, cams, background=chunks[0]["background"], light=scene.light)
  for key in ("rgb", "face", "depth", "keypoints", "flow_fwd", "flow_bwd"):
    joined = np.concatenate([c[key] for c in chunks], axis=1)
    np.testing.assert_allclose(joined, full[key], atol=1e-4, err_msg=key)
  assert np.abs(chunks[1]["flow_bwd"][:, 0]).max() > 0  # chunk boundary: real flow, not zeros
  assert (chunks[0]["flow_bwd"][:, 0] == 0).all() and (chunks[-1]["flow_fwd"][:, -1] == 0).all()


def test_transitions_are_smooth_and_heading_carries_over():
  person = S.make_identity(2)
  mot = sequence.script_motion(person.shape, (("turn_around", 30), ("wave", 30)), seed=1)
  jumps = np.linalg.norm(np.diff(mot.local_rot, axis=0), axis=(-2, -1)).max(axis=-1)
  assert jumps.max() < 0.6  # no pose snaps between consecutive frames (15 fps)
  posed = motion.pose_body(person.shape, mot)
  assert np.abs(posed.joint_pos[:, :, 2].min(axis=1)).max() < 0.2  # stays on the floor


def test_bad_scripts():
  with pytest.raises(ValueError, match="allowed"):
    next(sequence.render_sequence(0, (("fly", 3),), resolution=8))
  with pytest.raises(ValueError, match="at least one"):
    next(sequence.render_sequence(0, (), resolution=8))
  with pytest.raises(ValueError, match="num_frames"):
    next(sequence.render_sequence(0, (("wave", 0),), resolution=8))


def test_random_access_matches_the_stream():
  cams = S.camera_ring([0.0, 35.0], height=16, width=16)
  chunks = list(sequence.render_sequence(4, SCRIPT, cameras=cams, chunk_frames=8, seed=2))
  full = {k: np.concatenate([c[k] for c in chunks], axis=1)
          for k in ("rgb", "mask", "depth", "face", "uv", "keypoints", "flow_fwd", "flow_bwd")}
  seq = sequence.ScriptedSequence(4, SCRIPT, cameras=cams, seed=2)
  assert len(seq) == 36
  for start, stop in ((5, 11), (0, 3), (30, 36), (15, 17)):  # across chunk ends, sequence ends
    part = seq.render(start, stop)
    np.testing.assert_array_equal(part["frame_index"], np.arange(start, stop))
    for key, value in full.items():
      np.testing.assert_allclose(part[key], value[:, start:stop], atol=1e-6, err_msg=key)
  np.testing.assert_allclose(seq.keypoints(3, 29, chunk_frames=7), full["keypoints"][:, 3:29],
                             atol=1e-6)
  picked = seq.render_frames([20, 2, 20])
  assert "flow_fwd" not in picked
  for key in ("rgb", "mask", "face", "keypoints"):
    np.testing.assert_allclose(picked[key], full[key][:, [20, 2, 20]], atol=1e-6, err_msg=key)
  with pytest.raises(ValueError, match="frame range"):
    seq.render(30, 40)
  with pytest.raises(ValueError, match="indices in"):
    seq.render_frames([36])
