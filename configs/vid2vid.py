r"""vid2vid (Wang et al. 2018) on one person's video: the sequential composite generator, an image
and temporal multi-scale discriminators, flow and warp losses (psrjax/systems/vid2vid.py).

Paper settings by default, the authors' pose 256p script (scripts/pose/train_256p.sh) and
options: G ngf 128, 3 downsamplings, 9 residual blocks, n_frames_G 3; D_I and two temporal
discriminators (frames 1 and 3 apart) of 2 scales, ndf 64, 3 layers; LSGAN, λ_feat = λ_VGG =
λ_F = λ_T = 10, weight loss 1; Adam 2e-4 betas (0.5, 0.999), constant for half the steps then
linearly to 0 (their --niter 5 --niter_decay 5); clips of 12 frames (--n_frames_total 12) for the
first half of the steps and of 24 for the second (their length doubled every --niter_step 5
epochs), batch 8 (one clip per GPU on their 8 GPUs). Their batch norm on one clip a GPU is instance norm with
affine parameters in G (`model.norm_g`, it normalises each frame alone), batch statistics over
the clip's frames in the discriminators (`model.norm_d`). The person is the synthetic world's
per-person video at 256x256; each frame's label is the DensePose-style IUV image of the world's
part and UV maps (`model.iuv`) followed by the colour stick figure for OpenPose's rendering.

Train on this CPU:

  psrjax train --config configs/vid2vid.py:runlocal --workdir runs/vid2vid_local
  psrjax synthesize --workdir runs/vid2vid_local --seed 3 --out /tmp/vid2vid_heldout.gif
  psrjax synthesize --workdir runs/vid2vid_local --driving cross --out /tmp/vid2vid_cross.gif

Other arguments (comma separated, combinable): `data=DATASET`, `label=stick|discs`, `res=R`,
`batch=B`, and `tiny` (a seconds-long variant for tests). A prepared video (`data=DATASET`) holds
no part or UV maps: its label is the stick figure alone (`model.iuv=False`), unless
`--config.model.iuv=True --config.data.surface_from=WORKDIR` has D²G-Net's UV generator
(`psrjax train --config configs/d2gnet.py:runlocal,pretrain,label2d`) predict them.
"""
from psrjax import config_args
from psrjax.train import defaults

from . import pix2pixhd   # the per-person data, pose label and loss blocks


def get_config(arg=None):
  """Returns the vid2vid config; `arg` is "runlocal" / "tiny" and `key=value` pairs."""
  arg = config_args.parse(arg, label="")
  c = defaults.trainer_config()
  c.system = "vid2vid"
  base_config(c)
  config_args.apply_shared(c, arg, runlocal=runlocal, tiny=tiny)
  if c.data.get("dataset"):   # a prepared video: keypoints, masks and flow, no part / UV maps
    c.model.iuv = False
  return c


def base_config(c):
  """The authors' pose 256p settings (module docstring)."""
  pix2pixhd.base_config(c, frames_per_example=24)   # 256x256, stick figures, LSGAN, λ_VGG 10
  c.schedule = dict(
      clip_doublings=1,          # stages of clips frames_per_example / 2^k frames, k = 1, 0:
                                 # 12 then 24 (the authors' progressive --n_frames_total)
  )
  c.model = dict(
      ngf=128,                   # G's first width (the pose g1 scripts: 64)
      n_downsample=3,            # G's stride-2 layers (resolution divisible by 2^n_downsample)
      n_blocks=9,                # residual blocks: 5 in each encoder, 4 in each decoder
      n_frames_g=3,              # label maps G reads; previous generated frames: n_frames_g - 1
      iuv=True,                  # each label map starts with the DensePose-style IUV image (the
                                 # source's part / UV maps; off for a prepared video: data=DATASET)
      norm_g="instance_affine",  # psrjax.nn.NORMS; the authors' batch norm on one clip a GPU
      num_d=2,                   # scales of D_I and of each D_T
      ndf=64,
      d_layers=3,                # stride-2 layers per PatchGAN
      norm_d="batch",            # batch statistics (the authors' batch norm, never in eval mode)
      n_frames_d=3,              # frames a temporal discriminator sees
      n_scales_temporal=2,       # D_T^s sees frames n_frames_d^s apart (the clip must be longer
                                 # than 2 x 3^(n_scales_temporal - 1) frames)
      conv_impl="auto",          # convolution implementation (psrjax.nn.CONV_IMPLS)
      remat="auto",              # "none" | "blocks" | "full" | "auto" activation rematerialisation
  )
  c.loss.update(
      flow=10.0,                 # λ_F, masked L1 of G's flow against the reference flow
      warp=10.0,                 # λ_T, masked L1 of the real previous frame warped by G's flow
      g_warp=10.0,               # λ_T, masked L1 of the frame against the previous generated
                                 # frame warped by the reference flow
      weight=1.0,                # masked L1 pulling the occlusion weight w toward 0
  )
  c.train.update(batch_size=8, steps=40_000)
  return c


