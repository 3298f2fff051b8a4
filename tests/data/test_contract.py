"""The batch contract as code (`psrjax.data.contract`): the synthetic world's and a prepared
video's reads pass it, every shipped config's examples pass it, and a wrong dtype, range or shape
fails with a one-line error naming the key and where the data came from."""
import os
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from psrjax import cli
from psrjax.data import contract, synthetic
from psrjax.data.sources import base as sources, multiview, prepared, synthetic_clips
from psrjax.data.synthetic import body
from psrjax.geometry import skeleton

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train"))
import train_harness  # noqa: E402
from psrjax.systems import registry  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


def _example(frames=2, size=8):
  rng = np.random.default_rng(0)
  return {
      "rgb": rng.uniform(-1, 1, (frames, size, size, 3)).astype(np.float32),
      "mask": (rng.uniform(size=(frames, size, size, 1)) > 0.5).astype(np.float32),
      "keypoints": np.concatenate([rng.uniform(0, size - 1, (frames, 18, 2)),
                                   rng.integers(0, 2, (frames, 18, 1))], -1).astype(np.float32),
      "flow_fwd": rng.normal(size=(frames, size, size, 2)).astype(np.float32),
      "face": rng.integers(-1, 100, (frames, size, size)).astype(np.int32),
      "part": rng.integers(0, 25, (frames, size, size)).astype(np.int32),
      "uv": rng.uniform(0, 1, (frames, size, size, 2)).astype(np.float32),
      "depth": rng.uniform(0, 5, (frames, size, size)).astype(np.float32),
  }


def test_the_table_is_the_data_modules_own():
  assert contract.NUM_KEYPOINTS == skeleton.NUM_KEYPOINTS
  assert contract.NUM_PARTS == body.NUM_PARTS == len(body.PART_NAMES) - 1
  modalities = (set(synthetic_clips.MODALITIES) | set(prepared.FRAME_KEYS)
                | set(multiview.FRAME_KEYS))
  assert modalities <= set(contract.FIELDS)


def test_the_synthetic_worlds_reads_pass():
  clip = synthetic.render_clip(4, num_views=2, num_frames=3, resolution=24)
  contract.check_example({k: clip[k] for k in ("depth", "face", "part", "uv", "keypoints",
                                               "flow_fwd", "flow_bwd", "K", "R", "t")},
                         where="render_clip")
  src = synthetic_clips.RenderedClip(clip)
  video = src.take(0)[1]
  got = src.frames(video, np.arange(3), synthetic_clips.MODALITIES)   # checks it itself
  contract.check_example({**got, "keypoints": src.keypoints(video)}, where="test")
  assert got["mask"].dtype == np.float32 and got["mask"].shape == (3, 24, 24, 1)
  assert set(np.unique(got["mask"])) <= {0.0, 1.0}
  assert set(np.unique(got["keypoints"][..., 2])) <= {0.0, 1.0}   # exact visibility


@pytest.fixture(scope="module")
def prepared_dataset(tmp_path_factory):
  root = tmp_path_factory.mktemp("contract")
  os.makedirs(root / "videos"), os.makedirs(root / "keypoints")
  for seed in (3, 5):   # the second held out
    clip = synthetic.render_clip(seed, num_views=1, num_frames=6, resolution=48)
    iio.imwrite(root / "videos" / f"clip{seed}.mp4", clip["rgb"][0], extension=".mp4", fps=8,
                codec="libx264", macro_block_size=1, output_params=["-crf", "18"])
    np.save(root / "keypoints" / f"clip{seed}.npy", clip["keypoints"][0])
  out = root / "dataset"
  assert cli.main(["prepare", "--videos", str(root / "videos"), "--keypoints",
                   str(root / "keypoints"), "--out", str(out), "--resolution", "16"]) == 0
  return str(out)


def test_a_prepared_videos_reads_pass(prepared_dataset):
  src = sources.PreparedSource(prepared_dataset)
  video = src.all_videos()[0]
  got = src.frames(video, [0, 1], prepared.FRAME_KEYS)                # checks it itself
  contract.check_example({**got, "keypoints": src.keypoints(video)}, where="test")
  assert got["rgb"].dtype == np.float32 and got["mask"].shape == (2, 16, 16, 1)
  resized = sources.Resized(src, 8).frames(video, [0, 1], prepared.FRAME_KEYS)
  contract.check_example(resized, where="test")


