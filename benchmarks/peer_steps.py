r"""Train steps of the PyTorch code psrjax's users would otherwise run, driven unmodified on a CPU.

  python benchmarks/peer_steps.py pix2pixhd --checkout ~/src/pix2pixHD --steps 5 --json
  python benchmarks/peer_steps.py edn --checkout ~/src/EverybodyDanceNow --steps 5 --json
  python benchmarks/peer_steps.py cocosnet --checkout ~/src/CoCosNet --steps 3 --json
  python benchmarks/peer_steps.py fomm --checkout ~/src/first-order-model --steps 3 --json
  python benchmarks/peer_steps.py d2gnet --checkout ~/src/Neural-Human-Video-Rendering --steps 3
  python benchmarks/peer_steps.py vid2vid --checkout ~/src/vid2vid --steps 3
  python benchmarks/peer_steps.py lwgan --checkout ~/src/impersonator --steps 2

`pix2pixhd`: NVIDIA/pix2pixHD (commit 14b3b3c): its `Pix2PixHDModel` built by its own option
parser (`options/train_options.py`) at the paper config psrjax's `configs/pix2pixhd.py` has --
global G (ngf 64, 4 downsamplings, 9 residual blocks, instance norm), 3 PatchGANs (ndf 64, 3
layers), LSGAN + 10 feature matching + 10 VGG19 -- one step being `model(...)` (its `forward`)
then `train.py`'s backward: `loss_G` backward and the G Adam step, then `loss_D` backward and
the D Adam step. The label is a ready 3-channel image (`--label_nc 0 --no_instance`), as
psrjax's 3-channel stick figure; psrjax draws its label inside its step.

`edn`: carolineec/EverybodyDanceNow (commit b094a6a), the authors' release of Everybody Dance
Now: its `Pix2PixHDModel` of `models/pix2pixHD_model_fullts.py` at its README's global stage
(two frames, the second conditioned on the first output, the temporal discriminator on both)
and `train_fullts.py`'s backward; psrjax's counterpart is the main stage of configs/edn.py
(its face GAN is a later stage of its own).

`cocosnet`: microsoft/CoCosNet (commit de0c1bb) at its DeepFashion training command, the
networks and losses of psrjax's configs/cocovid.py main stage (`cocosnet_step`).

`fomm`: AliaksandrSiarohin/first-order-model (commit c027484) at its config/fashion-256.yaml,
psrjax's configs/fomm.py (`fomm_step`).

`d2gnet`: SunYangtian/Neural-Human-Video-Rendering (commit ad21d8b), the authors' PyTorch
D²G-Net: its `Pix2PixHD_Avatar` at its training script's settings (train_start/
pretrain_start.sh: batch 2 pairs, λ_L2 500, λ_UV 1000, λ_Prob 10, λ_Temp 500, the DensePose
losses on; G_uv ngf 64 / 4 downsamplings / 9 blocks, texture 200 x 200 x 18, two 3-layer
PatchGANs, VGG19) at 256x256, the pose label with psrjax's 18 channels, one step being
train.py's `model(epoch, ...)` past its static epochs (the whole objective) then the G and D
updates (`d2gnet_step`).

`vid2vid`: NVIDIA/vid2vid (commit 2e6d137) at its pose 256p script, psrjax's configs/vid2vid.py
(G ngf 128 / 3 downsamplings / 9 blocks, n_frames_G 3, D_I and two temporal discriminators of 2
scales), the 6-channel label of psrjax's IUV image + stick figure, one step being one iteration
of train.py on a clip of 12 frames: 4 loads of 3 frames, each G's forward, the image, flow,
warp and weight losses and the temporal discriminators, then the G, D and D_T updates. FlowNet2
is left out: the reference flow and its confidence are fixed tensors (`vid2vid_step`).

`lwgan`: svip-lab/impersonator (commit b041dd4), the authors' Liquid Warping GAN: its
`Impersonator` trainer (models/impersonator_trainer.py) built by its own option parser at
scripts/train_iPER.sh (batch 4 at 256x256; ImpersonatorGenerator with the 3-channel uv_seg
maps, 6 blocks; the 4-layer instance-norm PatchDiscriminator; λ_rec = λ_tsf = 10, λ_face 5,
λ_mask = λ_mask_smooth = 1, mask BCE, VGG19 loss, SphereFace loss, no style loss), one step
being train.py's loop body: `set_input` then `optimize_parameters` (G forward, `_optimize_G`,
the G Adam step, `_optimize_D`, the D Adam step). Its body recovery (HMR, SMPL and the neural
mesh renderer) is left out: fixed tensors stand in for what they give (`lwgan_step`).

What is patched, and only in this process, so that the CUDA-era code runs on a CPU:
`Tensor.cuda` / `Module.cuda` return their receiver, `torch.cuda.FloatTensor` is the CPU
`FloatTensor` (for `d2gnet` also `Tensor.to` a CUDA device stays on the CPU, and
`torch.cuda.is_available` is true while its model is built: it names device "cuda:0" and asserts
a GPU before building; for `vid2vid` `torch.cuda.set_device` does nothing, and its
`models/flownet.py`, whose FlowNet2 needs compiled CUDA layers, is never imported: a module
returning fixed flows stands in for it), and torchvision's `vgg19(pretrained=True)` builds the
network with the weights of `--vgg-weights` (a torchvision state dict) or random ones instead of
downloading. Nothing is fetched. The repositories' files are imported as they are.

Prints the commit of the checkout, torch's version and threads, and the step times (median);
for `lwgan` also the numbers of parameters of its G and D.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import types

RES = 256


def import_torchvision():
  """torchvision; its fake-operator registrations are skipped where its compiled operators do
  not load against a CPU-only torch (PyPI's torchvision wheels are CUDA builds)."""
  try:
    return importlib.import_module("torchvision")
  except RuntimeError as e:
    if "torchvision::nms" not in str(e):
      raise
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
      del sys.modules[name]
    sys.modules["torchvision._meta_registrations"] = types.ModuleType(
        "torchvision._meta_registrations")
    return importlib.import_module("torchvision")


def commit_of(checkout: str) -> str:
  """The checkout's git commit, or "unknown (not a git checkout)"."""
  try:
    return subprocess.run(["git", "-C", checkout, "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown (not a git checkout)"


def patch_for_cpu(vgg_weights: str | None) -> None:
  """The three CUDA-only or network-fetching calls of the peers, redirected (module docstring)."""
  import torch  # pylint: disable=g-import-not-at-top
  torch.Tensor.cuda = lambda self, *a, **k: self
  torch.nn.Module.cuda = lambda self, *a, **k: self
  torch.cuda.FloatTensor = torch.FloatTensor
  models = import_torchvision().models
  build = models.vgg19

  def vgg19(pretrained=False, **kwargs):
    del pretrained  # never downloaded
    net = build(**kwargs)
    if vgg_weights:
      net.load_state_dict(torch.load(vgg_weights, map_location="cpu"))
    return net

  models.vgg19 = vgg19


def parse_options(checkout: str, argv: list[str]):
  """The peer's own `TrainOptions().parse()` on `argv` (its checkpoints go to a temp folder)."""
  sys.path.insert(0, checkout)
  from options.train_options import TrainOptions  # pylint: disable=g-import-not-at-top
  saved = sys.argv
  sys.argv = ["train.py"] + argv
  try:
    with contextlib.redirect_stdout(sys.stderr):
      return TrainOptions().parse()
  finally:
    sys.argv = saved


def pix2pixhd_step(checkout: str, workdir: str):
  """(step function, description) for NVIDIA's pix2pixHD at the paper config (module docstring)."""
  import torch  # pylint: disable=g-import-not-at-top
  opt = parse_options(checkout, [
      "--name", "bench", "--checkpoints_dir", workdir, "--gpu_ids", "-1", "--label_nc", "0",
      "--no_instance", "--netG", "global", "--ngf", "64", "--n_downsample_global", "4",
      "--n_blocks_global", "9", "--num_D", "3", "--n_layers_D", "3", "--ndf", "64",
      "--lambda_feat", "10", "--batchSize", "1", "--loadSize", str(RES),
      "--fineSize", str(RES)])
  from models.models import create_model  # pylint: disable=g-import-not-at-top
  with contextlib.redirect_stdout(sys.stderr):
    model = create_model(opt)
  label = torch.rand(1, 3, RES, RES) * 2 - 1
  image = torch.rand(1, 3, RES, RES) * 2 - 1

  def step():
    # train.py: forward, then the G update, then the D update (lines 72-99 at 14b3b3c).
    losses, _ = model(label, torch.zeros(1), image, torch.zeros(1), infer=False)
    losses = [torch.mean(x) if not isinstance(x, int) else x for x in losses]
    loss = dict(zip(model.loss_names, losses))
    loss_d = (loss["D_fake"] + loss["D_real"]) * 0.5
    loss_g = loss["G_GAN"] + loss.get("G_GAN_Feat", 0) + loss.get("G_VGG", 0)
    model.optimizer_G.zero_grad()
    loss_g.backward()
    model.optimizer_G.step()
    model.optimizer_D.zero_grad()
    loss_d.backward()
    model.optimizer_D.step()
    return loss_g.item(), loss_d.item()

  return step, model


def edn_step(checkout: str, workdir: str):
  """(step function, model) for Everybody Dance Now's release at its README's "global stage"
  (global G on two consecutive frames, the second conditioned on the first output, the
  temporal multi-scale D on both) at 256x256 with psrjax's configs/edn.py networks (3 Ds).
  Its `--label_nc 6` (the README's) is G's input: a 3-channel label image, here the stick
  figure psrjax draws, beside the previous frame."""
  import torch  # pylint: disable=g-import-not-at-top
  opt = parse_options(checkout, [
      "--name", "bench", "--checkpoints_dir", workdir, "--gpu_ids", "-1", "--label_nc", "6",
      "--no_instance", "--netG", "global", "--ngf", "64", "--n_downsample_global", "4",
      "--n_blocks_global", "9", "--num_D", "3", "--n_layers_D", "3", "--ndf", "64",
      "--batchSize", "1", "--loadSize", str(RES), "--fineSize", str(RES)])
  from models.models import create_model_fullts  # pylint: disable=g-import-not-at-top
  with contextlib.redirect_stdout(sys.stderr):
    model = create_model_fullts(opt)
  frames = [torch.rand(1, 3, RES, RES) * 2 - 1 for _ in range(4)]
  face = torch.zeros(1, 4, dtype=torch.long)   # read only with --face_discrim
  zeros = torch.zeros(1, 3, RES, RES)

  def step():
    # train_fullts.py: forward, the G update, the D update (its "Backward Pass").
    losses, _ = model(frames[0], frames[1], frames[2], frames[3], face, zeros, infer=True)
    losses = [torch.mean(x) if not isinstance(x, int) else x for x in losses]
    loss = dict(zip(model.loss_names, losses))
    loss_d = ((loss["D_fake"] + loss["D_real"]) * 0.5
              + (loss["D_realface"] + loss["D_fakeface"]) * 0.5)
    loss_g = loss["G_GAN"] + loss["G_GAN_Feat"] + loss["G_VGG"] + loss["G_GANface"]
    model.optimizer_G.zero_grad()
    loss_g.backward()
    model.optimizer_G.step()
    model.optimizer_D.zero_grad()
    loss_d.backward()
    model.optimizer_D.step()
    return loss_g.item(), loss_d.item()

  return step, model


# CoCosNet's VGG19 (VGG19_feature_color_torchversion) names its convolutions; torchvision's
# vgg19 numbers them in `features`: the same 16 layers in order.
_VGG19_CONVS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
                "conv3_4", "conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv5_1", "conv5_2",
                "conv5_3", "conv5_4")
_VGG19_FEATURES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


def _cocosnet_vgg(vgg_weights: str | None) -> dict:
  """CoCosNet's `models/vgg19_conv.pth` (which it loads from the working directory) as a state
  dict of the torchvision VGG19 of `vgg_weights` (random weights when None), renamed."""
  import torch  # pylint: disable=g-import-not-at-top
  if vgg_weights:
    tv = torch.load(vgg_weights, map_location="cpu")
  else:
    tv = import_torchvision().models.vgg19().state_dict()
  return {f"{name}.{kind}": tv[f"features.{i}.{kind}"]
          for name, i in zip(_VGG19_CONVS, _VGG19_FEATURES) for kind in ("weight", "bias")}


def cocosnet_step(checkout: str, workdir: str, vgg_weights: str | None = None):
  """(step function, trainer) for microsoft/CoCosNet (commit de0c1bb) at its README's DeepFashion
  training command (the pose-to-image configuration psrjax's configs/cocovid.py main stage
  follows: correspondence with 64x64x256 features, the PONO SPADE generator with attention, two
  spectrally normalised PatchGANs with attention, hinge GAN, feature matching, VGG19 feature
  matching, perceptual, contextual, warp and domain losses, TTUR Adam), one step being
  `Pix2PixTrainer.run_generator_one_step` then `run_discriminator_one_step` (train.py L55-L58),
  at 256x256, batch 1, the 20-channel pose label and the exemplar random. Patched besides the
  CUDA calls: its Synchronized-BatchNorm import (a package its README clones beside the code;
  never used in this configuration) and matplotlib's when it is not installed (imported for
  plots this path never draws), and its Adam betas (0, 0.9) given to torch as floats (torch 2
  refuses an int beside a float), `torch.cuda.set_device` and `Module.to(<gpu id>)`; it runs
  in the checkout, as its train.py does (it reads files relative to it)."""
  import torch  # pylint: disable=g-import-not-at-top
  shim = types.ModuleType("models.networks.sync_batchnorm")
  shim.SynchronizedBatchNorm2d = torch.nn.BatchNorm2d
  shim.SynchronizedBatchNorm1d = torch.nn.BatchNorm1d
  shim.DataParallelWithCallback = torch.nn.DataParallel
  sys.modules["models.networks.sync_batchnorm"] = shim
  if importlib.util.find_spec("matplotlib") is None:   # imported by ContextualLoss.py, unused
    plt = types.ModuleType("matplotlib.pyplot")
    sys.modules["matplotlib"] = types.ModuleType("matplotlib")
    sys.modules["matplotlib.pyplot"] = plt
  torch.cuda.set_device = lambda *a, **k: None
  torch.cuda.is_available = lambda: True
  torch.cuda.ByteTensor = torch.ByteTensor
  module_to = torch.nn.Module.to
  torch.nn.Module.to = lambda self, *a, **k: (self if a and isinstance(a[0], int)
                                              else module_to(self, *a, **k))
  adam = torch.optim.Adam   # its betas=(0, 0.9): torch 2.x wants both floats
  torch.optim.Adam = lambda params, betas=(0.9, 0.999), **k: adam(
      params, betas=tuple(float(b) for b in betas), **k)
  vgg = _cocosnet_vgg(vgg_weights)
  load = torch.load
  torch.load = lambda f, *a, **k: vgg if f == "models/vgg19_conv.pth" else load(f, *a, **k)
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  os.chdir(checkout)   # its code reads ./util/color150.mat and the like, as train.py runs there
  opt = parse_options(checkout, [
      "--name", "bench", "--checkpoints_dir", workdir, "--gpu_ids", "0", "--dataset_mode",
      "deepfashion", "--dataroot", workdir, "--niter", "50", "--niter_decay", "50",
      "--which_perceptual", "4_2", "--weight_perceptual", "0.001", "--use_attention",
      "--real_reference_probability", "0.0", "--PONO", "--PONO_C", "--vgg_normal_correct",
      "--fm_ratio", "1.0", "--warp_bilinear", "--warp_self_w", "100", "--no_flip",
      "--warp_patch", "--video_like", "--batchSize", "1"])
  from trainers.pix2pix_trainer import Pix2PixTrainer  # pylint: disable=g-import-not-at-top
  with contextlib.redirect_stdout(sys.stderr):
    trainer = Pix2PixTrainer(opt)
  rand = lambda c, lo=-1.0: torch.rand(1, c, RES, RES) * (1.0 - lo) + lo
  data = {"label": rand(20, 0.0), "image": rand(3), "ref": rand(3), "label_ref": rand(20, 0.0),
          "self_ref": torch.ones(1, 3, RES, RES), "path": ["bench"]}

  def step():
    trainer.run_generator_one_step(dict(data), alpha=1)
    trainer.run_discriminator_one_step(dict(data))
    losses = trainer.get_latest_losses()
    return float(sum(v.mean() for v in losses.values()))

  return step, trainer


def fomm_step(checkout: str, workdir: str, vgg_weights: str | None = None):
  """(step function, the three networks) for AliaksandrSiarohin/first-order-model (commit
  c027484) at its config/fashion-256.yaml (psrjax's configs/fomm.py): KPDetector,
  OcclusionAwareGenerator and MultiScaleDiscriminator built from the yaml, one step being
  train.py's loop body (L54-L71): `GeneratorFullModel` forward (pyramid perceptual, LSGAN,
  feature matching, equivariance under a random TPS), its backward, the generator's and the
  detector's Adam steps, then `DiscriminatorFullModel` and the discriminator's; 256x256,
  batch 1, random frames. Its Vgg19 builds torchvision's vgg19 (patched: `vgg_weights`)."""
  del workdir, vgg_weights   # the VGG is patched in `patch_for_cpu`
  import torch  # pylint: disable=g-import-not-at-top
  import yaml  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, checkout)
  from modules.discriminator import MultiScaleDiscriminator  # pylint: disable=g-import-not-at-top
  from modules.generator import OcclusionAwareGenerator  # pylint: disable=g-import-not-at-top
  from modules.keypoint_detector import KPDetector  # pylint: disable=g-import-not-at-top
  from modules import model as fomm_model  # pylint: disable=g-import-not-at-top
  with open(os.path.join(checkout, "config", "fashion-256.yaml")) as f:
    config = yaml.safe_load(f)
  m, t = config["model_params"], config["train_params"]
  generator = OcclusionAwareGenerator(**m["generator_params"], **m["common_params"])
  discriminator = MultiScaleDiscriminator(**m["discriminator_params"], **m["common_params"])
  kp_detector = KPDetector(**m["kp_detector_params"], **m["common_params"])
  adam = lambda net, lr: torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.999))
  opt_g, opt_d, opt_kp = (adam(generator, t["lr_generator"]),
                          adam(discriminator, t["lr_discriminator"]),
                          adam(kp_detector, t["lr_kp_detector"]))
  g_full = fomm_model.GeneratorFullModel(kp_detector, generator, discriminator, t)
  d_full = fomm_model.DiscriminatorFullModel(kp_detector, generator, discriminator, t)
  x = {"source": torch.rand(1, 3, RES, RES), "driving": torch.rand(1, 3, RES, RES)}

  def step():
    losses, generated = g_full(x)
    sum(v.mean() for v in losses.values()).backward()
    for opt in (opt_g, opt_kp):
      opt.step()
      opt.zero_grad()
    opt_d.zero_grad()
    d_losses = d_full(x, generated)
    sum(v.mean() for v in d_losses.values()).backward()
    opt_d.step()
    opt_d.zero_grad()
    return float(sum(v.mean().detach() for v in {**losses, **d_losses}.values()))

  return step, (kp_detector, generator, discriminator)


