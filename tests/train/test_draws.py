"""Merged draws (psrjax/train/draws.py): the values of the unmerged program, bit for bit, with
fewer threefry hash calls."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from psrjax.train import draws


class _Net(nn.Module):
  """Convolutions, a norm's statistics and a scanned layer (its draws inside the scan)."""

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(4, (3, 3))(x)
    x = nn.BatchNorm(use_running_average=True)(nn.relu(x))
    scanned = nn.scan(_Cell, variable_axes={"params": 0}, split_rngs={"params": True},
                      length=2)
    x, _ = scanned()(x, None)
    return nn.Dense(3)(x)


class _Cell(nn.Module):

  @nn.compact
  def __call__(self, c, _):
    return nn.Dense(c.shape[-1])(c), None


def _draws(key, x):
  k1, k2 = jax.random.split(key)
  return {
      "normal": jax.random.normal(jax.random.fold_in(k1, 7), (3, 5)),
      "uniform": jax.random.uniform(k2, (4,), minval=-2.0),
      "bits8": jax.random.bits(k2, (2, 3), jnp.uint8),
      "bits16": jax.random.bits(jax.random.fold_in(k2, 3), (5,), jnp.uint16),
      "truncated": jax.random.truncated_normal(jax.random.fold_in(key, 2**31 + 5), -2.0, 2.0,
                                               (6, 2, 2)),
      "split": jax.random.key_data(jax.random.split(jax.random.fold_in(k2, 1), (2, 2))),
      "batched": jax.vmap(lambda k: jax.random.normal(k, (3,)))(jax.random.split(k1, 4)),
      "params": _Net().init(key, x),
      "sum": x.sum(),
  }


def _whiles(fn, *args) -> int:
  return jax.jit(fn).trace(*args).lower(lowering_platforms=("cpu",)).as_text().count(
      "stablehlo.while")


def test_merged_draws_are_the_same_bits_from_fewer_hash_calls():
  key, x = jax.random.key(3), jnp.ones((1, 8, 8, 3))
  merged = draws.merge_draws(_draws)
  jax.tree.map(np.testing.assert_array_equal, jax.jit(merged)(key, x), jax.jit(_draws)(key, x))
  ten = lambda key: [jax.random.normal(jax.random.fold_in(key, i), (i + 1, 2)) for i in range(10)]
  # XLA:CPU's threefry is a loop: one per fold_in and per draw shape; merged, one for the
  # fold_ins and one for the draws.
  assert _whiles(ten, key) >= 10 and _whiles(draws.merge_draws(ten), key) == 2


def test_a_large_draw_keeps_its_own_call(monkeypatch):
  monkeypatch.setattr(draws, "MAX_MERGED", 16)
  fn = lambda key: [jax.random.normal(jax.random.fold_in(key, i), (n,))
                    for i, n in enumerate((3, 40, 5, 9))]
  key = jax.random.key(0)
  jax.tree.map(np.testing.assert_array_equal, jax.jit(draws.merge_draws(fn))(key), jax.jit(fn)(key))


def test_trace_is_shared_by_equal_shapes():
  calls = []

  def fn(key, x):
    calls.append(1)
    return jax.random.normal(key, x.shape) + x

  spec = jax.ShapeDtypeStruct((2,), jnp.float32)
  assert draws.trace(fn, jax.random.key(0), spec).out_info.shape == (2,)
  jax.jit(draws.merge_draws(fn))(jax.random.key(1), jnp.ones((2,)))
  assert len(calls) == 1


def test_merged_draws_lower_for_accelerators():
  key, x = jax.random.key(3), jnp.ones((1, 8, 8, 3))
  traced = jax.jit(draws.merge_draws(_draws)).trace(key, x)
  for platform in ("cuda", "tpu"):
    assert "threefry" in traced.lower(lowering_platforms=(platform,)).as_text()


def test_side_effects_keep_their_order(capfd):
  def fn(key):   # "first" waits on a later round of draws than "second"
    deep = jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, 2), 3), (2,))
    shallow = jax.random.normal(jax.random.fold_in(key, 1), (2,))
    jax.debug.print("first {}", deep[0], ordered=True)
    jax.debug.print("second {}", shallow[0], ordered=True)
    return deep + shallow
  key = jax.random.key(0)
  np.testing.assert_array_equal(jax.jit(draws.merge_draws(fn))(key), jax.jit(fn)(key))
  jax.effects_barrier()
  out = capfd.readouterr().out
  assert out.index("first") < out.index("second")
