"""Geometry of the synthetic world is exact: masks, depth, faces, keypoints and flow agree."""
import numpy as np
import pytest

import psrjax.data.synthetic as S
from psrjax.data.synthetic import faces, keypoints, motion

NUM_CLIPS, V, T, RES = 20, 3, 4, 64


@pytest.fixture(scope="module")
def clips():
  return [S.render_clip(seed, num_views=V, num_frames=T, resolution=RES) for seed in range(100, 100 + NUM_CLIPS)]


def test_foreground_modalities_agree(clips):
  for c in clips:
    m = c["mask"].astype(bool)
    np.testing.assert_array_equal(c["depth"] > 0, m)
    np.testing.assert_array_equal(c["face"] >= 0, m)
    np.testing.assert_array_equal(c["part"] > 0, m)
    np.testing.assert_array_equal(c["part"][m], S.FACE_PART[c["face"][m]])


def test_visible_keypoints_lie_on_the_person(clips):
  num_visible = 0
  for c in clips:
    m = np.pad(c["mask"].astype(bool), ((0, 0), (0, 0), (1, 1), (1, 1)))
    kp = c["keypoints"]
    v, t, k = np.nonzero(kp[..., 2] > 0)
    x = np.round(kp[v, t, k, 0]).astype(int) + 1
    y = np.round(kp[v, t, k, 1]).astype(int) + 1
    near = np.zeros(len(v), bool)
    for dy in (-1, 0, 1):
      for dx in (-1, 0, 1):
        near |= m[v, t, y + dy, x + dx]
    assert near.all(), f"{(~near).sum()} visible keypoints off the person"
    inside = (kp[..., 0] >= -0.5) & (kp[..., 0] < RES - 0.5) & (kp[..., 1] >= -0.5) & (kp[..., 1] < RES - 0.5)
    assert not (kp[..., 2] > 0)[~inside].any()
    num_visible += len(v)
  total = NUM_CLIPS * V * T * 18
  assert 0.5 * total < num_visible < total  # most are visible, self-occlusion hides some


def _follow(c, v, t, step):
  """Pixels of frame t, where flow sends them in frame t + step, and whether both are seen."""
  m = c["mask"].astype(bool)
  ys, xs = np.nonzero(m[v, t])
  f = c["flow_fwd" if step > 0 else "flow_bwd"][v, t, ys, xs]
  x2, y2 = np.round(xs + f[:, 0]).astype(int), np.round(ys + f[:, 1]).astype(int)
  ok = (x2 >= 0) & (x2 < RES) & (y2 >= 0) & (y2 < RES)
  ys, xs, x2, y2 = ys[ok], xs[ok], x2[ok], y2[ok]
  both = m[v, t + step, y2, x2] & (np.abs(c["depth"][v, t + step, y2, x2] - c["depth"][v, t, ys, xs]) < 0.05)
  return (ys[both], xs[both]), (y2[both], x2[both])


def test_flow_lands_on_the_same_or_adjacent_face(clips):
  adjacent = S.nearest_faces(9)
  good = total = 0
  for c in clips:
    for v in range(V):
      for t in range(T - 1):
        (ys, xs), (y2, x2) = _follow(c, v, t, 1)
        f0, f1 = c["face"][v, t, ys, xs], c["face"][v, t + 1, y2, x2]
        good += (adjacent[f0] == f1[:, None]).any(1).sum()
        total += len(f0)
  assert total > 10000
  assert good / total >= 0.95, good / total


def test_backward_flow_undoes_forward_flow(clips):
  errs = []
  for c in clips[:5]:
    for v in range(V):
      for t in range(T - 1):
        (ys, xs), (y2, x2) = _follow(c, v, t, 1)
        fwd = c["flow_fwd"][v, t, ys, xs]
        bwd = c["flow_bwd"][v, t + 1, y2, x2]
        # Landing pixel is within half a pixel of the exact target, so the round trip is too
        # (up to the local flow gradient).
        errs.append(np.linalg.norm(fwd + bwd + np.stack([x2 - xs - fwd[:, 0], y2 - ys - fwd[:, 1]], -1), axis=-1))
  assert np.median(np.concatenate(errs)) < 0.5


def _scene(seed=3, action="cross_arms", frames=3, res=48):
  person = S.make_identity(seed)
  mot = motion.place_action(person.shape, action, np.arange(frames) / 15.0, heading_deg=20.0, position=(0.1, -0.1))
  cams = S.camera_ring([-45.0, 0.0, 60.0], height=res, width=res + 8, distance=3.0)
  out = S.render(person.shape, person.textures, mot, cams)
  return person, mot, cams, out