def d2gnet_step(checkout: str, workdir: str, label_channels: int = 18, batch: int = 2):
  """(step function, model) for the authors' PyTorch D²G-Net (module docstring). Its texture and
  background files are random images written into `workdir`."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  tex_size = 200
  os.makedirs(workdir, exist_ok=True)
  rng = np.random.default_rng(0)
  texture, bg = os.path.join(workdir, "texture.png"), os.path.join(workdir, "bg.png")
  Image.fromarray(rng.integers(0, 256, (6 * tex_size, 4 * tex_size, 3), np.uint8)).save(texture)
  Image.fromarray(rng.integers(0, 256, (RES, RES, 3), np.uint8)).save(bg)
  opt = parse_options(checkout, [
      "--name", "bench", "--checkpoints_dir", workdir, "--gpu_ids", "-1", "--batchSize",
      str(batch), "--input_nc", str(label_channels), "--loadSize", str(RES), "--texture_path",
      texture, "--bg_path", bg, "--lambda_L2", "500", "--lambda_UV", "1000", "--lambda_Prob",
      "10", "--use_densepose_loss", "--lambda_Temp", "500"])
  opt.gpu_ids = [0]   # it names its device from gpu_ids[0]; `to("cuda:0")` stays on the CPU
  to = torch.Tensor.to
  torch.Tensor.to = lambda self, *a, **k: to(self, *[
      "cpu" if "cuda" in str(x) else x for x in a], **{
          key: ("cpu" if "cuda" in str(v) else v) for key, v in k.items()})
  available, torch.cuda.is_available = torch.cuda.is_available, lambda: True
  try:
    from models.pix2pixHD_Avatar import Pix2PixHD_Avatar  # pylint: disable=g-import-not-at-top
    with contextlib.redirect_stdout(sys.stderr):
      model = Pix2PixHD_Avatar()
      model.initialize(opt)
  finally:
    torch.cuda.is_available = available
  model.device = "cpu"
  epoch = 4   # past StaticEpoch = 3: every term of the objective
  with contextlib.redirect_stdout(sys.stderr):
    optimizer_g = model.init_optimizer_G(epoch)
  rand = lambda *shape: torch.rand(*shape) * 2 - 1
  inputs = dict(texture=torch.zeros(1), Pose=rand(batch, label_channels, RES, RES),
                mask=(torch.rand(batch, 1, RES, RES) > 0.5).float(), real=rand(batch, 3, RES, RES),
                real_uv=rand(batch, 48, RES, RES), real_cls=torch.randint(0, 25, (batch, RES, RES)),
                bg=torch.zeros(1), Pose_before=rand(batch, label_channels, RES, RES),
                mask_before=(torch.rand(batch, 1, RES, RES) > 0.5).float(),
                real_image_before=rand(batch, 3, RES, RES), real_uv_before=rand(batch, 48, RES, RES),
                real_cls_before=torch.randint(0, 25, (batch, RES, RES)),
                flow=torch.randn(batch, 2, RES, RES), flow_inv=torch.randn(batch, 2, RES, RES))

  def step():
    # train.py L112-L142: forward, the G update, the D update.
    out = model(epoch, **inputs)
    losses = [torch.mean(x) if not isinstance(x, int) else x for x in out[0]]
    loss = dict(zip(model.loss_names, losses))
    loss_d = (loss["D_fake"] + loss["D_real"]) * 0.5
    loss_g = (loss["G_GAN"] + loss.get("mask", 0) + loss.get("G_VGG", 0) + loss.get("L2", 0)
              + loss.get("UV_loss", 0) + loss.get("Probs_loss", 0) + loss.get("mask_human", 0)
              + loss.get("temporal", 0))
    optimizer_g.zero_grad()
    loss_g.backward()
    optimizer_g.step()
    model.optimizer_D.zero_grad()
    loss_d.backward()
    model.optimizer_D.step()
    return loss_g.item(), loss_d.item()

  return step, model


def fixed_flownet_module(height: int, width: int, frames: int) -> types.ModuleType:
  """A stand-in for vid2vid's `models/flownet.py` (FlowNet2, whose resample, correlation and
  channel-norm layers are compiled CUDA extensions): its `FlowNet` returns the first frames of
  one fixed random reference flow (`frames` of height x width, a few pixels) and confidence
  (about half the pixels 1) in the shapes FlowNet2 returns, computing nothing. `vid2vid_step`
  puts it into `sys.modules` as `models.flownet`, where the repository's `create_model`
  imports its FlowNet from."""
  import torch  # pylint: disable=g-import-not-at-top

  class FlowNet(torch.nn.Module):
    def initialize(self, opt):
      del opt
      g = torch.Generator().manual_seed(0)
      self.flow = torch.randn(frames, 2, height, width, generator=g) * 2
      self.conf = (torch.rand(frames, 1, height, width, generator=g) > 0.5).float()

    def forward(self, input_a, input_b, dummy_bs=0):
      del input_b, dummy_bs
      lead, n = input_a.shape[:-3], input_a[..., 0, 0, 0].numel()
      return (self.flow[:n].reshape(*lead, 2, height, width),
              self.conf[:n].reshape(*lead, 1, height, width))

  module = types.ModuleType("models.flownet")
  module.FlowNet = FlowNet
  return module


def vid2vid_step(checkout: str, workdir: str, res: int = RES, options: tuple = ()):
  """(step function, (modelG, modelD)) for NVIDIA/vid2vid (commit 2e6d137) at its pose 256p
  script (scripts/pose/train_256p.sh) and psrjax's configs/vid2vid.py: the composite G (ngf 128,
  3 downsamplings, 9 blocks, n_frames_G 3, `--no_first_img`), D_I and two temporal
  discriminators (n_frames_D 3) of 2 scales, ndf 64, 3 layers, batch norm (its default; G runs
  one frame at a time, psrjax's `instance_affine`), LSGAN, λ_feat = λ_VGG = λ_F = λ_T = 10,
  VGG19, Adam 2e-4 (0.5, 0.999); the label `--input_nc 6` (psrjax's IUV image + stick
  figure). One step is one iteration of train.py's loop (L47-L93) on one clip of 12 generated
  frames (`--n_frames_total 12`, 14 frames with the 2 label frames before): with the script's
  `--max_frames_per_gpu 3` and one clip, 4 loads of 3 frames, each `modelG` forward (the first
  load from zeros, raw images), the reference flows, `modelD` on the image losses, the temporal
  discriminators on the skipped frames (`get_all_skipped_frames`: 4 groups of 3 consecutive
  frames, 2 groups 3 frames apart over the clip) and the G, D and D_T Adam steps; random labels
  and frames at `res` x `res`. `options` are more of its command-line options (later ones
  win).

  Left out or patched: FlowNet2 (`fixed_flownet_module`: the reference flow and confidence are fixed
  tensors; psrjax's step reads the data's flow and computes its occlusion mask instead), and
  `torch.cuda.set_device` (its option parser calls it for `--gpu_ids 0`; with `--gpu_ids -1`
  its models index an empty GPU list). Its models are built and wrapped by its own
  `create_model` (`nn.DataParallel` runs the module itself on a CPU-only torch) and the data
  cut into loads by its `BaseDataset` (data/base_dataset.py); `models.init_params` is not
  called (its print-frequency `lcm` calls `fractions.gcd`, gone since Python 3.9): the step
  takes its numbers of GPUs and frames as it computes them.

  Left different from psrjax's step (`psrjax bench --config configs/vid2vid.py`, batch 1,
  one clip of 12 frames): psrjax makes one G, D_I and D_T update per clip from one forward
  over the 12 frames, where train.py updates after each load (4 Adam steps of each, the G's
  over its ~365M parameters, on the same frames, groups and losses); psrjax draws its labels
  inside its step and only the clip's first frame is a raw image (the first load's 3 are
  here, `--no_first_img`'s first call of a sequence)."""
  import torch  # pylint: disable=g-import-not-at-top
  n_frames, n_frames_g = 12, 3
  workdir = os.path.abspath(workdir)
  torch.cuda.set_device = lambda *a, **k: None
  opt = parse_options(checkout, [
      "--name", "bench", "--checkpoints_dir", workdir, "--gpu_ids", "0", "--dataset_mode",
      "pose", "--input_nc", "6", "--ngf", "128", "--n_downsample_G", "3", "--n_blocks", "9",
      "--n_frames_G", str(n_frames_g), "--num_D", "2", "--ndf", "64", "--n_layers_D", "3",
      "--n_frames_D", "3", "--n_scales_temporal", "2", "--lambda_feat", "10", "--lambda_T",
      "10", "--lambda_F", "10", "--lr", "0.0002", "--beta1", "0.5", "--loadSize", str(res),
      "--fineSize", str(res), "--batchSize", "1", "--max_frames_per_gpu", "3", "--niter",
      "5", "--niter_decay", "5", "--no_first_img", "--n_frames_total", str(n_frames),
      *options])
  total = n_frames + opt.n_frames_G - 1
  sys.modules["models.flownet"] = fixed_flownet_module(res, res, total)   # never its FlowNet2
  from data.base_dataset import BaseDataset  # pylint: disable=g-import-not-at-top
  from models.models import create_model, create_optimizer  # pylint: disable=g-import-not-at-top
  with contextlib.redirect_stdout(sys.stderr):
    model_g, model_d, flow_net, optimizer_g, optimizer_d, optimizers_d_t = create_optimizer(
        opt, create_model(opt))
  dataset = BaseDataset()
  dataset.opt = opt
  # as models.init_params computes them (not called: docstring)
  n_gpus = opt.n_gpus_gen if opt.batchSize == 1 else 1
  t_g, t_d, t_scales = opt.n_frames_G, opt.n_frames_D, opt.n_scales_temporal
  input_nc, output_nc = opt.input_nc, opt.output_nc
  data = {"A": torch.rand(1, total * input_nc, res, res) * 2 - 1,
          "B": torch.rand(1, total * output_nc, res, res) * 2 - 1, "inst": torch.zeros(1)}
  fold = lambda x: x.contiguous().view(-1, *x.shape[2:])   # train.py's `reshape`

  def backward(loss, optimizer):   # train.py's `loss_backward` without --fp16
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

  def step():
    # train.py L47-L93: the loads of one clip, each forward, losses and the three updates.
    n_total, n_load, _ = dataset.init_data_params(data, n_gpus, t_g)
    fake_b_prev_last, frames_all = dataset.init_data(t_scales)
    loss_g_sum = loss_d_sum = 0.0
    for i in range(0, n_total, n_load):
      input_a, input_b, inst_a = dataset.prepare_data(data, i, input_nc, output_nc)
      fake_b, fake_b_raw, flow, weight, real_a, real_bp, fake_b_last = model_g(
          input_a, input_b, inst_a, fake_b_prev_last)
      real_b_prev, real_b = real_bp[:, :-1], real_bp[:, 1:]
      flow_ref, conf_ref = flow_net(real_b, real_b_prev)
      fake_b_prev = model_g.module.compute_fake_B_prev(real_b_prev, fake_b_prev_last, fake_b)
      fake_b_prev_last = fake_b_last
      losses = model_d(0, [fold(x) for x in (real_b, fake_b, fake_b_raw, real_a, real_b_prev,
                                             fake_b_prev, flow, weight, flow_ref, conf_ref)])
      losses = [torch.mean(x) if x is not None else 0 for x in losses]
      loss_dict = dict(zip(model_d.module.loss_names, losses))
      frames_all, frames_skipped = model_d.module.get_all_skipped_frames(
          frames_all, real_b, fake_b, flow_ref, conf_ref, t_scales, t_d, n_load, i, flow_net)
      loss_dict_t = []
      for s in range(t_scales):
        if frames_skipped[0][s] is not None:
          losses = model_d(s + 1, [skipped[s] for skipped in frames_skipped])
          losses = [torch.mean(x) if not isinstance(x, int) else x for x in losses]
          loss_dict_t.append(dict(zip(model_d.module.loss_names_T, losses)))
      loss_g, loss_d, loss_d_t, t_scales_act = model_d.module.get_losses(
          loss_dict, loss_dict_t, t_scales)
      backward(loss_g, optimizer_g)
      backward(loss_d, optimizer_d)
      for s in range(t_scales_act):
        backward(loss_d_t[s], optimizers_d_t[s])
      loss_g_sum, loss_d_sum = loss_g_sum + loss_g.item(), loss_d_sum + loss_d.item()
    return loss_g_sum, loss_d_sum

  return step, (model_g, model_d)


