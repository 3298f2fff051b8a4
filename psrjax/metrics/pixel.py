"""Peak signal-to-noise ratio, one value per image, optionally masked (PSR-Net's M-PSNR)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from psrjax.metrics import image_checks


def psnr(a, b, *, data_range: float = 2.0, mask=None) -> jax.Array:
  """10 log10(data_range^2 / MSE) per image, as scikit-image's `peak_signal_noise_ratio`.

  a, b: images [..., H, W, C] (default range [-1, 1], so data_range = 2); returns shape [...].
  The MSE is over all pixels and channels of an image; identical images give +inf.
  mask: M-PSNR. Both images are multiplied by the mask first (the convention of the GTNet /
    PSR-Net line of work), so background pixels match exactly and the MSE is still divided by
    the full image size.
  """
  image_checks.check_range(data_range, "psnr")
  a, b, lead = image_checks.prepare(a, b, mask, name="psnr")
  err = jnp.mean(jnp.square(a - b), axis=(1, 2, 3))
  return (10.0 * jnp.log10(data_range ** 2 / err)).reshape(lead)
