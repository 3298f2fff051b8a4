"""Video sources: the synthetic multi-view clips, resizing, the modality check."""
import cv2
import numpy as np
import pytest

from psrjax.data import synthetic
from psrjax.data.sources import base as sources, synthetic_clips


def test_synthetic_clips_are_takes_of_synchronised_camera_videos():
  src = synthetic_clips.SyntheticClips("validation", num_views=2, num_frames=5, resolution=24,
                                       num_clips=3)
  take = src.take(1)
  assert [v.name for v in take] == ["validation1:view0", "validation1:view1"]
  assert len(src.videos("validation")) == 6 and src.videos("train") == []
  seed = synthetic.split_seed("validation", 1)
  clip = synthetic.render_clip(seed, num_views=2, num_frames=5, resolution=24)
  np.testing.assert_array_equal(src.keypoints(take[1]), clip["keypoints"][1])  # not rendered
  got = src.frames(take[1], [4, 0], ("rgb", "mask", "flow_bwd", "background"))
  np.testing.assert_array_equal(got["rgb"], clip["rgb"][1][[4, 0]] / np.float32(127.5) - 1)
  np.testing.assert_array_equal(got["mask"][..., 0], clip["mask"][1][[4, 0]])
  np.testing.assert_array_equal(got["flow_bwd"], clip["flow_bwd"][1][[4, 0]])
  assert got["background"].shape == (2, 24, 24, 3)
  with pytest.raises(IndexError):
    src.take(3)


def test_resized_keypoints_follow_the_pixels_opencv_moves():
  """A block's centroid after OpenCV's area resize is where the keypoint formula puts it."""
  image = np.zeros((8, 8), np.float32)
  image[3:5, 2:4] = 1.0                                    # rows 3-4, columns 2-3
  small = cv2.resize(image, (4, 4), interpolation=cv2.INTER_AREA)
  ys, xs = np.mgrid[:4, :4]
  centroid = np.array([(small * xs).sum(), (small * ys).sum()]) / small.sum()
  kp = np.array([[[2.5, 3.5, 1.0]]], np.float32)           # the block's centre, (x, y)
  np.testing.assert_allclose(sources.resize_keypoints(kp, 0.5)[0, 0, :2], centroid, atol=1e-6)


def test_resized_masks_stay_binary_and_flows_scale():
  mask = np.zeros((1, 8, 8, 1), np.float32)
  mask[0, 2:6, 2:6] = 1
  small = sources.resize_frames(mask, "mask", 4)
  assert small.shape == (1, 4, 4, 1) and set(np.unique(small)) == {0.0, 1.0}
  flow = np.full((1, 8, 8, 2), 3.0, np.float32)
  np.testing.assert_allclose(sources.resize_frames(flow, "flow_fwd", 4), 1.5)


def test_evenly_spaced_includes_both_ends():
  np.testing.assert_array_equal(sources.evenly_spaced(3, 9), [0, 4, 8])
  np.testing.assert_array_equal(sources.evenly_spaced(1, 5), [0])


def test_resized_labels_keep_their_values():
  part = np.zeros((1, 8, 8), np.int32)
  part[0, :, 4:] = 7
  small = sources.resize_frames(part, "part", 4)
  assert small.shape == (1, 4, 4) and small.dtype == np.int32 and set(np.unique(small)) == {0, 7}
