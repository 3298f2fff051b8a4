"""The stage forward of the train step (`Stage.forward`), on the toy GAN."""
from __future__ import annotations

import functools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import toy_system  # noqa: E402
from psrjax.systems import base  # noqa: E402
from psrjax.train import options as options_lib  # noqa: E402
from psrjax.train import state as state_lib  # noqa: E402
from psrjax.train import step as step_lib  # noqa: E402

BATCH = {"src": jnp.linspace(-1, 1, 2 * 2 * 8 * 8 * 3).reshape(2, 2, 8, 8, 3),
         "rgb": jnp.cos(jnp.linspace(0, 9, 2 * 2 * 8 * 8 * 3)).reshape(2, 2, 8, 8, 3),
         "index": jnp.arange(2)}


def _options(grad_accum=1, fused_update=0):
  return options_lib.ScaleOptions(params_sharding="replicated", min_shard_size=1,
                                  compute_dtype=jnp.float32, grad_accum=grad_accum,
                                  ema_decay=0.0, ema_groups=(), fused_update=fused_update)


def _run(system, stage, *, forward_once, steps=3, grad_accum=1, fused_update=0):
  optimizers = system.optimizers()
  state = state_lib.from_params(system.init(jax.random.key(0), BATCH), optimizers)
  options = _options(grad_accum, fused_update)
  step = jax.jit(step_lib.make_train_step(system, optimizers, stage, options,
                                          forward_once=forward_once))
  history = []
  for _ in range(steps):
    state, metrics = step(state, BATCH, jax.random.key(1), {})
    history.append(jax.device_get(metrics))
  return history, jax.device_get(state["params"])


def _assert_same(a, b, rtol=1e-6):
  for ma, mb in zip(a[0], b[0]):
    assert ma.keys() == mb.keys()
    for k in ma:
      np.testing.assert_allclose(ma[k], mb[k], rtol=rtol, atol=1e-7, err_msg=k)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-7), a[1], b[1])


@pytest.mark.parametrize("order", ["dg", "gd"])
def test_saved_forward_equals_forward_in_every_phase(order):
  """D then G (the generator reads the updated D) and G then D (D reads the outputs of the
  generator the step started from, as a PyTorch step that detaches them does)."""
  system = toy_system.ToySystem(toy_system.toy_config())
  d = base.Phase("d", ("d",), system.d_loss)
  g = base.Phase("g", ("g",), functools.partial(system.g_loss, 0.1))
  phases = (d, g) if order == "dg" else (g, d)
  stage = base.Stage("s", 3, phases, forward=system.forward, forward_phase="g")
  _assert_same(_run(system, stage, forward_once=True), _run(system, stage, forward_once=False))


def test_generator_first_discriminator_reads_the_outputs_of_the_steps_start():
  system = toy_system.ToySystem(toy_system.toy_config(), input_noise=0.0)
  d = base.Phase("d", ("d",), system.d_loss)
  g = base.Phase("g", ("g",), functools.partial(system.g_loss, 0.1))
  stage = base.Stage("s", 1, (g, d), forward=system.forward, forward_phase="g")
  params = system.init(jax.random.key(0), BATCH)
  history, _ = _run(system, stage, forward_once=True, steps=1)
  fake = system.forward(params, BATCH, None)["fake"]
  expected = jax.nn.softplus(system._logits(params, fake)).mean()
  np.testing.assert_allclose(history[0]["d/fake"], expected, rtol=1e-6)


def test_gradient_accumulation_runs_the_forward_in_every_phase():
  """grad_accum > 1 takes the recomputing path; with 2 microbatches it stays close to one."""
  system = toy_system.ToySystem(toy_system.toy_config(), input_noise=0.0)
  stage = system.stages()[1]
  one = _run(system, stage, forward_once=True)
  two = _run(system, stage, forward_once=True, grad_accum=2)
  for ma, mb in zip(one[0], two[0]):
    np.testing.assert_allclose(ma["g/l1"], mb["g/l1"], rtol=1e-5)



def test_groups_updated_as_one_vector_train_as_per_array():
  """`train.fused_update`: the same losses, norms and parameters as optax's per-array update
  (to float rounding), for groups under the size limit only."""
  system = toy_system.ToySystem(toy_system.toy_config())
  stage = base.Stage("s", 3, (base.Phase("d", ("d",), system.d_loss),
                              base.Phase("g", ("g",), functools.partial(system.g_loss, 0.1))),
                     forward=system.forward, forward_phase="g")
  per_array = _run(system, stage, forward_once=True)
  _assert_same(_run(system, stage, forward_once=True, fused_update=10 ** 9), per_array, rtol=2e-6)
  params = system.init(jax.random.key(0), BATCH)
  sizes = {g: sum(int(np.size(p)) for p in jax.tree.leaves(params[g])) for g in ("g", "d")}
  limit = min(sizes.values())
  assert _options(fused_update=limit).fuses(params[min(sizes, key=sizes.get)])
  assert not _options(fused_update=limit).fuses(params[max(sizes, key=sizes.get)])
  assert not _options(fused_update=0).fuses(params["g"])