def lwgan_inputs(batch: int = 4, res: int = RES, seed: int = 0) -> dict:
  """Fixed random tensors in place of what Liquid Warping GAN's body recovery (HMR, SMPL, the
  neural mesh renderer) gives for `batch` (source, target) pairs of frames, index 0 the
  source, 1 the target: "images" [batch, 2, 3, res, res] in [-1, 1] (the data loader's);
  "cond" [2, batch, 3, res, res] the uv_seg maps (a body blob, an ellipse per frame, holding
  (u, v, 0) with u, v in [0, 1], and (0, 0, 1) on the background, as utils/mesh.py's "uv_seg"
  map encodes faces and background); "j2d" [2, batch, 19, 2] the joints in [-1, 1] (the
  head's, 12 to 18, at the top of the blob: the trainer's `cal_head_bbox` makes boxes of about
  45 x 38 pixels of them); "T" [batch, res, res, 2] (`cal_bc_transform`'s transform: for each
  target body pixel the source position to read, in [-1, 1], here the identity moved from the
  target's blob to the source's plus noise; -2 on the target's background)."""
  import torch  # pylint: disable=g-import-not-at-top
  g = torch.Generator().manual_seed(seed)
  uniform = lambda lo, hi, *shape: torch.rand(*shape, generator=g) * (hi - lo) + lo
  # blob centres and radii, in [0, 1] image coordinates, per frame: [2, batch]
  cx, cy = uniform(0.4, 0.6, 2, batch), uniform(0.5, 0.6, 2, batch)
  rx, ry = uniform(0.15, 0.25, 2, batch), uniform(0.3, 0.4, 2, batch)
  pos = (torch.arange(res, dtype=torch.float32) + 0.5) / res
  y, x = pos[:, None], pos[None, :]
  blob = (((x - cx[..., None, None]) / rx[..., None, None]) ** 2
          + ((y - cy[..., None, None]) / ry[..., None, None]) ** 2 <= 1).float()  # [2, b, h, w]
  uv = uniform(0.0, 1.0, 2, batch, 2, res, res) * blob[:, :, None]
  cond = torch.cat([uv, 1 - blob[:, :, None]], dim=2)
  body = torch.stack([cx[..., None] + uniform(-1, 1, 2, batch, 12) * rx[..., None],
                      cy[..., None] + uniform(-0.8, 1, 2, batch, 12) * ry[..., None]], -1)
  head = torch.stack([cx[..., None] + uniform(-0.05, 0.05, 2, batch, 7),
                      (cy - ry)[..., None] + uniform(0.0, 0.12, 2, batch, 7)], -1)
  j2d = torch.cat([body, head], dim=2).clamp(0, 1) * 2 - 1
  grid = torch.stack(torch.broadcast_tensors(x * 2 - 1, y * 2 - 1), -1)      # [h, w, (x, y)]
  shift = torch.stack([cx[0] - cx[1], cy[0] - cy[1]], -1) * 2                  # [b, 2]
  t = (grid + shift[:, None, None] + uniform(-0.01, 0.01, batch, res, res, 2)).clamp(-1, 1)
  t = torch.where(blob[1, :, :, :, None] > 0, t, torch.full_like(t, -2.0))
  return {"images": uniform(-1.0, 1.0, 2, batch, 3, res, res).transpose(0, 1).contiguous(),
          "cond": cond, "j2d": j2d, "T": t}


