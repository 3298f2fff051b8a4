"""Where a run runs: the platform check (`train.platform`) and the run's one-line description.

If the CUDA plugin or libtpu fails to load, JAX falls back to the CPU with a log warning and a
training would go on there, hours slower, without a word. `train.platform` says what the run
needs: "any" (the default) trains wherever JAX runs; "cpu", "gpu" or "tpu" stops before
anything is read or written, with one line naming the devices JAX found and what to check, when
the devices are of another platform. The launchers (`launch/`) set it.

Every run states where it runs on its first line and records it in `config.json` under
`runtime`: platform, device kind and count (all and this process's), processes, mesh axes and
compute dtype (`describe`, `line`).
"""
from __future__ import annotations

from typing import Any, Sequence

import jax

PLATFORMS = ("any", "cpu", "gpu", "tpu")
# JAX's platform names of the devices each `train.platform` accepts (ROCm GPUs report "gpu" too).
_ACCEPTS = {"cpu": ("cpu",), "gpu": ("gpu", "cuda", "rocm"), "tpu": ("tpu",)}
_HINTS = {
    "gpu": "the CUDA plugin did not load: install psrjax[cuda12] (or jax[cuda12]) and check "
           "`nvidia-smi` and `python -c 'import jax; print(jax.devices())'`",
    "tpu": "libtpu did not load or the chips are held by another process: install psrjax[tpu] "
           "and check `python -c 'import jax; print(jax.devices())'`",
    "cpu": "JAX selected an accelerator: set JAX_PLATFORMS=cpu",
}


def check_name(required: str) -> str:
  if required not in PLATFORMS:
    raise ValueError(f"train.platform={required!r} is not a platform; use one of "
                     f"{', '.join(map(repr, PLATFORMS))}")
  return required


def check(required: str, devices: Sequence[jax.Device] | None = None) -> None:
  """Raises ValueError (one line) when `devices` (default: `jax.devices()`) are not of the
  platform `required` ("any" accepts every platform)."""
  check_name(required)
  if required == "any":
    return
  devices = list(devices if devices is not None else jax.devices())
  found = sorted({d.platform for d in devices})
  if all(p in _ACCEPTS[required] for p in found):
    return
  kinds = ", ".join(sorted({d.device_kind for d in devices}))
  raise ValueError(
      f"train.platform={required!r} but JAX runs on {'/'.join(found)} ({len(devices)} x "
      f"{kinds}): {_HINTS[required]}; or set --config.train.platform=any to train there")


def describe(mesh, compute_dtype: str) -> dict[str, Any]:
  """The run's platform, devices, processes, mesh and compute dtype (JSON-ready)."""
  devices = list(mesh.devices.flat)
  local = [d for d in devices if d.process_index == jax.process_index()]
  return {
      "platform": devices[0].platform,
      "device_kind": ", ".join(sorted({d.device_kind for d in devices})),
      "devices": len(devices),
      "local_devices": len(local),
      "processes": jax.process_count(),
      "process_index": jax.process_index(),
      "mesh": {str(k): int(v) for k, v in mesh.shape.items()},
      "compute_dtype": str(compute_dtype),
      "jax": jax.__version__,
  }


def line(info: dict[str, Any]) -> str:
  """One line of `describe`'s fields, e.g. "gpu: 8 x NVIDIA H100 80GB HBM3 (8 on this
  process), 1 process, mesh data=8 x replica=1 x model=1, compute bfloat16, jax 0.10.2"."""
  mesh = " x ".join(f"{k}={v}" for k, v in info["mesh"].items())
  processes = info["processes"]
  return (f"{info['platform']}: {info['devices']} x {info['device_kind']} "
          f"({info['local_devices']} on this process), {processes} "
          f"process{'es' if processes > 1 else ''}, mesh {mesh}, compute "
          f"{info['compute_dtype']}, jax {info['jax']}")
