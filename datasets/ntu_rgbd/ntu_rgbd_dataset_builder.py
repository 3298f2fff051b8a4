"""TFDS builder `ntu_rgbd`: NTU RGB+D (Shahroudy et al., CVPR 2016; also NTU RGB+D 120) as
psrjax multi-view records for PSR-Net (`psrjax.data.sources.multiview`).

MANUAL_DIR holds the release's archives unpacked (`psrjax.data.preparation.ntu_rgbd` describes the
layout and every estimate): nturgb+d_rgb/*_rgb.avi, nturgb+d_skeletons/*.skeleton and, optional,
nturgb+d_depth_masked/<name>/MDepth-*.png. A take (setup, performer, replication, action) is built
when all three cameras have a video and a skeleton; the others are skipped and named in the log. Per
take the cameras are estimated from the skeletons, the synthetic world's body is fitted to the
Kinect joints of the three sensors and rendered in every camera
(`psrjax.data.preparation.multiview_process`): the records carry the frames, keypoints, masks (from
the masked depth maps) and the fitted body's face, part, uv, depth and flow maps.

Split: NTU's cross-view protocol. Cameras 2 and 3 are "train", camera 1 is "test": PSR-Net trains on
the pairs 2 -> 3 and 3 -> 2 of every take and is evaluated on 2 -> 1 and 3 -> 1, the held-out camera
as the target view it never saw. Processing is cached per camera
(`psrjax.data.builders.multiview_builder`), so an interrupted build resumes. See README.md beside
this file.
"""
from __future__ import annotations

from absl import logging

from psrjax.data.builders import multiview_builder
from psrjax.data.preparation import ntu_rgbd


class Builder(multiview_builder.MultiViewBuilder):
  """NTU RGB+D takes, three cameras each, as per-camera, per-frame records."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Request NTU RGB+D at https://rose1.ntu.edu.sg/dataset/actionRecognition/ and download the
  RGB videos (nturgb+d_rgb_s001.zip ...), the masked depth maps (nturgb+d_depth_masked_s001.zip
  ...) and the skeletons (nturgb+d_skeletons.zip). Unzip them all into MANUAL_DIR:
  MANUAL_DIR/nturgb+d_rgb/S001C001P001R001A001_rgb.avi, MANUAL_DIR/nturgb+d_depth_masked/
  S001C001P001R001A001/MDepth-00000001.png, MANUAL_DIR/nturgb+d_skeletons/S001C001P001R001A001.skeleton.
  """
  ESTIMATED = {
      "cameras": "per take from the skeletons' 3D joints and their colour pixels (DLT, "
                 "Levenberg-Marquardt; Kabsch into camera 1's Kinect frame)",
      "keypoints": "Kinect v2 joints' colour pixels mapped to COCO-18",
      "points3d": "Kinect v2 joints of the three sensors, median per joint",
      "face": "fitted body", "part": "fitted body", "uv": "fitted body", "depth": "fitted body",
      "flow_fwd": "fitted body", "flow_bwd": "fitted body",
      "mask": "masked depth maps back-projected into the colour crop",
      "background": "masked temporal median",
  }

  def _recordings(self, manual_dir: str):
    takes, incomplete = ntu_rgbd.list_takes(manual_dir)
    if incomplete:
      logging.warning("NTU RGB+D: %d take(s) lack a camera's video or skeleton and are skipped "
                      "(first: %s)", len(incomplete), incomplete[0])
    out = []
    for name, files in takes:
      try:
        out.append((ntu_rgbd.take_recording(name, files), list(ntu_rgbd.CROSS_VIEW_SPLITS)))
      except ValueError as e:      # no body in a camera, too few tracked joints
        logging.warning("NTU RGB+D: take %s skipped: %s", name, e)
    return out
