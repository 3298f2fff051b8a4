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


def test_regions_split_the_scores_into_the_person_and_the_room():
  """A model that returns the driving frames exactly scores 1 on both regions; the copied
  source frame, which differs only on the person, is exact on the room outside both frames'
  people and worse on the person."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from benchmarks import fomm_diagnosis  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  room = rng.uniform(-1, 1, (2, 1, 24, 24, 3)).astype(np.float32)
  mask = np.zeros((2, 3, 24, 24, 1), np.float32)
  mask[:, :, 8:16, 8:16] = 1.0                        # the person, where the frames differ
  target = np.where(mask > 0, rng.uniform(-1, 1, mask.shape[:-1] + (3,)), room)
  batch = {"src_rgb": room, "tgt_rgb": target.astype(np.float32), "tgt_mask": mask}

  class Exact:
    prepare = staticmethod(lambda b: b)
    generate = staticmethod(lambda p, b: {"frames": jnp.asarray(b["tgt_rgb"])})
  diag = object.__new__(fomm_diagnosis.Diagnosis)
  diag.system, diag.eval_batches = Exact(), [batch]
  out = diag.regions({})
  assert out["model_ssim"] == out["model_m_ssim"] == out["model_b_ssim"] == 1.0
  assert out["copy_b_ssim"] == 1.0 and out["copy_m_ssim"] < 0.9 and out["copy_ssim"] < 1.0
  assert out["person_share"] == round(64 / 576, 4)
