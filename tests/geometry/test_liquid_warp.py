"""Liquid Warping GAN's transform T and UV-segment maps from face / uv maps: hand-made maps with
known answers, and a rendered synthetic clip checked against the renderer's exact flow."""
import jax.numpy as jnp
import numpy as np
import pytest

from psrjax.data.synthetic import camera_ring, make_identity, place_action, render, render_clip
from psrjax.data.synthetic import faces as world_faces
from psrjax.geometry import uv_texture
from psrjax.geometry.liquid_warp import (BACKGROUND_CODE, OUT_OF_RANGE, atlas_uv, correspondence,
                                         positions_to_transform, transform, uv_segment_map)
from psrjax.geometry.sampler import from_normalized
from psrjax.models.lwgan import liquid_warp

SIZE = 24
WORLD_GROUP = world_faces.FACE_PRIMITIVE.astype(np.int64) * 25 + world_faces.FACE_PART


def _patch(face_id, x0, y0, w, h, uv_of_xy, size=SIZE, face=None, uv=None):
  """Paints face `face_id` on the rectangle [x0, x0 + w) x [y0, y0 + h) with uv = uv_of_xy(x, y)."""
  face = np.full((size, size), -1, np.int32) if face is None else face
  uv = np.zeros((size, size, 2), np.float32) if uv is None else uv
  ys, xs = np.mgrid[y0:y0 + h, x0:x0 + w]
  face[ys, xs] = face_id
  uv[ys, xs] = np.stack(uv_of_xy(xs.astype(np.float64), ys.astype(np.float64)), -1)
  return face, uv


def _source_uv(x, y):
  """The source face's chart: uv linear in the source pixel (x, y)."""
  return (x - 3.0) / 12.0, (y - 2.0) / 9.0 + 0.05 * (x - 3.0) / 12.0


def _source():
  return _patch(0, 3, 2, 10, 8, _source_uv)


def _pixels(size=SIZE):
  ys, xs = np.mgrid[0:size, 0:size]
  return np.stack([xs, ys], -1).astype(np.float64)


def test_translated_face_maps_back_by_the_offset():
  src_face, src_uv = _source()
  dx, dy = 7, 11
  tgt_face, tgt_uv = _patch(0, 3 + dx, 2 + dy, 10, 8, lambda x, y: _source_uv(x - dx, y - dy))
  positions, visible = correspondence(src_face, src_uv, tgt_face, tgt_uv)
  np.testing.assert_array_equal(visible, tgt_face >= 0)
  expected = _pixels() - [dx, dy]
  np.testing.assert_allclose(positions[visible], expected[visible], atol=1e-4)
  T, visible_t = transform(src_face, src_uv, tgt_face, tgt_uv)
  np.testing.assert_array_equal(visible_t, visible)
  assert T.dtype == np.float32 and T.shape == (SIZE, SIZE, 2)
  # Corner-aligned: -1 and 1 are the corner pixels' centres.
  read = np.asarray(from_normalized(T, SIZE, SIZE, align_corners=True))
  np.testing.assert_allclose(read[visible], expected[visible], atol=1e-4)
  np.testing.assert_array_equal(T[~visible], OUT_OF_RANGE)


@pytest.mark.parametrize("scale", [2.0, 0.5])
def test_scaled_face_maps_through_the_scale(scale):
  """The target shows the source patch magnified / shrunk about its centre: target pixel p is
  source position c + (p - (12, 12)) / scale."""
  src_face, src_uv = _source()
  centre = np.array([7.5, 5.5])     # the source patch's centre
  lo = np.ceil(12 + scale * (np.array([3.0, 2.0]) - centre)).astype(int)
  hi = np.floor(12 + scale * (np.array([12.0, 9.0]) - centre)).astype(int)
  tgt_face, tgt_uv = _patch(0, lo[0], lo[1], hi[0] - lo[0] + 1, hi[1] - lo[1] + 1,
                            lambda x, y: _source_uv(centre[0] + (x - 12) / scale,
                                                    centre[1] + (y - 12) / scale))
  positions, visible = correspondence(src_face, src_uv, tgt_face, tgt_uv)
  expected = centre + (_pixels() - 12.0) / scale
  np.testing.assert_array_equal(visible, tgt_face >= 0)
  assert visible.sum() >= 12
  np.testing.assert_allclose(positions[visible], expected[visible], atol=1e-3)


