"""Spectral normalisation (Miyato et al. 2018): a layer's kernel W divided by its largest
singular value sigma(W), estimated by power iteration.

This is Flax's `nn.SpectralNorm`, which fits psrjax's dtype policy: it normalises the wrapped
layer's float32 parameters (every one with two or more axes, i.e. kernels, flattened to
`[prod(leading axes), out]`; biases untouched) in float32, and the layer then casts the
normalised kernel to its compute dtype. The power-iteration vector u `[1, out]` and the last sigma
live in the non-parameter collection `SPECTRAL_COLLECTION`, under
"<layer name>/<param name>/u" and ".../sigma" inside the wrapper's scope; pass it mutable when
training (`update_stats=True` stores the new u and sigma). As in PyTorch's `spectral_norm`, one
power-iteration step per call (from the stored u) with stop_gradient on u and v; unlike it,
Flax also iterates (without storing) when `update_stats=False`.
"""
from __future__ import annotations

import flax.linen as nn

SPECTRAL_COLLECTION = "spectral"


def spectral_norm(layer: nn.Module, *, n_steps: int = 1, epsilon: float = 1e-12,
                  name: str | None = None) -> nn.SpectralNorm:
  """`layer` (e.g. a `Conv2D` or `nn.Dense`) with spectrally normalised kernels.

  Call the result as the layer, with `update_stats=train`:
  `spectral_norm(Conv2D(64, 4, name="conv"), name="conv_sn")(x, update_stats=train)`.
  The layer's parameters keep their names and shapes; u and sigma go to SPECTRAL_COLLECTION.
  """
  if n_steps < 1:
    raise ValueError(f"spectral_norm needs n_steps >= 1 power-iteration steps; got {n_steps}")
  return nn.SpectralNorm(layer, n_steps=n_steps, epsilon=epsilon,
                         collection_name=SPECTRAL_COLLECTION, name=name)
