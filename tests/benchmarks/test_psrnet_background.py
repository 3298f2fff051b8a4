"""PSR-Net's background scores (`run_metrics(..., background=True)`) against scikit-image, the
empty-room renderer against the clips', and the oracles of benchmarks/psrnet_background.py."""
import os
import sys

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from benchmarks import psrnet_background  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax import config_utils  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.data import synthetic  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.metrics import runs  # noqa: E402  pylint: disable=g-import-not-at-top


def test_background_scores_match_scikit_image():
  rng = np.random.default_rng(0)
  pred, target = rng.uniform(-1, 1, (2, 1, 2, 24, 24, 3)).astype(np.float32)
  mask = np.zeros((1, 2, 24, 24, 1), np.float32)
  mask[..., 6:14, 8:16, :] = 1.0
  got = runs.run_metrics(pred, target, mask, background=True)
  keep = 1.0 - mask[0]
  a, b = (pred[0] + 1) / 2 * keep, (target[0] + 1) / 2 * keep   # [0, 1], person set to black
  psnr = [peak_signal_noise_ratio(np.float64(y), np.float64(x), data_range=1.0)
          for x, y in zip(a, b)]
  ssim = [structural_similarity(y, x, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=1.0, channel_axis=-1)
          for x, y in zip(a, b)]
  np.testing.assert_allclose(float(got["b_psnr"][0]), np.mean(psnr), atol=1e-3)
  np.testing.assert_allclose(float(got["b_ssim"][0]), np.mean(ssim), atol=1e-4)
  assert "b_ssim" not in runs.run_metrics(pred, target, mask)


@pytest.mark.parametrize("rooms", [0, 5])
def test_render_background_is_the_clips_empty_room(rooms):
  kw = dict(num_views=2, num_frames=3, resolution=16, rooms=rooms)
  np.testing.assert_array_equal(synthetic.render_background(21, **kw),
                                synthetic.render_clip(21, **kw)["background"])


def _tiny(rooms: int):
  config = config_utils.load_config("configs/psrnet.py:tiny")
  config.data.rooms = rooms
  return config


def test_oracles_rank_the_true_room_first(monkeypatch):
  monkeypatch.chdir(REPO)
  scores = psrnet_background.oracle_scores(_tiny(3), train_clips=24)
  assert set(scores) == set(psrnet_background.ORACLES)
  assert scores["bg_room"]["b_psnr"] > scores["bg_all"]["b_psnr"] + 3.0
  assert scores["bg_room"]["b_ssim"] > scores["bg_all"]["b_ssim"]
  one = psrnet_background.oracle_scores(_tiny(1), train_clips=4)   # one room: the same mean
  assert one["bg_all"] == one["bg_room"]


def test_oracles_need_fixed_rooms(monkeypatch):
  monkeypatch.chdir(REPO)
  with pytest.raises(ValueError, match="data.rooms >= 1"):
    psrnet_background.oracle_scores(_tiny(0))
