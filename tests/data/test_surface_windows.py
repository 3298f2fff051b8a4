"""G_uv's pre-training windows cut to close-ups (`surface_windows.zoomed`): maps and keypoints
moved by one transform, joints the square leaves out marked missing."""
import numpy as np
import pytest

from psrjax.data.samplers import surface_windows


@pytest.fixture(scope="module")
def window():
  src = surface_windows.source("train", frames=3, resolution=48, num_clips=1)
  return surface_windows.example(src, 0)


def test_close_up_moves_maps_and_keypoints_alike(window):
  r = window["mask"].shape[0]
  zoomed = surface_windows.zoomed(window, 0.4, np.random.default_rng(0))
  side = int(round(0.4 * r))
  kp, moved = window["keypoints"], zoomed["keypoints"]
  kept = moved[..., 2] > 0
  assert kept.any() and (~kept & (kp[..., 2] > 0)).any()   # the legs leave the close-up
  scale = r / side
  x0 = kp[..., 0][kept] + 0.5 - (moved[..., 0][kept] + 0.5) / scale
  y0 = kp[..., 1][kept] + 0.5 - (moved[..., 1][kept] + 0.5) / scale
  np.testing.assert_allclose(x0, np.round(x0[0]), atol=1e-4)   # one integer offset for all
  np.testing.assert_allclose(y0, np.round(y0[0]), atol=1e-4)
  x0, y0 = int(round(x0[0])), int(round(y0[0]))
  assert y0 <= kp[..., 1][kp[..., 2] > 0].min()   # the square starts above the person
  rows = (np.floor((np.arange(r) + 0.5) / scale).astype(int) + y0)
  cols = (np.floor((np.arange(r) + 0.5) / scale).astype(int) + x0)
  for key in ("part", "uv", "mask"):
    np.testing.assert_array_equal(zoomed[key], window[key][rows][:, cols], err_msg=key)
  np.testing.assert_array_equal(zoomed["face"], window["face"][:, rows][:, :, cols])
  whole = surface_windows.zoomed(window, 1.0, np.random.default_rng(0))
  assert all(whole[k] is window[k] for k in window)


def test_zoom_range_is_checked():
  for bad in ((0.05, 1.0), (0.8, 0.5), (0.5, 1.2)):
    with pytest.raises(ValueError, match="uv_pretrain.zoom"):
      surface_windows.check_zoom(bad)
