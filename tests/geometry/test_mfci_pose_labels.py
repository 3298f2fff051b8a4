"""Pose labels of MFCI / Balakrishnan et al.: heatmaps, limb and part masks, part transforms."""
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import transform as sk_transform

from psrjax.geometry import pose_labels


def _pose(rng, size=32):
  kp = np.zeros((18, 3), np.float32)
  kp[:, :2] = rng.uniform(4, size - 5, (18, 2))
  kp[:, 2] = 1.0
  return kp


def test_heatmaps_peak_at_visible_joints_and_vanish_for_hidden_ones():
  kp = np.zeros((18, 3), np.float32)
  kp[:, :2] = [[3 + j, 5 + (j % 4)] for j in range(18)]
  kp[:, 2] = 1.0
  kp[4, 2] = 0.0
  maps = np.asarray(pose_labels.heatmaps(kp, 16, 24, sigma=1.5, num_joints=18))
  assert maps.shape == (16, 24, 18)
  for j in range(18):
    if j == 4:
      assert maps[..., j].max() == 0.0
      continue
    y, x = np.unravel_index(np.argmax(maps[..., j]), (16, 24))
    assert (x, y) == (int(kp[j, 0]), int(kp[j, 1]))
    np.testing.assert_allclose(maps[y, x + 1, j], np.exp(-1 / (2 * 1.5 ** 2)), rtol=1e-5)
  assert pose_labels.heatmaps(kp, 16, 24, sigma=1.5, num_joints=14).shape == (16, 24, 14)
  with pytest.raises(ValueError, match="14 or 18"):
    pose_labels.heatmaps(kp, 16, 24, sigma=1.5, num_joints=17)


def test_limb_mask_is_one_on_the_segment_and_falls_off_with_distance():
  kp = np.zeros((18, 3), np.float32)
  kp[:, 2] = 1.0
  kp[1, :2], kp[2, :2] = (4, 8), (12, 8)          # limb 0 = (neck, r_shoulder), horizontal
  masks = np.asarray(pose_labels.limb_masks(kp, 16, 16, width_px=1.0))
  assert masks.shape == (16, 16, 17)
  np.testing.assert_allclose(masks[8, 4:13, 0], 1.0, atol=1e-6)
  np.testing.assert_allclose(masks[10, 8, 0], np.exp(-2.0), rtol=1e-5)   # 2 px away
  np.testing.assert_allclose(masks[8, 14, 0], np.exp(-2.0), rtol=1e-5)   # 2 px past the end
  kp[2, 2] = 0.0
  assert np.asarray(pose_labels.limb_masks(kp, 16, 16, width_px=1.0))[..., 0].max() == 0.0
  assert pose_labels.pose_labels(kp, 16, 16, sigma=1, limb_width=1).shape == (16, 16, 35)
  assert pose_labels.part_masks(kp, 16, 16, width_px=1.0).shape == (16, 16, 10)


def test_pose_input_is_the_heatmaps_alone_or_followed_by_the_limb_masks():
  kp = _pose(np.random.default_rng(0), 16)
  maps = pose_labels.heatmaps(kp, 16, 16, sigma=1.0, num_joints=14)
  alone = pose_labels.pose_labels(kp, 16, 16, sigma=1.0, num_joints=14, inputs="heatmaps")
  np.testing.assert_array_equal(alone, maps)
  both = pose_labels.pose_labels(kp, 16, 16, sigma=1.0, limb_width=1.0, num_joints=14,
                                 inputs="heatmaps+limbs")
  np.testing.assert_array_equal(both[..., :14], maps)
  assert both.shape[-1] == pose_labels.num_pose_channels(14, "heatmaps+limbs") == 31
  assert pose_labels.num_pose_channels(14, "heatmaps") == 14
  with pytest.raises(ValueError, match="pose inputs must be one of heatmaps, heatmaps"):
    pose_labels.num_pose_channels(14, "limbs")


