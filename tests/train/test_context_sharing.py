"""Contexts of equal configs in one process share the system, its initialisation's trace and
its jitted steps (psrjax.train.context); other configs, and later changes to a built config,
do not."""
import jax
import numpy as np

import toy_system
from psrjax.train import context as context_lib
from psrjax.train import data as data_lib
from psrjax.train import samples
from psrjax.train import state as state_lib


def test_equal_configs_share_the_system_and_its_jitted_steps():
  config = toy_system.toy_config(**{"train.steps": 4})
  one = context_lib.build_context(config, None, devices=jax.devices()[:1], evals=())
  eight = context_lib.build_context(toy_system.toy_config(**{"train.steps": 4}), None, evals=())
  assert eight.system is one.system and eight.init_fn is one.init_fn
  assert eight.abstract_state is one.abstract_state
  stage = one.stages[0]
  assert one.jit_step(stage) is one.jit_step(stage)
  assert eight.jit_step(stage) is not one.jit_step(stage)   # another mesh and shardings
  again = context_lib.build_context(config, None, devices=jax.devices()[:1], evals=())
  assert again.jit_step(again.stages[0]) is one.jit_step(stage)
  # the system holds a copy: a later change to the config builds another one
  config.train.steps = 6
  changed = context_lib.build_context(config, None, devices=jax.devices()[:1], evals=())
  assert changed.system is not one.system and one.system.config.train.steps == 4
  assert changed.jit_step(changed.stages[0]) is not one.jit_step(stage)


def test_samplers_of_one_system_and_mesh_trace_its_generation_once(monkeypatch):
  ctx = context_lib.build_context(toy_system.toy_config(**{"train.steps": 4}), None, evals=())
  state = state_lib.create_state(ctx.init_fn, ctx.base_key, ctx.global_batch(ctx.first_batch),
                                 ctx.state_shardings, ctx.mesh)
  traced = []
  generate = samples.base.generate
  monkeypatch.setattr(samples.base, "generate", lambda *a, **k: traced.append(1) or generate(*a, **k))
  example = data_lib.decode_batch(data_lib.encode_batch(ctx.eval_data.example(0)), xp=np)
  first = samples.Sampler(ctx.system, ctx.mesh, example).frames(ctx.eval_params(state), None)
  again = samples.Sampler(ctx.system, ctx.mesh, example).frames(ctx.eval_params(state), None)
  np.testing.assert_array_equal(first, again)
  assert len(traced) == 1



def test_a_sample_of_replicated_parameters_runs_on_one_device_as_on_the_mesh(monkeypatch):
  """Replicated parameters: the sample is generated on the first device from their local
  copies, with the frames the program on the mesh gives; a sharded array keeps the mesh."""
  ctx = context_lib.build_context(toy_system.toy_config(**{"train.steps": 4}), None, evals=())
  state = state_lib.create_state(ctx.init_fn, ctx.base_key, ctx.global_batch(ctx.first_batch),
                                 ctx.state_shardings, ctx.mesh)
  params = ctx.eval_params(state)
  local = samples.local_copy({"p": params, "host": np.ones(2)})
  first = jax.local_devices()[0]
  assert all(x.devices() == {first} for x in jax.tree.leaves(local["p"]))
  assert isinstance(local["host"], np.ndarray)
  jax.tree.map(np.testing.assert_array_equal, local["p"], params)
  data = jax.sharding.NamedSharding(ctx.mesh, jax.P(ctx.mesh.axis_names))
  assert samples.local_copy({"p": params, "x": jax.device_put(np.ones(ctx.mesh.size), data)}) is None
  example = data_lib.decode_batch(data_lib.encode_batch(ctx.eval_data.example(0)), xp=np)
  one_device = samples.Sampler(ctx.system, ctx.mesh, example).frames(params, None)
  assert (id(ctx.system), None) in samples._ONE_DEVICE   # pylint: disable=protected-access
  monkeypatch.setattr(samples, "local_copy", lambda tree: None)
  on_mesh = samples.Sampler(ctx.system, ctx.mesh, example).frames(params, None)
  np.testing.assert_allclose(one_device.astype(int), on_mesh.astype(int), atol=1)
