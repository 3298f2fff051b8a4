"""PSR-Net's model ablations: Table 1's decoders, Table 2's encoders and their benchmark script."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrjax import config_utils
from psrjax.geometry import BACKGROUND, OCCLUDED
from psrjax.models.psrnet import (DECODERS, ENCODERS, ReconstructionLayer, RecurrenceLayer,
                                  composite, composite_context, psrnet_layer)
from psrjax.systems import registry

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
B, T, H, W = 1, 4, 32, 32


def _key(seed):
  """An "rbg" key: cheap to compile on XLA:CPU (see test_psrnet.py)."""
  return jax.random.key(seed, impl="rbg")


@pytest.fixture(scope="module")
def inputs():
  """x_i, x̂ (uniform in [-1, 1]), d_j and a random visibility map (host-made: nothing to compile)."""
  rng = np.random.default_rng(0)
  x_i, x_hat = (rng.uniform(-1, 1, (B, T, H, W, 3)).astype(np.float32) for _ in range(2))
  d_j = rng.uniform(0, 1, (B, T, H, W, 1)).astype(np.float32)
  vis = rng.integers(BACKGROUND, OCCLUDED + 1, (B, T, H, W)).astype(np.int32)
  return tuple(jnp.asarray(v) for v in (x_i, x_hat, d_j, vis))


def _init_apply(model, args):
  """(params, outputs) of `model` on `args`, in one compiled call."""
  def run(key):
    params = model.init(key, *args)
    return params["params"], model.apply(params, *args)
  return jax.jit(run)(_key(1))


@pytest.fixture(scope="module")
def g1(inputs):
  """(decoders, residual) -> (params, outputs) of the tiny layer 1, for the new options (the
  default "separate" path is test_psrnet.py's)."""
  return {(d, r): _init_apply(psrnet_layer(1, "tiny", decoders=d, residual=r), inputs)
          for d in ("common", "context") for r in (False, True)}


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("decoders", DECODERS)
def test_decoder_outputs(inputs, decoders, residual):
  model = psrnet_layer(1, "tiny", decoders=decoders, residual=residual)
  params = jax.eval_shape(model.init, jax.random.key(0), *inputs)
  out = jax.eval_shape(model.apply, params, *inputs)
  assert set(out) == {"x_tilde", "background", "visible", "occluded"}
  for v in out.values():
    assert v.shape == (B, T, H, W, 3) and v.dtype == jnp.float32


def test_separate_heads_keep_their_parameter_names(inputs):
  params = jax.eval_shape(psrnet_layer(1, "tiny").init, jax.random.key(0), *inputs)["params"]
  assert sorted(params) == ["decoder_background", "decoder_occluded", "decoder_visible",
                            "encoder_depth", "encoder_x", "encoder_x_hat0", "trunk"]
  assert all("out" in params[f"decoder_{n}"] for n in ("background", "visible", "occluded"))
  assert psrnet_layer(1, "tiny").decoders == "separate"


def test_context_composite_is_background_on_background_pixels(g1, inputs):
  _, out = g1["context", False]
  vis = inputs[3][..., None]
  np.testing.assert_array_equal(out["visible"], out["occluded"])
  want = np.where(vis == BACKGROUND, out["background"], out["visible"])
  np.testing.assert_array_equal(out["x_tilde"], want)
  np.testing.assert_array_equal(composite_context(out["background"], out["visible"], inputs[3]),
                                want)


def test_common_head_shares_one_foreground_decoder(g1, inputs):
  params, out = g1["common", False]
  assert sorted(k for k in params if k.startswith("decoder")) == ["decoder_background",
                                                                  "decoder_foreground"]
  fg = params["decoder_foreground"]
  assert {"up0", "up1", "out_visible", "out_occluded"} <= set(fg) and "out" not in fg
  assert not np.allclose(out["visible"], out["occluded"])
  want = composite(out["background"], out["visible"], out["occluded"], inputs[3])
  np.testing.assert_array_equal(out["x_tilde"], want)


@pytest.mark.parametrize("decoders", ["common", "context"])
def test_residual_decoders_start_from_their_bases(g1, inputs, decoders):
  """Zero-initialised output convs: background = x_i, foreground branches = x̂⁰."""
  x_i, x0, _, vis = inputs
  _, out = g1[decoders, True]
  np.testing.assert_allclose(out["background"], x_i, atol=1e-6)
  np.testing.assert_allclose(out["visible"], x0, atol=1e-6)
  np.testing.assert_allclose(out["occluded"], x0, atol=1e-6)
  np.testing.assert_allclose(out["x_tilde"], composite(x_i, x0, x0, vis), atol=1e-6)


@pytest.mark.parametrize("encoders,names", [
    ("concat_videos", ["encoder_depth", "encoder_videos"]),
    ("separate", ["encoder_depth", "encoder_prev", "encoder_x"]),
    ("concat_all", ["encoder_all"])])
def test_encoder_options_name_their_encoders(inputs, encoders, names):
  x_i, x_prev, d_j, _ = inputs
  model = psrnet_layer(2, "tiny", encoders=encoders)
  params = jax.eval_shape(model.init, jax.random.key(0), x_i, x_prev, d_j)["params"]
  assert sorted(k for k in params if k.startswith("encoder")) == names
  assert "decoder" in params and "trunk" in params
  channels = {"concat_all": 7, "separate": 3, "concat_videos": 6}[encoders]
  first = params[names[-1]]["stem"]["conv"]["kernel"]
  assert first.shape[-2] == channels
  out = jax.eval_shape(model.apply, {"params": params}, x_i, x_prev, d_j)
  assert out.shape == (B, T, H, W, 3)


@pytest.mark.parametrize("make", [
    lambda: ReconstructionLayer(decoders="shared"),
    lambda: RecurrenceLayer(encoders="concat"),
    lambda: psrnet_layer(1, "tiny", decoders="heads"),
    lambda: psrnet_layer(2, "tiny", encoders="all"),
    lambda: psrnet_layer(2, "tiny", decoders="common"),
    lambda: psrnet_layer(1, "tiny", encoders="separate")])
def test_bad_options_raise(make):
  with pytest.raises(ValueError, match="decoders|encoders"):
    make()


def test_system_passes_decoders_to_layer1_and_encoders_to_the_others():
  config = config_utils.load_config(os.path.join(ROOT, "configs/psrnet.py:tiny,layers=3"),
                                    [("model.decoders", "context"),
                                     ("model.encoders", "concat_all")])
  g = registry.get_system(config).generators
  assert g[0].decoders == "context"
  assert [x.encoders for x in g[1:]] == ["concat_all", "concat_all"]
  assert ENCODERS[0] == "concat_videos" and DECODERS[0] == "separate"


# ----------------------------------------------------------------------------- benchmark script

def test_ablation_script_runs_layer2_from_a_frozen_layer1(monkeypatch):
  import psrnet_ablation as script  # pylint: disable=g-import-not-at-top
  monkeypatch.chdir(ROOT)
  args = script.parse_args(["--workdir", "w", "--set", "data.rooms=17", "--alpha", "0.5"])
  assert script.default_steps(args) == (320, 80)   # runlocal's layer shares
  args.layer1_steps, args.layer2_steps = 3, 5
  one = script.layer1_config(args, "common")
  assert (one.model.layers, one.model.decoders, one.train.steps) == (1, "common", 3)
  assert one.data.rooms == 17
  assert one.train.ema.groups == ("g1",)
  two = script.layer2_config(args, "w/layer1-separate", "concat_all", 1.0)
  assert (two.model.encoders, two.model.decoders) == ("concat_all", "separate")
  assert two.model.alpha == 1.0
  assert (two.init_from, two.init_groups, two.train.ema.groups) == ("w/layer1-separate", ("g1",),
                                                                     ("g1", "g2"))
  assert [s.steps for s in registry.get_system(two).stages()] == [0, 5]
  for bad in (["--decoders", "shared"], ["--alpha", "0"], ["--set", "data.rooms"]):
    with pytest.raises(SystemExit):
      script.parse_args(["--workdir", "w", *bad])


@pytest.mark.slow
def test_ablation_script_writes_the_tables(tmp_path, monkeypatch):
  """Table 1 (separate), Table 2 (concat videos), Fig. 7 (alpha 0.5 and no weighting) and Table 3
  (K = 3 and the K = 1 control) on the tiny config, 2 to 3 steps per run: five runs (Table 2's
  is Fig. 7's alpha 0.5 row). ~6-8 min on a 2-core CPU with a warm compilation cache."""
  import psrnet_ablation  # pylint: disable=g-import-not-at-top
  monkeypatch.chdir(ROOT)
  workdir = str(tmp_path)
  assert psrnet_ablation.main([
      "--workdir", workdir, "--config", "configs/psrnet.py:tiny", "--set", "eval.num_examples=6",
      "--layer1-steps", "2", "--layer2-steps", "2", "--decoders", "separate",
      "--encoders", "concat_videos", "--alpha", "0.5", "--table3-steps", "3"]) == 0
  assert sorted(os.listdir(workdir)) == [
      "fig7", "layer1-separate", "layer2-concat_videos-alpha0.5", "layer2-concat_videos-alpha1",
      "layers1-control", "layers3", "table.json", "table.md", "table1", "table2", "table3"]
  with open(os.path.join(workdir, "table.md"), encoding="utf-8") as f:
    text = f.read()
  for line in ("| Decoders | SSIM | M-SSIM | PSNR | M-PSNR |", "| Separate heads |",
               "| Encoders | SSIM", "| Concat videos |", "| alpha | SSIM", "| 0.5 |",
               "| 1 (no weighting) |", "| frozen layer 1 (x̂¹) |", "| G³ alone (before Eq. 1) |",
               "| K = 1: layer 1 alone, 3 steps |", "(1/1/1 per layer)",
               "`python benchmarks/psrnet_ablation.py", "--layer1-steps 2",
               "2 steps per decoder option", "one seed: no noise band"):
    assert line in text, line
  with open(os.path.join(workdir, "table.json"), encoding="utf-8") as f:
    sections = json.load(f)
  assert [len(s["runs"]) for s in sections] == [1, 2, 3, 8]
  table2, fig7 = sections[1]["runs"], sections[2]["runs"]
  assert table2[1]["results"] == fig7[1]["results"]
  # Layer 2 trained from the frozen layer 1: its x̂¹ scores are layer 1's own (no EMA here).
  layer1 = sections[0]["runs"][0]["results"]
  for row in fig7:
    assert row["results"]["ssim/layer1"] == pytest.approx(layer1["ssim/layer1"], abs=1e-6)
  k3 = sections[3]["runs"][0]["results"]
  assert {"ssim/raw2", "psnr/raw3", "m_ssim/layer3"} <= set(k3) and "ssim/raw1" not in k3
