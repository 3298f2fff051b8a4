"""Geometry: visibility maps, texture transfer, jump flooding and flow warping."""
from psrjax.geometry.jump_flood import nearest_seed
from psrjax.geometry.texture_transfer import (
    GTNET_UNKNOWN_COLOR, STEP_BACKGROUND, STEP_NEIGHBOUR_FACE, STEP_OWN_FACE, STEP_SAME_PART,
    STEP_SYMMETRIC_PART, STEP_UNKNOWN, face_median_colors, texture_transfer, texture_transfer_with_steps)
from psrjax.geometry.visibility import BACKGROUND, OCCLUDED, VISIBLE, visibility_map
from psrjax.geometry.warp import backward_warp, temporal_refine

__all__ = [
    "BACKGROUND", "GTNET_UNKNOWN_COLOR", "OCCLUDED", "STEP_BACKGROUND", "STEP_NEIGHBOUR_FACE",
    "STEP_OWN_FACE", "STEP_SAME_PART", "STEP_SYMMETRIC_PART", "STEP_UNKNOWN", "VISIBLE",
    "backward_warp", "face_median_colors", "nearest_seed", "temporal_refine", "texture_transfer",
    "texture_transfer_with_steps", "visibility_map",
]
