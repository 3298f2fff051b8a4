"""CoCosNet's networks (psrjax.models.cocosnet): the correspondence warp against the naive
attention and Eq. 5's limits, the unfolding against torch's F.unfold, the blocks against PyTorch
modules built as the authors' code builds them, with identical weights, and the paper sizes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from torch_port import assert_same_tree, conv_params, nchw, nhwc, normal
from psrjax import nn as pnn
from psrjax.models import cocosnet

KEY = jax.random.key(0)


@pytest.mark.parametrize("block", [1, 7, 16])
def test_tiled_attention_equals_the_whole_matrix_in_values_and_gradients(block):
  q, k, v = normal(2, 20, 6, seed=1), normal(2, 13, 6, seed=2), normal(2, 13, 5, seed=3)
  loss = lambda b: lambda q, k, v: jnp.sum(jnp.sin(pnn.softmax_attention(q, k, v, scale=3.0,
                                                                         block=b)))
  np.testing.assert_allclose(pnn.softmax_attention(q, k, v, scale=3.0, block=block),
                             pnn.softmax_attention(q, k, v, scale=3.0), atol=1e-5)
  logits = 3.0 * np.einsum("bnd,bmd->bnm", q, k)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  np.testing.assert_allclose(pnn.softmax_attention(q, k, v, scale=3.0),
                             np.einsum("bnm,bme->bne", weights, v), atol=1e-5)
  plain = lambda q, k, v: jnp.sum(jnp.sin(jnp.einsum(
      "bnm,bme->bne", jax.nn.softmax(3.0 * jnp.einsum("bnd,bmd->bnm", q, k), axis=-1), v)))
  autodiff = jax.grad(plain, argnums=(0, 1, 2))(q, k, v)   # the written-out backward vs autodiff
  for b in (block, None):
    for g, n in zip(jax.grad(loss(b), argnums=(0, 1, 2))(q, k, v), autodiff):
      np.testing.assert_allclose(g, n, atol=1e-5)


def test_sharp_warp_on_distinct_features_returns_the_exemplar():
  """Eq. 5 at a low temperature with every position's feature distinct (orthonormal): each
  position attends to itself only, and the warp returns the exemplar block by block."""
  features = jnp.eye(16)[None]                          # 16 positions (4 x 4), 16 channels
  exemplar = jnp.asarray(normal(1, 8, 8, 3))           # 2 x 2 pixels per position
  out = cocosnet.warp(features, features, exemplar, temperature=0.01, block=5)
  np.testing.assert_allclose(out, exemplar, atol=1e-6)
  shuffled = features[:, ::-1]                          # query i matches key 15 - i
  out = cocosnet.warp(shuffled, features, exemplar, temperature=0.01, block=None)
  blocks = cocosnet.to_blocks(exemplar, 2)
  np.testing.assert_allclose(cocosnet.to_blocks(out, 2), blocks[:, ::-1], atol=1e-6)


def test_unfolding_and_blocks_are_torch_unfold_up_to_the_order_of_values():
  x = normal(2, 6, 5, 4)
  ours = np.asarray(cocosnet.unfold_patches(jnp.asarray(x), 3))           # [N, P, 9 C]
  ref = F.unfold(nchw(x), kernel_size=3, padding=1).numpy()               # [N, C 9, P]
  ref = ref.reshape(2, 4, 9, 30).transpose(0, 3, 2, 1).reshape(2, 30, 36)  # -> [N, P, 9 C]
  np.testing.assert_array_equal(ours, ref)
  img = normal(1, 8, 12, 3)
  blocks = np.asarray(cocosnet.to_blocks(jnp.asarray(img), 4))            # [N, P, 16 C]
  ref = F.unfold(nchw(img), kernel_size=4, stride=4).numpy()              # [N, C 16, P]
  np.testing.assert_array_equal(blocks, ref.reshape(1, 3, 16, 6).transpose(0, 3, 2, 1)
                                .reshape(1, 6, 48))
  np.testing.assert_array_equal(cocosnet.from_blocks(blocks, 8, 12, 4), img)


def test_match_features_are_centred_unit_patches():
  f = np.asarray(cocosnet.match_features(jnp.asarray(normal(1, 5, 5, 8) + 2.0), 3))
  np.testing.assert_allclose(f.mean(-1), 0.0, atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(f, axis=-1), 1.0, atol=1e-5)


class TorchResidualBlock(torch.nn.Module):
  """correspondence.py's ResidualBlock, from torch.nn layers."""

  def __init__(self, c):
    super().__init__()
    self.pad1, self.pad2 = torch.nn.ReflectionPad2d(1), torch.nn.ReflectionPad2d(1)
    self.conv1, self.conv2 = torch.nn.Conv2d(c, c, 3), torch.nn.Conv2d(c, c, 3)
    self.in1, self.in2 = torch.nn.InstanceNorm2d(c), torch.nn.InstanceNorm2d(c)
    self.prelu = torch.nn.PReLU()

  def forward(self, x):
    out = self.prelu(self.in1(self.conv1(self.pad1(x))))
    out = self.in2(self.conv2(self.pad2(out)))
    return self.prelu(out + x)


