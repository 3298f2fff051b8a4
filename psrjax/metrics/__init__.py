"""Evaluation metrics as pure, jittable functions (images follow the batch contract: [-1, 1], NHWC).

Modules: pixel (PSNR), structural (SSIM, MS-SSIM), perceptual (LPIPS), distribution (streaming
feature statistics, Fréchet distance), video (FVD).
"""
from psrjax.metrics.distribution import FeatureStats, frechet_distance, stats_frechet_distance
from psrjax.metrics.perceptual import lpips
from psrjax.metrics.pixel import psnr
from psrjax.metrics.structural import ms_ssim, ssim
from psrjax.metrics.video import fvd, fvd_features

__all__ = ["FeatureStats", "frechet_distance", "fvd", "fvd_features", "lpips", "ms_ssim", "psnr", "ssim",
           "stats_frechet_distance"]
