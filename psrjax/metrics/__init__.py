"""Evaluation metrics as pure, jittable functions (images follow the batch contract: [-1, 1], NHWC)."""
from psrjax.metrics.psnr import psnr
from psrjax.metrics.ssim import ssim

__all__ = ["psnr", "ssim"]
