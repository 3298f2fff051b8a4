"""Backward warping and PSR-Net's temporal refinement (Eq. 3)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from psrjax.geometry.sampler import bilinear_sample, pixel_grid


def backward_warp(image: jax.Array, flow: jax.Array, *, padding: str = "border") -> jax.Array:
  """Bilinear backward warp: out(p) = image(p + flow(p)).

  image: [..., H, W, C]; flow: [..., H, W, 2] in pixels, (x, y) order, same leading axes.
  Sampling positions outside the image are clamped to the border (border padding) unless
  `padding="zeros"`. This is the differentiable sampler W of Jaderberg et al. 2015 used by
  PSR-Net's Eq. 3, in pixel units (`psrjax.geometry.sampler`); it interpolates in float32 and
  returns the image's dtype.
  """
  image, flow = jnp.asarray(image), jnp.asarray(flow)
  if image.ndim < 3 or flow.shape[-1] != 2 or flow.shape[:-1] != image.shape[:-1]:
    raise ValueError(f"flow must be [..., H, W, 2] matching image {image.shape}; got {flow.shape}")
  positions = pixel_grid(*image.shape[-3:-1]) + flow.astype(jnp.float32)
  warped = bilinear_sample(image.astype(jnp.float32), positions, padding=padding)
  return warped.astype(image.dtype)


def temporal_refine(x_tilde: jax.Array, flow_bwd: jax.Array, zeta: float = 0.1) -> jax.Array:
  """PSR-Net Eq. 3: x̂_t = x̃_t for t = 1, x̂_t = x̃_t + ζ W(x̃_{t-1}, O_t) for t >= 2.

  x_tilde: [..., T, H, W, C] (the Eq. 2 composite); flow_bwd: [..., T, H, W, 2], where
  flow_bwd[t](p) points to the position of p's surface point in frame t-1 (so warping frame t-1
  with it predicts frame t). No gradient flows through the warped frames (stop_gradient on the
  warp input), as in the authors' GTNet code; gradients reach x̃_t through the identity term. The
  output is not clipped (it can leave [-1, 1] by up to ζ), also as in that code.
  """
  if x_tilde.ndim < 4 or flow_bwd.shape != x_tilde.shape[:-1] + (2,):
    raise ValueError(f"flow_bwd must be [..., T, H, W, 2] matching x_tilde {x_tilde.shape}; "
                     f"got {flow_bwd.shape}")
  prev = jax.lax.stop_gradient(x_tilde[..., :-1, :, :, :])
  warped = backward_warp(prev, flow_bwd[..., 1:, :, :, :])
  later = x_tilde[..., 1:, :, :, :] + zeta * warped.astype(x_tilde.dtype)
  return jnp.concatenate([x_tilde[..., :1, :, :, :], later], axis=-4)


def inverse_temporal_refine(x_hat: jax.Array, flow_bwd: jax.Array, zeta: float = 0.1) -> jax.Array:
  """The pre-image of Eq. 3: the x̃ with `temporal_refine(x̃, flow_bwd, zeta) == x_hat`.

  Solved frame by frame, x̃_1 = x̂_1 and x̃_t = x̂_t - ζ W(x̃_{t-1}, O_t) (W is linear, so the
  solution is exact and unique). Shapes as in `temporal_refine`. No gradient flows through it.
  """
  if x_hat.ndim < 4 or flow_bwd.shape != x_hat.shape[:-1] + (2,):
    raise ValueError(f"flow_bwd must be [..., T, H, W, 2] matching x_hat {x_hat.shape}; "
                     f"got {flow_bwd.shape}")
  x_hat = jax.lax.stop_gradient(x_hat)
  frames = [x_hat[..., 0, :, :, :]]
  for t in range(1, x_hat.shape[-4]):
    warped = backward_warp(frames[-1], flow_bwd[..., t, :, :, :]).astype(x_hat.dtype)
    frames.append(x_hat[..., t, :, :, :] - zeta * warped)
  return jnp.stack(frames, axis=-4)
