"""GTNet texture transfer (Steps I-III) on hand-made face maps, and against a direct NumPy
transcription of the authors' algorithm on random maps."""
import jax.numpy as jnp
import numpy as np
import pytest

from psrjax.geometry import texture_transfer, texture_transfer_with_steps
from psrjax.geometry.texture_transfer import (
    GTNET_UNKNOWN_COLOR, STEP_BACKGROUND, STEP_NEIGHBOUR_FACE, STEP_OWN_FACE, STEP_SAME_PART,
    STEP_SYMMETRIC_PART, STEP_UNKNOWN, face_median_colors)

NEIGHBOURS = np.array([[0, 1, 2], [1, 0, 2], [2, 3, 1], [3, 4, 0], [4, 5, 6], [5, 6, 7], [6, 7, 5],
                       [7, 6, 5]], np.int32)
SYMMETRIC = np.array([0, 1, 3, 2, 4], np.int32)        # part 2 <-> 3, parts 1 and 4 self-symmetric

SRC_FACE = np.array([[[0, 0, 1, -1, -1]],
                     [[0, 4, 3, 3, -1]]], np.int32)    # T = 2, H = 1, W = 5
SRC_RGB = np.array([[[[0.1, 0.9, 0.25], [0.5, -0.4, 0.25], [-0.2, 0.3, 0.1], [1.0, 1.0, 1.0],
                      [0.2, -0.5, 0.0]]],
                    [[[0.3, 0.0, 0.25], [0.7, 0.6, -0.3], [0.6, 0.1, 0.4], [0.4, 0.3, -0.2],
                      [-1.0, -1.0, -1.0]]]], np.float32)
TGT_FACE = np.array([[[0, 5, 5, -1, 2, 5, 5, 4]],
                     [[6, 6, -1, 1, -1, 7, -1, 3]]], np.int32)
TGT_PART = np.array([[[1, 1, 1, 0, 4, 1, 1, 1]],
                     [[2, 2, 0, 3, 0, 4, 0, 3]]], np.int32)


def _medians():
  """Step I by np.median over each face's source pixels of both frames."""
  rgb, face = SRC_RGB.reshape(-1, 3), SRC_FACE.reshape(-1)
  return {f: np.median(rgb[face == f], axis=0) for f in (0, 1, 3, 4)}


def _run(**kwargs):
  rgb, step = texture_transfer_with_steps(SRC_RGB, SRC_FACE, TGT_FACE, TGT_PART, NEIGHBOURS, SYMMETRIC,
                                          num_faces=8, **kwargs)
  return np.asarray(rgb), np.asarray(step)


def test_step_one_median_over_all_frames():
  med = _medians()
  np.testing.assert_allclose(med[0], [0.3, 0.0, 0.25])        # three pixels over two frames
  np.testing.assert_allclose(med[3], [0.5, 0.2, 0.1])         # even count: mean of the middle two
  colors, counts = face_median_colors(jnp.asarray(SRC_RGB), jnp.asarray(SRC_FACE), 8)
  np.testing.assert_array_equal(np.asarray(counts), [3, 1, 0, 2, 1, 0, 0, 0])
  for f, m in med.items():
    np.testing.assert_allclose(np.asarray(colors)[f], m, atol=1e-7)


def test_step_one_matches_numpy_median_on_random_data():
  rng = np.random.default_rng(1)
  face = rng.integers(-1, 12, (3, 5, 6)).astype(np.int32)
  rgb = rng.normal(size=(3, 5, 6, 3)).astype(np.float32)
  colors, counts = face_median_colors(jnp.asarray(rgb), jnp.asarray(face), 12)
  for f in range(12):
    sel = face == f
    assert int(counts[f]) == sel.sum()
    if sel.any():
      np.testing.assert_allclose(np.asarray(colors)[f], np.median(rgb[sel], axis=0), atol=1e-6)
    else:
      np.testing.assert_array_equal(np.asarray(colors)[f], 0.0)


def test_step_codes():
  _, step = _run()
  np.testing.assert_array_equal(step, [
      [[STEP_OWN_FACE, STEP_SAME_PART, STEP_SAME_PART, STEP_BACKGROUND, STEP_NEIGHBOUR_FACE,
        STEP_SAME_PART, STEP_SAME_PART, STEP_OWN_FACE]],
      [[STEP_SYMMETRIC_PART, STEP_SYMMETRIC_PART, STEP_BACKGROUND, STEP_OWN_FACE, STEP_BACKGROUND,
        STEP_UNKNOWN, STEP_BACKGROUND, STEP_OWN_FACE]]])


def test_steps_two_and_three_colours():
  med = _medians()
  rgb, _ = _run()
  a, b, c, d = med[0], med[4], med[3], med[1]
  zero, unknown = np.zeros(3), np.asarray(GTNET_UNKNOWN_COLOR)
  expected = np.array([
      # own face 0; nearest part-1 pixel is 0 (not pixel 4 of part 4); background; face 2 ->
      # its first seen neighbour is face 3 (before face 1 in the list); pixel 5 takes pixel 7's
      # colour (part 1, distance 2) although part-4 pixel 4 is closer; own face 4.
      [[a, a, a, zero, c, b, b, b]],
      # part 2 has no coloured pixel in this frame -> symmetric part 3, nearest is pixel 3 (face 1);
      # pixel 5: part 4 is coloured only in frame 0 -> unknown colour.
      [[d, d, zero, d, zero, unknown, zero, c]]])
  np.testing.assert_allclose(rgb, expected, atol=1e-6)