def lwgan_body(fixed: dict):
  """A stand-in for both networks of Liquid Warping GAN's `BodyRecoveryFlow`, HMR's
  `get_details` and SMPLRenderer's `render_fim_wim`, `encode_fim` and `cal_bc_transform`,
  returning the fixed tensors of `lwgan_inputs`, so that its own `forward` runs on them
  unmodified (the masks eroded by utils.util.morph, syn_img by grid_sample of the source by T,
  the generator's three inputs, the head box by its `cal_head_bbox` from the joints). It tells
  the source from the target by the SMPL parameters `set_input` passes (the benchmark's are 0
  for the source, 1 for the target); "cam", "verts" and the face index maps are that index."""
  import torch  # pylint: disable=g-import-not-at-top

  class FixedBody:
    def get_details(self, smpl):
      which = int(smpl[0, 0])
      return {"cam": which, "verts": which, "j2d": fixed["j2d"][which]}

    def render_fim_wim(self, cam, verts):
      del cam
      return torch.zeros(fixed["T"].shape[0], 1, 3, 3), verts, verts   # f2verts, fim, wim

    def encode_fim(self, cam, verts, fim=None, transpose=True):
      del cam, verts, transpose
      return fixed["cond"][fim], fim

    def cal_bc_transform(self, src_f2pts, dst_fims, dst_wims):
      del src_f2pts, dst_fims, dst_wims
      return fixed["T"]

  return FixedBody()


