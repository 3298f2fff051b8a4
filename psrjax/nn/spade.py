"""SPADE, spatially-adaptive (de)normalisation (Park et al. 2019, "Semantic Image Synthesis with
Spatially-Adaptive Normalization", Eq. 1 and Fig. 2).

The activation is normalised without parameters (batch or instance statistics); the label map,
resized to the activation's size, goes through a shared 3x3 conv + ReLU ("mlp_shared", 128
channels in the paper) and two 3x3 convs give per-pixel, per-channel gamma and beta:
out = norm(x) * (1 + gamma) + beta. The "1 +" is the authors' code (SPADE/models/networks/
normalization.py); Eq. 1 writes gamma. Label maps are resized with PyTorch's "nearest".

`norm="positional"` is CoCosNet's SPADE (Zhang et al. 2020, its `--PONO`): positional
normalisation across channels at every pixel (`positional_norm`, with PyTorch's unbiased variance
as its code computes it) instead of instance or batch statistics; CoCosNet also pads the three
convs by reflection (`pad_mode="reflect"`).
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax

from psrjax.nn.conv import default_kernel_init
from psrjax.nn.conv2d import Conv2D, Conv2DParams, parallel_conv2d
from psrjax.nn.norms import normalise, positional_norm
from psrjax.nn.policy import compute_dtype
from psrjax.nn.resize import resize_nearest

PARAM_FREE_NORMS = ("instance", "batch", "positional")


class SPADE(nn.Module):
  """`__call__(x [N, H, W, C], label [N, H', W', L])` -> SPADE(x) `[N, H, W, C]` (compute dtype).

  Parameters: mlp_shared, mlp_gamma, mlp_beta (each a Conv2D: kernel, bias), the names of the
  authors' module.
  """
  hidden: int = 128                  # channels of the shared conv (paper: 128)
  kernel_size: int = 3               # of the three convs (paper: 3; "spadeinstance5x5": 5)
  norm: str = "instance"             # param-free norm: "instance" | "batch" (train-mode stats) |
                                     # "positional" (PONO, CoCosNet)
  epsilon: float = 1e-5
  impl: str = "auto"                 # Conv2D implementation
  dtype: Any = None                  # computation dtype; None: x's (params, statistics float32)
  kernel_init: Callable = default_kernel_init
  pad_mode: str = "zero"             # of the three convs: "zero" (SPADE) | "reflect" (CoCosNet)

  @nn.compact
  def __call__(self, x: jax.Array, label: jax.Array) -> jax.Array:
    if self.norm not in PARAM_FREE_NORMS:
      raise ValueError(f"SPADE norm must be one of {', '.join(PARAM_FREE_NORMS)}; got {self.norm!r}")
    if x.ndim != 4 or label.ndim != 4 or label.shape[0] != x.shape[0]:
      raise ValueError(f"SPADE expects x [N, H, W, C] and a label map [N, H', W', L]; got "
                       f"{x.shape} and {label.shape}")
    dtype = compute_dtype(self.dtype, x)
    if self.norm == "positional":
      normalised = positional_norm(x, self.epsilon, unbiased=True, dtype=dtype)[0]
    else:
      axes = (1, 2) if self.norm == "instance" else (0, 1, 2)
      normalised = normalise(x, axes, self.epsilon).astype(dtype)
    label = resize_nearest(label, x.shape[1:3]).astype(dtype)
    conv = lambda f, name: Conv2D(f, self.kernel_size, padding=self.kernel_size // 2,
                                  pad_mode=self.pad_mode, impl=self.impl, dtype=dtype,
                                  kernel_init=self.kernel_init, name=name)
    actv = nn.relu(conv(self.hidden, "mlp_shared")(label))
    # gamma and beta: one convolution of the shared activation (padded once).
    params = lambda name: Conv2DParams(x.shape[-1], self.kernel_size, self.kernel_init,
                                       name=name)(self.hidden)
    gamma, beta = parallel_conv2d(actv, [params("mlp_gamma"), params("mlp_beta")],
                                  padding=self.kernel_size // 2, pad_mode=self.pad_mode,
                                  impl=self.impl, dtype=dtype)
    return normalised * (1 + gamma) + beta