def test_part_transforms_map_source_keypoints_onto_target_keypoints():
  """Two-joint parts: exact for any pair of poses. Head and torso: exact when the target part is a
  similarity image of the source part (here a different one per part)."""
  rng = np.random.default_rng(0)
  src = _pose(rng)
  tgt = _pose(rng)
  for _, joints, _ in pose_labels.PARTS[:2]:
    angle, scale, shift = rng.uniform(-1, 1), rng.uniform(0.7, 1.4), rng.uniform(-3, 3, 2)
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    tgt[list(joints), :2] = src[list(joints), :2] @ rot.T + shift
  forward = np.asarray(pose_labels.part_transforms(src, tgt))     # source -> target
  backward = np.asarray(pose_labels.part_transforms(tgt, src))    # target -> source (for warping)
  assert forward.shape == (10, 2, 3)
  for p, (_, joints, _) in enumerate(pose_labels.PARTS):
    idx = list(joints)
    moved = np.asarray(pose_labels.apply_affine(forward[p], src[idx, :2]))
    np.testing.assert_allclose(moved, tgt[idx, :2], atol=1e-3)
    back = np.asarray(pose_labels.apply_affine(backward[p], tgt[idx, :2]))
    np.testing.assert_allclose(back, src[idx, :2], atol=1e-3)


def test_least_squares_similarity_matches_scikit_image():
  rng = np.random.default_rng(1)
  a, b = rng.uniform(0, 50, (6, 2)), rng.uniform(0, 50, (6, 2))
  ours = np.asarray(pose_labels.estimate_similarity(jnp.asarray(a), jnp.asarray(b), np.ones(6)))
  reference = sk_transform.estimate_transform("similarity", a, b).params[:2]
  np.testing.assert_allclose(ours, reference, atol=1e-4)
  # Hidden joints are ignored: only the visible ones are fitted.
  weights = np.array([1, 1, 0, 1, 0, 1], np.float32)
  ours = np.asarray(pose_labels.estimate_similarity(jnp.asarray(a), jnp.asarray(b), weights))
  reference = sk_transform.estimate_transform("similarity", a[weights > 0], b[weights > 0]).params[:2]
  np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_part_transform_degenerates_to_translation_or_identity():
  a = np.array([[3.0, 4.0], [9.0, 9.0]])
  b = np.array([[5.0, 1.0], [0.0, 0.0]])
  one = np.asarray(pose_labels.estimate_similarity(a, b, np.array([1.0, 0.0])))
  np.testing.assert_allclose(one, [[1, 0, 2], [0, 1, -3]], atol=1e-6)
  none = np.asarray(pose_labels.estimate_similarity(a, b, np.zeros(2)))
  np.testing.assert_allclose(none, [[1, 0, 0], [0, 1, 0]], atol=1e-6)


def test_affine_warp_samples_the_mapped_position_with_zeros_outside():
  rng = np.random.default_rng(2)
  image = rng.normal(size=(1, 8, 10, 3)).astype(np.float32)
  shift = np.array([[[1, 0, 2], [0, 1, -1]]], np.float32)        # out(x, y) = image(x + 2, y - 1)
  out = np.asarray(pose_labels.affine_warp(image, shift))
  expected = np.zeros_like(image)
  expected[0, 1:, :-2] = image[0, :-1, 2:]
  np.testing.assert_allclose(out, expected, atol=1e-6)
  half = np.array([[[1, 0, 0.5], [0, 1, 0]]], np.float32)
  out = np.asarray(pose_labels.affine_warp(image, half))
  np.testing.assert_allclose(out[0, :, :-1], 0.5 * (image[0, :, :-1] + image[0, :, 1:]), atol=1e-6)
  with pytest.raises(ValueError, match="affine_warp"):
    pose_labels.affine_warp(image[0], half)


def test_check_keypoints_rejects_visible_keypoints_outside_the_frame():
  kp = np.zeros((2, 18, 3), np.float32)
  kp[..., :2], kp[..., 2] = 5.0, 1.0
  pose_labels.check_keypoints(kp, 16, 16)
  kp[1, 3] = (-20.0, 5.0, 0.0)              # hidden: may lie anywhere
  pose_labels.check_keypoints(kp, 16, 16)
  kp[1, 3, 2] = 1.0
  with pytest.raises(ValueError, match=r"outside the 16x16 frame \(first: index \(1, 3\) at x=-20.0"):
    pose_labels.check_keypoints(kp, 16, 16, name="tgt_keypoints")
  with pytest.raises(ValueError, match=r"\[\.\.\., 18, 3\]"):
    pose_labels.check_keypoints(np.zeros((2, 14, 3)), 16, 16)
