"""Metrics of synthesized video runs against their ground truth: the per-run numbers every
system's `evaluate` and the retrieval baseline report, computed one way.

A run is T consecutive frames [B, T, H, W, 3] in [-1, 1]. Frame metrics (SSIM, PSNR, their
masked variants, LPIPS, mask IoU) are computed per frame and averaged over the run's frames;
E_temp is a run metric of its own (`temporal.temporal_error`, on the ground truth's backward
flow). Conventions: SSIM on [0, 1] intensities (`structural.ssim`'s default for [-1, 1]
frames), PSNR with data range 2, masked variants weighting by the person mask.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from psrjax.metrics import perceptual, pixel, segmentation, structural, temporal


def run_metrics(pred, target, mask, *, flow_bwd=None, pred_mask=None, masked_psnr: bool = False,
                background: bool = False, lpips_net: str | None = None,
                lpips_variables=None) -> dict[str, jax.Array]:
  """Per run [B] for runs pred, target [B, T, H, W, 3] with the true person mask [B, T, H, W, 1]:

    "ssim", "psnr", "m_ssim" (SSIM within the mask): always;
    "m_psnr" (PSNR within the mask): with masked_psnr;
    "b_ssim", "b_psnr" (the background alone): with background, M-SSIM and M-PSNR's convention
      on the complement of the mask (both frames' person pixels set to black);
    "mask_iou": IoU of pred_mask [B, T, H, W, 1] (> 0.5) with the true mask, when given;
    "lpips": with lpips_net ("alexnet" | "vgg16") and its variables;
    "tempe": E_temp of the predicted run on flow_bwd [B, T, H, W, 2], when given.
  """
  per_frame = {"ssim": structural.ssim(pred, target), "psnr": pixel.psnr(pred, target),
               "m_ssim": structural.ssim(pred, target, mask=mask)}
  if masked_psnr:
    per_frame["m_psnr"] = pixel.psnr(pred, target, mask=mask)
  if background:
    per_frame["b_ssim"] = structural.ssim(pred, target, mask=1.0 - mask)
    per_frame["b_psnr"] = pixel.psnr(pred, target, mask=1.0 - mask)
  if pred_mask is not None:
    per_frame["mask_iou"] = segmentation.mask_iou(pred_mask, mask)
  if lpips_net is not None:
    per_frame["lpips"] = perceptual.lpips(pred, target, net=lpips_net, variables=lpips_variables)
  result = {name: jnp.mean(values, axis=-1) for name, values in per_frame.items()}
  if flow_bwd is not None:
    result["tempe"] = temporal.temporal_error(pred, flow_bwd)
  return result
