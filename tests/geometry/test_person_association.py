"""Cross-view person association: the recorded person is the detection that triangulates
consistently, whatever its size, order, left/right labelling or absence in a view."""
import numpy as np
import pytest

from psrjax.data.synthetic.recording import Recording, decoy_of, noisy_detections
from psrjax.geometry.person_association import associate_people, invariant_points
from psrjax.geometry.triangulation import FLIP_INDEX


@pytest.fixture(scope="module")
def recording():
  rec = Recording(5, num_views=4, num_frames=12, width=90, height=160, distortion=-0.08)
  det, swapped = noisy_detections(rec.keypoints(), 1.0, 0.3, 2, np.random.default_rng(0))
  return rec, det, swapped


def test_invariant_points_do_not_move_when_left_and_right_swap(recording):
  _, det, _ = recording
  np.testing.assert_allclose(invariant_points(det[..., list(FLIP_INDEX), :]), invariant_points(det))


def test_the_consistent_person_is_chosen_over_larger_decoys_and_gaps(recording):
  rec, det, _ = recording
  rng = np.random.default_rng(1)
  people, truth = [], np.zeros(det.shape[:2], int)
  for v in range(4):
    frames = []
    for t in range(det.shape[1]):
      decoy = decoy_of(det[v, t], v, rng)                  # 1.3 x the person in even views
      first = (v + t) % 2                                   # the person's place in the list
      order = [decoy, det[v, t]] if first else [det[v, t], decoy]
      missed = v == 3 and t < 4                             # camera 4 misses the person
      truth[v, t] = -1 if missed else first
      frames.append([decoy] if missed else order)
    people.append(frames)
  kp, chosen = associate_people(people, rec.cameras, threshold_px=10.0)
  np.testing.assert_array_equal(chosen, truth)
  assert np.all(kp[3, :4] == 0)
  np.testing.assert_array_equal(kp[0], det[0])


def test_bad_shapes_are_one_line_errors(recording):
  rec, det, _ = recording
  with pytest.raises(ValueError, match="each of the 4 cameras"):
    associate_people([[[d] for d in det[0]]], rec.cameras)
  with pytest.raises(ValueError, match="same number of frames"):
    associate_people([[[d] for d in det[v][:(5 if v else 6)]] for v in range(4)], rec.cameras)


def test_frames_whose_views_split_evenly_take_their_neighbours_sides(recording):
  from psrjax.geometry.person_association import consistent_sides
  from psrjax.geometry.triangulation import triangulate_sequence
  rec, _, _ = recording
  det, swapped = noisy_detections(rec.keypoints(), 1.0, 0.5, 2, np.random.default_rng(3))
  tied = swapped[:2].all(0)                               # two of the four views exchanged
  assert 0 < tied.sum() < len(tied)
  tri = triangulate_sequence(det, rec.cameras, smooth_cutoff_hz=None)
  truth = rec.points3d()
  r_hip, l_hip = 8, 11
  wrong = lambda t: (np.linalg.norm(t.points3d[:, r_hip] - truth[:, r_hip], axis=-1)
                     > np.linalg.norm(t.points3d[:, r_hip] - truth[:, l_hip], axis=-1))
  assert wrong(tri)[tied].any() and not wrong(tri)[~tied].any()   # the first view decided ties
  fixed = consistent_sides(tri, rec.cameras)
  assert not wrong(fixed).any()
  assert fixed.report["overall"]["median"] == pytest.approx(tri.report["overall"]["median"])
  np.testing.assert_array_equal(fixed.swapped, swapped)


def test_a_side_view_with_no_invariant_point_is_chosen_by_the_projected_skeleton(recording):
  from psrjax.geometry.person_association import choose_by_skeleton
  from psrjax.geometry.triangulation import triangulate_sequence
  rec, det, _ = recording
  rng = np.random.default_rng(2)
  side = det.copy()
  side[3, :, [0, 1, 5, 6, 7, 11, 12, 13, 15, 17]] = 0.0     # camera 4 sees the right side only
  assert not (invariant_points(side[3])[..., 2] > 0).any()
  people = [[[decoy_of(d, v, rng), d] for d in side[v]] for v in range(4)]   # decoy first
  first, chosen = associate_people(people, rec.cameras, threshold_px=10.0)
  assert np.all(chosen[:3] == 1) and not np.all(chosen[3] == 1)   # a tie the decoy can win
  tri = triangulate_sequence(first, rec.cameras, smooth_cutoff_hz=None)
  kp, chosen = choose_by_skeleton(people, rec.cameras, tri.points3d)
  assert np.all(chosen == 1)
  np.testing.assert_array_equal(kp, side)
