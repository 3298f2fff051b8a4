"""Shared neural-network layers: 2D and 3D convolutions, norms (instance, batch-statistics,
positional, SPADE, spectral), conv/residual/up-sampling blocks, self-attention and padding.

The CPU-only convolution implementations live in the subpackage `psrjax.nn.cpu`, which
`psrjax.nn.conv` imports only when a convolution resolves to one of them (not imported here).
"""
from psrjax.nn.attention import SelfAttention, softmax_attention
from psrjax.nn.blocks import ConvNormReLU3D, ResBlock3D
from psrjax.nn.blocks2d import (ACTIVATIONS, NORMS, UP_MODES, ConvNormAct2D, ResBlock2D, UpBlock2D,
                                activation, make_norm)
from psrjax.nn.conv import CONV_IMPLS, Conv3D, ConvTranspose3D, conv3d, conv_transpose3d
from psrjax.nn.conv2d import Conv2D, ConvTranspose2D, conv2d, conv_transpose2d, same_pads
from psrjax.nn.norms import BatchStatNorm, InstanceNorm, InstanceNorm2D, positional_norm
from psrjax.nn.padding import PAD_MODES, pad_image, pad_pairs, pad_spatial, pad_video
from psrjax.nn.policy import REMAT_MODES, compute_dtype, remat_block, remat_network, remat_stage
from psrjax.nn.resize import downsample_avg, resize_nearest
from psrjax.nn.spade import SPADE
from psrjax.nn.spectral import SN_PARAM, with_power_iteration

__all__ = [
    "ACTIVATIONS", "BatchStatNorm", "CONV_IMPLS", "Conv2D", "Conv3D", "ConvNormAct2D",
    "ConvNormReLU3D", "ConvTranspose2D", "ConvTranspose3D", "InstanceNorm", "InstanceNorm2D",
    "NORMS", "PAD_MODES", "REMAT_MODES", "ResBlock2D", "ResBlock3D", "SN_PARAM", "SPADE",
    "SelfAttention", "UP_MODES", "UpBlock2D", "activation",
    "compute_dtype", "conv2d", "conv3d", "conv_transpose2d", "conv_transpose3d",
    "downsample_avg", "make_norm", "pad_image", "pad_pairs", "pad_spatial", "pad_video",
    "positional_norm", "remat_block", "remat_network", "remat_stage", "resize_nearest",
    "same_pads", "softmax_attention", "with_power_iteration",
]
