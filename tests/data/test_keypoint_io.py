"""psrjax.data.preparation.keypoint_io: OpenPose / COCO / MediaPipe / numpy keypoints to COCO-18,
tracking of the main person, one-line errors naming the file, gap-preserving smoothing."""
import json

import numpy as np
import pytest

from psrjax.data.preparation import keypoint_io as K
from psrjax.geometry.skeleton import COCO_NAMES

BODY25_NAMES = ("Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
                "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye",
                "REar", "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel")
# COCO-18 name -> BODY_25 name, written out by hand.
BODY25_OF = {"nose": "Nose", "neck": "Neck", "r_shoulder": "RShoulder", "r_elbow": "RElbow",
             "r_wrist": "RWrist", "l_shoulder": "LShoulder", "l_elbow": "LElbow",
             "l_wrist": "LWrist", "r_hip": "RHip", "r_knee": "RKnee", "r_ankle": "RAnkle",
             "l_hip": "LHip", "l_knee": "LKnee", "l_ankle": "LAnkle", "r_eye": "REye",
             "l_eye": "LEye", "r_ear": "REar", "l_ear": "LEar"}
COCO17_NAMES = ("nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder",
                "l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee",
                "l_ankle", "r_ankle")
MEDIAPIPE_OF = {"nose": 0, "l_eye": 2, "r_eye": 5, "l_ear": 7, "r_ear": 8, "l_shoulder": 11,
                "r_shoulder": 12, "l_elbow": 13, "r_elbow": 14, "l_wrist": 15, "r_wrist": 16,
                "l_hip": 23, "r_hip": 24, "l_knee": 25, "r_knee": 26, "l_ankle": 27,
                "r_ankle": 28}


def test_body25_mapping_by_name():
  for i, name in enumerate(COCO_NAMES):
    assert BODY25_NAMES[K.BODY25_TO_COCO18[i]] == BODY25_OF[name]
  pts = np.zeros((25, 3), np.float32)
  pts[:, 0] = np.arange(25)
  pts[:, 2] = 1
  out = K.body25_to_coco18(pts)
  assert [BODY25_NAMES[int(x)] for x in out[:, 0]] == [BODY25_OF[n] for n in COCO_NAMES]


def test_coco17_mapping_neck_and_flags():
  pts = np.zeros((17, 3), np.float32)
  pts[:, 0] = np.arange(17) + 1
  pts[:, 1] = 10
  pts[:, 2] = 2
  pts[COCO17_NAMES.index("l_ear"), 2] = 0
  pts[COCO17_NAMES.index("r_shoulder"), 2] = 1           # labelled, occluded: still there
  out = K.coco17_to_coco18(pts)
  for i, name in enumerate(COCO_NAMES):
    if name == "neck":
      ls, rs = COCO17_NAMES.index("l_shoulder") + 1, COCO17_NAMES.index("r_shoulder") + 1
      np.testing.assert_allclose(out[i], ((ls + rs) / 2, 10, 1))
    elif name == "l_ear":
      assert np.all(out[i] == 0)
    else:
      np.testing.assert_allclose(out[i], (COCO17_NAMES.index(name) + 1, 10, 1))
  pts[COCO17_NAMES.index("l_shoulder"), 2] = 0
  assert np.all(K.coco17_to_coco18(pts)[1] == 0)        # no neck without both shoulders
  pts[:, 2] = 0.4                                        # detector scores stay confidences
  assert np.allclose(K.coco17_to_coco18(pts)[:, 2], 0.4)


def test_mediapipe_conversion():
  """A 100x200 (width x height) image: normalised (0.5, 0.25) is pixel (49.5, 49.5)."""
  lm = np.zeros((2, 33, 4), np.float32)
  for j in MEDIAPIPE_OF.values():
    lm[:, j] = (0.1 + 0.02 * j, 0.05 + 0.01 * j, 0.0, 0.9)
  lm[:, 0] = (0.5, 0.25, -0.3, 0.8)
  lm[1, MEDIAPIPE_OF["l_wrist"], :2] = (1.2, 0.5)        # outside the image
  out = K.mediapipe33_to_coco18(lm, height=200, width=100)
  np.testing.assert_allclose(out[0, 0], (49.5, 49.5, 0.8))
  for i, name in enumerate(COCO_NAMES):
    if name in MEDIAPIPE_OF and name != "nose":
      j = MEDIAPIPE_OF[name]
      np.testing.assert_allclose(out[0, i], ((0.1 + 0.02 * j) * 100 - 0.5,
                                             (0.05 + 0.01 * j) * 200 - 0.5, 0.9), rtol=1e-5)
  np.testing.assert_allclose(out[0, 1, :2], (out[0, 2, :2] + out[0, 5, :2]) / 2)
  assert np.all(out[1, COCO_NAMES.index("l_wrist")] == 0)
  three = K.mediapipe33_to_coco18(lm[..., [0, 1, 3]], 200, 100)
  np.testing.assert_allclose(three, out)