def test_face_not_shown_by_the_source_and_background_read_out_of_range():
  src_face, src_uv = _source()
  tgt_face, tgt_uv = _patch(0, 3, 2, 10, 8, _source_uv)
  tgt_face, tgt_uv = _patch(1, 15, 15, 4, 4, lambda x, y: (x * 0 + 0.5, y * 0 + 0.5),
                            face=tgt_face, uv=tgt_uv)
  T, visible = transform(src_face, src_uv, tgt_face, tgt_uv)
  np.testing.assert_array_equal(visible, tgt_face == 0)
  assert (T[tgt_face == 1] == -2.0).all() and (T[tgt_face < 0] == -2.0).all()
  # The identity where the face did not move.
  ident = np.asarray(positions_to_transform(_pixels(), np.ones((SIZE, SIZE), bool), SIZE, SIZE))
  np.testing.assert_allclose(T[visible], ident[visible], atol=1e-5)
  # Nothing shown at all: everything out of range.
  T_none, vis_none = transform(np.full_like(src_face, -1), src_uv, tgt_face, tgt_uv)
  assert not vis_none.any() and (T_none == OUT_OF_RANGE).all()
  # grid_sample reads zero there.
  image = jnp.ones((1, SIZE, SIZE, 3), jnp.float32)
  out = np.asarray(liquid_warp(image, jnp.asarray(T[None])))[0]
  np.testing.assert_array_equal(out[~visible], 0.0)
  np.testing.assert_allclose(out[visible], 1.0, atol=1e-5)


def test_edge_on_chart_does_not_extrapolate():
  """A chart seen edge-on: one source column whose u hardly varies. A target point far away in
  u stays on that column (within margin x its extent) instead of being extrapolated."""
  src_face, src_uv = _patch(0, 5, 2, 1, 10, lambda x, y: (0.5 + 1e-3 * (y - 2) / 9, (y - 2) / 9))
  tgt_face, tgt_uv = _patch(0, 10, 6, 1, 1, lambda x, y: (x * 0 + 0.95, y * 0 + 3 / 9))
  positions, visible = correspondence(src_face, src_uv, tgt_face, tgt_uv)
  assert visible[6, 10]
  np.testing.assert_allclose(positions[6, 10], [5.0, 5.0], atol=0.6)


def test_face_group_lets_small_faces_use_their_chart():
  """Faces 0..3 split one chart into columns; the source shows one pixel of face 3 only. Alone,
  face 3's target pixels all map to that pixel; with the chart they get the exact translation."""
  src_face, src_uv = None, None
  for f in range(4):
    width = 1 if f == 3 else 3
    src_face, src_uv = _patch(f, 3 + 3 * f, 2, width, 8 if f < 3 else 1, _source_uv,
                              face=src_face, uv=src_uv)
  dx, dy = 2, 5
  tgt_face, tgt_uv = None, None
  for f in range(4):
    tgt_face, tgt_uv = _patch(f, 3 + 3 * f + dx, 2 + dy, 1 if f == 3 else 3, 8,
                              lambda x, y: _source_uv(x - dx, y - dy), face=tgt_face, uv=tgt_uv)
  expected = _pixels() - [dx, dy]
  alone, visible = correspondence(src_face, src_uv, tgt_face, tgt_uv)
  chart, visible_c = correspondence(src_face, src_uv, tgt_face, tgt_uv,
                                    face_group=np.zeros(4, np.int32))
  np.testing.assert_array_equal(visible, visible_c)
  face3 = tgt_face == 3
  np.testing.assert_allclose(alone[face3], np.broadcast_to([12.0, 2.0], alone[face3].shape))
  np.testing.assert_allclose(chart[visible], expected[visible], atol=1e-3)


