"""`fused.fused_update` against optax's own per-array update: the same parameters and optimizer
state (in the same per-array structure) over several steps, for the optimizers the systems use,
on a tree of mixed shapes (scalars, vectors, kernels) and dtypes."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from psrjax.train import fused

OPTIMIZERS = {
    "adam_schedule": lambda: optax.adam(optax.linear_schedule(2e-3, 1e-4, 3), b1=0.5, b2=0.999),
    "sgd_momentum": lambda: optax.sgd(1e-2, momentum=0.9),
    "clipped_adamw": lambda: optax.chain(optax.clip_by_global_norm(0.5), optax.adamw(1e-3)),
}


def _tree(seed: int, dtype=jnp.float32):
  rng = np.random.default_rng(seed)
  shapes = {"conv": {"kernel": (3, 3, 4, 8), "bias": (8,)}, "scale": (), "dense": (5, 2)}
  return jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s), dtype), shapes,
                      is_leaf=lambda x: isinstance(x, tuple))


def _norm32(tree):
  """The global norm with every array's squares summed in float32 (bfloat16 ones included)."""
  return optax.global_norm(jax.tree.map(lambda x: x.astype(jnp.float32), tree))


@pytest.mark.parametrize("mixed", [False, True], ids=["float32", "with_bfloat16"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_same_parameters_and_state_as_the_per_array_update(name, mixed):
  optimizer = OPTIMIZERS[name]()
  params = _tree(0)
  if mixed:  # a second dtype, a vector of its own (its updates round where XLA's fusions do)
    params["half"] = jnp.ones((3, 2), jnp.bfloat16)
  norm_rtol = 8e-3 if mixed else 1e-5
  state_a = state_b = optimizer.init(params)
  params_a = params_b = params
  for step in range(3):
    grads = jax.tree.map(lambda p, s=step: (p * (s + 1) + 0.5).astype(p.dtype), params_a)
    updates, state_a = jax.jit(optimizer.update)(grads, state_a, params_a)
    new_a = optax.apply_updates(params_a, updates)
    params_b, state_b, (grad_norm, update_norm) = jax.jit(
        lambda g, s, p: fused.fused_update(optimizer, g, s, p))(grads, state_b, params_b)
    assert jax.tree.structure(state_b) == jax.tree.structure(state_a)
    for a, b in zip(jax.tree.leaves((new_a, state_a)), jax.tree.leaves((params_b, state_b))):
      assert a.shape == b.shape and a.dtype == b.dtype
      np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                                 rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(grad_norm, _norm32(grads), rtol=1e-5)
    np.testing.assert_allclose(update_norm, _norm32(updates), rtol=norm_rtol)
    params_a = new_a


def test_a_group_of_one_array_keeps_the_step_count_apart():
  """A one-array group has the structure of a scalar (Adam's count): told apart by shape."""
  optimizer = optax.adam(1e-2)
  params = {"w": jnp.arange(4.0)}
  state = optimizer.init(params)
  new, state, _ = fused.fused_update(optimizer, {"w": jnp.ones(4)}, state, params)
  assert int(state[0].count) == 1
  np.testing.assert_allclose(new["w"], jnp.arange(4.0) - 1e-2, rtol=1e-5)


def test_global_norm_equals_optax():
  tree = _tree(1)
  np.testing.assert_allclose(fused.global_norm(tree), optax.global_norm(tree), rtol=1e-6)
  assert float(fused.global_norm({})) == 0.0
