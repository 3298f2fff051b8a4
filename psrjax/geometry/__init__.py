"""Geometry: the bilinear sampler, warping, visibility maps, texture transfer, jump flooding, and
pose conditioning (label maps, stick figures, pose normalisation, face crops)."""
from psrjax.geometry.face_crop import box_mask, crop_box, face_boxes, has_head, paste_box
from psrjax.geometry.jump_flood import nearest_seed
from psrjax.geometry.pose_normalize import (PoseNormalization, apply_pose_normalization,
                                            fit_pose_normalization)
from psrjax.geometry.pose_render import (OPENPOSE_COLORS, joint_discs, limb_lines, num_label_channels,
                                         pose_label_map, stick_figure)
from psrjax.geometry.sampler import (PADDING_MODES, bilinear_sample, from_normalized, pixel_grid,
                                     positions_inside, to_normalized)
from psrjax.geometry.texture_transfer import (
    GTNET_UNKNOWN_COLOR, STEP_BACKGROUND, STEP_NEIGHBOUR_FACE, STEP_OWN_FACE, STEP_SAME_PART,
    STEP_SYMMETRIC_PART, STEP_UNKNOWN, face_median_colors, texture_transfer, texture_transfer_with_steps)
from psrjax.geometry.visibility import BACKGROUND, OCCLUDED, VISIBLE, visibility_map
from psrjax.geometry.warp import backward_warp, temporal_refine

__all__ = [
    "BACKGROUND", "GTNET_UNKNOWN_COLOR", "OCCLUDED", "OPENPOSE_COLORS", "PADDING_MODES",
    "PoseNormalization", "STEP_BACKGROUND", "STEP_NEIGHBOUR_FACE", "STEP_OWN_FACE",
    "STEP_SAME_PART", "STEP_SYMMETRIC_PART", "STEP_UNKNOWN", "VISIBLE",
    "apply_pose_normalization", "backward_warp", "bilinear_sample", "box_mask", "crop_box",
    "face_boxes", "face_median_colors", "fit_pose_normalization", "from_normalized", "has_head",
    "joint_discs", "limb_lines", "nearest_seed", "num_label_channels", "paste_box", "pixel_grid",
    "pose_label_map", "positions_inside", "stick_figure", "temporal_refine", "texture_transfer",
    "texture_transfer_with_steps", "to_normalized", "visibility_map",
]
