"""The scale options of a run (sharding, compute dtype, gradient accumulation, EMA), validated.

`from_config` checks every config-only value before a system is built or anything compiles
(`model.remat` too: `remat_mode`); the EMA groups are checked against the system's parameter
groups when its initialisation is traced (`state.with_ema`).
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Any

import jax
import numpy as np

from psrjax.nn import policy
from psrjax.train import partitioning
from psrjax.train import precision

# model.remat="auto": the trainer picks the lightest mode whose planned memory fits the devices
# (`psrjax.train.plan.auto_remat`; "none" on the CPU).
AUTO_REMAT = "auto"


@dataclasses.dataclass(frozen=True)
class ScaleOptions:
  """How the train step is laid out and computed (see defaults.trainer_config)."""
  params_sharding: str  # "replicated" | "fsdp": placement of parameters and optimizer state.
  min_shard_size: int  # leaves with fewer elements are never split.
  compute_dtype: Any  # jnp.float32 | jnp.bfloat16, the dtype forwards and losses compute in.
  grad_accum: int  # microbatches per step (1 = the whole batch at once).
  ema_decay: float  # 0.0 = no EMA.
  ema_groups: tuple[str, ...]  # parameter groups with an exponential moving average.
  float32_inputs: tuple[str, ...] = ()  # batch keys never cast (System.float32_inputs).
  # The largest parameter group (elements) whose optimizer update runs on its parameters
  # raveled into one vector (`train.fused`), 0 = none; replicated parameters only (raveling
  # sharded ones would gather them).
  fused_update: int = 0

  @property
  def ema(self) -> bool:
    return self.ema_decay > 0.0

  def fuses(self, params) -> bool:
    """Whether the step updates the parameter group `params` as one vector."""
    size = sum(int(np.size(p)) for p in jax.tree.leaves(params))
    return self.params_sharding == "replicated" and 0 < size <= self.fused_update


def from_config(config, system=None) -> ScaleOptions:
  """Validated options from `config.sharding` and `config.train` (one-line errors)."""
  partitioning.check_strategy(config.sharding.params)
  remat_mode(config)
  if config.sharding.min_size < 1:
    raise ValueError(f"sharding.min_size={config.sharding.min_size} must be >= 1")
  accum = config.train.grad_accum
  if not isinstance(accum, int) or accum < 1:
    raise ValueError(f"train.grad_accum={accum!r} must be an integer >= 1")
  decay = float(config.train.ema.decay)
  groups = tuple(config.train.ema.groups)
  if not 0.0 <= decay < 1.0:
    raise ValueError(f"train.ema.decay={decay} must be in [0, 1) (0 = off, e.g. 0.999)")
  if decay > 0.0 and not groups:
    raise ValueError("train.ema.decay > 0 needs train.ema.groups, the parameter groups to "
                     "average (e.g. ('g',))")
  keep = tuple(getattr(system, "float32_inputs", ()))
  return ScaleOptions(params_sharding=config.sharding.params,
                      min_shard_size=int(config.sharding.min_size),
                      compute_dtype=precision.compute_dtype(config), grad_accum=accum,
                      ema_decay=decay, ema_groups=groups if decay > 0.0 else (),
                      float32_inputs=keep, fused_update=fused_update(config))


# train.fused_update="auto": groups of up to this many parameters, on the CPU. There the
# per-array updates cost a compiled loop and a dispatch each; past a few million parameters the
# raveled copies' memory traffic outweighs that.
AUTO_FUSED_MAX = 1 << 22


def fused_update(config, platform: str | None = None) -> int:
  """`ScaleOptions.fused_update` from `train.fused_update`: True (every group), False (none) or
  "auto" (groups of up to `AUTO_FUSED_MAX` parameters on the CPU, none on GPU/TPU; `platform`
  default JAX's default backend); one-line error otherwise."""
  value = config.train.get("fused_update", False)
  if value == "auto":
    return AUTO_FUSED_MAX if (platform or jax.default_backend()) == "cpu" else 0
  if not isinstance(value, bool):
    raise ValueError(f"train.fused_update={value!r} must be True, False or 'auto'")
  return sys.maxsize if value else 0


def remat_mode(config) -> str | None:
  """`config.model.remat` ("none", "blocks", "full" or "auto"; one-line error otherwise), or
  None for a config without it."""
  if "model" not in config or "remat" not in config.model:
    return None
  mode = config.model.remat
  if mode not in (*policy.REMAT_MODES, AUTO_REMAT):
    raise ValueError(f"model.remat={mode!r} is not a rematerialisation mode; use one of "
                     f"{', '.join(map(repr, (*policy.REMAT_MODES, AUTO_REMAT)))}")
  return mode
