"""Evaluation metrics as pure, jittable functions (images follow the batch contract: [-1, 1], NHWC).

SSIM and MS-SSIM map the images to [0, 1] intensities before the standard formula (their
luminance term depends on where black is); PSNR depends only on the range's width.

Modules: pixel (PSNR, sharpness difference), structural (SSIM, MS-SSIM), perceptual (LPIPS), distribution (streaming
feature statistics, Fréchet distance, FID, KID, Inception Score), video (FVD, VFID features, Act-Recog-L1), temporal (E_temp, Interp-PSNR), segmentation (foreground mask IoU), pose (keypoint error, PCK, precision / recall / F1, D²G-Net's challenging poses).
"""
from psrjax.metrics.distribution import (FeatureStats, fid, frechet_distance, inception_features, inception_score,
                                        kid, stats_frechet_distance)
from psrjax.metrics.perceptual import lpips
from psrjax.metrics.pixel import psnr, sharpness_difference
from psrjax.metrics.segmentation import mask_iou
from psrjax.metrics.pose import challenging_poses, detection_scores, keypoint_error, pck
from psrjax.metrics.structural import ms_ssim, ssim
from psrjax.metrics.temporal import interpolation_psnr, temporal_error
from psrjax.metrics.video import action_feature_distance, fvd, fvd_features, pooled_i3d_features

__all__ = ["challenging_poses", "detection_scores", "keypoint_error", "pck", "FeatureStats", "fid", "frechet_distance", "fvd", "fvd_features", "inception_features",
           "inception_score", "kid", "lpips", "mask_iou", "ms_ssim", "psnr", "sharpness_difference", "ssim",
           "stats_frechet_distance", "temporal_error", "interpolation_psnr", "action_feature_distance", "pooled_i3d_features"]
