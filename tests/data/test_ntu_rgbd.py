"""The NTU RGB+D builder on a tiny fake archive in NTU's layout, made from the synthetic world:
three Kinects per take (colour AVIs, masked depth PNGs in millimetres, .skeleton text files with
25 joints in each sensor's own camera space and their depth and colour pixels), frame counts a
few frames apart, a short spurious second body, and one take missing a skeleton."""
import json
import os
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from psrjax.data.preparation import ntu_rgbd
from psrjax.data.sources import multiview
from psrjax.data.synthetic import body, motion
from psrjax.data.synthetic.cameras import camera_ring
from psrjax.data.synthetic.recording import Recording, agreement
from psrjax.geometry.calibration import Camera

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "datasets"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train"))
import train_harness  # noqa: E402

PSRNET_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "psrnet.py")
FRAMES, RES = 30, 64                       # 30 frames: the body fit's program of test_multiview
COLOR, DEPTH = (192, 108), (128, 106)      # NTU's 1920x1080 and 512x424, scaled down
KINECT = np.diag([-1.0, -1.0, 1.0])        # Kinect camera space: x left, y up, z forward
TAKES = {"S001P001R001A001": 3, "S001P001R001A002": 4}


def kinect_joints(rec: Recording) -> np.ndarray:
  """[T, 25, 3] world positions of Kinect v2's joints on the synthetic body."""
  posed = motion.pose_body(np.asarray(rec.identity.shape, np.float64), rec.motion)
  j, coco = posed.joint_pos, rec.points3d()
  k = {n: i for i, n in enumerate(ntu_rgbd.KINECT_JOINTS)}
  out = np.zeros((len(j), 25, 3))
  for slot, src in enumerate(ntu_rgbd.COCO_FROM_KINECT):
    if src >= 0:
      out[:, src] = coco[:, slot]
  out[:, k["spine_base"]] = 0.5 * (coco[:, 8] + coco[:, 11])
  for name in ("spine_mid", "neck", "head"):
    out[:, k[name]] = j[:, body.J[name if name != "spine_mid" else "spine"]]
  forward = posed.joint_rot[:, 0] @ np.array([0.0, 1.0, 0.0])
  for side in "lr":
    arm = out[:, k[f"{side}_wrist"]] - out[:, k[f"{side}_elbow"]]
    for name, reach in (("hand", 0.3), ("hand_tip", 0.5), ("thumb", 0.2)):
      out[:, k[f"{side}_{name}"]] = out[:, k[f"{side}_wrist"]] + reach * arm
    out[:, k[f"{side}_foot"]] = out[:, k[f"{side}_ankle"]] + 0.1 * forward - [0, 0, 0.05]
  return out


def kinects(rng):
  """(colour cameras, depth cameras): NTU's -45 / 0 / +45 degree rig; each depth sensor 5 cm
  to the side of its colour camera, 70 x 60 degrees like Kinect v2's."""
  rig = camera_ring([-45.0, 0.0, 45.0], height=COLOR[1], width=COLOR[0], distance=3.0,
                    eye_height=rng.uniform(0.9, 1.3, 3), fov_y_deg=60.0)
  color = [Camera(f"C00{c + 1}", COLOR, rig.K[c], [], rig.R[c], rig.t[c]) for c in range(3)]
  f = 0.5 * DEPTH[0] / np.tan(np.deg2rad(35.0))
  K = [[f, 0, (DEPTH[0] - 1) / 2], [0, f, (DEPTH[1] - 1) / 2], [0, 0, 1]]
  depth = [Camera(c.name, DEPTH, K, [], c.R, c.t - [0.05, 0.0, 0.0]) for c in color]
  return color, depth


