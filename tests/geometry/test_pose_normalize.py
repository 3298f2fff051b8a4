"""Everybody Dance Now's global pose normalisation and CoCosNet's vertical translation (Eq. 1)."""
import jax
import numpy as np
import pytest

from psrjax.geometry import pose_normalize as pn

# A standing COCO-18 pose of unit height: ankles at y = 0, eyes (the top head keypoints) at y = -1.
_XY = np.array([
    [24, 8], [24, 16], [16, 16], [10, 24], [10, 32], [32, 16], [38, 24], [38, 32], [20, 30],
    [20, 38], [20, 46], [28, 30], [28, 38], [28, 46], [22, 6], [26, 6], [20, 8], [28, 8]],
    np.float32)
TEMPLATE = (_XY - [24, 46]) / 40.0


def _video(ankles, heights, x=50.0):
  """Poses [N, 18, 3] standing with their ankles at y = ankles, of the given heights."""
  xy = TEMPLATE[None] * np.asarray(heights, np.float32)[:, None, None]
  xy = xy + np.stack([np.full(len(ankles), x), ankles], -1)[:, None, :].astype(np.float32)
  return np.concatenate([xy, np.ones(xy.shape[:-1] + (1,))], -1).astype(np.float32)


def _source_target():
  a_src = np.linspace(60, 100, 21)
  a_tgt = np.linspace(40, 120, 15)
  source = _video(a_src, 30 + (a_src - 60) / 40 * 20)      # 30 px tall far, 50 px close
  target = _video(a_tgt, 15 + (a_tgt - 40) / 80 * 10, x=70.0)   # half as tall: 15 far, 25 close
  return source, target


def _ankle_y(kp):
  return kp[..., [10, 13], 1].mean(-1)


def _height(kp):
  return _ankle_y(kp) - kp[..., [0, 14, 15, 16, 17], 1].min(-1)


def test_far_and_close_ankle_lines_map_onto_the_targets_and_a_twice_taller_person_halves():
  source, target = _source_target()
  params = pn.fit_pose_normalization(source, target, percentile=0.0, window=0.0)
  np.testing.assert_allclose([params.src_far, params.src_close, params.tgt_far, params.tgt_close],
                             [60, 100, 40, 120], atol=1e-4)
  np.testing.assert_allclose([params.ratio_far, params.ratio_close], [0.5, 0.5], atol=1e-5)
  out = np.asarray(jax.jit(pn.apply_pose_normalization)(params, source))
  np.testing.assert_allclose(_ankle_y(out[[0, 10, 20]]), [40, 80, 120], atol=1e-3)
  np.testing.assert_allclose(_height(out[[0, 10, 20]]), [15, 20, 25], atol=1e-3)  # target's heights
  np.testing.assert_allclose(out[..., [10, 13], 0].mean(-1), 50.0, atol=1e-4)       # feet stay
  np.testing.assert_allclose(out[..., 5, 0] - out[..., 2, 0],
                             0.5 * (source[..., 5, 0] - source[..., 2, 0]), atol=1e-4)


def test_vertical_and_translate_modes_and_hidden_joints():
  source, target = _source_target()
  source[3, [4, 7], 2] = 0.0                                # two hidden wrists in frame 3
  similar = pn.fit_pose_normalization(source, target, percentile=0.0, window=0.0)
  vertical = pn.fit_pose_normalization(source, target, mode="vertical", percentile=0.0, window=0.0)
  a = np.asarray(pn.apply_pose_normalization(similar, source))
  b = np.asarray(pn.apply_pose_normalization(vertical, source))
  np.testing.assert_array_equal(a[..., 2], source[..., 2])  # hidden joints stay hidden
  np.testing.assert_allclose(b[..., 1], a[..., 1], atol=1e-4)
  np.testing.assert_array_equal(b[..., 0], source[..., 0])
  # CoCosNet's Eq. 1: the head's mean y L goes to t_min + (L - s_min) / (s_max - s_min) (t_max - t_min).
  shift = pn.fit_pose_normalization(source, target, mode="translate", anchor="head",
                                    percentile=0.0)
  c = np.asarray(jax.jit(pn.apply_pose_normalization)(shift, source[None]))[0]
  head = lambda kp: kp[..., [0, 14, 15, 16, 17], 1].mean(-1)
  s, t = head(source), head(target)
  want = t.min() + (s - s.min()) / (s.max() - s.min()) * (t.max() - t.min())
  np.testing.assert_allclose(head(c), want, atol=1e-3)
  np.testing.assert_allclose(c[..., 1] - source[..., 1], np.repeat((want - s)[:, None], 18, 1),
                             atol=1e-3)                    # a pure vertical shift
  np.testing.assert_array_equal(c[..., 0], source[..., 0])


def test_percentiles_ignore_an_outlier_frame_and_fit_under_jit():
  source, target = _source_target()
  outlier = _video(np.array([200.0]), np.array([90.0]))
  params = jax.jit(pn.fit_pose_normalization)(np.concatenate([source, outlier]), target)
  assert 99.0 < float(params.src_close) < 101.0
  assert float(params.src_far) < 63.0 and 0.45 < float(params.ratio_far) < 0.55


def test_bad_input():
  source, target = _source_target()
  with pytest.raises(ValueError, match=r"source must be \[N, 18, 3\]"):
    pn.fit_pose_normalization(source[0], target)
  with pytest.raises(ValueError, match="mode must be one of similarity, vertical, translate"):
    pn.fit_pose_normalization(source, target, mode="uniform")
  hidden = source.copy()
  hidden[..., [10, 13], 2] = 0.0
  with pytest.raises(ValueError, match="could not measure src_far"):
    pn.fit_pose_normalization(hidden, target)
