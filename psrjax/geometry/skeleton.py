"""The COCO-18 / OpenPose skeleton every keypoint array in psrjax follows.

`keypoints [..., 18, 3]` holds (x, y) in pixels (pixel centres at integers) and a visibility or
confidence, in the order `COCO_NAMES`; `LIMBS` are the pairs of keypoint indices OpenPose draws.
The synthetic world, the keypoint importers and estimators, pose labels and pose drawing all
read this one module.
"""
COCO_NAMES = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear")
NUM_KEYPOINTS = len(COCO_NAMES)
# OpenPose COCO-18 limbs (pairs of keypoint indices) for drawing skeletons.
LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
         (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
