"""What a train step computes in, and what it lowers to on an accelerator, checked on any host.

`jax.jit(step).trace(...).lower(lowering_platforms=("tpu",))` (or "cuda") lowers a step for an
accelerator without the hardware. These helpers read the result: the element types of every
convolution and matrix product (`compute_dtypes` on the StableHLO text, `jaxpr_compute_dtypes`
on a traced jaxpr, which also sees psrjax's CPU convolution calls) and the custom-call targets a
module needs (`custom_call_targets`), so tests can assert that `train.compute_dtype` reaches
every convolution and that an accelerator's module has no CPU-only call.
"""
from __future__ import annotations

import re

import jax

from psrjax.nn.jaxprs import sub_jaxprs
from psrjax.nn.policy import FLOAT32_SCOPES

# StableHLO ops that do the heavy arithmetic, and the jaxpr primitives behind them.
HLO_COMPUTE_OPS = ("stablehlo.convolution", "stablehlo.dot_general", "stablehlo.dot")
JAXPR_COMPUTE_PRIMITIVES = ("conv_general_dilated", "dot_general")
CPU_CONV_TARGET_PREFIX = "psrjax_conv_"   # psrjax.nn.cpu.onednn's FFI targets (CPU only)

_OPERAND_TYPES = re.compile(r":\s*\((.*)\)\s*->")
_ELEMENT = re.compile(r"tensor<(?:[0-9?]+x)*([a-z0-9]+)>")
_CUSTOM_CALL = re.compile(r"stablehlo\.custom_call\s*@([A-Za-z0-9_.$-]+)")


def lower_text(jitted, args, platform: str) -> str:
  """StableHLO text of `jitted(*args)` lowered for `platform` ("cpu", "cuda", "rocm" or "tpu")."""
  return jitted.trace(*args).lower(lowering_platforms=(platform,)).as_text()


def compute_dtypes(hlo_text: str) -> list[tuple[str, tuple[str, ...]]]:
  """(op, operand element types) of every convolution and dot in a StableHLO module."""
  found = []
  for line in hlo_text.splitlines():
    op = next((o for o in HLO_COMPUTE_OPS if f"= {o}" in line or f"{o}(" in line), None)
    match = _OPERAND_TYPES.search(line) if op else None
    if match:
      found.append((op, tuple(_ELEMENT.findall(match.group(1)))))
  return found


def custom_call_targets(hlo_text: str) -> set[str]:
  """Names of the custom calls a StableHLO module makes."""
  return set(_CUSTOM_CALL.findall(hlo_text))


def jaxpr_compute_dtypes(jaxpr) -> list[tuple[str, tuple[str, ...]]]:
  """(primitive or FFI target, operand dtypes) of every convolution, dot and psrjax CPU
  convolution call in `jaxpr` and its sub-jaxprs (jit, remat, custom_vjp, scan, cond ...),
  except the float32 coordinate geometry and statistics (`psrjax.nn.policy.FLOAT32_SCOPES`)."""
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  found = []
  for eqn in jaxpr.eqns:
    if any(scope in str(eqn.source_info.name_stack) for scope in FLOAT32_SCOPES):
      continue
    name = eqn.primitive.name
    if name == "ffi_call" and str(eqn.params.get("target_name", "")).startswith(
        CPU_CONV_TARGET_PREFIX):
      name = eqn.params["target_name"]
    if name in JAXPR_COMPUTE_PRIMITIVES or name.startswith(CPU_CONV_TARGET_PREFIX):
      found.append((name, tuple(str(v.aval.dtype) for v in eqn.invars)))
    for sub in sub_jaxprs(list(eqn.params.values())):
      found.extend(jaxpr_compute_dtypes(sub))
  return found
