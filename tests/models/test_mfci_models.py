"""MFCI networks: fusion modules, single-frame baseline, heads, discriminators (tiny shapes)."""
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from psrjax.geometry import pose_labels
from psrjax.models import mfci, mfci_discriminators
from psrjax.nn import SelfAttention
from psrjax.nn.cpu import onednn
from psrjax.models.patchgan import PatchGAN
from psrjax.train import lowering

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEY = jax.random.key(0, impl="rbg")
N, K, H, C, P = 2, 3, 8, 8, 5


def _inputs():
  ks = jax.random.split(KEY, 3)
  feats = jax.random.normal(ks[0], (N, K, H, H, C))
  src_pose = jax.random.uniform(ks[1], (N, K, H, H, P))
  tgt_pose = jax.random.uniform(ks[2], (N, H, H, P))
  return feats, src_pose, tgt_pose


def _perturb(params, scale=0.5):
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(1, impl="rbg"), len(leaves))
  return tree.unflatten([x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])


@pytest.mark.parametrize("kind", mfci.FUSIONS)
def test_fusion_output_shape_and_attention_sums_to_one_over_k(kind):
  feats, src_pose, tgt_pose = _inputs()
  module = mfci.Fusion(kind, width=8, blocks=2, kv_pool=1)
  params = _perturb(module.init(KEY, feats, src_pose, tgt_pose))   # non-trivial attention
  fused, attention = module.apply(params, feats, src_pose, tgt_pose)
  assert fused.shape == (N, H, H, C)
  if kind in ("avg", "max"):
    assert attention is None
    reduce = jnp.mean if kind == "avg" else jnp.max
    np.testing.assert_allclose(fused, reduce(feats, axis=1), atol=1e-6)
    return
  assert attention.shape == (N, K, H, H)
  np.testing.assert_allclose(jnp.sum(attention, axis=1), 1.0, atol=1e-5)
  assert float(jnp.std(attention)) > 1e-3                       # not just uniform
  if kind == "rb6":
    np.testing.assert_allclose(fused, jnp.sum(feats * attention[..., None], axis=1), atol=1e-5)


def test_rb6_starts_as_the_average():
  feats, src_pose, tgt_pose = _inputs()
  module = mfci.Fusion("rb6", width=8, blocks=6)
  params = module.init(KEY, feats, src_pose, tgt_pose)
  assert len([k for k in params["params"]["rb6"] if k.startswith("block")]) == 6
  fused, attention = module.apply(params, feats, src_pose, tgt_pose)
  np.testing.assert_allclose(attention, 1.0 / K, atol=1e-6)
  np.testing.assert_allclose(fused, jnp.mean(feats, axis=1), atol=1e-5)


def test_sa3d_attends_across_source_frames_and_sa2d_within_a_frame():
  feats, _, _ = _inputs()
  sa = SelfAttention(kv_pool=1)
  params = sa.init(KEY, feats)
  np.testing.assert_allclose(sa.apply(params, feats), feats, atol=1e-6)   # gamma starts at 0
  params = jax.tree.map(lambda x: x, params)
  params["params"]["gamma"] = jnp.float32(1.0)
  changed = feats.at[:, 0].add(1.0)                               # only source frame 0 changes
  delta = sa.apply(params, changed) - sa.apply(params, feats)
  assert float(jnp.abs(delta[:, 1:]).max()) > 1e-4                # ...yet frames 1..K-1 move
  pooled = SelfAttention(kv_pool=2).init(KEY, feats)
  assert pooled["params"]["key"]["kernel"].shape == (C, 1)
  with pytest.raises(ValueError, match="at least 8 channels"):
    sa.init(KEY, feats[..., :4])


def test_unknown_fusion_and_mismatched_source_poses_are_errors():
  feats, src_pose, tgt_pose = _inputs()
  with pytest.raises(ValueError, match="unknown fusion 'sum'"):
    mfci.Fusion("sum").init(KEY, feats, src_pose, tgt_pose)
  with pytest.raises(ValueError, match="source poses"):
    mfci.Fusion("rb6", width=8, blocks=1).init(KEY, feats, src_pose[:, :2], tgt_pose)