def lwgan_step(checkout: str, workdir: str, vgg_weights: str | None = None):
  """(step function, trainer) for svip-lab/impersonator (commit b041dd4), the authors' Liquid
  Warping GAN, at scripts/train_iPER.sh: its `Impersonator` (models/impersonator_trainer.py)
  built by its `ModelsFactory` from its own option parser (`--model impersonator_trainer
  --gen_name impersonator --image_size 256 --batch_size 4 --lambda_rec 10 --lambda_tsf 10
  --lambda_face 5 --lambda_style 0 --lambda_mask 1 --lambda_mask_smooth 1 --mask_bce --use_vgg
  --use_face`; the defaults `--map_name uv_seg`, `--repeat_num 6`, `--norm_type instance`,
  Adam 2e-4 (0.5, 0.999) for both, `--lambda_D_prob 1`): ImpersonatorGenerator(bg_dim=4,
  src_dim=6, tsf_dim=6, repeat_num=6), PatchDiscriminator(input_nc=6, ndf=64, n_layers=4,
  instance norm, no sigmoid), VGGLoss over its Vgg19 (torchvision's vgg19: `vgg_weights`, patched
  in `patch_for_cpu`) and FaceLoss over Sphere20a. One step is train.py's loop body (L66-L68):
  `set_input` on a batch of 4 (source, target) pairs, then `optimize_parameters` (the G
  forward; `_optimize_G`'s adversarial (LSGAN, target 0), L1 reconstruction, VGG, face, mask BCE
  and mask smoothness losses, their backward and the G Adam step; `_optimize_D` (targets 1 real,
  -1 fake), its backward and the D Adam step).

  Left out or patched: the body recovery (`BodyRecoveryFlow`'s HMR and SMPLRenderer, whose
  weights, SMPL model and CUDA rasteriser a CPU run lacks): the class is the repository's with
  them replaced by a stand-in returning fixed tensors (its `_init_create_networks`, which loads
  and builds them, installs `lwgan_body(lwgan_inputs(...))` instead), so its `forward` and the
  trainer's `set_input` run; `neural_renderer` (the CUDA extension utils/nmr.py imports; never
  called) and `ipdb` (imported by the trainer and the generator, never called) are empty
  modules where they are not installed; FaceLoss's Sphere20a keeps random weights: `torch.load`
  of `--face_model` (sphere20a_20171020.pth) returns a random Sphere20a's state dict, its
  loading code otherwise run. Its checkpoints and options file go to `workdir`; `--gpu_ids 0`
  (its default: `-1` is two characters, which it takes for two GPUs, wrapping everything in
  DataParallel), its CUDA calls patched in `patch_for_cpu`. The grid samples keep their call
  (`F.grid_sample(x, T)`), whose default is align_corners=False since PyTorch 1.3 (the authors'
  PyTorch 1.2 had only the corner-aligned convention): the same work."""
  del vgg_weights   # the VGG is patched in `patch_for_cpu`
  import torch  # pylint: disable=g-import-not-at-top
  for name in ("neural_renderer", "ipdb"):
    if importlib.util.find_spec(name) is None:
      module = types.ModuleType(name)
      module.set_trace = lambda *a, **k: None
      sys.modules[name] = module
  workdir = os.path.abspath(workdir)
  batch = 4
  opt = parse_options(checkout, [
      "--gpu_ids", "0", "--checkpoints_dir", workdir, "--name", "bench", "--load_path", "None",
      "--model", "impersonator_trainer", "--gen_name", "impersonator", "--image_size", str(RES),
      "--batch_size", str(batch), "--lambda_face", "5", "--lambda_tsf", "10", "--lambda_style",
      "0", "--lambda_rec", "10", "--lambda_mask", "1", "--lambda_mask_smooth", "1",
      "--nepochs_no_decay", "5", "--nepochs_decay", "25", "--mask_bce", "--use_vgg",
      "--use_face"])
  from models import impersonator_trainer  # pylint: disable=g-import-not-at-top
  from models.models import ModelsFactory  # pylint: disable=g-import-not-at-top
  from networks.facenet import Sphere20a  # pylint: disable=g-import-not-at-top
  sphere = Sphere20a().state_dict()
  load = torch.load
  torch.load = lambda f, *a, **k: sphere if f == opt.face_model else load(f, *a, **k)
  fixed = lwgan_inputs(batch, RES)
  body = lwgan_body(fixed)

  def fixed_body_networks(self):   # instead of loading HMR and building the renderer
    self._hmr = self._render = body   # pylint: disable=protected-access

  impersonator_trainer.BodyRecoveryFlow._init_create_networks = fixed_body_networks
  with contextlib.redirect_stdout(sys.stderr):
    model = ModelsFactory.get_by_name(opt.model, opt)
  model.set_train()
  data = {"images": fixed["images"],
          "smpls": torch.arange(2.0)[None, :, None].expand(batch, 2, 85).contiguous()}

  def step():
    # train.py L66-L68 (a batch of the data loader's pairs; trainable: G every iteration)
    model.set_input(data)
    model.optimize_parameters(trainable=True, keep_data_for_visuals=False)
    return model.get_current_errors()

  return step, model


