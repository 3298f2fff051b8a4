"""`metrics.mask_iou` against scikit-learn's Jaccard index."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import jaccard_score

from psrjax import metrics


def test_matches_scikit_learn_per_mask():
  rng = np.random.default_rng(0)
  pred = rng.uniform(size=(3, 4, 9, 11, 1)).astype(np.float32)   # soft masks, one channel
  target = (rng.uniform(size=(3, 4, 9, 11)) > 0.6).astype(np.float32)
  got = np.asarray(metrics.mask_iou(pred, target))
  assert got.shape == (3, 4)
  for i in range(3):
    for j in range(4):
      want = jaccard_score(target[i, j].ravel() > 0.5, pred[i, j, ..., 0].ravel() > 0.5)
      np.testing.assert_allclose(got[i, j], want, rtol=1e-6)


def test_threshold_empty_masks_and_bad_shapes():
  empty = np.zeros((2, 5, 5), np.float32)
  np.testing.assert_array_equal(metrics.mask_iou(empty, empty), [1.0, 1.0])
  full = np.ones((5, 5), np.float32)
  assert float(metrics.mask_iou(full * 0.3, full, threshold=0.2)) == 1.0
  assert float(metrics.mask_iou(full * 0.3, full)) == 0.0
  with pytest.raises(ValueError, match="one shape"):
    metrics.mask_iou(np.zeros((4, 5)), np.zeros((5, 4)))
