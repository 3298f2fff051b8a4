"""The inputs of `psrjax prepare multiview`, read and checked before anything is written.

One recording (a take) is one video per camera (a file .mp4/.avi/.mov/.mkv/.webm or a folder of
images), a calibration file with those cameras and, per camera, 2D keypoints. `read_take`
turns them into a `multiview_process.Recording` (detections, 3D keypoints and the reprojection
report), failing with a one-line ValueError on any defect:

- cameras are matched to videos by name: the calibration camera named like the video's file
  stem, else the same name once lower-cased and stripped of non-alphanumerics, else the same
  last number (Pose2Sim's `int_cam01_img` is video `cam01`, `cam1` or `01`); every video needs
  exactly one camera;
- a camera calibrated at another size than its video is scaled (`Camera.scaled`) when the
  aspect ratios agree (within 1 %); a rotated or cropped video is an error;
- synchronisation: the videos are taken to start at the same instant (hardware-triggered, or
  trimmed to a common start, as Pose2Sim expects them) and the recording is the first N frames
  of each, N the shortest video's count; frame counts that differ by more than
  max(`MAX_FRAME_GAP`, 2 % of N) frames, or frame rates that differ by more than 1 %, are
  errors (the videos then do not cover the same time);
- keypoints per camera (`keypoint_source`): OpenPose JSON folders, COCO JSON or NumPy files as
  `keypoint_io` reads them, for every frame of that camera's video (another count is an
  error); every person of every frame is read and the recorded one is chosen by cross-view
  consistency (`person_association.associate_people`), or MediaPipe Pose estimates one person
  per view when no keypoint folder is given; once the person is triangulated, each view takes
  the detection nearest its projected skeleton (`person_association.choose_by_skeleton`: a side
  view's detection has no swap-invariant point to be chosen by);
- triangulation (`triangulation.triangulate_sequence`: undistortion, left/right swap repair,
  RANSAC, a Butterworth low-pass at min(6 Hz, 0.4 x the frame rate); frames whose views split
  evenly on left and right take the sides of their untied neighbours,
  `person_association.consistent_sides`) with its reprojection report; no triangulated keypoint
  at all is "no person";
- every camera must see the triangulated person in front of it (`check_cameras_face_scene`),
  and the person must measure 0.8 to 2.5 units from neck to ankles: the body is fitted in
  metres, so a calibration in millimetres is refused with the fix.
"""
from __future__ import annotations

import os
import re

import numpy as np

from psrjax.data.preparation import keypoint_io, multiview_process, pose_estimator, preprocess
from psrjax.geometry import calibration, person_association, triangulation
from psrjax.geometry.skeleton import COCO_NAMES

MAX_FRAME_GAP = 5
_NECK, _ANKLES = COCO_NAMES.index("neck"), [COCO_NAMES.index("r_ankle"), COCO_NAMES.index("l_ankle")]


def _normalised(name: str) -> str:
  return re.sub(r"[^a-z0-9]", "", name.lower())


def _number(name: str) -> int | None:
  digits = re.findall(r"\d+", name)
  return int(digits[-1]) if digits else None


def match_cameras(video_names, cameras) -> list[calibration.Camera]:
  """The calibration camera of each video (module docstring), or a one-line ValueError."""
  found = []
  for name in video_names:
    for key in (lambda s: s, _normalised, _number):
      hits = [c for c in cameras if key(c.name) is not None and key(c.name) == key(name)]
      if len(hits) == 1:
        found.append(hits[0])
        break
    else:
      raise ValueError(f"video {name!r} has no camera in the calibration (its cameras: "
                       f"{', '.join(c.name for c in cameras)}); name each video after its camera")
  names = [c.name for c in found]
  if len(set(names)) != len(names):
    raise ValueError(f"videos {', '.join(video_names)} match cameras {', '.join(names)}: one "
                     "camera twice; name each video after its own camera")
  return found


def fit_camera(camera: calibration.Camera, width: int, height: int, path: str):
  """`camera` at the video's size (scaled when the aspect ratio agrees), else a ValueError."""
  if camera.size == (width, height):
    return camera
  if abs(camera.width / camera.height - width / height) <= 0.01 * width / height:
    return camera.scaled(width, height)
  rotated = " (rotated? re-encode it upright)" if camera.size == (height, width) else ""
  raise ValueError(f"{path} is {width}x{height} but camera {camera.name!r} is calibrated at "
                   f"{camera.width}x{camera.height}{rotated}; give the calibration of these videos")


def synchronise(infos, paths) -> int:
  """The number of frames every video shares (module docstring), or a ValueError."""
  counts, rates = [i.num_frames for i in infos], [i.fps for i in infos]
  n = min(counts)
  if max(counts) - n > max(MAX_FRAME_GAP, 0.02 * n):
    raise ValueError(f"the videos have {', '.join(map(str, counts))} frames ({', '.join(map(os.path.basename, paths))}); "
                     "more than a few frames apart they do not cover the same time: trim them to "
                     "a common start and end")
  if max(rates) > 1.01 * min(rates):
    raise ValueError(f"the videos have different frame rates ({', '.join(f'{r:g}' for r in rates)} "
                     "fps); re-encode them at one rate")
  return n