def skeleton_text(joints, color, depth, states, spurious=()) -> str:
  """An NTU .skeleton file: per frame one body (and a second in `spurious` frames)."""
  lines = [str(len(joints))]
  for t, xyz in enumerate(joints):
    bodies = [("72057594037931101", xyz)] + ([("72057594037931777", xyz[::-1] + 0.4)]
                                             if t in spurious else [])
    lines.append(str(len(bodies)))
    for body_id, pts in bodies:
      lines += [f"{body_id} 0 1 1 1 1 0 0.02764709 0.05745083 2", "25"]
      kin = (pts @ depth.R.T + depth.t) @ KINECT.T
      for j in range(25):
        (dx, dy), (cx, cy) = depth.project(pts[j]), color.project(pts[j])
        lines.append(f"{kin[j, 0]:.7g} {kin[j, 1]:.7g} {kin[j, 2]:.7g} {dx:.7g} {dy:.7g} "
                     f"{cx:.7g} {cy:.7g} 0 0 0 0 {states[t, j]}")
  return "\n".join(lines) + "\n"


def write_take(root, take: str, seed: int, *, skip_skeleton=None) -> tuple:
  rng = np.random.default_rng(seed)
  rec = Recording(seed, num_views=3, num_frames=FRAMES + 2, width=COLOR[0], height=COLOR[1])
  rec.cameras, depth_cams = kinects(rng)
  joints = kinect_joints(rec)
  truth = rec.truth(depth_cams)
  for c, (color, depth) in enumerate(zip(rec.cameras, depth_cams)):
    name = f"{take[:4]}C00{c + 1}{take[4:]}"
    frames = FRAMES + (1 if c == 2 else 0)                        # one video a frame longer
    iio.imwrite(root / ntu_rgbd.RGB_DIR / f"{name}_rgb.avi", rec.frames(c, 0, frames),
                extension=".avi", codec="mpeg4", fps=30, macro_block_size=1,
                output_params=["-q:v", "2"])
    folder = root / ntu_rgbd.DEPTH_DIR / name
    folder.mkdir(parents=True)
    for t in range(FRAMES):
      iio.imwrite(folder / f"MDepth-{t + 1:08d}.png",
                  np.round(truth["depth"][c, t] * 1000).astype(np.uint16))
    states = np.where(rng.random((FRAMES + 2, 25)) < 0.05, 1, 2)   # a few joints inferred
    if c != skip_skeleton:
      (root / ntu_rgbd.SKELETON_DIR / f"{name}.skeleton").write_text(skeleton_text(
          joints[:FRAMES + (2 if c == 1 else 0)], color, depth, states,
          spurious=range(5, 9) if c == 1 else ()))
  return rec, depth_cams


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
  root = tmp_path_factory.mktemp("ntu")
  for folder in (ntu_rgbd.RGB_DIR, ntu_rgbd.DEPTH_DIR, ntu_rgbd.SKELETON_DIR):
    (root / folder).mkdir()
  recs = {take: write_take(root, take, seed) for take, seed in TAKES.items()}
  write_take(root, "S001P002R001A001", 5, skip_skeleton=2)          # incomplete: skipped
  return root, recs


@pytest.fixture(scope="module")
def built(archive, tmp_path_factory):
  import tensorflow_datasets as tfds
  from ntu_rgbd import ntu_rgbd_dataset_builder as ntu_builder
  from psrjax.data.builders import multiview_builder
  root, recs = archive
  config = multiview_builder.MultiViewConfig(name=f"test_r{RES}", resolution=RES, fit_steps=300)
  builder = ntu_builder.Builder(config=config, data_dir=str(tmp_path_factory.mktemp("tfds")))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(root)))
  return builder.data_path, recs


def test_takes_splits_and_the_cross_view_pairs(built):
  path, _ = built
  index = multiview.read_index(str(path))
  assert [r["name"] for r in index["recordings"]] == list(TAKES)        # the incomplete one skipped
  assert index["splits"] == {"train": 2 * len(TAKES) * FRAMES, "test": len(TAKES) * FRAMES}
  assert [index["videos"][v]["name"] for v in index["takes"][0]["videos"]] == [
      f"S001P001R001A001:C00{c}" for c in (1, 2, 3)]
  assert index["estimated"]["mask"].startswith("masked depth")
  train, test = multiview.MultiViewSource(str(path), "train"), multiview.MultiViewSource(
      str(path), "validation")
  assert len(train) == len(test) == len(TAKES)
  assert train.pairs(0) == ((1, 2), (2, 1)) and test.pairs(0) == ((1, 0), (2, 0))   # 2<->3; 2,3->1
  reports = [r["reprojection"]["overall"]["median"] for r in index["recordings"]]
  print(f"\njoints reprojected into the estimated colour cameras: median {reports} px")
  assert max(reports) < 1.0


