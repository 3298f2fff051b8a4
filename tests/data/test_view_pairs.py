"""PSR-Net examples: d_j as the person's depth or as a Kinect-like full-scene depth."""
from __future__ import annotations

import numpy as np
import pytest

from psrjax.data import synthetic as S
from psrjax.data.samplers import view_pairs


@pytest.fixture(scope="module")
def clip():
  return S.render_clip(3, num_views=3, num_frames=2, resolution=32, rooms=4)


def test_scene_depth_is_the_person_over_the_room(clip):
  person = view_pairs.make_example(clip, 1, 3, "person")["tgt_depth"][..., 0]
  scene = view_pairs.make_example(clip, 1, 3, "scene")["tgt_depth"][..., 0]
  _, j = view_pairs.pairs(3)[1]
  m = clip["mask"][j] > 0
  assert m.any() and (~m).any()
  np.testing.assert_array_equal(scene[m], person[m])
  np.testing.assert_array_equal(person[~m], 0.0)
  room = np.broadcast_to(clip["background_depth"][j], scene.shape)
  np.testing.assert_array_equal(scene[~m], room[~m])
  assert (scene > 0).all()


def test_unknown_depth_is_refused(clip):
  with pytest.raises(ValueError, match="data.depth must be one of"):
    view_pairs.make_example(clip, 0, 3, "kinect")
