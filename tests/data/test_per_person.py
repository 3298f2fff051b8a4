"""Per-person data: the synthetic person's video, held-out segment, streamed examples, driving poses."""
import os

import numpy as np
import pytest

from psrjax.data import synthetic
from psrjax.data.samplers import per_person
from psrjax.data.sources import scripted_person


def tiny(**overrides):
  data = per_person.default_data_config()
  data.update(dict(resolution=16, train_script=(("wave", 10), ("squat", 8)),
                   test_script=(("throw", 6), ("wave", 5)), eval_run_frames=4,
                   driving_script=(("dance", 9),)))
  data.update(overrides)
  return data


def test_default_segments_are_disjoint_and_hold_out_an_action():
  data = per_person.default_data_config()
  (a, b), (c, d) = scripted_person.segments(data).values()
  assert a == 0 and b == c and b >= 2000 and d > c
  novel = scripted_person.novel_actions(data)
  assert novel and not set(novel) & {action for action, _ in data.train_script}
  starts = per_person.eval_starts(data)
  assert starts[0] == c and starts[-1] + data.eval_run_frames <= d
  assert len(per_person.train_dataset(data, seed=0, shard_index=0, shard_count=1)) == \
      b - data.frames_per_example + 1
  # Novel-action frames lie in the held-out segment alone; its runs fall in both groups.
  flags = per_person.novel_frames(data)
  assert flags.shape == (d,) and not flags[:b].any() and flags[c:].any() and not flags[c:].all()
  runs = starts[:, None] + np.arange(data.eval_run_frames)
  groups = per_person.run_groups(data, runs)
  np.testing.assert_array_equal(groups, flags[runs].mean(-1) > 0.5)
  assert set(groups) == {0, 1}


def test_examples_follow_the_spec_and_are_deterministic():
  data = tiny()
  ds = per_person.train_dataset(data, seed=3, shard_index=0, shard_count=1)
  spec = per_person.example_spec(data, "train")
  for i in (0, len(ds) - 1):
    example = ds[i]
    assert {k: (v.shape, v.dtype) for k, v in example.items()} == spec
    assert example["rgb"].min() >= -1 and example["rgb"].max() <= 1
    assert example["frame_index"].max() < scripted_person.segments(data)["train"][1]
    np.testing.assert_array_equal(np.diff(example["frame_index"]), 1)
  again = per_person.train_dataset(data, seed=3, shard_index=0, shard_count=1)
  for key, value in ds[5].items():
    np.testing.assert_array_equal(again[5][key], value)
  order = lambda seed: [int(per_person.train_dataset(data, seed=seed, shard_index=0,
                                                      shard_count=1)[i]["frame_index"][0])
                        for i in range(len(ds))]
  assert sorted(order(3)) == list(range(len(ds))) and order(3) != order(4)


def test_shards_split_the_start_frames():
  data = tiny(frames_per_example=3)
  shards = [per_person.train_dataset(data, seed=0, shard_index=s, shard_count=2) for s in (0, 1)]
  firsts = [[int(ds[i]["frame_index"][0]) for i in range(len(ds))] for ds in shards]
  assert sorted(firsts[0] + firsts[1]) == list(range(18 - 3 + 1))  # disjoint, all start frames
  runs = [per_person.eval_dataset(data, shard_index=s, shard_count=2) for s in (0, 1)]
  assert [int(r[0]["frame_index"][0]) for r in runs] == [18, 22]