def runlocal(c):
  """64x64 clips of 6 frames, narrow networks (G ngf 16, 2 downsamplings, 3 blocks; 2-layer
  PatchGANs of 16 channels, one temporal scale), batch 2, L1 for VGG (pix2pixHD's runlocal
  departure: the VGG is most of a step's FLOPs at 64x64), lr 1e-3, G's weights averaged (EMA,
  decay 0.995).

  Measured with `psrjax bench --steps 20` on a 2-core CPU shared with other jobs (load ~3.6):
  0.75 s a step (median of 20) after 40 s of compilation, so its 2,000 steps take ~25 minutes
  (docs/systems/vid2vid.md).
  """
  c.model.remat = "none"   # not "auto": sized for a CPU, no remat on any device
  c.data.update(resolution=64, frames_per_example=6, cache_dir="~/.cache/psrjax/person")
  c.schedule.clip_doublings = 0   # 6-frame clips throughout, as its results were measured
  c.pose.update(radius=1.5, width=1.0)
  c.model.update(ngf=16, n_downsample=2, n_blocks=3, num_d=2, ndf=16, d_layers=2,
                 n_scales_temporal=1)
  c.loss.update(vgg=0.0, l1=100.0)
  c.optim.lr = 1e-3
  c.train.update(batch_size=2, steps=2000, log_every=100, checkpoint_every=500,
                 sample_every=0, eval_every=0, data_workers=1)
  c.train.ema.update(decay=0.995, groups=("g",))
  c.eval.update(batch_size=8)


def tiny(c):
  """A seconds-long variant for tests: pix2pixHD's tiny data at 32x32, clips of 7 frames (both
  temporal scales), tiny networks (discriminators of one scale), no VGG."""
  c.model.remat = "none"   # not "auto": sized for a CPU, no remat on any device
  c.schedule.clip_doublings = 0
  c.data.update(resolution=32, frames_per_example=7, train_script=(("wave", 24), ("squat", 24)),
                test_script=(("throw", 8), ("wave", 8)), driving_script=(("dance", 16),),
                eval_run_frames=4, cache_dir="")
  c.pose.update(radius=1.0, width=1.0)
  c.model.update(ngf=4, n_downsample=2, n_blocks=2, num_d=1, ndf=4, d_layers=1)
  c.loss.vgg = 0.0
  c.train.update(batch_size=4, steps=4, log_every=1, checkpoint_every=2, sample_every=0,
                 eval_every=0, data_workers=0)
  # The per-array optimizer update: the flows start at ~0, where a bilinear sample's gradient
  # jumps, so any rounding difference between two programs' updates moves the next phase's
  # losses (the raveled update's forward-once and per-phase steps: temporal feature matching
  # 2.5e-5 apart at the first step, beyond the checks' 1e-5).
  c.train.fused_update = False
  c.eval.update(batch_size=4, num_examples=2)
