"""2D building blocks of image generators: conv-norm-activation units, residual blocks, upsampling.

In pix2pixHD's notation (Wang et al. 2018, appendix, after Johnson et al. 2016): c7s1-k is
`ConvNormAct2D(k, 7, padding=3, pad_mode="reflect")`, dk (a down block) is
`ConvNormAct2D(k, 3, strides=2, padding=1)`, Rk is `ResBlock2D()` on k channels and uk is
`UpBlock2D(k)`. Every block takes a `remat` mode (`psrjax.nn.policy`): under "blocks" it is
recomputed in the backward pass with only its input saved; networks pass their own mode down.
Parameter names: conv / norm (`ConvNormAct2D`, `UpBlock2D`), conv1 / norm1 / conv2 / norm2
(`ResBlock2D`); norms without affine parameters add none.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from psrjax.nn.conv import default_kernel_init
from psrjax.nn.conv2d import Conv2D, ConvTranspose2D
from psrjax.nn.norms import BatchStatNorm, InstanceNorm2D
from psrjax.nn.policy import remat_stage
from psrjax.nn.resize import resize_nearest

NORMS = ("instance", "instance_affine", "batch", "none")
ACTIVATIONS = {
    "relu": nn.relu,
    "leaky_relu": lambda x: nn.leaky_relu(x, 0.2),   # the GAN papers' slope
    "tanh": jnp.tanh,
    "none": lambda x: x,
}
UP_MODES = ("transpose", "resize")


def check_norm_act(norm: str, act: str) -> None:
  """Raises ValueError unless `norm` is in NORMS and `act` in ACTIVATIONS."""
  if norm not in NORMS:
    raise ValueError(f"unknown norm {norm!r}; allowed: {', '.join(NORMS)}")
  activation(act)


def make_norm(kind: str, *, dtype: Any = None, name: str | None = None) -> nn.Module | None:
  """The norm layer `kind` (NORMS), or None for "none".

  "instance": `InstanceNorm2D` without affine parameters (pix2pixHD); "instance_affine": with
  them (PyTorch affine=True); "batch": `BatchStatNorm` (train-mode batch statistics, learnable
  scale and shift, as pix2pix applies batch norm at test time too).
  """
  check_norm_act(kind, "none")
  if kind == "none":
    return None
  if kind == "batch":
    return BatchStatNorm(dtype=dtype, name=name)
  affine = kind == "instance_affine"
  return InstanceNorm2D(use_scale=affine, use_bias=affine, dtype=dtype, name=name)


def activation(kind: str) -> Callable[[jax.Array], jax.Array]:
  """The activation `kind`: "relu", "leaky_relu" (slope 0.2), "tanh" or "none"."""
  if kind not in ACTIVATIONS:
    raise ValueError(f"unknown activation {kind!r}; allowed: {', '.join(ACTIVATIONS)}")
  return ACTIVATIONS[kind]


def _norm_act(module: nn.Module, x: jax.Array, name: str) -> jax.Array:
  norm = make_norm(module.norm, dtype=module.dtype, name=name)
  return activation(module.activation)(x if norm is None else norm(x))


class ConvNormAct2D(nn.Module):
  """pad -> conv -> norm -> activation; with `strides=2` the down block dk."""
  features: int                      # output channels
  kernel_size: Any = 3
  strides: Any = 1
  padding: Any = 1                   # as Conv2D's (int, pairs or "same")
  pad_mode: str = "zero"             # "zero" | "reflect" | "edge"
  norm: str = "instance"             # one of NORMS
  activation: str = "relu"           # one of ACTIVATIONS
  use_bias: bool = True
  impl: str = "auto"                 # Conv2D implementation
  dtype: Any = None                  # computation dtype; None: the input's (params float32)
  kernel_init: Callable = default_kernel_init
  remat: str = "none"                # "none" | "blocks" | "full" (psrjax.nn.policy)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    check_norm_act(self.norm, self.activation)
    return remat_stage(ConvNormAct2D._forward, self.remat)(self, x)

  def _forward(self, x):
    x = Conv2D(self.features, self.kernel_size, self.strides, self.padding, self.pad_mode,
               self.use_bias, self.impl, self.dtype, self.kernel_init, name="conv")(x)
    return _norm_act(self, x, "norm")


class ResBlock2D(nn.Module):
  """pix2pixHD's residual block (its `ResnetBlock`, from Johnson et al. 2016):
  x + norm(conv3x3(pad(act(norm(conv3x3(pad(x))))))), padding 1 by `pad_mode` (pix2pixHD:
  reflect), the width of x. `dropout` > 0 adds dropout after the first activation (pix2pixHD's
  `use_dropout`, 0.5; a "dropout" rng when `train`).
  """
  pad_mode: str = "reflect"          # "zero" | "reflect" | "edge"
  norm: str = "instance"             # one of NORMS
  activation: str = "relu"           # after the first conv only
  dropout: float = 0.0               # rate between the convs; 0 = none (pix2pixHD's default)
  impl: str = "auto"
  dtype: Any = None                  # computation dtype; None: the input's (params float32)
  kernel_init: Callable = default_kernel_init
  remat: str = "none"                # "none" | "blocks" | "full" (psrjax.nn.policy)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    check_norm_act(self.norm, self.activation)
    return remat_stage(functools.partial(ResBlock2D._forward, train=train), self.remat)(self, x)

  def _forward(self, x, *, train: bool):
    conv = lambda name: Conv2D(x.shape[-1], 3, 1, 1, self.pad_mode, True, self.impl, self.dtype,
                               self.kernel_init, name=name)
    y = _norm_act(self, conv("conv1")(x), "norm1")
    if self.dropout > 0:
      y = nn.Dropout(self.dropout, deterministic=not train)(y)
    y = conv("conv2")(y)
    norm = make_norm(self.norm, dtype=self.dtype, name="norm2")
    y = y if norm is None else norm(y)
    return x.astype(y.dtype) + y


class UpBlock2D(nn.Module):
  """Doubles H and W, then norm and activation. mode "transpose": pix2pixHD's uk, a transposed
  conv (kernel k, stride 2, padding (k - 1) // 2, output_padding 2 + 2 padding - k: kernel 3 ->
  PyTorch's (3, 2, 1, 1), kernel 4 -> pix2pix's (4, 2, 1, 0)); "resize": nearest upsampling then
  a stride-1 conv (no checkerboard artifacts, Odena et al. 2016)."""
  features: int                      # output channels
  kernel_size: int = 3
  mode: str = "transpose"            # one of UP_MODES
  pad_mode: str = "zero"             # padding of the "resize" conv
  norm: str = "instance"
  activation: str = "relu"
  use_bias: bool = True
  impl: str = "auto"
  dtype: Any = None                  # computation dtype; None: the input's (params float32)
  kernel_init: Callable = default_kernel_init
  remat: str = "none"                # "none" | "blocks" | "full" (psrjax.nn.policy)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.mode not in UP_MODES:
      raise ValueError(f"unknown up-sampling mode {self.mode!r}; allowed: {', '.join(UP_MODES)}")
    check_norm_act(self.norm, self.activation)
    return remat_stage(UpBlock2D._forward, self.remat)(self, x)

  def _forward(self, x):
    k = self.kernel_size
    if self.mode == "transpose":
      pad = (k - 1) // 2
      x = ConvTranspose2D(self.features, k, 2, pad, 2 + 2 * pad - k, self.use_bias, self.impl,
                          self.dtype, self.kernel_init, name="conv")(x)
    else:
      x = resize_nearest(x, (2 * x.shape[-3], 2 * x.shape[-2]))
      x = Conv2D(self.features, k, 1, (((k - 1) // 2, k // 2),) * 2, self.pad_mode, self.use_bias,
                 self.impl, self.dtype, self.kernel_init, name="conv")(x)
    return _norm_act(self, x, "norm")
