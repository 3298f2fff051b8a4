r"""Everybody Dance Now (Chan et al. 2019) on one person's video: pix2pixHD with temporal smoothing
(G conditioned on the previous generated frame, a temporal discriminator on consecutive pairs)
and a residual face GAN trained after the main generator.

Paper settings by default: pix2pixHD's (configs/pix2pixhd.py: G1 ngf 64 / 4 downsamplings / 9
blocks, three multi-scale PatchGANs, LSGAN, λ_FM = λ_P = 10, Adam 2e-4 (0.5, 0.999), batch 1),
trained on consecutive frame pairs; the face GAN (G_f a small G1 with a residual head, one PatchGAN)
on face crops for the last 10 % of the steps; OpenPose stick figures as the pose input, at
256x256 on the synthetic world's per-person video.

Train on this CPU in minutes (runlocal: 64x64, pix2pixHD's runlocal networks and recipe, see
configs/pix2pixhd.py; docs/systems/pix2pixhd.md has its numbers):

  psrjax train --config configs/edn.py:runlocal --workdir /tmp/edn
  psrjax synthesize --workdir /tmp/edn --seed 3 --out /tmp/heldout.gif
  psrjax synthesize --workdir /tmp/edn --driving cross --out /tmp/cross.gif

On one's own video (a folder `psrjax prepare` wrote; docs/data.md, "Your own video"), driven by another
prepared video:

  psrjax train --config configs/edn.py:runlocal,data=DATASET --workdir /tmp/edn_me
  psrjax synthesize --workdir /tmp/edn_me --driving OTHER_DATASET --out /tmp/driven.mp4

Other arguments (comma separated, combinable): `data=DATASET`, `label=stick|discs`, `res=R`,
`batch=B`, and
`tiny` (a seconds-long variant for tests).
"""
from psrjax import config_args
from psrjax.train import defaults

from . import pix2pixhd   # EDN is pix2pixHD's config with the blocks below added


def get_config(arg=None):
  """Returns the EDN config; `arg` is "runlocal" / "tiny" and `key=value` pairs."""
  arg = config_args.parse(arg, label="")
  c = defaults.trainer_config()
  c.system = "edn"
  base_config(c)
  return config_args.apply_shared(c, arg, runlocal=runlocal, tiny=tiny)


def base_config(c):
  """pix2pixHD's paper settings on consecutive pairs, and EDN's face GAN."""
  pix2pixhd.base_config(c, frames_per_example=2)   # consecutive pairs (x_{t-1}, x_t)
  c.loss.warp = 0.0                    # λ of the masked temporal warp loss (not in EDN): 0 = off

  # The face GAN (Sec. 3.4). Face boxes from the head keypoints (psrjax/geometry/face_crop.py).
  c.face = dict(
      crop=64,                   # face crop side in pixels (G_f's and D_f's input size)
      margin=1.2,                # box half-side = margin x the head keypoints' reach
      min_size=16.0,             # smallest box side in pixels
      size=0.0,                  # > 0: EDN's fixed box of this side centred on the nose
      ngf=32,                    # G_f: a small pix2pixHD G1 with a residual (tanh) head
      n_downsample=2,
      n_blocks=3,
      num_d=1,                   # D_f: one PatchGAN on (label crop, face crop)
  )
  c.schedule = dict(face_fraction=0.1)   # share of train.steps for the face stage (after main)
  return c


def runlocal(c):
  """pix2pixHD's runlocal (its departures hold here too: L1 for VGG, lr 2e-3, EMA); pairs make a
  step ~2x dearer, so 4,000 steps (~14 minutes on a 2-core CPU), G_f averaged as well."""
  pix2pixhd.runlocal(c)
  c.face.update(crop=16, min_size=8.0, ngf=8, n_downsample=1, n_blocks=1)
  c.schedule.face_fraction = 0.1
  c.train.steps = 4000
  c.train.ema.groups = ("g", "g_face")


def tiny(c):
  """pix2pixHD's tiny variant, a tiny G_f, the face stage half the steps."""
  pix2pixhd.tiny(c)
  c.face.update(crop=8, min_size=4.0, ngf=4, n_downsample=1, n_blocks=1)
  c.schedule.face_fraction = 0.5
