"""oneDNN convolutions for XLA:CPU, called through XLA's FFI (`psrjax/nn/cpu/onednn_conv.cc`).

XLA:CPU has no fast 3D convolution, and its 2D forward pass, input gradient and kernel gradient
are 1.3-20x slower than oneDNN's on x86. On Linux x86-64, `pip install psrjax` compiles a small
extension that runs the forward pass, the input gradient and the kernel gradient of 2D and 3D
channels-last convolutions (NHWC/HWIO, NDHWC/DHWIO) with oneDNN (from the `onednn-cpu-gomp`
wheel), as the module `psrjax.nn.cpu._onednn_conv`; the kernel gradient reads the activations
reordered into oneDNN's preferred (blocked) layout, 3x faster than from channels-last with AVX2. `conv` is its differentiable JAX wrapper;
`psrjax.nn.conv.conv3d` uses it on CPU (impl "onednn", which "auto" picks when `usable`).

Under a multi-device jit each call is partitioned along the batch axis (`custom_partitioning`):
every device convolves its own examples and the kernel gradient is summed over the devices
that share the batch. Other shardings of the operands are gathered first. The partitioning is
decided at compile time by a Python callback per call (JAX traces and lowers `lower` for each):
about 9 ms each, 18 ms with XLA's inlining of the result. CoCosNet video's tiny straight run
on 8 devices makes 1,576 such calls (14.6 s of Python); its sample program alone (258 calls)
compiles in 5.3 s for one device and 12.7 s for 8 replicated ones, which is why samples of
replicated parameters run on one device (`psrjax.train.samples`).

`PSRJAX_ONEDNN` selects it: "auto" (default: use it when it loads), "off" (never), "on" (require
it: raise if it cannot load). Float32 and bfloat16 only; bfloat16 uses oneDNN's bfloat16
kernels where the CPU has them (`bf16_native`) and is computed in float32 elsewhere.
"""
from __future__ import annotations

import ctypes
import functools
import math
import os
from importlib import metadata
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec as P

from psrjax.nn import jaxprs

ENV = "PSRJAX_ONEDNN"
MODES = ("auto", "on", "off")
KINDS = {"forward": "PsrjaxConvForward", "backward_data": "PsrjaxConvBackwardData",
         "backward_weights": "PsrjaxConvBackwardWeights"}
DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))


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
    raise OneDNNUnavailable(
        "the oneDNN library is not installed: pip install onednn-cpu-gomp==2023.2.0") from None
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
def _library() -> ctypes.CDLL:
  ctypes.CDLL(str(_libdnnl()), mode=ctypes.RTLD_GLOBAL)
  return ctypes.CDLL(str(_extension()))


@functools.cache
def _load() -> str | None:
  """Loads and registers the FFI targets once; returns None, or why they are unavailable."""
  try:
    lib = _library()
    for kind, symbol in KINDS.items():
      jax.ffi.register_ffi_target(f"psrjax_conv_{kind}", jax.ffi.pycapsule(getattr(lib, symbol)),
                                  platform="cpu")
  except (OneDNNUnavailable, OSError, AttributeError) as e:
    return str(e)
  except jax.errors.JaxRuntimeError as e:   # e.g. built against another jaxlib's FFI version
    return (f"psrjax's oneDNN extension does not fit this jaxlib ({str(e).splitlines()[0]}): "
            f"reinstall psrjax with its build's jaxlib pinned to the installed one "
            f"(PIP_CONSTRAINT holding jaxlib=={metadata.version('jaxlib')})")
  return None


@functools.cache
def bf16_native() -> bool:
  """Whether oneDNN has bfloat16 convolution kernels for this CPU (AVX-512 and newer).

  Where it does not (e.g. AVX2-only CPUs) the extension still accepts bfloat16 operands: it
  widens them to float32, runs the float32 kernel and rounds the result to bfloat16. False when
  the extension is unavailable.
  """
  return available() and bool(_library().PsrjaxOneDNNBf16Native())