def test_background_and_unknown_colour_options():
  rgb, step = _run(unknown_color=(0.5, -0.5, 0.25), background_value=-1.0)
  np.testing.assert_allclose(rgb[step == STEP_UNKNOWN], [[0.5, -0.5, 0.25]])
  np.testing.assert_array_equal(rgb[step == STEP_BACKGROUND], -1.0)


def test_unknown_colour_is_the_authors_rgb():
  np.testing.assert_allclose((np.asarray(GTNET_UNKNOWN_COLOR) + 1) * 127.5, [102, 163, 255], atol=1e-4)


# ----------------------------------------------------------------------------- random maps

def _reference(src_rgb, src_face, tgt_face, tgt_part, neighbours, sym, unknown):
  """The authors' algorithm (texture_transfer.py of GTNet) transcribed with loops.

  Step III returns, per pixel, the set of colours at the minimum distance (ties are unordered).
  """
  colors = {f: np.median(src_rgb[src_face == f], axis=0) for f in np.unique(src_face[src_face >= 0])}
  out = np.zeros(tgt_face.shape + (3,), np.float64)
  options = {}
  for t in range(tgt_face.shape[0]):
    by_part, pending = {}, []
    for y, x in np.argwhere(tgt_face[t] >= 0):
      f = tgt_face[t, y, x]
      found = next((q for q in neighbours[f] if q in colors), None)
      if found is None:
        pending.append((y, x))
        continue
      out[t, y, x] = colors[found]
      by_part.setdefault(tgt_part[t, y, x], []).append(((y, x), colors[found]))
    for y, x in pending:
      label = tgt_part[t, y, x]
      if label not in by_part:
        label = sym[label]
      if label not in by_part:
        options[(t, y, x)] = [unknown]
        continue
      dist = [(py - y) ** 2 + (px - x) ** 2 for (py, px), _ in by_part[label]]
      options[(t, y, x)] = [col for dd, (_, col) in zip(dist, by_part[label]) if dd == min(dist)]
  return out, options


def test_matches_reference_on_random_maps():
  rng = np.random.default_rng(7)
  num_faces, num_parts = 60, 7
  neighbours = np.stack([np.concatenate([[f], rng.permutation(num_faces)[:3]]) for f in range(num_faces)])
  sym = np.array([0, 2, 1, 4, 3, 5, 6], np.int32)
  src_face = rng.integers(-1, 12, (2, 2, 9, 11)).astype(np.int32)
  src_rgb = rng.uniform(-1, 1, src_face.shape + (3,)).astype(np.float32)
  tgt_face = rng.integers(-1, num_faces, (2, 2, 9, 11)).astype(np.int32)
  tgt_part = rng.integers(1, num_parts, tgt_face.shape).astype(np.int32)
  tgt_part[1, 1, :, :5] = 5               # a part with no coloured pixel half of the time
  rgb, step = texture_transfer_with_steps(src_rgb, src_face, tgt_face, tgt_part, neighbours, sym)
  rgb, step = np.asarray(rgb), np.asarray(step)
  assert set(np.unique(step)) >= {STEP_OWN_FACE, STEP_NEIGHBOUR_FACE, STEP_SAME_PART}
  unknown = np.asarray(GTNET_UNKNOWN_COLOR)
  for b in range(2):
    ref, options = _reference(src_rgb[b], src_face[b], tgt_face[b], tgt_part[b], neighbours, sym, unknown)
    for idx in np.ndindex(tgt_face[b].shape):
      if idx in options:
        assert any(np.allclose(rgb[b][idx], o, atol=1e-6) for o in options[idx]), idx
      else:
        np.testing.assert_allclose(rgb[b][idx], ref[idx], atol=1e-6)


def test_plain_function_returns_the_image():
  rgb = texture_transfer(SRC_RGB[None], SRC_FACE[None], TGT_FACE[None], TGT_PART[None], NEIGHBOURS,
                         SYMMETRIC)
  assert rgb.shape == (1,) + TGT_FACE.shape + (3,) and rgb.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(rgb)[0], _run()[0])


@pytest.mark.parametrize("bad", ["rgb_shape", "part_shape", "num_faces", "sym_2d"])
def test_bad_input(bad):
  args = dict(src_rgb=SRC_RGB, src_face=SRC_FACE, tgt_face=TGT_FACE, tgt_part=TGT_PART,
              neighbours=NEIGHBOURS, symmetric_part=SYMMETRIC)
  kwargs = {}
  if bad == "rgb_shape":
    args["src_rgb"] = SRC_RGB[:, :, :3]
  elif bad == "part_shape":
    args["tgt_part"] = TGT_PART[:1]
  elif bad == "num_faces":
    kwargs["num_faces"] = 9
  else:
    args["symmetric_part"] = SYMMETRIC[None]
  with pytest.raises(ValueError):
    texture_transfer(**args, **kwargs)
