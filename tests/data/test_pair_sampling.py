"""Training pairs drawn by motion (`data.pair_sampling="motion"`, psrjax.data.samplers.same_video):
the draw probabilities, the drawn frames, and the error for an unknown setting."""
import numpy as np
import pytest

from psrjax.data.samplers import same_video


def _keypoints(offsets):
  """[T, 18, 3]: every visible keypoint of frame t shifted right by offsets[t] pixels."""
  kp = np.zeros((len(offsets), 18, 3))
  kp[:, :, 0] = np.asarray(offsets, float)[:, None] + np.arange(18)
  kp[:, :, 2] = 1.0
  return kp


def test_motion_weights_grow_with_the_distance_from_the_target_frame():
  kp = _keypoints([0.0, 1.0, 3.0, 0.0])
  kp[3, :9, 2] = 0.0   # invisible keypoints are left out of the distance
  kp[3, 9:, 0] += 2.0
  weights = same_video.motion_weights(kp, [1, 2, 3], start=0)
  np.testing.assert_allclose(weights, np.array([1.5, 3.5, 2.5]) ** 2 / 20.75)


class _Clips:
  """A stand-in video source: one camera, clips whose person moves 4 px in frame 5 only."""
  num_frames, num_views = 8, 1

  def take(self, index):
    return [index]

  def keypoints(self, video):
    return _keypoints([0, 0, 0, 0, 0, 4.0, 0, 0])


def _drawn(pair_sampling, monkeypatch, draws=400):
  monkeypatch.setattr(same_video, "video_example",
                      lambda src, video, start, sources, n, extra=(): (start, list(sources)))
  draw = same_video._RandomFrames(_Clips(), 1, 1, pair_sampling)  # pylint: disable=protected-access
  rng = np.random.default_rng(0)
  return [draw.random_map(0, rng) for _ in range(draws)]


def test_motion_sampling_picks_the_frames_that_moved(monkeypatch):
  def moved_pairs(pairs):
    return np.mean([(start == 5) != (sources[0] == 5) for start, sources in pairs])
  uniform, motion = _drawn("uniform", monkeypatch), _drawn("motion", monkeypatch)
  # Uniform: a pair holds frame 5 with probability 1/8 + 7/8 x 1/7 = 0.25; by motion, frame 5
  # weighs 4.5² against the still frames' 0.5² when the target is still:
  # 1/8 + 7/8 x 20.25/21.75 = 0.94.
  assert moved_pairs(uniform) == pytest.approx(0.25, abs=0.06)
  assert moved_pairs(motion) == pytest.approx(0.94, abs=0.04)
  assert all(start != sources[0] for start, sources in motion)


def test_unknown_pair_sampling_is_a_clear_error():
  with pytest.raises(ValueError, match=r"data.pair_sampling='far' is not one of"):
    same_video._RandomFrames(_Clips(), 1, 1, "far")  # pylint: disable=protected-access
