"""benchmarks/fomm_diagnosis.py's exact motion from face maps: a rigid shift and hidden faces,
and the synthetic world's frames against its chained backward flows."""
import os
import sys

import numpy as np
from scipy.ndimage import map_coordinates

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from benchmarks.fomm_diagnosis import face_correspondence  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.data import synthetic  # noqa: E402  pylint: disable=g-import-not-at-top


def test_a_shifted_body_maps_back_by_the_shift():
  src = -np.ones((12, 16), np.int64)
  src[2:6, 3:7], src[6:9, 3:7] = 0, 1        # two faces
  tgt = np.roll(src, (2, 5), axis=(0, 1))     # moved 5 px right, 2 px down
  tgt[tgt == 1] = 2                           # face 2: not in the source
  positions, valid = face_correspondence(src, tgt)
  assert valid.sum() == 16 and np.all(tgt[valid] == 0) and not valid[tgt == 2].any()
  ys, xs = np.nonzero(valid)
  np.testing.assert_allclose(positions[ys, xs], np.stack([xs - 5, ys - 2], axis=-1))


def test_world_frames_apart_agree_with_the_chained_exact_flow():
  """Frame 7 -> frame 0 of a clip: the face-map positions against the world's backward flows
  chained frame by frame (bilinear), far closer than no motion."""
  clip = synthetic.render_clip(3, num_views=1, num_frames=8, resolution=64)
  face, flow = clip["face"][0], clip["flow_bwd"][0]
  positions, valid = face_correspondence(face[0], face[7])
  ys, xs = np.nonzero(valid)
  pixels = np.stack([xs, ys], axis=-1).astype(np.float64)
  chained = pixels.copy()
  for t in range(7, 0, -1):
    chained += np.stack([map_coordinates(flow[t][..., c], [chained[:, 1], chained[:, 0]], order=1)
                         for c in (0, 1)], axis=-1)
  error = np.linalg.norm(positions[ys, xs] - chained, axis=-1).mean()
  still = np.linalg.norm(pixels - chained, axis=-1).mean()
  assert len(ys) > 100 and still > 1.5 and error < 0.3 * still