@functools.cache
def _single_frame_inputs(n=2, h=16):
  """The single-frame net's inputs, made once in one program (not an eager program per op)."""
  rng = np.random.default_rng(0)
  kp_s = np.concatenate([rng.uniform(3, h - 4, (n, 18, 2)), np.ones((n, 18, 1))], -1)
  kp_t = np.concatenate([rng.uniform(3, h - 4, (n, 18, 2)), np.ones((n, 18, 1))], -1)
  labels = lambda kp: pose_labels.pose_labels(kp, h, h, sigma=1.0, limb_width=1.0)
  rgb = jnp.asarray(rng.uniform(-1, 1, (n, h, h, 3)), jnp.float32)
  make = jax.jit(lambda kp_s, kp_t: (labels(kp_s), pose_labels.part_masks(kp_s, h, h, width_px=1.5),
                                     labels(kp_t), pose_labels.part_transforms(kp_t, kp_s)))
  return (rgb,) + make(jnp.asarray(kp_s, jnp.float32), jnp.asarray(kp_t, jnp.float32))


def test_single_frame_net_layers_heads_and_composition():
  net = mfci.SingleFrameNet(base=4, depth=2, features=8, part_features=2)
  inputs = _single_frame_inputs()
  params = jax.jit(net.init)(KEY, *inputs)   # jitted: one program, not hundreds of one-op ones
  out = jax.jit(net.apply)(params, *inputs)
  assert out["out"].shape == (2, 16, 16, 3) and out["mask"].shape == (2, 16, 16, 1)
  assert out["f_fg"].shape == out["f_bg"].shape == (2, 16, 16, 8)
  np.testing.assert_allclose(jnp.sum(out["layers"], -1), 1.0, atol=1e-5)
  assert float(out["mask"].min()) >= 0.0 and float(out["mask"].max()) <= 1.0
  np.testing.assert_allclose(out["out"], mfci.compose(out["fg"], out["mask"], out["bg"]), atol=1e-6)
  with pytest.raises(ValueError, match="divisible by 4"):
    jax.eval_shape(net.init, KEY, *[x[:, :14, :14] if x.ndim == 4 else x for x in inputs])


def test_residual_heads_start_from_the_base_logits():
  feats, src_pose, tgt_pose = _inputs()
  base = lambda fg, bg: (fg[..., :4] * 0.3, bg[..., :3] * 0.2)
  net = mfci.MultiFrameNet("avg", residual_heads=True)
  params = net.init(KEY, feats, feats, src_pose, tgt_pose, base_logits=base)
  out = net.apply(params, feats, feats, src_pose, tgt_pose, base_logits=base)
  avg = jnp.mean(feats, axis=1)
  np.testing.assert_allclose(out["fg"], jnp.tanh(avg[..., :3] * 0.3), atol=1e-6)
  np.testing.assert_allclose(out["bg"], jnp.tanh(avg[..., :3] * 0.2), atol=1e-6)
  with pytest.raises(ValueError, match="base_logits"):
    net.init(KEY, feats, feats, src_pose, tgt_pose)


def _cpu_conv_calls(module, *inputs):
  """psrjax's CPU-only convolution calls in `module.apply`, traced here and lowered for CUDA."""
  params = jax.eval_shape(module.init, KEY, *inputs)
  text = jax.jit(module.apply).trace(params, *inputs).lower(lowering_platforms=("cuda",)).as_text()
  return {t for t in lowering.custom_call_targets(text)
          if t.startswith(lowering.CPU_CONV_TARGET_PREFIX)}


@pytest.mark.parametrize("conv_impl", ["xla", "auto"])
def test_conv_impl_xla_reaches_every_convolution(conv_impl):
  """With `conv_impl="xla"` the networks make no CPU-only call (the accelerator path); "auto"
  picks psrjax's oneDNN calls where they are usable here, so the check can fail."""
  feats, src_pose, tgt_pose = _inputs()
  video, flows = jnp.zeros((1, 3, 16, 16, 3)), jnp.zeros((1, 3, 16, 16, 2))
  nets = [(mfci.SingleFrameNet(base=4, depth=2, features=8, part_features=2, conv_impl=conv_impl),
           _single_frame_inputs()),
          (mfci.MultiFrameNet("sa3d_rb6", width=8, blocks=1, kv_pool=1, conv_impl=conv_impl),
           (feats, feats, src_pose, tgt_pose)),
          (mfci_discriminators.MultiRangeDiscriminator((3,), ndf=4, num_layers=1,
                                                       conv_impl=conv_impl), (video, flows))]
  cpu = conv_impl == "auto" and onednn.usable(jnp.zeros(()))
  for net, inputs in nets:
    assert bool(_cpu_conv_calls(net, *inputs)) == cpu, type(net).__name__


