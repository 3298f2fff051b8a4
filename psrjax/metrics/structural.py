"""Structural similarity (Wang et al. 2004), one value per image, optionally masked (M-SSIM).

Eq. 13 of the paper with its constants: an 11x11 circular-symmetric Gaussian window (sigma 1.5),
K1 = 0.01, K2 = 0.03, population (co)variances, averaged over the positions where the window
fits inside the image and then over channels.

SSIM's luminance term (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1) depends on absolute intensities,
so the value of an image pair depends on where black is, not only on the range's width. The
papers and the reference implementations (scikit-image, tf.image) compute it on intensities with
black at 0. So the functions here take images in `value_range` (default: the batch contract's [-1, 1]), map them to
[0, 1] intensities by (x - lo) / (hi - lo) and compute the standard metric there, with dynamic
range L = 1 (C1 = K1^2, C2 = K2^2). The result equals scikit-image's
`structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
channel_axis=-1)` on the same images in [0, 1] with data_range=1, or as uint8 [0, 255] with
data_range=255 (SSIM does not change when the images and L are scaled together). Its Gaussian is
scipy's: truncated at 3.5 sigma, normalised.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from psrjax.metrics import image_checks

SIGMA = 1.5
RADIUS = int(3.5 * SIGMA + 0.5)   # 5: the 11x11 window
K1, K2 = 0.01, 0.03


def gaussian_window(sigma: float = SIGMA, radius: int = RADIUS) -> np.ndarray:
  """Normalised 1D Gaussian taps of length 2 radius + 1 (the separable SSIM window)."""
  x = np.arange(-radius, radius + 1, dtype=np.float64)
  w = np.exp(-0.5 * (x / sigma) ** 2)
  return (w / w.sum()).astype(np.float32)


def _filter_valid(x: jax.Array, taps: np.ndarray) -> jax.Array:
  """Separable 'valid' Gaussian filtering of every channel of x [N, H, W, C].

  Written as weighted sums of shifted slices rather than a depthwise convolution: the same
  arithmetic, and several times faster than XLA's grouped convolutions on CPU.
  """
  k = len(taps)
  h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
  rows = sum(float(t) * x[:, i:i + h] for i, t in enumerate(taps))
  return sum(float(t) * rows[:, :, i:i + w] for i, t in enumerate(taps))


def luminance_contrast_structure(a: jax.Array, b: jax.Array):
  """SSIM's luminance l and contrast-structure cs maps at every valid window position.

  Images [N, H, W, C] of intensities in [0, 1] (dynamic range L = 1) -> two
  [N, H - 10, W - 10, C] maps; SSIM = l * cs (Eq. 13).
  """
  # Variances and covariance do not change under a common shift: centring on the mean of both
  # images first keeps E[x^2] - E[x]^2 accurate in float32.
  shift = jax.lax.stop_gradient(jnp.mean(a + b, axis=(1, 2), keepdims=True) / 2)
  a, b = a - shift, b - shift
  c = a.shape[-1]
  stats = _filter_valid(jnp.concatenate([a, b, a * a, b * b, a * b], axis=-1), gaussian_window())
  ua, ub, uaa, ubb, uab = (stats[..., i * c:(i + 1) * c] for i in range(5))
  va, vb, vab = uaa - ua * ua, ubb - ub * ub, uab - ua * ub
  ua, ub = ua + shift, ub + shift
  c1, c2 = K1 ** 2, K2 ** 2
  luminance = (2 * ua * ub + c1) / (ua * ua + ub * ub + c1)
  return luminance, (2 * vab + c2) / (va + vb + c2)


def ssim_map(a: jax.Array, b: jax.Array) -> jax.Array:
  """SSIM at every valid window position, [N, H - 10, W - 10, C] for [0, 1] images [N, H, W, C]."""
  luminance, cs = luminance_contrast_structure(a, b)
  return luminance * cs


def ssim(a, b, *, value_range: tuple[float, float] = (-1.0, 1.0), mask=None) -> jax.Array:
  """Mean SSIM per image: images [..., H, W, C] (H, W >= 11) -> shape [...].

  value_range: (lo, hi) of the images, static under `jit`: (-1.0, 1.0) for the batch contract,
    (0.0, 255.0) for [0, 255], (0.0, 1.0) for [0, 1]. The images are mapped to [0, 1] by
    (x - lo) / (hi - lo) and SSIM is computed there with L = 1 (see the module docstring): for
    [-1, 1] images a and b this is scikit-image's SSIM of (a + 1) / 2 and (b + 1) / 2 with
    data_range=1.
  mask: M-SSIM. Both [0, 1] images are multiplied by the mask before the metric (the GTNet /
    PSR-Net convention on [0, 255] images): the background becomes 0 (black) in both, and the
    mean still runs over the whole image.
  """
  a, b, lead = image_checks.prepare(a, b, mask, name="ssim", min_size=2 * RADIUS + 1,
                                    value_range=value_range)
  return jnp.mean(ssim_map(a, b), axis=(1, 2, 3)).reshape(lead)


# Wang, Simoncelli & Bovik (2003), Table / Eq. 7 exponents for M = 5 scales.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _halve(x: jax.Array) -> jax.Array:
  """2x2 average pooling; odd sizes first repeat their last row / column (as tf.image does)."""
  pad = ((0, 0), (0, x.shape[1] % 2), (0, x.shape[2] % 2), (0, 0))
  x = jnp.pad(x, pad, mode="edge")
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def ms_ssim(a, b, *, value_range: tuple[float, float] = (-1.0, 1.0), mask=None,
            weights=MS_SSIM_WEIGHTS) -> jax.Array:
  """Multi-scale SSIM (Wang et al. 2003, Eq. 7) per image: [..., H, W, C] -> shape [...].

  The images are mapped from value_range to [0, 1] intensities as in `ssim`. At each of the
  len(weights) scales (2x2 average downsampling in between) the mean contrast-structure term
  cs_j is taken; the luminance only at the coarsest scale:
  MS-SSIM = prod_{j<M} relu(cs_j)^w_j * relu(ssim_M)^w_M per channel, averaged over channels,
  exactly `tf.image.ssim_multiscale(max_val=1.0)` on the [0, 1] images (11x11 Gaussian window,
  sigma 1.5, K1 0.01, K2 0.03). Images need at least 161 pixels per side for 5 scales.
  value_range, mask: as in `ssim` (the mask multiplies the [0, 1] images: black background).
  """
  min_size = 2 * RADIUS * 2 ** (len(weights) - 1) + 1
  a, b, lead = image_checks.prepare(a, b, mask, name="ms_ssim", min_size=min_size,
                                    value_range=value_range)
  terms = []
  for k in range(len(weights)):
    if k:
      a, b = _halve(a), _halve(b)
    luminance, cs = luminance_contrast_structure(a, b)
    terms.append(jnp.mean(cs, axis=(1, 2)))
  terms[-1] = jnp.mean(luminance * cs, axis=(1, 2))
  terms = jax.nn.relu(jnp.stack(terms, axis=-1))                  # [N, C, scales]
  value = jnp.prod(terms ** jnp.asarray(weights, jnp.float32), axis=-1)
  return jnp.mean(value, axis=-1).reshape(lead)