def test_examples_are_the_frames_of_the_whole_video():
  data = tiny()
  script = tuple(data.train_script) + tuple(data.test_script)
  cams = scripted_person.camera(data)
  full = {k: np.concatenate([c[k][0] for c in synthetic.render_sequence(
      data.identity, script, cameras=cams, seed=data.seed, chunk_frames=7)], axis=0)
          for k in ("rgb", "keypoints", "mask", "flow_fwd", "flow_bwd")}
  for start, length in ((2, 5), (16, 2), (18, 4), (25, 4)):
    example = scripted_person.frames(data, start, length)
    t = slice(start, start + length)
    np.testing.assert_allclose(example["rgb"], full["rgb"][t] / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(example["mask"][..., 0], full["mask"][t])
    for key in ("keypoints", "flow_fwd", "flow_bwd"):
      expect = full[key][t].copy()
      if key == "flow_fwd" and start + length == 18:  # the training segment's last frame
        assert np.abs(expect[-1]).max() > 0
        expect[-1] = 0
      if key == "flow_bwd" and start == 18:  # the held-out segment's first frame
        assert np.abs(expect[0]).max() > 0
        expect[0] = 0
      np.testing.assert_allclose(example[key], expect, atol=1e-6, err_msg=key)
  with pytest.raises(ValueError, match="one segment"):
    scripted_person.frames(data, 16, 4)


def test_eval_runs_cover_the_held_out_segment_in_order():
  data = tiny()
  runs = per_person.eval_dataset(data, shard_index=0, shard_count=1)
  assert len(runs) == 2  # 11 held-out frames in runs of 4: the last 3 are dropped
  spec = per_person.example_spec(data, "test")
  assert {k: (v.shape, v.dtype) for k, v in runs[1].items()} == spec
  np.testing.assert_array_equal(runs[1]["frame_index"], np.arange(22, 26))
  assert len(per_person.eval_dataset(data, shard_index=0, shard_count=1, num_runs=1)) == 1
  train = per_person.train_dataset(data, seed=0, shard_index=0, shard_count=1)
  seen = {int(f) for i in range(len(train)) for f in train[i]["frame_index"]}
  held_out = {int(f) for i in range(len(runs)) for f in runs[i]["frame_index"]}
  assert seen == set(range(18)) and not seen & held_out


def test_driving_poses_pass_through_the_normalisation():
  data = tiny()
  raw = per_person.driving_keypoints(data)
  assert raw.shape == (9, 18, 3)
  double = lambda kp: kp * np.array([2.0, 2.0, 1.0], np.float32)
  ds = per_person.driving_dataset(data, shard_index=0, shard_count=1, normalize=double)
  assert len(ds) == 2
  run = ds[1]
  np.testing.assert_allclose(run["keypoints"], double(raw[4:8]))
  assert run["driving_rgb"].shape == (4, 16, 16, 3)
  np.testing.assert_array_equal(run["frame_index"], np.arange(4, 8))
  example = per_person.synthesis_example(data, driving="cross", run=1, num_frames=3)
  np.testing.assert_allclose(example["keypoints"], raw[4:7])
  with pytest.raises(ValueError, match="names no run"):
    per_person.synthesis_example(data, driving="cross", run=2)
  own = per_person.synthesis_example(data, driving="test", num_frames=2)
  np.testing.assert_array_equal(own["frame_index"], [18, 19])
  with pytest.raises(ValueError, match="same shape"):
    per_person.driving_keypoints(data, lambda kp: kp[..., :2])


@pytest.mark.parametrize("overrides, match", [
    (dict(eval_run_frames=1), "eval_run_frames"),
    (dict(frames_per_example=40), "frames_per_example"),
    (dict(train_script=(("fly", 3),)), "train_script"),
    (dict(test_script=()), "test_script"),
])
def test_bad_configs(overrides, match):
  with pytest.raises(ValueError, match=match):
    per_person.train_dataset(tiny(**overrides), seed=0, shard_index=0, shard_count=1)


def test_the_frame_cache_gives_the_same_examples(tmp_path):
  data, cached = tiny(), tiny(cache_dir=str(tmp_path), cache_chunk_frames=5)
  root = scripted_person.cache_path(cached)
  assert root.startswith(str(tmp_path)) and root != scripted_person.cache_path(
      tiny(cache_dir=str(tmp_path), resolution=20))
  # An interrupted write leaves only a temporary directory: never read as a chunk.
  os.makedirs(os.path.join(root, "chunk_000003.tmp-1-dead"))
  np.save(os.path.join(root, "chunk_000003.tmp-1-dead", "rgb.npy"), np.zeros(3))
  for start, length in ((3, 4), (16, 2), (18, 4), (14, 1)):
    want, got = scripted_person.frames(data, start, length), scripted_person.frames(cached, start, length)
    for key, value in want.items():
      np.testing.assert_array_equal(got[key], value, err_msg=key)
  assert sorted(n for n in os.listdir(root) if ".tmp-" not in n) == [
      "chunk_000000", "chunk_000001", "chunk_000002", "chunk_000003", "chunk_000004"]
  for key, value in scripted_person.appearance(data, [12, 3, 12]).items():
    np.testing.assert_array_equal(scripted_person.appearance(cached, [12, 3, 12])[key], value)
