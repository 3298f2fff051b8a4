"""oneDNN 2D convolutions for XLA:CPU, called through XLA's FFI (`psrjax/nn/onednn_conv.cc`).

XLA:CPU's own convolution kernels are 1.3-20x slower than oneDNN's on x86 (its forward pass and
input gradient are generic loops and its kernel gradient a slow contraction). On Linux x86-64,
`pip install psrjax` compiles a small extension that runs the forward pass, the input gradient
and the kernel gradient of an NHWC/HWIO convolution with oneDNN (from the `onednn-cpu-gomp`
wheel); `conv2d` is its differentiable JAX wrapper.

`PSRJAX_ONEDNN` selects it: "auto" (default: use it when it loads), "off" (never; XLA's own
convolutions), "on" (require it: raise if it cannot load). It is used only on the CPU backend,
for float32 and bfloat16. Under a multi-device jit the SPMD partitioner treats the call as an
opaque op, so `psrjax.nn.conv_cpu` uses it only when the process has one CPU device.
"""
from __future__ import annotations

import ctypes
import functools
import os
from importlib import metadata
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ENV = "PSRJAX_ONEDNN"
MODES = ("auto", "on", "off")
TARGETS = {"forward": "PsrjaxConv2dForward", "backward_data": "PsrjaxConv2dBackwardData",
           "backward_weights": "PsrjaxConv2dBackwardWeights"}
DTYPES = (jnp.float32, jnp.bfloat16)


class OneDNNUnavailable(RuntimeError):
  """The oneDNN extension or library cannot be loaded."""


def _mode() -> str:
  mode = os.environ.get(ENV, "auto").strip().lower()
  if mode not in MODES:
    raise ValueError(f"{ENV} must be one of {MODES}; got {mode!r}")
  return mode


def _libdnnl() -> Path:
  try:
    files = metadata.distribution("onednn-cpu-gomp").files or []
  except metadata.PackageNotFoundError:
    raise OneDNNUnavailable("the oneDNN library is not installed: pip install onednn-cpu-gomp==2023.2.0") from None
  for f in files:
    if f.name == "libdnnl.so.3":
      return Path(f.locate())
  raise OneDNNUnavailable("onednn-cpu-gomp has no libdnnl.so.3: reinstall it")


def _extension() -> Path:
  found = sorted(Path(__file__).parent.glob("_onednn_conv*.so"))
  if not found:
    raise OneDNNUnavailable("psrjax's oneDNN extension is not built: reinstall psrjax on Linux "
                            "x86-64 with a C++ compiler (pip install -e .)")
  return found[0]


@functools.cache
def _load() -> str | None:
  """Loads and registers the FFI targets once; returns None, or why they are unavailable."""
  try:
    ctypes.CDLL(str(_libdnnl()), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(str(_extension()))
    for name, symbol in TARGETS.items():
      jax.ffi.register_ffi_target(f"psrjax_conv2d_{name}", jax.ffi.pycapsule(getattr(lib, symbol)),
                                  platform="cpu")
  except (OneDNNUnavailable, OSError, AttributeError) as e:
    return str(e)
  return None


def available() -> bool:
  """Whether `conv2d` can run here (`PSRJAX_ONEDNN` not "off" and the extension loads).

  Raises `OneDNNUnavailable` when `PSRJAX_ONEDNN=on` and it does not load.
  """
  mode = _mode()
  if mode == "off":
    return False
  reason = _load()
  if reason and mode == "on":
    raise OneDNNUnavailable(f"{ENV}=on but {reason}")
  return reason is None


def usable(*arrays) -> bool:
  """Whether `conv2d` should compute a convolution of these operands: the CPU backend with one
  device, one float32 or bfloat16 dtype, and the extension available."""
  dtypes = {jnp.dtype(a.dtype) for a in arrays}
  return (jax.default_backend() == "cpu" and jax.local_device_count() == 1
          and len(dtypes) == 1 and dtypes.pop() in map(jnp.dtype, DTYPES) and available())


def _attrs(strides, pads) -> dict:
  (sh, sw), ((pt, pb), (pl, pr)) = strides, pads
  return {k: np.int64(v) for k, v in dict(stride_h=sh, stride_w=sw, pad_top=pt, pad_bottom=pb,
                                          pad_left=pl, pad_right=pr).items()}


def _call(kind: str, out_shape, dtype, a, b, strides, pads):
  out = jax.ShapeDtypeStruct(tuple(out_shape), dtype)
  return jax.ffi.ffi_call(f"psrjax_conv2d_{kind}", out, vmap_method="sequential")(
      a, b, **_attrs(strides, pads))


def _out_shape(x_shape, kernel_shape, strides, pads):
  (kh, kw, _, cout), (n, h, w, _) = kernel_shape, x_shape
  ho = (h + sum(pads[0]) - kh) // strides[0] + 1
  wo = (w + sum(pads[1]) - kw) // strides[1] + 1
  if ho < 1 or wo < 1:
    raise ValueError(f"conv2d: empty output for input {tuple(x_shape)}, kernel {tuple(kernel_shape)}, "
                     f"strides {strides}, pads {pads}")
  return (n, ho, wo, cout)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
           pads: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
  """Cross-correlation of `x` `[B, H, W, Cin]` with `kernel` `[kh, kw, Cin, Cout]` (zero `pads`),
  computed by oneDNN (check `usable` first)."""
  return _call("forward", _out_shape(x.shape, kernel.shape, strides, pads), x.dtype, x, kernel,
               strides, pads)


def _conv2d_fwd(x, kernel, strides, pads):
  return conv2d(x, kernel, strides, pads), (x, kernel)


def _conv2d_bwd(strides, pads, residuals, g):
  x, kernel = residuals
  dx = _call("backward_data", x.shape, x.dtype, g, kernel, strides, pads)
  dk = _call("backward_weights", kernel.shape, kernel.dtype, x, g, strides, pads)
  return dx, dk


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)
