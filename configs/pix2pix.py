r"""pix2pix (Isola et al. 2017) as a per-person pose-to-frame baseline: the pix2pixHD system
(configs/pix2pixhd.py, beside this file) with pix2pix's generator and objective.

Paper settings by default: the U-Net generator (ngf 64, 8 levels to a 1x1 bottleneck at 256x256,
batch norm with batch statistics, dropout 0.5 on the three inner 8 ngf decoder layers while
training), one 70x70 PatchGAN (ndf 64, 3 stride-2 layers) on (label, frame), the cross-entropy
GAN loss + λ_L1 = 100 L1, D's loss halved, Adam 2e-4 (0.5, 0.999), batch 1, the learning rate
constant for the first half and decayed linearly to 0 over the second. Departure: the PatchGAN
is pix2pixHD's, with instance norm where pix2pix has batch norm; at pix2pix's batch 1 the two
normalise the same statistics (batch norm adds the affine scale and shift).

Train on this CPU in minutes (runlocal: pix2pixHD's runlocal data, sizes and recipe, with a
6-level U-Net, to a 1x1 bottleneck at 64x64 as the paper's at 256x256):

  psrjax train --config configs/pix2pix.py:runlocal --workdir /tmp/pix2pix
  psrjax synthesize --workdir /tmp/pix2pix --seed 3 --out /tmp/heldout.gif

Arguments as pix2pixHD's (`runlocal`, `tiny`, `data=`, `label=`, `res=`, `batch=`).
"""
from psrjax import config_args
from psrjax.train import defaults

from . import pix2pixhd   # pix2pix is pix2pixHD's config with pix2pix's generator and objective


def get_config(arg=None):
  """Returns the pix2pix config; `arg` is "runlocal" / "tiny" and `key=value` pairs."""
  arg = config_args.parse(arg, label="")
  c = defaults.trainer_config()
  c.system = "pix2pixhd"
  base_config(c)
  return config_args.apply_shared(c, arg, runlocal=runlocal, tiny=tiny)


def base_config(c):
  """pix2pixHD's paper settings with pix2pix's generator and objective."""
  pix2pixhd.base_config(c)
  pix2pix(c)
  return c


def runlocal(c):
  """pix2pixHD's runlocal data, sizes and recipe with pix2pix's objective and a 6-level U-Net."""
  pix2pixhd.runlocal(c)
  pix2pix(c)
  c.model.unet_downs = 6


def tiny(c):
  """pix2pixHD's tiny variant with pix2pix's objective."""
  pix2pixhd.tiny(c)
  pix2pix(c)


def pix2pix(c):
  """pix2pix's generator and objective, over pix2pixHD's settings (and its variants')."""
  c.model.update(generator="unet", num_d=1)
  c.loss.update(gan="bce", fm=0.0, vgg=0.0, l1=100.0)
  c.optim.update_order = "dg"   # pix2pix's optimize_parameters: D's step, then G's on the new D
