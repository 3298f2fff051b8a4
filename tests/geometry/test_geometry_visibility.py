"""Visibility map (PSR-Net Algorithm 1) on hand-made face maps with known answers."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrjax.geometry import BACKGROUND, OCCLUDED, VISIBLE, texture_transfer_with_steps, visibility_map
from psrjax.geometry.texture_transfer import STEP_NEIGHBOUR_FACE, STEP_OWN_FACE

# Six faces; each row: the face itself, then its nearest faces in order (k = 3, -1 = padding).
NEIGHBOURS = np.array([
    [0, 1, 2],
    [1, 0, 2],
    [2, 1, 3],
    [3, 4, 2],
    [4, 3, 5],
    [5, -1, -1],
], np.int32)


def _src():
  """Input view, T = 2 frames of 2x3: face 0 in frame 0, face 4 only in frame 1."""
  return np.array([
      [[0, 0, -1], [-1, -1, -1]],
      [[-1, 4, -1], [-1, -1, 4]],
  ], np.int32)


def _tgt():
  """Target view, T = 2 frames of 2x3."""
  return np.array([
      [[0, 1, -1], [2, 3, 5]],
      [[5, -1, 3], [2, 2, 0]],
  ], np.int32)


EXPECTED = np.array([
    # face 0 seen itself; 1 via neighbour 0; background; 2 (neighbours 1, 3 unseen) occluded;
    # 3 via neighbour 4 (seen only in frame 1 of the source); 5 (only padding) occluded.
    [[VISIBLE, VISIBLE, BACKGROUND], [OCCLUDED, VISIBLE, OCCLUDED]],
    [[OCCLUDED, BACKGROUND, VISIBLE], [OCCLUDED, OCCLUDED, VISIBLE]],
], np.int32)


def test_constants_match_the_paper():
  assert (BACKGROUND, VISIBLE, OCCLUDED) == (1, 2, 3)


def test_hand_made_maps():
  vis = visibility_map(jnp.asarray(_src()), jnp.asarray(_tgt()), jnp.asarray(NEIGHBOURS))
  assert vis.dtype == jnp.int32
  np.testing.assert_array_equal(np.asarray(vis), EXPECTED)


def test_source_frames_are_pooled_over_time():
  src = _src()
  src[1] = -1                                 # face 4 no longer seen -> face 3 becomes occluded
  vis = np.asarray(visibility_map(jnp.asarray(src), jnp.asarray(_tgt()), jnp.asarray(NEIGHBOURS)))
  assert vis[0, 1, 1] == OCCLUDED and vis[1, 0, 2] == OCCLUDED
  assert vis[0, 0, 0] == VISIBLE


def test_k_controls_neighbourhood():
  vis = np.asarray(visibility_map(jnp.asarray(_src()), jnp.asarray(_tgt()), jnp.asarray(NEIGHBOURS[:, :1])))
  # with only the face itself, face 1 and face 3 are occluded
  assert vis[0, 0, 1] == OCCLUDED and vis[0, 1, 1] == OCCLUDED and vis[0, 0, 0] == VISIBLE


def test_leading_batch_axes_are_independent():
  src = np.stack([_src(), np.full_like(_src(), -1)])                  # second example sees nothing
  src = np.stack([src, src[::-1]])                                     # [2, 2, T, H, W]
  tgt = np.broadcast_to(_tgt(), src.shape)
  vis = np.asarray(jax.jit(visibility_map)(jnp.asarray(src), jnp.asarray(tgt), jnp.asarray(NEIGHBOURS)))
  assert vis.shape == src.shape
  none_seen = np.where(_tgt() < 0, BACKGROUND, OCCLUDED)
  np.testing.assert_array_equal(vis[0, 0], EXPECTED)
  np.testing.assert_array_equal(vis[0, 1], none_seen)
  np.testing.assert_array_equal(vis[1, 0], none_seen)
  np.testing.assert_array_equal(vis[1, 1], EXPECTED)


def test_visible_is_exactly_coloured_by_step_two():
  """Algorithm 1's k-NN test is Steps I & II of the texture transfer (same neighbour table)."""
  rng = np.random.default_rng(0)
  num_faces = 40
  neighbours = np.stack([np.concatenate([[f], rng.permutation(num_faces)[:2]]) for f in range(num_faces)])
  src = rng.integers(-1, 8, (2, 3, 6, 7)).astype(np.int32)
  tgt = rng.integers(-1, num_faces, (2, 3, 6, 7)).astype(np.int32)
  part = rng.integers(1, 5, tgt.shape).astype(np.int32)
  rgb = rng.uniform(-1, 1, src.shape + (3,)).astype(np.float32)
  vis = np.asarray(visibility_map(jnp.asarray(src), jnp.asarray(tgt), jnp.asarray(neighbours)))
  _, step = texture_transfer_with_steps(rgb, src, tgt, part, neighbours, np.arange(5, dtype=np.int32))
  step = np.asarray(step)
  np.testing.assert_array_equal(vis == VISIBLE, (step == STEP_OWN_FACE) | (step == STEP_NEIGHBOUR_FACE))
  assert {BACKGROUND, VISIBLE, OCCLUDED} <= set(np.unique(vis))


@pytest.mark.parametrize("bad", ["neighbours_1d", "lead_mismatch"])
def test_bad_input(bad):
  src, tgt, nb = jnp.asarray(_src()), jnp.asarray(_tgt()), jnp.asarray(NEIGHBOURS)
  if bad == "neighbours_1d":
    nb = nb[:, 0]
  else:
    tgt = jnp.stack([tgt, tgt])
  with pytest.raises(ValueError):
    visibility_map(src, tgt, nb)
