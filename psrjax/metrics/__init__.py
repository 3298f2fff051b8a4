"""Evaluation metrics as pure, jittable functions (images follow the batch contract: [-1, 1], NHWC).

Modules: pixel (PSNR), structural (SSIM, MS-SSIM), perceptual (LPIPS).
"""
from psrjax.metrics.perceptual import lpips
from psrjax.metrics.pixel import psnr
from psrjax.metrics.structural import ms_ssim, ssim

__all__ = ["lpips", "ms_ssim", "psnr", "ssim"]