@pytest.mark.parametrize("n", [3, 5, 7])
def test_temporal_discriminator_takes_exactly_n_frames_and_n_minus_1_flows(n):
  d = mfci_discriminators.TemporalDiscriminator(n, ndf=4, num_layers=1)
  frames, flows = jnp.zeros((2, n, 16, 16, 3)), jnp.zeros((2, n - 1, 16, 16, 2))
  params = d.init(KEY, frames, flows)
  assert params["params"]["patchgan"]["conv0"]["kernel"].shape[2] == 3 * n + 2 * (n - 1)
  assert d.apply(params, frames, flows).shape == (2, 6, 6, 1)
  for bad_frames in (n - 1, n + 1):
    with pytest.raises(ValueError, match=f"exactly {n} frames"):
      d.apply(params, jnp.zeros((2, bad_frames, 16, 16, 3)), flows)
  for bad_flows in (n, n - 2):
    with pytest.raises(ValueError, match=f"exactly {n - 1} flows"):
      d.apply(params, frames, jnp.zeros((2, bad_flows, 16, 16, 2)))


def test_multi_range_discriminator_sees_every_window_with_its_flows():
  video = jnp.arange(8, dtype=jnp.float32)[None, :, None, None, None] * jnp.ones((1, 8, 16, 16, 3))
  flows = jnp.arange(8, dtype=jnp.float32)[None, :, None, None, None] * jnp.ones((1, 8, 16, 16, 2))
  windows = mfci_discriminators.windows(video, 3)
  assert windows.shape == (6, 3, 16, 16, 3)
  np.testing.assert_array_equal(windows[:, :, 0, 0, 0], [[s, s + 1, s + 2] for s in range(6)])
  d = mfci_discriminators.MultiRangeDiscriminator((3, 5, 7), ndf=4, num_layers=1)
  params = d.init(KEY, video, flows)
  logits = d.apply(params, video, flows)
  assert [x.shape[0] for x in logits] == [6, 4, 2]
  with pytest.raises(ValueError, match="window of 9 frames"):
    mfci_discriminators.windows(video, 9)


def test_patchgan_conditional_shapes_and_minimum_size():
  d = PatchGAN(ndf=4, num_layers=2)
  image, cond = jnp.zeros((3, 32, 32, 3)), jnp.zeros((3, 32, 32, 5))
  params = d.init(KEY, image, cond)
  assert params["params"]["conv0"]["kernel"].shape == (4, 4, 8, 4)
  assert d.apply(params, image, cond).shape == (3, 6, 6, 1)
  with pytest.raises(ValueError, match="at least 12 pixels"):
    d.init(KEY, jnp.zeros((1, 8, 8, 3)))


TREE_FILE = os.path.join(os.path.dirname(__file__), "data", "mfci_tiny_param_tree.json")
BATCH_SHAPES = {"src_rgb": (1, 2, 16, 16, 3), "src_keypoints": (1, 2, 18, 3),
                "tgt_rgb": (1, 7, 16, 16, 3), "tgt_keypoints": (1, 7, 18, 3),
                "tgt_mask": (1, 7, 16, 16, 1), "tgt_flow_bwd": (1, 7, 16, 16, 2)}


@pytest.mark.parametrize("fusion", ["rb6_sa2d", "sa3d_rb6"])
def test_tiny_system_param_tree_is_unchanged_so_old_checkpoints_load(fusion):
  """Paths and shapes of every network of configs/mfci.py:tiny, as recorded before MFCI moved
  onto psrjax.nn's 2D layers (tests/models/data/mfci_tiny_param_tree.json)."""
  from psrjax import config_utils
  from psrjax.systems import base
  from psrjax.systems import registry
  config = config_utils.load_config(os.path.join(REPO, "configs", f"mfci.py:tiny,fusion={fusion}"))
  system = registry.get_system(config)
  batch = {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in BATCH_SHAPES.items()}
  shapes = jax.eval_shape(functools.partial(base.init, system), KEY, batch)
  got = {"/".join(k): list(v.shape) for k, v in flatten_dict(shapes).items()}
  with open(TREE_FILE) as f:
    assert got == json.load(f)[fusion]
