"""Input checks shared by the pretrained networks (shape always, value range when concrete)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# Slack on the [-1, 1] range check: generator outputs and resized frames may overshoot slightly.
RANGE_TOLERANCE = 1e-2


def check_images(x, *, ndim: int, name: str, channels: int = 3) -> None:
  """Raises ValueError unless `x` has `ndim` axes, `channels` channels and values in [-1, 1].

  The range is only checked on concrete arrays (not under `jit`), where it costs nothing extra.
  """
  shape = getattr(x, "shape", None)
  if shape is None or len(shape) != ndim or shape[-1] != channels:
    raise ValueError(f"{name}: expected {ndim} axes with {channels} channels last, got shape {shape}")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"{name}: expected floating point values in [-1, 1], got dtype {x.dtype}")
  if isinstance(x, jax.core.Tracer):
    return
  lo, hi = float(np.min(x)), float(np.max(x))
  if not (lo >= -1 - RANGE_TOLERANCE and hi <= 1 + RANGE_TOLERANCE):
    raise ValueError(f"{name}: expected values in [-1, 1] (the batch contract), got [{lo:.4g}, {hi:.4g}]")


# torchvision's ImageNet normalisation (x01 - mean) / std, rewritten for x = 2 x01 - 1 in [-1, 1]:
# (x - (2 mean - 1)) / (2 std). These are also LPIPS's ScalingLayer constants
# (shift [-.030, -.088, -.188], scale [.458, .448, .450]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(x):
  """[-1, 1] RGB -> the input torchvision's ImageNet networks were trained on."""
  shift = jnp.asarray([2 * m - 1 for m in IMAGENET_MEAN], x.dtype)
  scale = jnp.asarray([2 * s for s in IMAGENET_STD], x.dtype)
  return (x - shift) / scale
