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
  a, b, lead = image_checks.prepare(a, b, mask, name="psnr", data_range=data_range)
  err = jnp.mean(jnp.square(a - b), axis=(1, 2, 3))
  return (10.0 * jnp.log10(data_range ** 2 / err)).reshape(lead)


def sharpness_difference(a, b, *, max_value: float = 1.0, mask=None) -> jax.Array:
  """Sharpness difference (Mathieu et al. 2016, Sec. 4), one value per image, higher is better.

  SD = 10 log10(max_value^2 / mean|(|dx a| + |dy a|) - (|dx b| + |dy b|)|) with forward
  differences per channel, as the authors' code computes them (a 'SAME' [-1, 1] convolution:
  beyond the last row / column the image is 0). max_value: the largest pixel value, 1 for the
  batch contract's [-1, 1] (the authors' setting), 255 for [0, 255]. mask: as in `psnr`.
  """
  if not max_value > 0:
    raise ValueError(f"sharpness_difference: max_value must be > 0, got {max_value}")
  a, b, lead = image_checks.prepare(a, b, mask, name="sharpness_difference", data_range=2 * max_value)

  def gradient_sum(x):
    x = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
    dx = jnp.abs(x[:, :-1, 1:] - x[:, :-1, :-1])
    dy = jnp.abs(x[:, :-1, :-1] - x[:, 1:, :-1])
    return dx + dy

  err = jnp.mean(jnp.abs(gradient_sum(a) - gradient_sum(b)), axis=(1, 2, 3))
  return (10.0 * jnp.log10(max_value ** 2 / err)).reshape(lead)
