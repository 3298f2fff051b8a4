"""Public API of the synthetic world: keys, dtypes, tables, splits, determinism, bad input."""
import hashlib
import subprocess
import sys

import numpy as np
import pytest

import psrjax.data.synthetic as S
from psrjax.data.synthetic import source

V, T, R = 2, 3, 24


@pytest.fixture(scope="module")
def clip():
  return S.render_clip(5, num_views=V, num_frames=T, resolution=R)


def test_keys_shapes_dtypes(clip):
  img = (V, T, R, R)
  expect = dict(
      rgb=(img + (3,), np.uint8), depth=(img, np.float32), mask=(img, np.uint8),
      face=(img, np.int32), part=(img, np.int32), uv=(img + (2,), np.float32),
      keypoints=((V, T, 18, 3), np.float32), flow_fwd=(img + (2,), np.float32),
      flow_bwd=(img + (2,), np.float32), background=((V, R, R, 3), np.uint8),
      background_depth=((V, R, R), np.float32),
      K=((V, 3, 3), np.float32), R=((V, 3, 3), np.float32), t=((V, 3), np.float32),
      action=((), np.int32), identity=((), np.int32))
  assert set(clip) == set(expect)
  for key, (shape, dtype) in expect.items():
    arr = np.asarray(clip[key])
    assert arr.shape == shape and arr.dtype == dtype, key
  assert 0 <= int(clip["action"]) < len(S.ACTIONS)
  assert int(clip["identity"]) == 5 % S.NUM_IDENTITIES


def test_value_ranges(clip):
  m = clip["mask"].astype(bool)
  assert set(np.unique(clip["mask"])) <= {0, 1} and m.any()
  assert clip["uv"].min() >= 0 and clip["uv"].max() <= 1
  assert (clip["uv"][~m] == 0).all()
  assert clip["face"].max() < S.NUM_FACES and clip["part"].max() <= 24
  assert (clip["flow_bwd"][:, 0] == 0).all() and (clip["flow_fwd"][:, -1] == 0).all()
  assert (clip["flow_fwd"][~m] == 0).all() and (clip["flow_bwd"][~m] == 0).all()
  assert set(np.unique(clip["keypoints"][..., 2])) <= {0.0, 1.0}
  # rgb is the static background wherever the person is not.
  bg = np.broadcast_to(clip["background"][:, None], clip["rgb"].shape)
  np.testing.assert_array_equal(clip["rgb"][~m], bg[~m])
  # The room's depth is finite and positive everywhere, and behind the person wherever it shows.
  room_z = np.broadcast_to(clip["background_depth"][:, None], clip["depth"].shape)
  assert np.isfinite(room_z).all() and (room_z > 0).all()
  assert (clip["depth"][m] < room_z[m]).all()
  np.testing.assert_allclose(clip["R"] @ np.swapaxes(clip["R"], 1, 2), np.broadcast_to(np.eye(3), (V, 3, 3)), atol=1e-5)


def test_face_tables():
  assert 1000 <= S.NUM_FACES <= 10000
  assert S.FACE_CENTROIDS.shape == (S.NUM_FACES, 3) and S.FACE_CENTROIDS.dtype == np.float32
  assert S.FACE_PART.shape == (S.NUM_FACES,) and S.FACE_PART.dtype == np.int32
  np.testing.assert_array_equal(np.unique(S.FACE_PART), np.arange(1, 25))
  sym = S.SYMMETRIC_PART
  assert sym.shape == (25,) and sym[0] == 0
  np.testing.assert_array_equal(sym[sym], np.arange(25))
  for p in range(1, 25):
    name, mirrored = S.PART_NAMES[p], S.PART_NAMES[sym[p]]
    swap = {"l_": "r_", "r_": "l_"}
    swapped = swap[name[:2]] + name[2:] if name[:2] in swap else name
    swapped = swapped.replace("right", "Y").replace("left", "right").replace("Y", "left")
    assert mirrored == swapped, (name, mirrored)
  # Mirror-image parts have mirror-image centroids (x -> -x) in the symmetric rest pose.
  for p in (3, 7, 15, 20, 23):
    a = S.FACE_CENTROIDS[S.FACE_PART == p].mean(0)
    b = S.FACE_CENTROIDS[S.FACE_PART == sym[p]].mean(0)
    np.testing.assert_allclose(a * [-1, 1, 1], b, atol=1e-4)