def lwgan_parameters(model) -> dict[str, int]:
  """The numbers of parameters of the trainer's generator and discriminator."""
  return {name: sum(p.numel() for p in net.parameters())
          for name, net in (("G", model._G), ("D", model._D))}  # pylint: disable=protected-access


PEERS = {"pix2pixhd": pix2pixhd_step, "edn": edn_step, "cocosnet": cocosnet_step,
         "fomm": fomm_step, "d2gnet": d2gnet_step, "vid2vid": vid2vid_step, "lwgan": lwgan_step}


class PartTimer:
  """Wall time of the parts of a PyTorch step, measured inside the step itself: the forward
  calls of the modules of each part (`modules`: {part: [modules]}) and the optimizers' `step`
  calls. The backward pass is one autograd call per phase whose work per module PyTorch does
  not expose without changing it, so it stays in the rest of the step."""

  def __init__(self, modules: dict, optimizers: dict):
    self.seconds: dict[str, float] = {}
    self._start: dict[str, float] = {}
    for name, group in modules.items():
      for module in group:
        module.register_forward_pre_hook(lambda *_, n=name: self._begin(f"{n} forward"))
        module.register_forward_hook(lambda *_, n=name: self._end(f"{n} forward"))
    for name, optimizer in optimizers.items():
      optimizer.register_step_pre_hook(lambda *_, n=name: self._begin(n))
      optimizer.register_step_post_hook(lambda *_, n=name: self._end(n))

  def _begin(self, part):
    self._start[part] = time.perf_counter()

  def _end(self, part):
    start = self._start.pop(part, None)
    if start is not None:
      self.seconds[part] = self.seconds.get(part, 0.0) + time.perf_counter() - start


