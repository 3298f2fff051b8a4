"""VGG19 (torchvision layout); no package ships its weights: pass torchvision's file; see vgg.py."""
import functools

from psrjax.models.pretrained import vgg, weights

ENDPOINTS = vgg.endpoints(19)
EXAMPLE_INPUT_SHAPE = (1, 32, 32, 3)
WEIGHTS = weights.WeightSource(
    network="vgg19", from_torch=functools.partial(vgg.from_torchvision, depth=19),
    torch_hint="torchvision's vgg19-dcbb9e9d.pth")


def make_module(**kwargs) -> vgg.VGG:
  """VGG19 features; keyword arguments override the module's fields."""
  return vgg.VGG(depth=19, **kwargs)