def keypoint_source(folder: str, name: str) -> str:
  """The keypoints of camera video `name` in `folder`: <name>/, <name>.json, .npy, .npz, or
  Pose2Sim's <name>_json/, also under folder/pose/."""
  tried = []
  for base in (folder, os.path.join(folder, "pose")):
    for candidate in (name, name + "_json", name + ".json", name + ".npy", name + ".npz"):
      path = os.path.join(base, candidate)
      tried.append(os.path.relpath(path, folder))
      if os.path.exists(path):
        return path
  raise FileNotFoundError(f"no keypoints for camera video {name!r} in {folder!r} (looked for "
                          f"{', '.join(tried[:5])} and the same under pose/)")


def _people(take_videos, infos, keypoints_dir):
  """(per view the people of each frame, their sources, MediaPipe's segmentations or None)."""
  if keypoints_dir is None:
    pose_estimator.check_installed()
    found = [preprocess.estimate_poses(p, i) for p, i in zip(take_videos, infos)]
    return ([[[k] for k in kp] for kp, _ in found], ("mediapipe-pose",) * len(found),
            tuple(seg for _, seg in found))
  if not os.path.isdir(keypoints_dir):
    raise FileNotFoundError(f"--keypoints {keypoints_dir!r} is not a folder")
  people, where = [], []
  for path, info in zip(take_videos, infos):
    src = keypoint_source(keypoints_dir, preprocess.video_name(path))
    people.append(keypoint_io.load_people(src, num_frames=info.num_frames, height=info.height,
                                          width=info.width))
    where.append(f"imported:{os.path.relpath(src, keypoints_dir)}")
  return people, tuple(where), None


def _check_person(tri, cameras, name: str) -> None:
  """No person, cameras facing away and a calibration in other units than metres."""
  seen = np.all(np.isfinite(tri.points3d), axis=-1)
  if not seen.any():
    raise ValueError(f"no person found in take {name!r}: no keypoint is seen consistently by two "
                     "cameras; check the keypoints and the calibration")
  calibration.check_cameras_face_scene(cameras, tri.points3d)
  tall = np.linalg.norm(tri.points3d[:, None, _NECK] - tri.points3d[:, _ANKLES], axis=-1)
  tall = float(np.median(tall[np.isfinite(tall)])) if np.isfinite(tall).any() else 1.4
  if not 0.8 <= tall <= 2.5:
    raise ValueError(f"take {name!r}: the person measures {tall:.3g} calibration units from neck "
                     "to ankles, not 0.8..2.5: the body is fitted in metres; give the "
                     "calibration's translations in metres")


def _segmentation_masks(segmentations, cameras):
  """masks(v, crop, box) of `multiview_process.Recording`: MediaPipe's segmentations
  (probabilities as uint8, downscaled) warped into the crop, thresholded at one half."""
  def masks(view, crop, box):
    return np.stack([multiview_process.warp_image(s, cameras[view], crop, box) >= 128
                     for s in segmentations[view]]).astype(np.uint8)
  return masks


def read_take(name: str, videos, cameras, keypoints_dir: str | None, *,
              threshold_px: float = 15.0) -> multiview_process.Recording:
  """The checked recording of `videos` (paths, one per camera) with calibration `cameras`
  (every camera of the file) and keypoints from `keypoints_dir` (None: MediaPipe); module
  docstring. Its cameras are those of the videos, in the videos' order."""
  videos = tuple(os.fspath(v) for v in videos)
  if len(videos) < 2:
    raise ValueError(f"take {name!r} has {len(videos)} video; a multi-view recording needs one "
                     "video per camera, at least 2")
  infos = [preprocess.probe(p) for p in videos]
  matched = match_cameras([preprocess.video_name(p) for p in videos], cameras)
  matched = [fit_camera(c, i.width, i.height, p) for c, i, p in zip(matched, infos, videos)]
  n = synchronise(infos, videos)
  people, where, segmentations = _people(videos, infos, keypoints_dir)
  people = [p[:n] for p in people]
  if not any(len(f) for view in people for f in view):
    raise ValueError(f"no person found in take {name!r}: no keypoint is visible in any frame of "
                     "any camera; check the videos or their keypoint files")
  fps = float(infos[0].fps)
  triangulate = lambda det: triangulation.triangulate_sequence(
      det, matched, fps=fps, smooth_cutoff_hz=min(6.0, 0.4 * fps), ransac_threshold_px=threshold_px)
  detections, _ = person_association.associate_people(people, matched, threshold_px=threshold_px)
  detections, _ = person_association.choose_by_skeleton(
      people, matched, triangulate(detections).points3d, threshold_px=2 * threshold_px)
  tri = person_association.consistent_sides(triangulate(detections), matched)
  _check_person(tri, matched, name)
  sources = {"keypoints": dict(zip([c.name for c in matched], where)),
             "mask": "mediapipe-segmentation" if segmentations else "background-difference"}
  masks = None if segmentations is None else _segmentation_masks([s[:n] for s in segmentations],
                                                                  matched)
  return multiview_process.Recording(name, videos, tuple(matched), n, fps,
                                     tri.keypoints2d.astype(np.float32), tri.points3d,
                                     tri.confidence, tri.report, sources, masks)