@pytest.mark.parametrize("name", sorted(f[:-3] for f in os.listdir(CONFIGS) if f.endswith(".py")))
def test_every_configs_examples_pass(name):
  config = train_harness.config_with(os.path.join(CONFIGS, f"{name}.py") + ":tiny")
  system = registry.get_system(config)
  for split in ("train", config.eval.split):
    contract.check_example(system.dataset(split, seed=0, shard_index=0, shard_count=1)[0],
                           where=f"{name} {split}")
  contract.check_example(system.synthesis_example(seed=1), where=f"{name} synthesis")


def _fails(example, *words):
  with pytest.raises(ValueError) as e:
    contract.check_example(example, where="the test's source, video v0")
  message = str(e.value)
  assert "\n" not in message and "the test's source, video v0" in message
  for word in words:
    assert word in message, message
  return message


def test_a_good_example_and_unknown_keys_pass():
  contract.check_example({**_example(), "pair": np.int32(0), "box_mask": np.zeros(3, np.float64),
                          "frame_index": np.arange(2, dtype=np.int32)}, where="test")


def test_a_wrong_dtype_fails_naming_the_key():
  ex = _example()
  ex["rgb"] = ex["rgb"].astype(np.float64)
  _fails(ex, "'rgb'", "float64", "float32")
  ex = _example()
  ex["face"] = ex["face"].astype(np.uint8)
  _fails(ex, "'face'", "uint8")


def test_out_of_range_rgb_fails_naming_the_key():
  ex = _example()
  ex["rgb"] = (ex["rgb"] + 1) * 127.5      # [0, 255], not [-1, 1]
  _fails(ex, "'rgb'", "[-1, 1]")
  ex = _example()
  ex["rgb"][0, 0, 0, 0] = np.nan
  _fails(ex, "'rgb'", "NaN")


def test_a_wrong_keypoint_shape_fails_naming_the_key():
  ex = _example()
  ex["keypoints"] = ex["keypoints"][..., :2]          # no visibility
  _fails(ex, "'keypoints'", "(2, 18, 2)", "(18, 3)")
  ex = _example()
  ex["keypoints"] = ex["keypoints"][:, :17]           # COCO's 17, not COCO-18
  _fails(ex, "'keypoints'", "(18, 3)")


def test_other_violations_fail_naming_the_key():
  ex = _example()
  ex["keypoints"][0, 3, 2] = 2.0                      # COCO's visibility flag 2
  _fails(ex, "'keypoints'", "column 2")
  ex = _example()
  ex["mask"] = ex["mask"][..., 0]                     # no channel axis
  _fails(ex, "'mask'", "(1,)")
  ex = _example()
  ex["part"][0, 0, 0] = 25
  _fails(ex, "'part'", "1..24")
  ex = _example()
  ex["uv"] = ex["uv"] * 2
  _fails(ex, "'uv'")
  ex = _example()
  ex["flow_fwd"][1, 2, 3, 0] = np.inf
  _fails(ex, "'flow_fwd'", "Inf")
  ex = _example()
  ex["depth"] = -ex["depth"]
  _fails(ex, "'depth'")


def test_prefixed_keys_follow_their_base_key():
  ex = {f"{p}{k}": v for p in contract.PREFIXES for k, v in _example().items()}
  contract.check_example(ex, where="test")
  bad = _example()["keypoints"][..., :2]
  for prefix in ("src_", "tgt_", "driving_", "exemplar_", "context_"):
    _fails({f"{prefix}keypoints": bad}, f"'{prefix}keypoints'", "keypoints is float32")
  _fails({"tgt_mask": np.full((1, 4, 4, 1), 0.5, np.float64)}, "'tgt_mask'", "float64")


def test_a_source_that_breaks_the_contract_fails_when_read():
  clip = synthetic.render_clip(2, num_views=1, num_frames=2, resolution=16)
  clip["keypoints"] = clip["keypoints"].copy()
  clip["keypoints"][..., 2] *= 2                      # visibility {0, 2}
  clip["uv"] = clip["uv"] + 1.0                       # [1, 2]
  src = synthetic_clips.RenderedClip(clip)
  video = src.take(0)[0]
  with pytest.raises(ValueError, match=r"'keypoints' from a rendered clip, video view0 .*column 2"):
    src.keypoints(video)
  with pytest.raises(ValueError, match=r"'uv' from a rendered clip, video view0 has values"):
    src.frames(video, [0, 1], ("rgb", "uv"))
  src.frames(video, [0, 1], ("rgb", "mask"))          # keys that hold pass
