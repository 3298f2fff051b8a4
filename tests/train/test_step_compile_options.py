"""Train steps compile with XLA:CPU's region analysis in copy insertion: the optimizer's moments,
donated with the state, are updated in place without being copied first."""
import re

import jax
import jax.numpy as jnp
import optax
import pytest

from psrjax.train import state as state_lib
from psrjax.train import step as step_lib


def _moment_copies(compiler_options) -> int:
  params = {f"w{i}": jnp.ones((256, 256)) for i in range(3)}
  opt = optax.adam(1e-3, b1=0.5)
  state = opt.init(params)

  def update(p, s, g):
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s

  fn = jax.jit(update, donate_argnums=(0, 1), compiler_options=compiler_options)
  text = fn.lower(params, state, params).compile().as_text()
  return len(re.findall(r"= f32\[256,256\]\{1,0\} copy\(", text))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="an XLA:CPU option")
def test_the_step_options_remove_the_copies_of_the_moments():
  assert step_lib.step_compiler_options() == {"xla_cpu_copy_insertion_use_region_analysis": True}
  assert _moment_copies(None) > 0               # what the option is for
  assert _moment_copies(step_lib.step_compiler_options()) == 0


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="an XLA:CPU option")
@pytest.mark.parametrize("flags,level", [
    ("", 1),
    ("--xla_force_host_platform_device_count=8", 1),
    ("--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true", 0),
    ("--xla_backend_optimization_level=3", 1),
])
def test_init_compiles_at_level_one_or_the_lower_level_xla_flags_asks_for(flags, level,
                                                                         monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", flags)
  assert state_lib.init_compiler_options() == {"xla_backend_optimization_level": level}
