"""Shared neural-network layers (3D convolutions, norms, residual blocks, padding).

The CPU-only convolution implementations live in the subpackage `psrjax.nn.cpu`, which
`psrjax.nn.conv` imports only when a convolution resolves to one of them (not imported here).
"""
from psrjax.nn.blocks import ConvNormReLU3D, ResBlock3D
from psrjax.nn.conv import CONV_IMPLS, Conv3D, ConvTranspose3D, conv3d, conv_transpose3d
from psrjax.nn.norms import BatchStatNorm, InstanceNorm
from psrjax.nn.padding import PAD_MODES, pad_pairs, pad_video
from psrjax.nn.policy import REMAT_MODES, compute_dtype, remat_block, remat_network, remat_stage

__all__ = [
    "BatchStatNorm", "CONV_IMPLS", "Conv3D", "ConvNormReLU3D", "ConvTranspose3D", "InstanceNorm",
    "PAD_MODES", "REMAT_MODES", "ResBlock3D", "compute_dtype", "conv3d", "conv_transpose3d",
    "pad_pairs", "pad_video", "remat_block", "remat_network", "remat_stage",
]
