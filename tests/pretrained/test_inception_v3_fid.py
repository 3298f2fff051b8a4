"""The FID InceptionV3 against pytorch-fid's architecture written in PyTorch with torchvision's
Inception3 key names, random weights and batch statistics, read back without torch."""
import jax
import numpy as np
import pytest

from psrjax.models import pretrained
from psrjax.models.pretrained import inception_v3_fid

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional
TOL = 1e-4


class BasicConv2d(nn.Module):
  def __init__(self, cin, cout, **kwargs):
    super().__init__()
    self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
    self.bn = nn.BatchNorm2d(cout, eps=0.001)

  def forward(self, x):
    return F.relu(self.bn(self.conv(x)))


def _avg(x):
  return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
  def __init__(self, cin, pool_features):
    super().__init__()
    self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
    self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
    self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
    self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
    self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
    self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
    self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

  def forward(self, x):
    return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                      self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                      self.branch_pool(_avg(x))], 1)


class InceptionB(nn.Module):
  def __init__(self, cin):
    super().__init__()
    self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
    self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
    self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
    self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

  def forward(self, x):
    return torch.cat([self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                      F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionC(nn.Module):
  def __init__(self, cin, c7):
    super().__init__()
    self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
    self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
    self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
    self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
    self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

  def forward(self, x):
    b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
    bd = self.branch7x7dbl_1(x)
    for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
      bd = layer(bd)
    return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_avg(x))], 1)


class InceptionD(nn.Module):
  def __init__(self, cin):
    super().__init__()
    self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
    self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
    self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
    self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

  def forward(self, x):
    b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
    return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionE(nn.Module):
  def __init__(self, cin, max_pool):
    super().__init__()
    self.max_pool = max_pool
    self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
    self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
    self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
    self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
    self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
    self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
    self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
    self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
    self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

  def forward(self, x):
    b3 = self.branch3x3_1(x)
    b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
    bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
    bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
    pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg(x)
    return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class FIDInception3(nn.Module):
  """pytorch-fid's fid_inception_v3(): torchvision Inception3 (no aux logits) with FID blocks."""

  def __init__(self):
    super().__init__()
    self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
    self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
    self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
    self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
    self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
    self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
    self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
    self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = FIDInceptionA(192, 32), FIDInceptionA(256, 64), FIDInceptionA(288, 64)
    self.Mixed_6a = InceptionB(288)
    self.Mixed_6b, self.Mixed_6c = FIDInceptionC(768, 128), FIDInceptionC(768, 160)
    self.Mixed_6d, self.Mixed_6e = FIDInceptionC(768, 160), FIDInceptionC(768, 192)
    self.Mixed_7a = InceptionD(768)
    self.Mixed_7b, self.Mixed_7c = FIDInceptionE(1280, False), FIDInceptionE(2048, True)
    self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    self.dropout = nn.Dropout()
    self.fc = nn.Linear(2048, 1008)

  def endpoints(self, x01):
    """pytorch-fid's InceptionV3 forward on [0, 1] NCHW input, every layer recorded."""
    x = F.interpolate(x01, size=(299, 299), mode="bilinear", align_corners=False)
    x = 2 * x - 1
    order = [("Conv2d_1a_3x3", self.Conv2d_1a_3x3), ("Conv2d_2a_3x3", self.Conv2d_2a_3x3),
             ("Conv2d_2b_3x3", self.Conv2d_2b_3x3), ("MaxPool_1", self.maxpool1),
             ("Conv2d_3b_1x1", self.Conv2d_3b_1x1), ("Conv2d_4a_3x3", self.Conv2d_4a_3x3),
             ("MaxPool_2", self.maxpool2)] + [(n, getattr(self, n)) for n in inception_v3_fid.ENDPOINTS[7:18]]
    out = {}
    for name, layer in order:
      x = layer(x)
      out[name] = x.permute(0, 2, 3, 1)
    x = torch.flatten(self.avgpool(x), 1)
    out["pool3"], out["logits"] = x, self.fc(x)
    return {k: v.detach().numpy() for k, v in out.items()}


@pytest.fixture(scope="module")
def randomised(tmp_path_factory):
  torch.manual_seed(0)
  model = FIDInception3().eval()
  with torch.no_grad():   # non-trivial batch statistics and affine parameters
    for m in model.modules():
      if isinstance(m, nn.BatchNorm2d):
        m.running_mean.uniform_(-0.2, 0.2)
        m.running_var.uniform_(0.5, 2.0)
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.2, 0.2)
  path = tmp_path_factory.mktemp("fid") / "pt_inception.pth"
  torch.save(model.state_dict(), path)
  return model, path


def test_every_endpoint_matches_pytorch_fid_architecture(randomised):
  model, path = randomised
  module, variables = pretrained.load("inception_v3_fid", weights=path)
  x = np.random.RandomState(0).uniform(-1, 1, (2, 80, 96, 3)).astype(np.float32)
  ours = jax.jit(module.apply)(variables, x)
  with torch.no_grad():
    ref = model.endpoints(torch.from_numpy((x + 1) / 2).permute(0, 3, 1, 2))
  assert set(ours) == set(inception_v3_fid.ENDPOINTS)
  for name in inception_v3_fid.ENDPOINTS:
    r, o = ref[name], np.asarray(ours[name], np.float64)
    assert o.shape == r.shape, name
    assert np.max(np.abs(o - r)) / np.max(np.abs(r)) <= TOL, name


def test_missing_and_misshaped_keys_are_named(randomised, tmp_path):
  state = randomised[0].state_dict()
  bad = dict(state)
  del bad["Mixed_6c.branch7x7dbl_3.bn.running_var"]
  torch.save(bad, tmp_path / "missing.pth")
  with pytest.raises(ValueError, match="missing key 'Mixed_6c.branch7x7dbl_3.bn.running_var'"):
    pretrained.load("inception_v3_fid", weights=tmp_path / "missing.pth")
  bad = dict(state)
  bad["fc.weight"] = torch.zeros(1000, 2048)
  torch.save(bad, tmp_path / "shape.pth")
  with pytest.raises(ValueError, match=r"'fc.weight' has shape \(1000, 2048\), expected \(1008, 2048\)"):
    pretrained.load("inception_v3_fid", weights=tmp_path / "shape.pth")
  with pytest.raises(pretrained.MissingWeightsError, match="pt_inception-2015-12-05"):
    pretrained.load("inception_v3_fid")
