"""The generator forward runs once per step: same training as running it in every phase.

For the GAN stages of the shipped systems, three steps of the step that saves the forward's
VJP (`forward_once=True`, the default) give the losses and parameters of the step that runs
the forward inside each phase (`forward_once=False`, what gradient accumulation does), and
XLA's cost analysis counts fewer FLOPs for it (one generator forward less per step).
"""
from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "train"))
import train_harness  # noqa: E402
from psrjax.train import benchmark  # noqa: E402
from psrjax.train import context as context_lib  # noqa: E402
from psrjax.train import data as data_lib  # noqa: E402
from psrjax.train import state as state_lib  # noqa: E402
from psrjax.train import step as step_lib  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
STEPS = 3
SLOW = pytest.mark.slow  # the same check on further stages: `pytest -m slow` runs them
# pix2pixHD's stage runs in CI (the cheapest to compile); the larger systems' are slow.
CASES = [pytest.param("pix2pixhd", "main", {}, id="pix2pixhd-main"),
         pytest.param("psrnet", "layer1", {}, id="psrnet-layer1", marks=SLOW),
         pytest.param("psrnet", "layer2", {}, id="psrnet-layer2", marks=SLOW),
         pytest.param("psrnet", "joint", {"schedule.mode": "joint"}, id="psrnet-joint", marks=SLOW),
         pytest.param("mfci", "single", {}, id="mfci-single", marks=SLOW),
         pytest.param("mfci", "fused", {}, id="mfci-fused", marks=SLOW)]


def _context(name, overrides):
  config = train_harness.config_with(os.path.join(CONFIGS, f"{name}.py") + ":tiny", **overrides)
  return context_lib.build_context(config, None, devices=jax.devices()[:1])


def _start(ctx, stage):
  """Fresh state at the stage's first step, and the first batch as training feeds it."""
  state = state_lib.create_state(ctx.init_fn, ctx.base_key, ctx.global_batch(ctx.first_batch),
                                 ctx.state_shardings, ctx.mesh)
  start, _ = step_lib.ema_schedule(ctx.stages, stage)
  state = {**state, "step": jnp.asarray(start, jnp.int32)}
  return state, ctx.global_batch(data_lib.encode_batch(ctx.first_batch))


def _train(ctx, stage, forward_once):
  """(metrics of each step, final parameters, initial parameters) on host."""
  state, batch = _start(ctx, stage)
  initial = jax.device_get(state["params"])
  step = jax.jit(step_lib.make_train_step(ctx.system, ctx.optimizers, stage, ctx.options,
                                          ctx.mesh, stages=ctx.stages,
                                          forward_once=forward_once))
  history = []
  for _ in range(STEPS):
    state, metrics = step(state, batch, ctx.base_key, ctx.constants)
    history.append(jax.device_get(metrics))
  return history, jax.device_get(state["params"]), initial


@pytest.mark.parametrize("name, stage_name, overrides", CASES)
def test_forward_once_equals_forward_per_phase(name, stage_name, overrides):
  ctx = _context(name, overrides)
  stage = next(s for s in ctx.stages if s.name == stage_name)
  assert stage.forward is not None and stage.generator_phase().name == "g"
  once, once_params, initial = _train(ctx, stage, forward_once=True)
  per_phase, per_phase_params, _ = _train(ctx, stage, forward_once=False)
  for a, b in zip(once, per_phase):
    assert a.keys() == b.keys()
    for key in a:
      # Update norms include the zero-gradient leaves Adam moves by rounding noise (see
      # `_assert_same_params`, which checks every other leaf to 1e-5).
      rtol = 1e-3 if key.startswith("l2_updates/") else 1e-5
      np.testing.assert_allclose(a[key], b[key], rtol=rtol, atol=1e-6, err_msg=key)
  _assert_same_params(once_params, per_phase_params,
                      _zero_gradient_leaves(ctx, stage, once_params))


def _zero_gradient_leaves(ctx, stage, trained):
  """Paths of the parameters whose gradient at the `trained` parameters is zero up to rounding
  (below 1e-7 of their phase's gradient global norm)."""
  _, batch = _start(ctx, stage)
  params, key = {**trained, **ctx.constants}, ctx.base_key
  zero = set()
  for phase in stage.phases:

    def loss(trainable, phase=phase):
      p, b = {**params, **trainable}, ctx.system.prepare(data_lib.decode_batch(batch))
      return phase.loss(p, b, stage.forward(p, b, key), key)[0]

    grads = jax.jit(jax.grad(loss))({g: params[g] for g in phase.trains})
    norm = float(optax.global_norm(grads))
    flat = jax.tree_util.tree_flatten_with_path(grads)[0]
    zero |= {jax.tree_util.keystr(p) for p, g in flat if np.abs(g).max() < 1e-7 * norm}
  return zero


def _assert_same_params(a, b, zero_gradient):
  """Every parameter agrees to 1e-5, but those whose gradient is zero up to rounding.

  Conv biases that feed an instance norm have an exactly zero gradient (as have SAGAN's query
  and key projections while its gamma is ~0); Adam divides the rounding noise left there by
  its own magnitude, so each run moves them by noise. They hold < 5 % of the parameters.
  """
  flat = jax.tree_util.tree_flatten_with_path(a)[0]
  for (path, x), y in zip(flat, jax.tree.leaves(b)):
    if jax.tree_util.keystr(path) not in zero_gradient:
      np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5, err_msg=jax.tree_util.keystr(path))
  sizes = {jax.tree_util.keystr(path): x.size for path, x in flat}
  skipped = sum(sizes[p] for p in zero_gradient)
  assert skipped < 0.05 * sum(sizes.values()), (skipped, sorted(zero_gradient))


# The share of the stage's forward FLOPs the step saves at least: PSR-Net's layer-1 forward is
# all generator; MFCI's fused forward is mostly the frozen baseline's features, which XLA's CSE
# already computed once when every phase ran the forward, so only the fusion branches go.
@pytest.mark.parametrize("name, stage_name, share", [
    ("psrnet", "layer1", 0.5), pytest.param("mfci", "fused", 0.15, marks=SLOW)])
def test_forward_once_saves_a_generator_forward_of_flops(name, stage_name, share):
  ctx = _context(name, {})
  stage = next(s for s in ctx.stages if s.name == stage_name)
  state, batch = _start(ctx, stage)
  args = (state, batch, ctx.base_key, ctx.constants)
  once = benchmark.step_flops(ctx, stage, args)
  per_phase = benchmark.step_flops(ctx, stage, args, forward_once=False)
  generator = stage.generator_phase()
  params = {g: state["params"][g] for g in generator.trains}
  prepared = jax.jit(lambda b: ctx.system.prepare(data_lib.decode_batch(b)))(batch)
  frozen = {g: p for g, p in {**state["params"], **ctx.constants}.items() if g not in params}
  forward = jax.jit(lambda p, b: stage.forward({**frozen, **p}, b, ctx.base_key))
  forward_flops = benchmark.function_flops(forward, params, prepared)
  print(f"{name}/{stage_name}: FLOPs per step {per_phase:.4g} -> {once:.4g} "
        f"({once / per_phase:.3f}x); one forward {forward_flops:.4g}")
  assert once < per_phase
  assert per_phase - once > share * forward_flops
