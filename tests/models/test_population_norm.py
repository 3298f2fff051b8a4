"""Population statistics for BatchStatNorm (`psrjax.nn.population_norm`)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrjax.nn import population_norm
from psrjax.nn.norms import BatchStatNorm


class _Net(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.Conv(3, (3, 3))(x)
    x = BatchStatNorm(name="norm")(x)
    return BatchStatNorm(name="out")(jnp.tanh(x) * 2.0 + 1.0)


@pytest.fixture(scope="module")
def net():
  rng = np.random.default_rng(0)
  batches = [jnp.asarray(rng.normal(size=(4, 6, 6, 2)) * 3.0 + 1.0, jnp.float32)
             for _ in range(3)]
  params = _Net().init(jax.random.PRNGKey(0), batches[0])
  params = jax.tree.map(lambda p: p + 0.3, params)   # scale and bias away from 1 and 0
  return params, batches


def test_the_batch_s_own_moments_give_the_batch_norm_s_output(net):
  params, batches = net
  forward = lambda b: _Net().apply(params, b)
  stats = population_norm.population_moments(forward, batches[:1])
  assert sorted(stats) == ["_Net/norm", "_Net/out"]
  with nn.intercept_methods(population_norm.fixed_moments(stats)):
    fixed = forward(batches[0])
  np.testing.assert_allclose(fixed, forward(batches[0]), atol=2e-5)


def test_population_moments_make_each_example_independent_of_its_batch(net):
  params, batches = net
  forward = lambda b: _Net().apply(params, b)
  stats = population_norm.population_moments(forward, batches)
  x = np.concatenate([np.asarray(b) for b in batches])
  # the first norm's input is the convolution's output: its population mean over every batch
  conv = nn.Conv(3, (3, 3)).apply({"params": params["params"]["Conv_0"]}, jnp.asarray(x))
  np.testing.assert_allclose(stats["_Net/norm"][0], np.asarray(conv).reshape(-1, 3).mean(0),
                             rtol=1e-4, atol=1e-5)
  run = jax.jit(lambda b: _with(stats, lambda: forward(b)))
  whole = run(batches[1])
  alone = np.concatenate([run(batches[1][i:i + 1]) for i in range(4)])
  np.testing.assert_allclose(alone, whole, atol=1e-5)
  assert np.abs(np.asarray(forward(batches[1][:1])) - np.asarray(whole[:1])).max() > 0.1


def _with(stats, fn):
  with nn.intercept_methods(population_norm.fixed_moments(stats)):
    return fn()


def test_a_layer_without_statistics_is_a_clear_error(net):
  params, batches = net
  with pytest.raises(KeyError, match="no population statistics for batch norm '_Net/out'"):
    _with({"_Net/norm": (np.zeros(3), np.ones(3))}, lambda: _Net().apply(params, batches[0]))