def _unproject(out, v, t):
  ys, xs = np.nonzero(out["mask"][v, t])
  z = out["depth"][v, t, ys, xs].astype(np.float64)
  K, R, tr = (out[k][v].astype(np.float64) for k in ("K", "R", "t"))
  cam = np.linalg.solve(K, np.stack([xs, ys, np.ones_like(xs)]).astype(np.float64)) * z
  return ys, xs, (R.T @ (cam - tr[:, None])).T


def test_pixels_unproject_onto_their_primitive_and_flow_follows_it():
  person, mot, cams, out = _scene()
  posed = motion.pose_body(person.shape, mot)
  for v in range(cams.num_views):
    for t in range(2):
      ys, xs, X = _unproject(out, v, t)
      p = faces.FACE_PRIMITIVE[out["face"][v, t, ys, xs]]
      rot, c = posed.prim_rot[t, p], posed.prim_center[t, p]
      local = np.einsum("nji,nj->ni", rot, X - c)
      q = local / posed.rest.radii[p]
      h = posed.rest.h[p]
      axis = np.stack([0 * h, 0 * h, np.clip(q[:, 2], -h, h)], -1)
      sdf = np.linalg.norm(q - axis, axis=-1) - 1.0
      assert np.abs(sdf).max() < 1e-3  # float32 depth
      X2 = posed.prim_center[t + 1, p] + np.einsum("nij,nj->ni", posed.prim_rot[t + 1, p], local)
      pix, _ = cams.project(X2)
      expect = pix[v] - np.stack([xs, ys], -1)
      np.testing.assert_allclose(out["flow_fwd"][v, t, ys, xs], expect, atol=2e-3)


def test_face_centres_are_seen_where_they_project():
  person, mot, cams, out = _scene(seed=8, action="turn_around", res=128)
  centres = faces.face_points(person.shape, mot.local_rot, mot.root_pos)   # [T, F, 3]
  pix, z = cams.project(centres)                                           # [V, T, F, 2]
  adjacent = S.nearest_faces(9)
  checked = hits = 0
  for v in range(cams.num_views):
    for t in range(mot.root_pos.shape[0]):
      x, y = np.round(pix[v, t, :, 0]).astype(int), np.round(pix[v, t, :, 1]).astype(int)
      ok = (x >= 0) & (x < cams.width) & (y >= 0) & (y < cams.height)
      f = np.nonzero(ok)[0]
      seen = np.abs(out["depth"][v, t, y[f], x[f]] - z[v, t, f]) < 0.004
      f = f[seen]
      hit = (adjacent[f] == out["face"][v, t, y[f], x[f]][:, None]).any(1)
      hits += hit.sum()
      checked += len(f)
  # Rounding to the nearest pixel centre moves up to 0.7 px (about 1 cm here), more than the
  # smallest faces near the capsule poles.
  assert checked > 2000 and hits / checked > 0.96


def test_keypoints_project_with_the_cameras():
  person, mot, cams, out = _scene()
  posed = motion.pose_body(person.shape, mot)
  kp3 = keypoints.keypoints_3d(posed.joint_pos, posed.prim_rot, posed.prim_center, posed.rest)
  cam = np.einsum("vij,tkj->vtki", out["R"].astype(np.float64), kp3) + out["t"][:, None, None].astype(np.float64)
  pix = np.einsum("vij,vtkj->vtki", out["K"].astype(np.float64), cam)
  np.testing.assert_allclose(out["keypoints"][..., :2], pix[..., :2] / pix[..., 2:], atol=1e-3)
  # An elbow behind the torso is hidden: with arms crossed, the back view cannot see the wrists.
  back = S.camera_ring([180.0], height=48, width=48, distance=3.0)
  hidden = S.render(person.shape, person.textures, motion.place_action(
      person.shape, "cross_arms", np.array([1.0]), phase=np.pi, heading_deg=0.0), back)
  wrists = [keypoints.COCO_NAMES.index(n) for n in ("r_wrist", "l_wrist")]
  assert (hidden["keypoints"][0, 0, wrists, 2] == 0).all()
  assert hidden["keypoints"][0, 0, keypoints.COCO_NAMES.index("neck"), 2] == 1
