"""What the model tests need to check a network against a PyTorch reference with identical
weights: NHWC arrays as NCHW tensors and back, random inputs, PyTorch convolutions' weights as
Flax parameters (one module's convolutions at a list of parameter paths), the check that those
parameters have the Flax module's own tree, and the pix2pixHD building blocks (NVIDIA/pix2pixHD
models/networks.py: GlobalGenerator's front end, ResnetBlock, its up-sampling back end) that the
pix2pixHD and D²G-Net references are built from."""
import jax
import jax.numpy as jnp
import numpy as np
import torch
from torch import nn as tnn

KEY = jax.random.key(0, impl="rbg")


# ------------------------------------------------------------------ arrays
def nchw(x) -> torch.Tensor:
  """An NHWC array as an NCHW float32 tensor."""
  return torch.from_numpy(np.ascontiguousarray(np.moveaxis(np.asarray(x, np.float32), -1, 1)))


def nhwc(t: torch.Tensor) -> np.ndarray:
  """An NCHW tensor (autograd's or not) as an NHWC array."""
  return np.moveaxis(t.detach().numpy(), 1, -1)


def normal(*shape, seed=0, scale=1.0) -> np.ndarray:
  """float32 draws of a normal distribution of standard deviation `scale`."""
  return (scale * np.random.default_rng(seed).normal(size=shape)).astype(np.float32)


def uniform(*shape, seed=0) -> np.ndarray:
  """float32 draws of the uniform distribution on [-1, 1] (the generators' image range)."""
  return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


# ------------------------------------------------------------------ weights
def convs(module: tnn.Module) -> list[tnn.Module]:
  """`module`'s convolutions (plain and transposed) in the order `modules()` lists them."""
  return [m for m in module.modules() if isinstance(m, (tnn.Conv2d, tnn.ConvTranspose2d))]


def conv_params(conv: tnn.Module) -> dict:
  """A PyTorch convolution's weights as psrjax.nn's (HWIO kernel; the bias where it has one)."""
  perm = (2, 3, 0, 1) if isinstance(conv, tnn.ConvTranspose2d) else (2, 3, 1, 0)
  params = {"kernel": jnp.asarray(conv.weight.detach().numpy().transpose(perm))}
  if conv.bias is not None:
    params["bias"] = jnp.asarray(conv.bias.detach().numpy())
  return params


def conv_tree(module: tnn.Module, names) -> dict:
  """The weights of `module`'s convolutions (`convs`) nested at `names`, one path (a tuple of
  keys) a convolution, in the same order."""
  layers = convs(module)
  assert len(layers) == len(names)
  tree = {}
  for path, conv in zip(names, layers):
    node = tree
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = conv_params(conv)
  return tree


def assert_same_tree(module, params, *args) -> None:
  """`params` has the names and shapes of the parameters `module.init` makes for `args`."""
  shapes = jax.eval_shape(module.init, KEY, *args)["params"]
  shape = lambda a: tuple(a.shape)
  assert jax.tree.map(shape, params) == jax.tree.map(shape, shapes)


# ------------------------------------------------------------------ pix2pixHD's blocks
def instance_norm(c: int) -> tnn.Module:
  return tnn.InstanceNorm2d(c, affine=False)


class TorchResnetBlock(tnn.Module):
  def __init__(self, dim):
    super().__init__()
    self.conv_block = tnn.Sequential(
        tnn.ReflectionPad2d(1), tnn.Conv2d(dim, dim, 3), instance_norm(dim), tnn.ReLU(True),
        tnn.ReflectionPad2d(1), tnn.Conv2d(dim, dim, 3), instance_norm(dim))

  def forward(self, x):
    return x + self.conv_block(x)


def torch_front(input_nc, ngf, n_down) -> tnn.Sequential:
  """GlobalGenerator's c7s1-ngf stem and `n_down` stride-2 convolutions (instance norm)."""
  layers = [tnn.ReflectionPad2d(3), tnn.Conv2d(input_nc, ngf, 7), instance_norm(ngf),
            tnn.ReLU(True)]
  for i in range(n_down):
    m = 2 ** i
    layers += [tnn.Conv2d(ngf * m, ngf * m * 2, 3, 2, 1), instance_norm(ngf * m * 2),
               tnn.ReLU(True)]
  return tnn.Sequential(*layers)


def torch_back(ngf, n_down, n_blocks) -> tnn.Sequential:
  """GlobalGenerator's `n_blocks` residual blocks and `n_down` transposed convolutions."""
  layers = [TorchResnetBlock(ngf * 2 ** n_down) for _ in range(n_blocks)]
  for i in range(n_down):
    m = 2 ** (n_down - i)
    layers += [tnn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, 2, 1, 1), instance_norm(ngf * m // 2),
               tnn.ReLU(True)]
  return tnn.Sequential(*layers)


def front_names(n_down) -> list[tuple[str, ...]]:
  """psrjax's parameter paths of `torch_front`'s convolutions, in their order."""
  return [("stem", "conv")] + [(f"down{i}", "conv") for i in range(n_down)]


def back_names(n_down, n_blocks) -> list[tuple[str, ...]]:
  """psrjax's parameter paths of `torch_back`'s convolutions, in their order."""
  names = []
  for i in range(n_blocks):
    names += [(f"block{i}", "conv1"), (f"block{i}", "conv2")]
  return names + [(f"up{i}", "conv") for i in range(n_down)]