def test_leading_axes_and_argument_checks():
  src_face, src_uv = _source()
  tgt_face, tgt_uv = _patch(0, 5, 4, 10, 8, lambda x, y: _source_uv(x - 2, y - 2))
  T1, v1 = transform(src_face, src_uv, tgt_face, tgt_uv)
  stack = lambda a: np.stack([np.stack([a, a])] * 3)
  T, v = transform(stack(src_face), stack(src_uv), stack(tgt_face), stack(tgt_uv))
  assert T.shape == (3, 2, SIZE, SIZE, 2) and v.shape == (3, 2, SIZE, SIZE)
  np.testing.assert_array_equal(T[2, 1], T1)
  np.testing.assert_array_equal(v[0, 0], v1)
  with pytest.raises(ValueError, match="leading axes"):
    transform(src_face[None], src_uv[None], tgt_face, tgt_uv)
  with pytest.raises(ValueError, match="face_group"):
    transform(src_face, src_uv, tgt_face, tgt_uv, face_group=np.zeros(0, np.int32))
  with pytest.raises(ValueError, match="integer"):
    transform(src_face.astype(np.float32), src_uv, tgt_face, tgt_uv)


def test_uv_segment_map_convention():
  face = np.array([[-1, 0], [1, 2]], np.int32)
  part = np.array([[0, 1], [24, 7]], np.int32)
  uv = np.array([[[0.3, 0.3], [0.5, 0.25]], [[1.0, 0.0], [0.0, 1.0]]], np.float32)
  code = uv_segment_map(face, uv, part)
  assert code.dtype == np.float32 and code.shape == (2, 2, 3)
  np.testing.assert_array_equal(code[0, 0], BACKGROUND_CODE)
  np.testing.assert_allclose(code[0, 1], [0.5 / 4, 0.75 / 6, 0.0])     # part 1: column 0, row 0
  np.testing.assert_allclose(code[1, 0], [1.0, 1.0, 0.0])              # part 24: column 3, row 5
  np.testing.assert_allclose(code[1, 1], [1.0 / 4, 0.0, 0.0])          # part 7: column 1, row 0
  assert code.min() >= 0.0 and code.max() <= 1.0
  # The authors' per-face constant from a face table.
  face_uv = np.array([[0.5, 0.5], [0.25, 0.75], [0.1, 0.2]], np.float32)
  per_face = uv_segment_map(face, None, part, face_uv=face_uv)
  np.testing.assert_allclose(per_face[0, 1], atlas_uv(np.array(1), face_uv[0]).tolist() + [0.0])
  np.testing.assert_array_equal(per_face[0, 0], BACKGROUND_CODE)
  with pytest.raises(ValueError, match="1..24"):
    uv_segment_map(face, uv, np.zeros_like(part))


def test_atlas_uv_is_the_position_in_the_texture_atlas_image():
  """(U, V) of a part's texel reads that texel in `uv_texture.atlas`'s image (tiles flipped)."""
  size = 8
  texture = np.zeros((24, size, size, 2), np.float32)
  texture[..., 0] = np.arange(1, 25)[:, None, None]                     # the part
  texture[..., 1] = np.arange(size)[None, :, None]                      # the row (along v)
  image = uv_texture.atlas(texture)
  part = np.repeat(np.arange(1, 25), size)
  row = np.tile(np.arange(size), 24)
  uv = np.stack([np.full(part.shape, 0.5), (row + 0.5) / size], -1)    # texel centres
  xy = atlas_uv(part, uv) * [image.shape[1], image.shape[0]]
  read = image[np.floor(xy[:, 1]).astype(int), np.floor(xy[:, 0]).astype(int)]
  np.testing.assert_array_equal(read[:, 0], part)
  np.testing.assert_array_equal(read[:, 1], row)