def available() -> bool:
  """Whether `conv` can run here: `PSRJAX_ONEDNN` is not "off" and the extension loads.

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
  """Whether `conv` can compute a convolution of these operands: the CPU backend, one float32
  or bfloat16 dtype, no empty operand (an image pooled down to nothing, e.g. VGG on a tiny
  crop, goes to XLA, which returns the empty result), and the extension available."""
  dtypes = {jnp.dtype(a.dtype) for a in arrays}
  return (jax.default_backend() == "cpu" and len(dtypes) == 1 and dtypes.pop() in DTYPES
          and all(math.prod(a.shape) > 0 for a in arrays) and available())


def out_shape(x_shape, kernel_shape, strides, pads, transposed: bool = False) -> tuple[int, ...]:
  """Output shape of `conv` (or `conv_transpose`), channels last."""
  if transposed:
    spatial = [(n - 1) * s - lo - hi + k for n, k, s, (lo, hi)
               in zip(x_shape[1:-1], kernel_shape[:-2], strides, pads)]
  else:
    spatial = [(n + lo + hi - k) // s + 1 for n, k, s, (lo, hi)
               in zip(x_shape[1:-1], kernel_shape[:-2], strides, pads)]
  if min(spatial) < 1:
    raise ValueError(f"convolution with an empty output: input {tuple(x_shape)}, kernel "
                     f"{tuple(kernel_shape)}, strides {strides}, pads {pads}")
  return (x_shape[0], *spatial, kernel_shape[-1])


def _ensure_loaded() -> None:
  reason = _load()
  if reason:
    raise OneDNNUnavailable(f"oneDNN convolutions are unavailable: {reason}")


def _ffi(kind: str, shape, a, b, strides, pads, transposed):
  _ensure_loaded()
  attrs = dict(strides=np.asarray(strides, np.int64),
               pads_lo=np.asarray([lo for lo, _ in pads], np.int64),
               pads_hi=np.asarray([hi for _, hi in pads], np.int64), transposed=bool(transposed))
  out = jax.ShapeDtypeStruct(tuple(shape), a.dtype)
  return jax.ffi.ffi_call(f"psrjax_conv_{kind}", out, vmap_method="sequential")(a, b, **attrs)


# ------------------------------------------------------------------ partitioning along the batch
def _batch_axes(sharding, batch: int, mesh) -> tuple[str, ...]:
  """The mesh axes that shard the leading (batch) axis, if they divide it evenly."""
  spec = getattr(sharding, "spec", None)
  if not spec or spec[0] is None:
    return ()
  axes = spec[0] if isinstance(spec[0], tuple) else (spec[0],)
  return axes if batch % math.prod(mesh.shape[a] for a in axes) == 0 else ()


def _sharding_rule(kind: str, rank: int):
  """Shardy rule: only the batch factor `b` may stay sharded (a reduction in the kernel
  gradient); every other factor is replicated."""
  letters = "tyx"[3 - (rank - 2):]
  x = " ".join(["b", *[f"{c}i" for c in letters], "ci"])
  y = " ".join(["b", *[f"{c}o" for c in letters], "co"])
  k = " ".join([*[f"{c}k" for c in letters], "ci", "co"])
  rules = {"forward": f"{x}, {k} -> {y}", "backward_data": f"{y}, {k} -> {x}",
           "backward_weights": f"{x}, {y} -> {k}"}
  rule = rules[kind]
  factors = dict.fromkeys(rule.replace(",", " ").replace("->", " ").split())  # in order of use
  reduction = ("b",) if kind == "backward_weights" else ()
  return rule, dict(reduction_factors=reduction,
                    need_replication_factors=tuple(f for f in factors if f != "b"))


def _partitioned(kind: str):
  """The FFI call `kind` as a `custom_partitioning` op
  (a, b, out_dims, strides, pads, transposed)."""

  def local(a, b, out_dims, strides, pads, transposed):
    shape = out_dims if kind == "backward_weights" else (a.shape[0], *out_dims)
    return _ffi(kind, shape, a, b, strides, pads, transposed)

  def shardings(mesh, arg_shapes):
    a = arg_shapes[0]
    axes = _batch_axes(a.sharding, a.shape[0], mesh)
    batch = NamedSharding(mesh, P(axes or None, *([None] * (len(a.shape) - 1))))
    whole = NamedSharding(mesh, P())
    if kind == "backward_weights":
      return axes, (batch, batch), whole
    return axes, (batch, whole), batch

  def infer(out_dims, strides, pads, transposed, mesh, arg_shapes, result_shape):
    return shardings(mesh, arg_shapes)[2]

  def partition(out_dims, strides, pads, transposed, mesh, arg_shapes, result_shape):
    axes, args, result = shardings(mesh, arg_shapes)

    def lower(a, b):
      y = local(a, b, out_dims, strides, pads, transposed)
      return lax.psum(y, axes) if kind == "backward_weights" and axes else y

    return mesh, lower, result, args

  op = custom_partitioning(local, static_argnums=(2, 3, 4, 5))
  op.def_partition(
      partition=partition, infer_sharding_from_operands=infer,
      sharding_rule=lambda out_dims, strides, pads, transposed, mesh, operands, results:
      _sharding_rule(kind, len(strides) + 2))
  return op


_OPS = {kind: _partitioned(kind) for kind in KINDS}


# ------------------------------------------------------------------------ the differentiable ops
def _normalise(strides, pads):
  return tuple(int(s) for s in strides), tuple((int(lo), int(hi)) for lo, hi in pads)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _convolve(x, kernel, strides, pads, transposed):
  out = out_shape(x.shape, kernel.shape, strides, pads, transposed)
  return _OPS["forward"](x, kernel, out[1:], strides, pads, transposed)


def _convolve_fwd(x, kernel, strides, pads, transposed):
  return _convolve(x, kernel, strides, pads, transposed), (x, kernel)


def _convolve_bwd(strides, pads, transposed, residuals, g):
  x, kernel = residuals
  dx = _OPS["backward_data"](g, kernel, tuple(x.shape[1:]), strides, pads, transposed)
  dk = _OPS["backward_weights"](x, g, tuple(kernel.shape), strides, pads, transposed)
  return dx, dk


_convolve.defvjp(_convolve_fwd, _convolve_bwd)


def conv(x: jax.Array, kernel: jax.Array, strides, pads) -> jax.Array:
  """Cross-correlation of `x` `[B, *spatial, Cin]` with `kernel` `[*window, Cin, Cout]` (2 or 3
  spatial axes; zero `pads` (lo, hi) per axis), computed by oneDNN (check `usable` first)."""
  return _convolve(x, kernel, *_normalise(strides, pads), False)


def conv_transpose(x: jax.Array, kernel: jax.Array, strides, pads) -> jax.Array:
  """Transposed convolution of `x` `[B, *spatial, Cin]` with `kernel` `[*window, Cin, Cout]`
  by oneDNN: out[s * i + k - lo] += x[i] kernel[k], output size (n - 1) * s - lo - hi + k
  per axis. PyTorch's `ConvTranspose` with `padding` p and `output_padding` o is
  pads (p, p - o) (both must be >= 0)."""
  strides, pads = _normalise(strides, pads)
  if min(min(p) for p in pads) < 0:
    raise ValueError(f"conv_transpose: pads must be >= 0; got {pads}")
  return _convolve(x, kernel, strides, pads, True)


# ------------------------------------------------------------------------------------ accounting
def _call_flops(eqn) -> float:
  """2 FLOPs per (output position, kernel tap, input channel) of the convolution (of its input
  position, kernel tap, output channel for a transposed one)."""
  kind = eqn.params["target_name"][len("psrjax_conv_"):]
  a, b = (v.aval.shape for v in eqn.invars)
  out = eqn.outvars[0].aval.shape
  src, dst, kernel = {"forward": (a, out, b), "backward_data": (out, a, b),
                      "backward_weights": (a, b, out)}[kind]
  if dict(eqn.params["attributes"]).get("transposed", False):
    return 2.0 * math.prod(src) * math.prod(kernel[:-2]) * kernel[-1]
  return 2.0 * math.prod(dst) * math.prod(kernel[:-1])


def jaxpr_flops(jaxpr) -> float:
  """FLOPs of the oneDNN convolutions in `jaxpr` (global shapes), which XLA's cost analysis
  cannot see into: 2 FLOPs per output element, kernel tap and input channel. Scans count
  `length` times, conds their costliest branch, other sub-computations once."""
  return jaxprs.total(jaxpr, lambda eqn: _call_flops(eqn) if eqn.primitive.name == "ffi_call"
                      and eqn.params["target_name"].startswith("psrjax_conv_") else 0.0)
