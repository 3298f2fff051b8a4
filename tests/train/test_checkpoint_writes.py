"""How the trainer's checkpoints write replicated arrays (`checkpoint_params.StateHandler`):
in one process each array is written whole from one replica, with no sliced copies, and the
files are orbax's standard ones, readable both ways with orbax's own handler."""
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from psrjax.train import checkpoint


def _replicated_state():
  """A small state of replicated arrays (8 devices), each divisible among the replicas."""
  mesh = jax.make_mesh((8,), ("data",), devices=jax.devices()[:8])
  rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  values = {"w": np.arange(64 * 8, dtype=np.float32).reshape(64, 8),
            "b": np.linspace(-1, 1, 16, dtype=np.float32), "step": np.int32(7)}
  return {k: jax.device_put(v, rep) for k, v in values.items()}


def _abstract(state):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)


@pytest.fixture
def slices(monkeypatch):
  """The sliced copies orbax makes while saving (its replica-parallel writing)."""
  calls = []
  original = jax.lax.slice_in_dim
  monkeypatch.setattr(jax.lax, "slice_in_dim", lambda *a, **k: calls.append(a) or original(*a, **k))
  return calls


def test_one_process_writes_replicated_arrays_whole(tmp_path, slices):
  state = _replicated_state()
  ckpt = checkpoint.Checkpoints(str(tmp_path / "checkpoints"))
  ckpt.save(1, state, None)
  ckpt.wait()
  assert slices == []
  with ocp.CheckpointManager(str(tmp_path / "checkpoints")) as manager:   # orbax's own handler
    got = manager.restore(1, args=ocp.args.Composite(state=ocp.args.StandardRestore(_abstract(state))))
  for key, value in state.items():
    np.testing.assert_array_equal(np.asarray(got["state"][key]), np.asarray(value))
  ckpt.close()


def test_reads_what_orbax_wrote_replica_parallel(tmp_path, slices):
  state = _replicated_state()
  with ocp.CheckpointManager(str(tmp_path / "checkpoints")) as manager:
    manager.save(1, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
    manager.wait_until_finished()
  assert slices, "orbax's default no longer writes replicated arrays in slices"
  ckpt = checkpoint.Checkpoints(str(tmp_path / "checkpoints"), read_only=True)
  got = ckpt.manager.restore(1, args=ocp.args.Composite(
      state=checkpoint.StateRestore(_abstract(state))))
  for key, value in state.items():
    np.testing.assert_array_equal(np.asarray(got["state"][key]), np.asarray(value))
