"""Nearest-pose retrieval: normalisation, exact nearest neighbours, evaluation metrics."""
import numpy as np
import pytest

from psrjax.baselines import retrieval
from psrjax.data.samplers import per_person
from psrjax.data.sources import scripted_person


def tiny(**overrides):
  data = per_person.default_data_config()
  data.update(dict(resolution=16, train_script=(("wave", 10), ("squat", 8)),
                   test_script=(("throw", 6), ("wave", 5)), eval_run_frames=4))
  data.update(overrides)
  return data


def random_poses(rng, n):
  kp = rng.uniform(0, 32, (n, 18, 3)).astype(np.float32)
  kp[..., 2] = rng.random((n, 18)) < 0.7
  return kp


def test_torso_normalize_centres_on_the_hips_and_divides_by_the_torso():
  rng = np.random.default_rng(0)
  kp = random_poses(rng, 4)
  kp[:, [1, 8, 11], 2] = 1
  kp[1, 8, 2] = 0  # one hip hidden: centre on the other
  out = retrieval.torso_normalize(kp)
  for i, hips in enumerate(([8, 11], [11], [8, 11], [8, 11])):
    centre = kp[i, hips, :2].mean(0)
    torso = np.linalg.norm(kp[i, 1, :2] - centre)
    np.testing.assert_allclose(out[i, :, :2], (kp[i, :, :2] - centre) / torso, rtol=1e-5,
                               atol=1e-5)
  np.testing.assert_array_equal(out[..., 2], kp[..., 2])
  moved = kp.copy()
  moved[..., :2] = 3 * kp[..., :2] + 7
  np.testing.assert_allclose(retrieval.torso_normalize(moved), out, atol=1e-5)
  np.testing.assert_allclose(retrieval.torso_normalize(np.zeros((18, 3))), 0)


def test_nearest_matches_brute_force():
  rng = np.random.default_rng(1)
  train, queries = random_poses(rng, 50), random_poses(rng, 7)
  queries[3, :, 2] = 0  # nothing visible: no neighbour
  index = retrieval.PoseIndex(train, chunk=3)
  found, dist = index.nearest(queries)
  a, b = retrieval.torso_normalize(queries), retrieval.torso_normalize(train)
  for m in range(len(queries)):
    brute = np.full(len(train), np.inf)
    for n in range(len(train)):
      both = (a[m, :, 2] > 0) & (b[n, :, 2] > 0)
      if both.any():
        brute[n] = np.mean(np.sum((a[m, both, :2] - b[n, both, :2]) ** 2, -1))
    if np.isinf(brute).all():
      assert found[m] == -1 and np.isinf(dist[m])
      continue
    assert found[m] == np.argmin(brute)
    np.testing.assert_allclose(dist[m], brute.min(), rtol=1e-5, atol=1e-9)


def test_a_training_pose_retrieves_its_own_frame():
  data = tiny()
  train = per_person.train_keypoints(data)
  index = retrieval.build_index(data)
  k = 13
  others = np.delete(index.distances(train[k:k + 1])[0], k)
  assert others.min() > 1e-6  # the constructed query matches frame k alone
  query = np.stack([train[k], train[4]])[None]  # [1, 2, 18, 3]
  out = retrieval.retrieve(data, index, query)
  np.testing.assert_array_equal(out["train_index"], [[k, 4]])
  np.testing.assert_allclose(out["distance"], 0, atol=1e-9)
  truth = scripted_person.frames(data, k, 1)
  np.testing.assert_array_equal(out["rgb"][0, 0], truth["rgb"][0])
  np.testing.assert_array_equal(out["mask"][0, 0], truth["mask"][0])


def test_evaluate_returns_the_documented_metrics():
  data = tiny(resolution=32)
  result = retrieval.evaluate(data, batch_size=2)
  names = set(retrieval.METRICS) | {"distance"}
  groups = {n.split("/")[1] for n in result if "/" in n}
  assert groups and groups <= set(per_person.RUN_GROUPS)
  assert set(result) == names | {f"{n}/{g}" for n in names for g in groups}
  assert all(np.isfinite(v) for v in result.values())
  assert 0 < result["ssim"] <= 1 and 0 <= result["mask_iou"] <= 1 and result["lpips"] >= 0
  with pytest.raises(ValueError, match="at least 31 pixels"):
    retrieval.evaluate(tiny(), num_runs=1)
  assert "lpips" not in retrieval.evaluate(tiny(), num_runs=1, lpips_net=None)


def test_run_metrics_follow_the_conventions():
  skimage_metrics = pytest.importorskip("skimage.metrics")
  rng = np.random.default_rng(2)
  target = rng.uniform(-1, 1, (2, 3, 16, 16, 3)).astype(np.float32)
  pred = np.clip(target + rng.normal(0, 0.2, target.shape), -1, 1).astype(np.float32)
  mask, pred_mask = (rng.random((2, 2, 3, 16, 16, 1)) < 0.5).astype(np.float32)
  flow = rng.normal(0, 1, (2, 3, 16, 16, 2)).astype(np.float32)
  got = retrieval.run_metrics(pred, pred_mask, target, mask, flow, None, lpips_net=None)
  ssim = lambda a, b: skimage_metrics.structural_similarity(
      (a + 1) / 2, (b + 1) / 2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
      data_range=1.0, channel_axis=-1)
  for i in range(2):
    np.testing.assert_allclose(got["ssim"][i], np.mean([ssim(p, t) for p, t in
                                                        zip(pred[i], target[i])]), atol=1e-4)
    masked = [skimage_metrics.structural_similarity(
        (p + 1) / 2 * m, (t + 1) / 2 * m, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=1.0, channel_axis=-1)
              for p, t, m in zip(pred[i].astype(np.float64), target[i].astype(np.float64), mask[i])]
    np.testing.assert_allclose(got["m_ssim"][i], np.mean(masked), atol=1e-4)
    psnr = [skimage_metrics.peak_signal_noise_ratio(t, p, data_range=2.0)
            for p, t in zip(pred[i], target[i])]
    np.testing.assert_allclose(got["psnr"][i], np.mean(psnr), rtol=1e-4)
    a, b = pred_mask[i, ..., 0] > 0.5, mask[i, ..., 0] > 0.5
    iou = (a & b).sum((1, 2)) / (a | b).sum((1, 2))
    np.testing.assert_allclose(got["mask_iou"][i], iou.mean(), rtol=1e-6)
  assert got["tempe"].shape == (2,) and np.all(np.isfinite(got["tempe"]))