def test_residual_block_matches_the_authors_structure():
  torch.manual_seed(0)
  ref = TorchResidualBlock(6)
  with torch.no_grad():
    ref.prelu.weight.fill_(0.1)
  x = normal(2, 7, 5, 6)
  params = {"conv1": conv_params(ref.conv1), "conv2": conv_params(ref.conv2),
            "prelu": jnp.float32(0.1)}
  block = cocosnet.ResidualBlock()
  assert_same_tree(block, params, jnp.asarray(x))
  np.testing.assert_allclose(block.apply({"params": params}, jnp.asarray(x)),
                             nhwc(ref(nchw(x))), atol=1e-5)


class TorchPONOSpade(torch.nn.Module):
  """normalization.py's SPADE with PONO: unbiased channel variance, reflection-padded convs."""

  def __init__(self, c, label_nc, hidden):
    super().__init__()
    conv = lambda i, o: torch.nn.Conv2d(i, o, 3, padding=1, padding_mode="reflect")
    self.mlp_shared, self.mlp_gamma, self.mlp_beta = conv(label_nc, hidden), conv(hidden, c), \
        conv(hidden, c)

  def forward(self, x, seg):
    normalized = (x - x.mean(1, keepdim=True)) / (x.var(1, keepdim=True) + 1e-5).sqrt()
    actv = F.relu(self.mlp_shared(F.interpolate(seg, size=x.shape[2:], mode="nearest")))
    return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class TorchSPADEResBlock(torch.nn.Module):
  """architecture.py's SPADEResnetBlock (spectral norm left out: checked in test_nn2d)."""

  def __init__(self, fin, fout, label_nc, hidden):
    super().__init__()
    middle = min(fin, fout)
    conv = lambda i, o: torch.nn.Conv2d(i, o, 3, padding=1, padding_mode="reflect")
    self.conv_0, self.conv_1 = conv(fin, middle), conv(middle, fout)
    self.norm_0, self.norm_1 = TorchPONOSpade(fin, label_nc, hidden), \
        TorchPONOSpade(middle, label_nc, hidden)
    self.conv_s = torch.nn.Conv2d(fin, fout, 1, bias=False)
    self.norm_s = TorchPONOSpade(fin, label_nc, hidden)

  def forward(self, x, seg):
    x_s = self.conv_s(self.norm_s(x, seg))
    dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
    dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
    return x_s + dx


def test_spade_residual_block_matches_the_authors_structure():
  torch.manual_seed(0)
  ref = TorchSPADEResBlock(6, 4, 5, 8)
  x, seg = normal(2, 8, 6, 6, seed=1) * 2 + 1, normal(2, 16, 12, 5, seed=2)
  spade = lambda m: {name: conv_params(getattr(m, name))
                     for name in ("mlp_shared", "mlp_gamma", "mlp_beta")}
  params = {"norm_0": spade(ref.norm_0), "norm_1": spade(ref.norm_1), "norm_s": spade(ref.norm_s),
            "conv_0": conv_params(ref.conv_0), "conv_1": conv_params(ref.conv_1),
            "conv_s": conv_params(ref.conv_s)}
  block = cocosnet.SPADEResBlock(4, spade_hidden=8, spectral=False)
  assert_same_tree(block, params, jnp.asarray(x), jnp.asarray(seg))
  y = block.apply({"params": params}, jnp.asarray(x), jnp.asarray(seg))
  np.testing.assert_allclose(y, nhwc(ref(nchw(x), nchw(seg))), atol=1e-4)


def test_paper_networks_have_the_authors_sizes():
  """Parameter counts of the DeepFashion configuration, counted from the authors' layer
  definitions (weights and biases; each spectrally normalised layer's u vector is one more
  [out] parameter here): correspondence 50,90x,xxx, generator 92,74x,xxx."""
  count = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))
  sn = lambda tree: sum(int(np.prod(x.shape)) for p, x in jax.tree_util.tree_leaves_with_path(tree)
                        if pnn.SN_PARAM in jax.tree_util.keystr(p))
  corr = jax.eval_shape(cocosnet.Correspondence().init, KEY, jnp.ones((1, 256, 256, 20)),
                        jnp.ones((1, 256, 256, 3)))
  gen = jax.eval_shape(cocosnet.Generator().init, KEY, jnp.ones((1, 256, 256, 23)))
  assert 50_895_000 < count(corr) - sn(corr) < 50_910_000
  assert 92_735_000 < count(gen) - sn(gen) < 92_750_000
  with pytest.raises(ValueError, match="multiples of 32"):
    cocosnet.Generator(ngf=4, spade_hidden=8).init(KEY, jnp.ones((1, 48, 48, 23)))