def _person(cx, cy, scale, conf=0.9):
  """A COCO-18 stick person centred at (cx, cy), `scale` pixels tall."""
  rng = np.random.default_rng(int(scale))
  p = np.zeros((18, 3), np.float32)
  p[:, 0] = cx + scale * rng.uniform(-0.2, 0.2, 18)
  p[:, 1] = cy + scale * np.linspace(-0.5, 0.5, 18)
  p[:, 2] = conf
  return p


def _moved(p, dx):
  """The person `p` moved right by dx (missing joints stay (0, 0, 0))."""
  q = np.array(p)
  q[q[:, 2] > 0, 0] += dx
  return q


def test_tracking_follows_the_main_person():
  a = [_person(100 + 2 * t, 200, 150) for t in range(6)]  # largest, walking right
  b = [_person(300 - 2 * t, 210, 120) for t in range(6)]
  c = _person(500, 200, 300)                              # a bigger one walks in at t = 3
  people = [[a[0], b[0]], [b[1], a[1]], [], [c, b[3], a[3]], [b[4], c, a[4]], [a[5]]]
  out = K.track_main_person(people)
  assert out.shape == (6, 18, 3) and out.dtype == np.float32
  assert np.all(out[2] == 0)
  for t in (0, 1, 3, 4, 5):
    np.testing.assert_array_equal(out[t], a[t])
  # When the followed person is gone, the largest one takes over.
  out = K.track_main_person([[a[0], b[0]], [c, b[1]]])
  np.testing.assert_array_equal(out[1], c)


def _openpose_frame(path, people, points=25):
  keypoints = []
  for p in people:
    flat = np.zeros((points, 3), np.float32)
    if points == 25:
      flat[K.BODY25_TO_COCO18] = p
    else:
      flat[:] = p
    keypoints.append({"pose_keypoints_2d": flat.ravel().tolist(), "face_keypoints_2d": []})
  path.write_text(json.dumps({"version": 1.3, "people": keypoints}))


def test_openpose_dir(tmp_path):
  a, b = _person(100, 200, 150), _person(300, 200, 100)
  a[4] = 0                                                # missing joint (0, 0, 0)
  for t in (2, 10, 1):                                   # frame numbers, not name order
    _openpose_frame(tmp_path / f"cam2_{t:012d}_keypoints.json", [b, _moved(a, t)],
                    25 if t != 10 else 18)                # frame 10 in OpenPose's COCO-18
  (tmp_path / "readme.txt").write_text("not json")
  out = K.load_openpose_dir(tmp_path, num_frames=3)
  assert out.shape == (3, 18, 3)
  for i, t in enumerate((1, 2, 10)):
    expected = _moved(a, t)
    np.testing.assert_allclose(out[i], expected)
  np.testing.assert_array_equal(K.load_keypoints(tmp_path), out)


def test_openpose_errors_are_one_line(tmp_path):
  _openpose_frame(tmp_path / "v_000000000000_keypoints.json", [_person(50, 50, 40)])
  _openpose_frame(tmp_path / "v_000000000001_keypoints.json", [])
  with pytest.raises(ValueError) as e:
    K.load_openpose_dir(tmp_path, num_frames=100)
  assert str(e.value) == (f"{tmp_path} has 2 keypoint files but the video has 100 frames; "
                          "export keypoints for every frame")
  bad = tmp_path / "v_000000000002_keypoints.json"
  bad.write_text('{"people": [{"pose_keypoints_2d": [1, 2,, 3]}]}')
  with pytest.raises(ValueError, match=r"v_000000000002_keypoints.json is not valid JSON "
                                       r"\(Expecting value at line 1 column 41\)"):
    K.load_openpose_dir(tmp_path)
  bad.write_text(json.dumps({"people": [{"pose_keypoints_2d": [1.0] * 30}]}))
  with pytest.raises(ValueError, match="v_000000000002_keypoints.json: pose_keypoints_2d has 30"):
    K.load_openpose_dir(tmp_path)
  bad.rename(tmp_path / "other_000000000001_keypoints.json")
  with pytest.raises(ValueError, match="both frame 1"):
    K.load_openpose_dir(tmp_path)


def _coco_file(path, frames):
  images, anns = [], []
  for i, (name, people) in enumerate(frames):
    images.append({"id": 100 - i, "file_name": name, "height": 240, "width": 320})
    for p in people:
      kp = np.zeros((17, 3), np.float32)
      for j, n in enumerate(COCO17_NAMES):
        kp[j] = p[COCO_NAMES.index(n)]
      kp[:, 2] = 2
      anns.append({"id": len(anns), "image_id": 100 - i, "keypoints": kp.ravel().tolist(),
                   "num_keypoints": 17})
  path.write_text(json.dumps({"images": images, "annotations": anns, "categories": []}))