def test_nearest_faces():
  nf = S.nearest_faces(6)
  assert nf.shape == (S.NUM_FACES, 6) and nf.dtype == np.int32
  np.testing.assert_array_equal(nf[:, 0], np.arange(S.NUM_FACES))
  c = S.FACE_CENTROIDS.astype(np.float64)
  for f in (0, 17, 900, S.NUM_FACES - 1):
    d = np.linalg.norm(c - c[f], axis=1)
    np.testing.assert_allclose(np.sort(d)[:6], d[nf[f]], atol=1e-7)
  for bad in (0, -1, S.NUM_FACES + 1, 2.5):
    with pytest.raises(ValueError, match="k must be"):
      S.nearest_faces(bad)


def test_actions_and_every_action_renders():
  assert len(S.ACTIONS) >= 10
  for name in ("walk_in_place", "wave", "throw", "squat", "jumping_jacks", "kick", "bow",
               "arm_circles", "turn_around", "dance"):
    assert name in S.ACTIONS
  for i, name in enumerate(S.ACTIONS):
    out = S.render_clip(1, num_views=1, num_frames=2, resolution=12, action=name)
    assert int(out["action"]) == i and out["mask"].any()


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_views=0), "num_views"), (dict(num_views=-2), "num_views"),
    (dict(resolution=0), "resolution"), (dict(resolution=-8), "resolution"),
    (dict(resolution=12.5), "resolution"), (dict(num_frames=0), "num_frames"),
    (dict(action="moonwalk"), "allowed: walk_in_place"), (dict(action=99), "allowed"),
])
def test_bad_input(kwargs, match):
  with pytest.raises(ValueError, match=match):
    S.render_clip(0, **kwargs)


def test_bad_seed_and_split():
  with pytest.raises(ValueError, match="seed"):
    S.render_clip(-1)
  with pytest.raises(ValueError, match="allowed: train, validation, test"):
    S.SyntheticSource("dev")
  with pytest.raises(ValueError, match="num_views"):
    S.SyntheticSource("train", num_views=0)


def _digest(seed):
  out = S.render_clip(seed, num_views=2, num_frames=3, resolution=20)
  h = hashlib.sha256()
  for k in sorted(out):
    h.update(k.encode())
    h.update(np.ascontiguousarray(out[k]).tobytes())
  return h.hexdigest()


def test_deterministic_across_processes():
  seeds = (3, 1234)
  code = ("import sys; sys.path.insert(0, %r); from test_synthetic_api import _digest; "
          "print(','.join(_digest(s) for s in %r))" % (__file__.rsplit("/", 1)[0], seeds))
  res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": "7", "JAX_PLATFORMS": "cpu",
                            "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)})
  assert res.stdout.strip().split(",") == [_digest(s) for s in seeds]
  assert _digest(3) != _digest(4)


def test_splits_hold_out_identities():
  ids = {s: set(source.split_identities(s)) for s in S.SPLITS}
  assert not ids["train"] & ids["validation"] and not ids["train"] & ids["test"]
  assert not ids["validation"] & ids["test"]
  assert sum(map(len, ids.values())) == S.NUM_IDENTITIES
  for split in S.SPLITS:
    seeds = [S.split_seed(split, i) for i in range(40)]
    assert len(set(seeds)) == 40
    assert all(S.seed_split(s) == split for s in seeds)
    assert all((s % S.NUM_IDENTITIES) in ids[split] for s in seeds)


def test_source_is_random_access():
  src = S.SyntheticSource("test", num_views=1, num_frames=2, resolution=12, num_clips=5)
  assert len(src) == 5
  ex = src[2]
  ref = S.render_clip(S.split_seed("test", 2), num_views=1, num_frames=2, resolution=12)
  for k in ref:
    np.testing.assert_array_equal(ex[k], ref[k])
  assert int(ex["identity"]) % 10 == 9
  with pytest.raises(IndexError):
    src[5]
  import grain
  ds = grain.MapDataset.source(src).batch(2)
  assert ds[0]["rgb"].shape == (2, 1, 2, 12, 12, 3)
