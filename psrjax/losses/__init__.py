"""Losses: adversarial family, pixel reconstruction, feature-space (perceptual) and temporal warp losses."""
from psrjax.losses.adversarial import d_loss, feature_matching, g_loss
from psrjax.losses.perceptual import (TEMPORAL_ENDPOINTS, contextual_loss, gram_matrix, perceptual_loss,
                                      style_loss, temporal_perceptual_loss)
from psrjax.losses.reconstruction import huber, l1, mse
from psrjax.losses.temporal import occlusion_mask, temporal_warp_loss

__all__ = ["d_loss", "g_loss", "feature_matching", "huber", "l1", "mse", "perceptual_loss", "style_loss",
           "gram_matrix", "contextual_loss", "temporal_perceptual_loss", "TEMPORAL_ENDPOINTS",
           "occlusion_mask", "temporal_warp_loss"]