def _camera_in_synthetic_world(stored: dict, depth1: Camera) -> Camera:
  """A stored camera (world: camera 1's Kinect space) moved to the synthetic world's frame."""
  R, t = np.asarray(stored["R"]), np.asarray(stored["t"])
  A, b = KINECT @ depth1.R, KINECT @ depth1.t                 # synthetic world -> Kinect 1
  return Camera(stored["name"], stored["size"], stored["K"], [], R @ A, R @ b + t)


def test_estimated_cameras_fitted_maps_and_depth_masks_agree_with_the_truth(built):
  path, recs = built
  data = multiview.MultiViewVideos(str(path))
  for take, (rec, depth_cams) in zip(data.index["takes"], recs.values()):
    cams = [_camera_in_synthetic_world(data.index["videos"][v]["camera"], depth_cams[0])
            for v in take["videos"]]
    truth = rec.truth(cams)
    for c, v in enumerate(take["videos"]):
      box = data.index["videos"][v]["crop_box"]
      scale = RES / box[2]
      true_cam = Camera("t", COLOR, rec.cameras[c].K, [], rec.cameras[c].R, rec.cameras[c].t)
      np.testing.assert_allclose(cams[c].K[0, 0], true_cam.K[0, 0] * scale, rtol=0.02)
      np.testing.assert_allclose(cams[c].center, true_cam.center, atol=0.03)
      got = data.frames(v, np.arange(FRAMES))
      agree = agreement(got, {k: truth[k][c][:FRAMES] for k in ("face", "part", "depth", "mask")})
      print(f"\n{take['name']} C00{c + 1}: " + ", ".join(f"{k} {x:.3f}" for k, x in agree.items()))
      assert agree["silhouette IoU"] > 0.8 and agree["part within 1 px"] > 0.85
      assert agree["mask IoU"] > 0.8            # from the masked depth maps


def test_psrnet_evaluates_the_held_out_camera_as_target(built):
  from psrjax.systems import registry
  path, _ = built
  config = train_harness.config_with(f"{PSRNET_CONFIG}:tiny,data={path}")
  assert config.data.num_views == 3
  system = registry.get_system(config)
  pairs = {int(e["pair"]) for e in system.dataset("validation", seed=0, shard_index=0,
                                                   shard_count=1)}
  assert pairs == {2, 4}                                      # 2 -> 1 and 3 -> 1
  train = system.dataset("train", seed=0, shard_index=0, shard_count=1)
  assert {int(train[i]["pair"]) for i in range(8)} <= {3, 5}  # 2 -> 3 and 3 -> 2


def test_skeleton_files_are_parsed_and_bad_ones_named(archive, tmp_path):
  root, _ = archive
  frames = ntu_rgbd.read_skeleton(str(root / ntu_rgbd.SKELETON_DIR / "S001C002P001R001A001.skeleton"))
  assert len(frames) == FRAMES + 2 and len(frames[6]) == 2 and frames[0][
      "72057594037931101"].shape == (25, 12)
  sk = ntu_rgbd.main_body(frames)                             # the body seen throughout
  assert sk.xyz.shape == (FRAMES + 2, 25, 3) and np.all(sk.state > 0)
  bad = tmp_path / "bad.skeleton"
  bad.write_text("3\n1\n72057594037931101 0 1\n")
  with pytest.raises(ValueError, match="not an NTU RGB"):
    ntu_rgbd.read_skeleton(str(bad))
  with pytest.raises(FileNotFoundError, match="nturgb"):
    ntu_rgbd.list_takes(str(tmp_path))
