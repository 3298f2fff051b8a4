"""The synthetic world's people drifting across the room (`render_clip(..., travel=v)`): a constant
velocity of at most v m/s about the clip's middle, nothing else of the clip changed."""
import numpy as np
import pytest

from psrjax.data import synthetic
from psrjax.data.sources import synthetic_clips
from psrjax.data.synthetic import appearance, clip


def _motion(seed, travel, frames=12):
  identity = appearance.make_identity(seed % clip.NUM_IDENTITIES)
  return clip.sample_motion(seed, identity, frames, travel=travel)


@pytest.mark.parametrize("seed", [3, 41])
def test_a_drift_is_a_constant_velocity_about_the_middle(seed):
  (index, still), (moved_index, moved) = _motion(seed, 0.0), _motion(seed, 0.4)
  assert index == moved_index
  np.testing.assert_array_equal(moved.local_rot, still.local_rot)
  np.testing.assert_array_equal(moved.root_pos[:, 2], still.root_pos[:, 2])
  shift = moved.root_pos[:, :2] - still.root_pos[:, :2]
  np.testing.assert_allclose(shift.mean(axis=0), 0.0, atol=1e-12)          # the cameras' aim
  step = np.diff(shift, axis=0)
  np.testing.assert_allclose(step, np.broadcast_to(step[0], step.shape), atol=1e-12)
  speed = np.linalg.norm(step[0]) * clip.CLIP_FPS
  assert 0.2 - 1e-9 <= speed <= 0.4 + 1e-9


def test_travel_zero_is_the_world_as_it_was():
  np.testing.assert_array_equal(synthetic.clip_keypoints(5, num_views=2, num_frames=3, travel=0),
                                synthetic.clip_keypoints(5, num_views=2, num_frames=3))


def test_the_person_moves_in_the_frames_and_the_room_stays():
  kw = dict(num_views=1, num_frames=6, resolution=32)
  still, moved = synthetic.render_clip(7, **kw), synthetic.render_clip(7, travel=0.5, **kw)
  np.testing.assert_array_equal(moved["background"], still["background"])
  np.testing.assert_array_equal(synthetic.render_background(7, travel=0.5, **kw),
                                moved["background"])
  np.testing.assert_array_equal(moved["keypoints"],
                                synthetic.clip_keypoints(7, travel=0.5, **kw))
  src = synthetic_clips.SyntheticClips("train", travel=0.5, num_clips=1, **kw)
  video = src.take(0)[0]
  np.testing.assert_array_equal(src.keypoints(video), synthetic.clip_keypoints(
      synthetic.split_seed("train", 0), travel=0.5, **kw)[0])
  offset = (moved["keypoints"] - still["keypoints"])[0, :, :, :2].mean(axis=1)   # [T, 2] px
  assert np.linalg.norm(offset[-1] - offset[0]) > 0.5          # the whole body moved


@pytest.mark.parametrize("travel", [-0.1, float("nan"), "0.5", True])
def test_a_bad_travel_is_a_one_line_error(travel):
  with pytest.raises(ValueError, match=r"^travel is the people's drift .* got "):
    synthetic.render_clip(0, num_views=1, num_frames=2, resolution=8, travel=travel)