def test_coco_json(tmp_path):
  a, b = _person(100, 120, 150), _person(250, 120, 90)
  _coco_file(tmp_path / "kp.json", [("f_002.jpg", [b, _moved(a, 2)]),
                                    ("f_001.jpg", [_moved(a, 1), b]),
                                    ("f_003.jpg", [])])
  out = K.load_keypoints(tmp_path / "kp.json", num_frames=3)
  assert out.shape == (3, 18, 3)
  for t in (1, 2):
    expected = _moved(a, t)
    expected[:, 2] = 1
    expected[1] = (*(expected[2, :2] + expected[5, :2]) / 2, 1)
    np.testing.assert_allclose(out[t - 1], expected, rtol=1e-6)
  assert np.all(out[2] == 0)
  with pytest.raises(ValueError, match="kp.json has 3 images but the video has 4 frames"):
    K.load_coco_json(tmp_path / "kp.json", num_frames=4)
  (tmp_path / "list.json").write_text("[]")
  with pytest.raises(ValueError, match="list.json is not a COCO keypoints file"):
    K.load_keypoints(tmp_path / "list.json")


def test_numpy_layouts(tmp_path):
  coco18 = np.stack([_person(60, 60, 50), _person(62, 60, 50)])
  np.save(tmp_path / "a.npy", coco18)
  np.testing.assert_array_equal(K.load_keypoints(tmp_path / "a.npy", num_frames=2), coco18)
  np.savez(tmp_path / "b.npz", keypoints=coco18[..., :2])
  assert np.all(K.load_numpy(tmp_path / "b.npz")[..., 2] == 1)
  body25 = np.zeros((2, 25, 3), np.float32)
  body25[:, K.BODY25_TO_COCO18] = coco18
  np.save(tmp_path / "c.npy", body25)
  np.testing.assert_array_equal(K.load_numpy(tmp_path / "c.npy"), coco18)
  lm = np.full((2, 33, 4), 0.5, np.float32)
  np.save(tmp_path / "d.npy", lm)
  assert np.allclose(K.load_numpy(tmp_path / "d.npy", height=10, width=20)[:, 0],
                     (9.5, 4.5, 0.5))
  out = K.load_keypoints(tmp_path / "a.npy", height=100, width=60)   # x > 59.5 dropped
  assert np.all(out[coco18[..., 0] > 59.5] == 0) and np.all(out[coco18[..., 0] <= 59.5] != 0)


@pytest.mark.parametrize("name, array, kwargs, match", [
    ("e.npy", np.zeros((2, 33, 4)), {}, "pass the video's height and width"),
    ("f.npy", np.full((2, 33, 4), 300.0), {"height": 9, "width": 9}, "normalised"),
    ("g.npy", np.zeros((2, 19, 3)), {}, r"keypoints are \(2, 19, 3\)"),
    ("h.npy", np.full((2, 18, 3), 5.0), {}, "not a confidence"),
    ("i.npz", {"poses": np.zeros((2, 18, 3))}, {}, "no 'keypoints' array"),
    ("j.npy", b"garbage", {}, "not a readable numpy file")])
def test_numpy_errors(tmp_path, name, array, kwargs, match):
  path = tmp_path / name
  if isinstance(array, bytes):
    path.write_bytes(array)
  elif isinstance(array, dict):
    np.savez(path, **array)
  else:
    np.save(path, array)
  with pytest.raises(ValueError, match=match) as e:
    K.load_numpy(path, **kwargs)
  assert name in str(e.value) and "\n" not in str(e.value)


def test_load_keypoints_dispatch_errors(tmp_path):
  with pytest.raises(ValueError, match="nothing.json does not exist"):
    K.load_keypoints(tmp_path / "nothing.json")
  (tmp_path / "k.csv").write_text("1,2")
  with pytest.raises(ValueError, match="k.csv: unknown keypoint format .csv"):
    K.load_keypoints(tmp_path / "k.csv")
  with pytest.raises(ValueError, match="has no .json keypoint files"):
    K.load_keypoints(tmp_path)


def test_smoothing_stays_within_visible_runs():
  t = np.arange(12, dtype=np.float32)
  kp = np.zeros((12, 18, 3), np.float32)
  kp[:, :, 0] = (t * 3 + np.where(t % 2 == 0, 1.0, -1.0))[:, None]   # a line plus jitter
  kp[:, :, 1] = 7
  kp[:, :, 2] = 0.8
  kp[5:7, 3] = 0                                          # a gap in joint 3
  out = K.smooth_keypoints(kp, sigma=1.5)
  assert np.array_equal(out[..., 2], kp[..., 2]) and np.allclose(out[kp[..., 2] > 0, 1], 7)
  assert np.all(out[5:7, 3] == 0)
  err_before = np.abs(kp[2:10, 0, 0] - 3 * t[2:10]).mean()
  err_after = np.abs(out[2:10, 0, 0] - 3 * t[2:10]).mean()
  assert err_after < 0.5 * err_before
  # Each run is smoothed on its own: the run before the gap ignores the frames after it.
  alone = K.smooth_keypoints(kp[:5], sigma=1.5)
  np.testing.assert_allclose(out[:5, 3], alone[:, 3])
  np.testing.assert_array_equal(K.smooth_keypoints(kp, sigma=0), kp)