def _two_frame_render(size):
  """A two-frame motion (source, target), 0.6 s apart: the target's flow_bwd is the exact T."""
  person = make_identity(5)
  motion = place_action(person.shape, "jumping_jacks", np.array([0.1, 0.7]), heading_deg=20.0)
  cams = camera_ring([15.0], height=size, width=size, distance=2.6, fov_y_deg=48.0)
  return render(person.shape, person.textures, motion, cams)


def test_rendered_motion_matches_the_exact_correspondence_and_warps_the_source():
  size = 48
  r = _two_frame_render(size)
  src_face, tgt_face = r["face"][0, 0], r["face"][0, 1]
  T, visible = transform(src_face, r["uv"][0, 0], tgt_face, r["uv"][0, 1],
                         face_group=WORLD_GROUP)
  exact = _pixels(size) + r["flow_bwd"][0, 1]
  shown = np.isin(tgt_face, src_face[src_face >= 0])
  np.testing.assert_array_equal(visible, (tgt_face >= 0) & shown)
  assert visible.sum() > 80 and ((tgt_face >= 0) & ~visible).any()   # some faces hidden
  assert (T[~visible] == OUT_OF_RANGE).all()
  err = np.linalg.norm(np.asarray(from_normalized(T, size, size, align_corners=True)) - exact,
                       axis=-1)[visible]
  assert err.mean() < 0.1 and np.percentile(err, 95) < 0.5 and err.max() < 2.0, (
      err.mean(), np.percentile(err, 95), err.max())
  src = jnp.asarray(r["rgb"][0, 0][None] / 127.5 - 1.0, jnp.float32)
  tgt = r["rgb"][0, 1] / 127.5 - 1.0

  def warp_error(grid):
    out = np.asarray(liquid_warp(src, jnp.asarray(grid[None], jnp.float32)))[0]
    return np.abs(out - tgt)[visible].mean()
  fitted = warp_error(T)
  exact_error = warp_error(positions_to_transform(exact, visible, size, size))
  identity = warp_error(positions_to_transform(_pixels(size), visible, size, size))
  assert fitted < 0.5 * identity and fitted < exact_error + 0.01, (fitted, exact_error, identity)


def test_rendered_clip_frames_far_apart():
  size = 48
  clip = render_clip(8, num_views=1, num_frames=8, resolution=size, action="jumping_jacks")
  face, uv, rgb = clip["face"][0], clip["uv"][0], clip["rgb"][0] / 127.5 - 1.0
  src, tgt = [0, 7, 0], [7, 0, 4]
  T, visible = transform(face[src], uv[src], face[tgt], uv[tgt], face_group=WORLD_GROUP)
  assert T.shape == (3, size, size, 2) and (T[~visible] == OUT_OF_RANGE).all()
  assert (visible.sum(axis=(1, 2)) > 80).all()
  code = uv_segment_map(face[tgt], uv[tgt], clip["part"][0][tgt])
  np.testing.assert_array_equal(code[..., 2] == 1.0, face[tgt] < 0)
  warped = np.asarray(liquid_warp(jnp.asarray(rgb[src], jnp.float32), jnp.asarray(T)))
  identity = np.asarray(liquid_warp(jnp.asarray(rgb[src], jnp.float32), jnp.asarray(
      positions_to_transform(np.broadcast_to(_pixels(size), (3, size, size, 2)), visible, size,
                             size))))
  for i in range(3):
    fit_err = np.abs(warped[i] - rgb[tgt[i]])[visible[i]].mean()
    id_err = np.abs(identity[i] - rgb[tgt[i]])[visible[i]].mean()
    assert fit_err < 0.5 * id_err, (i, fit_err, id_err)
