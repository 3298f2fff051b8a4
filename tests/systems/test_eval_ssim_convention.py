"""The systems' evaluations report the standard SSIM and masked SSIM: scikit-image's on the
[-1, 1] frames mapped to [0, 1], masked SSIM on the masked [0, 1] frames (black background)."""
import jax
import numpy as np
import pytest

skimage = pytest.importorskip("skimage")
from skimage.metrics import structural_similarity  # noqa: E402

import conformance  # noqa: E402
import train_harness  # noqa: E402
from psrjax.systems import base  # noqa: E402
from psrjax.systems import registry


def _reference(pred, target, mask):
  """Per example: mean over frames of scikit-image's SSIM and masked SSIM on [0, 1] frames."""
  pred, target = (np.float64(pred) + 1) / 2, (np.float64(target) + 1) / 2
  mask = np.broadcast_to(np.float64(mask), pred.shape)

  def ssim(a, b):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=1.0, channel_axis=-1)

  plain = [[ssim(p, t) for p, t in zip(ps, ts)] for ps, ts in zip(pred, target)]
  masked = [[ssim(p * m, t * m) for p, t, m in zip(ps, ts, ms)]
            for ps, ts, ms in zip(pred, target, mask)]
  return np.mean(plain, axis=1), np.mean(masked, axis=1)


@pytest.mark.parametrize("name, prediction", [
    pytest.param("psrnet", "layer1", marks=pytest.mark.xdist_group("psrnet")),
    pytest.param("mfci", "single", marks=pytest.mark.xdist_group("mfci"))])
def test_eval_ssim_and_masked_ssim_match_scikit_image(name, prediction):
  system = registry.get_system(conformance.tiny_config(name))
  batch = train_harness.eval_batch(system)
  params = conformance.initial_params(name)
  result, pred = jax.device_get(jax.jit(
      lambda p, b: (base.evaluate(system, p, b), base.generate(system, p, b)[prediction]))(params, batch))
  ssim, m_ssim = _reference(pred, batch["tgt_rgb"], batch["tgt_mask"])
  np.testing.assert_allclose(result[f"ssim/{prediction}"], ssim, atol=1e-4)
  np.testing.assert_allclose(result[f"m_ssim/{prediction}"], m_ssim, atol=1e-4)
