"""Sample videos: `System.generate` on one fixed evaluation example, drawn by `sample_video`."""
from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np

from psrjax.systems import base
from psrjax.train import partitioning


class Sampler:
  """Renders the sample strip of one fixed example with the current parameters."""

  def __init__(self, system, mesh, example_batch: Mapping[str, Any]):
    """`example_batch`: a numpy batch, identical on every process, whose first example is drawn."""
    self.system, self.mesh = system, mesh
    self.example = {k: np.asarray(v)[:1] for k, v in example_batch.items()}
    rep = partitioning.replicated(mesh)
    self._batch = {k: jax.make_array_from_process_local_data(rep, v, v.shape)
                   for k, v in self.example.items()}
    self._fns: dict[Any, Any] = {}

  def _generate(self, params, stage: str | None):
    if stage not in self._fns:
      param_shardings = jax.tree.map(lambda x: x.sharding, params)
      rep = partitioning.replicated(self.mesh)
      fn = lambda p, b: base.generate(self.system, p, b, stage=stage)
      self._fns[stage] = jax.jit(fn, in_shardings=(param_shardings, rep), out_shardings=rep)
    return self._fns[stage](params, self._batch)

  def frames(self, params, stage: str | None) -> np.ndarray:
    """uint8 [T, H, W', 3] from `System.sample_video` for the example."""
    outputs = jax.device_get(self._generate(params, stage))
    example = {k: v[0] for k, v in self.example.items()}
    outputs = {k: np.asarray(v)[0] for k, v in outputs.items()}
    return np.asarray(self.system.sample_video(example, outputs))