def pix2pixhd_parts(model, step, steps: int) -> dict[str, float]:
  """Seconds per step of the generator's, discriminators' (all calls) and VGG's forward passes
  and of the two Adam steps, inside `steps` steps (`PartTimer`); "backward passes and the
  rest" is what remains of the step (both backward passes, losses, zeroing gradients)."""
  # pix2pixHD calls `netG.forward` and `netD.forward` directly, which bypasses module hooks:
  # the hooks go on the modules those call (G's Sequential, every layer of every D scale).
  d_layers = [m for n, m in model.netD.named_children() if n.startswith("scale")]
  timer = PartTimer({"G": [model.netG.model], "D": d_layers, "VGG": [model.criterionVGG.vgg]},
                    {"Adam G": model.optimizer_G, "Adam D": model.optimizer_D})
  start = time.perf_counter()
  for _ in range(steps):
    step()
  total = (time.perf_counter() - start) / steps
  parts = {k: v / steps for k, v in timer.seconds.items()}
  parts["backward passes and the rest"] = total - sum(parts.values())
  return parts


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("peer", choices=sorted(PEERS))
  parser.add_argument("--checkout", required=True, help="the peer repository's checkout")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=1)
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  parser.add_argument("--vgg-weights", default=None,
                      help="torchvision vgg19 state dict (default: random weights)")
  parser.add_argument("--workdir", default="/tmp/psrjax_peer_steps")
  parser.add_argument("--breakdown", action="store_true",
                      help="pix2pixhd: also time the step's parts, inside further steps")
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args(argv)
  checkout = os.path.abspath(os.path.expanduser(args.checkout))
  if not any(os.path.exists(os.path.join(checkout, *p)) for p in (
      ("models", "networks"), ("models", "networks.py"), ("modules", "generator.py"),
      ("models", "impersonator_trainer.py"))):
    parser.error(f"--checkout {checkout} has no models/networks(.py), modules/generator.py or "
                 f"models/impersonator_trainer.py; pass the {args.peer} repository's checkout")
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  patch_for_cpu(args.vgg_weights)
  build = PEERS[args.peer]
  step, model = (build(checkout, args.workdir, args.vgg_weights)
                 if args.peer in ("cocosnet", "fomm", "lwgan") else build(checkout, args.workdir))
  times = []
  for i in range(args.warmup + args.steps):
    start = time.perf_counter()
    step()
    if i >= args.warmup:
      times.append(time.perf_counter() - start)
  result = {"step_time_s": statistics.median(times), "step_times_s": times,
            "commit": commit_of(checkout), "torch": torch.__version__,
            "threads": torch.get_num_threads()}
  if args.breakdown and args.peer == "pix2pixhd":
    result["parts_s"] = pix2pixhd_parts(model, step, args.steps)
  if args.peer == "lwgan":
    result["parameters"] = lwgan_parameters(model)
  if args.json:
    print(json.dumps(result))
  else:
    print(f"{args.peer} at {result['commit']} (torch {result['torch']}, "
          f"{result['threads']} threads): step {result['step_time_s']:.3f} s "
          f"(median of {len(times)})")
    for part, seconds in result.get("parts_s", {}).items():
      print(f"  {part:32s} {seconds:8.3f} s")
    for net, count in result.get("parameters", {}).items():
      print(f"  {net} parameters {count:,}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
