r"""PSR-Net layer 1 train step: psrjax (JAX/XLA) against plain PyTorch, timed side by side.

  python benchmarks/bench_psrnet_vs_torch.py [--steps 5] [--warmup 1] [--json] [--breakdown]

JAX side: exactly the step of

  psrjax bench --config configs/psrnet.py:layers=1,frames=8,res=112,batch=1 \
      --config.loss.perceptual=0 --steps 5

(`psrjax.train.benchmark.CompiledStep`): paper width (64 base channels, 6 residual blocks, three
encoders, three decoders), the MoCoGAN video discriminator (ndf 64), Adam(2e-5, 0.5, 0.999);
the visibility map and texture transfer x̂⁰ computed on the device (`System.prepare`), the
generator forward once (its VJP saved), then phase "d" and phase "g".

PyTorch side (`TorchStep`, torch CPU): the same networks written with torch.nn (Conv3d,
ConvTranspose3d, InstanceNorm3d, BatchNorm3d with batch statistics, reflection padding), the
same Eq. 2 composite and Eq. 3 temporal refinement (grid_sample, border padding), the same
losses (BCE GAN loss on logits, Huber, 0.01 weight) and optimizers; the generator runs once
per step and phase "d" reads its output detached, as idiomatic PyTorch GAN code does; the
discriminator's
weights are frozen (requires_grad False) in the generator phase, as psrjax differentiates
only the trained group. It receives x̂⁰ and the visibility map as inputs (computed once, by
psrjax): the PyTorch step does strictly less work than the psrjax step. `--breakdown` times
those inputs and the networks' parts separately on both sides.

Both start from psrjax's initial parameters (copied into the torch modules) and the same
batch; the first step's losses are compared before anything is timed. Timed steps run in two
rounds of a JAX block then a PyTorch block, each started from a trimmed heap (see `timed`), so
both see the same machine load and each is timed in its own steady state; medians are reported. FLOP/s: XLA's cost
analysis of the psrjax step (plus its oneDNN convolutions, counted from the jaxpr) and torch's
FlopCounterMode of the PyTorch step, each divided by its own median step time.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

CONFIG = os.path.join(REPO, "configs", "psrnet.py") + ":layers=1,frames=8,res=112,batch=1"
OVERRIDES = [("loss.perceptual", "0")]
BACKGROUND, VISIBLE, OCCLUDED = 1, 2, 3  # psrjax.geometry.visibility labels


# ----------------------------------------------------------------------------- torch networks
def _conv(cin, cout, k, stride=1, pad=0, pad_mode="zero", bias=True) -> nn.Module:
  """Conv3d with psrjax's padding modes (reflection padding as a separate layer)."""
  if pad_mode == "reflect":
    t, h, w = pad
    return nn.Sequential(nn.ReflectionPad3d((w, w, h, h, t, t)),
                         nn.Conv3d(cin, cout, k, stride, 0, bias=bias))
  return nn.Conv3d(cin, cout, k, stride, pad, bias=bias)


def _conv_norm_relu(cin, cout, k, stride, pad, pad_mode) -> nn.Module:
  return nn.Sequential(_conv(cin, cout, k, stride, pad, pad_mode), nn.InstanceNorm3d(cout),
                       nn.ReLU())


class Encoder(nn.Module):
  def __init__(self, cin, ngf):
    super().__init__()
    self.stem = _conv_norm_relu(cin, ngf, (7, 7, 7), 1, (3, 3, 3), "reflect")
    self.down0 = _conv_norm_relu(ngf, 2 * ngf, (3, 3, 3), (1, 2, 2), (1, 1, 1), "zero")
    self.down1 = _conv_norm_relu(2 * ngf, 4 * ngf, (3, 3, 3), (1, 2, 2), (1, 1, 1), "zero")

  def forward(self, x):
    return self.down1(self.down0(self.stem(x)))


class ResBlock(nn.Module):
  def __init__(self, ch):
    super().__init__()
    self.conv1 = _conv_norm_relu(ch, ch, (3, 3, 3), 1, (1, 1, 1), "reflect")
    self.conv2 = _conv(ch, ch, (3, 3, 3), 1, (1, 1, 1), "reflect")
    self.norm2 = nn.InstanceNorm3d(ch)

  def forward(self, x):
    return x + self.norm2(self.conv2(self.conv1(x)))


class Decoder(nn.Module):
  def __init__(self, ngf):
    super().__init__()
    self.up0 = nn.ConvTranspose3d(4 * ngf, 2 * ngf, 3, (1, 2, 2), 1, (0, 1, 1))
    self.up1 = nn.ConvTranspose3d(2 * ngf, ngf, 3, (1, 2, 2), 1, (0, 1, 1))
    self.norm0, self.norm1 = nn.InstanceNorm3d(2 * ngf), nn.InstanceNorm3d(ngf)
    self.out = _conv(ngf, 3, (7, 7, 7), 1, (3, 3, 3), "reflect")

  def forward(self, x):
    x = F.relu(self.norm0(self.up0(x)))
    x = F.relu(self.norm1(self.up1(x)))
    return torch.tanh(self.out(x))


class TorchG1(nn.Module):
  """PSR-Net G¹ (psrjax.models.psrnet.ReconstructionLayer, "paper" variant) + Eq. 3."""

  def __init__(self, ngf=64, blocks=6, zeta=0.1):
    super().__init__()
    self.zeta = zeta
    self.encoders = nn.ModuleDict({"x": Encoder(3, ngf), "x_hat0": Encoder(3, ngf),
                                   "depth": Encoder(1, ngf)})
    self.fusion = _conv_norm_relu(12 * ngf, 4 * ngf, (3, 3, 3), 1, (1, 1, 1), "zero")
    self.blocks = nn.Sequential(*[ResBlock(4 * ngf) for _ in range(blocks)])
    self.decoders = nn.ModuleDict({n: Decoder(ngf) for n in ("background", "visible",
                                                             "occluded")})

  def forward(self, x_i, x_hat0, d_j, vis, flow_bwd):
    enc = [self.encoders["x"](x_i), self.encoders["x_hat0"](x_hat0),
           self.encoders["depth"](d_j)]
    h = self.blocks(self.fusion(torch.cat(enc, 1)))
    out = {n: dec(h) for n, dec in self.decoders.items()}
    m = vis[:, None]
    zero = torch.zeros((), dtype=h.dtype)
    x_tilde = (torch.where(m == BACKGROUND, out["background"], zero)
               + torch.where(m == VISIBLE, out["visible"], zero)
               + torch.where(m == OCCLUDED, out["occluded"], zero))
    return temporal_refine(x_tilde, flow_bwd, self.zeta)


def temporal_refine(x_tilde, flow_bwd, zeta):
  """Eq. 3 on [B, C, T, H, W]; flow_bwd [B, T, H, W, 2] pixels; no gradient through the warp."""
  b, c, t, h, w = x_tilde.shape
  prev = x_tilde[:, :, :-1].detach().permute(0, 2, 1, 3, 4).reshape(b * (t - 1), c, h, w)
  flow = flow_bwd[:, 1:].reshape(b * (t - 1), h, w, 2)
  ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype), torch.arange(w, dtype=flow.dtype),
                          indexing="ij")
  gx = (xs + flow[..., 0]).clamp(0, w - 1) * (2.0 / (w - 1)) - 1.0
  gy = (ys + flow[..., 1]).clamp(0, h - 1) * (2.0 / (h - 1)) - 1.0
  warped = F.grid_sample(prev, torch.stack([gx, gy], -1), mode="bilinear",
                         padding_mode="border", align_corners=True)
  warped = warped.reshape(b, t - 1, c, h, w).permute(0, 2, 1, 3, 4)
  return torch.cat([x_tilde[:, :, :1], x_tilde[:, :, 1:] + zeta * warped], 2)


class TorchVideoD(nn.Module):
  """MoCoGAN patch video discriminator (psrjax.models.discriminators.VideoDiscriminator)."""

  def __init__(self, cin=6, ndf=64, layers=4, k=4):
    super().__init__()
    self.min_frames = 1 + (k - 1) * layers
    chans = [cin] + [ndf * 2 ** i for i in range(layers - 1)] + [1]
    self.convs = nn.ModuleList(nn.Conv3d(a, b, k, (1, 2, 2), (0, 1, 1), bias=False)
                               for a, b in zip(chans[:-1], chans[1:]))
    self.norms = nn.ModuleList(nn.BatchNorm3d(c, track_running_stats=False)
                               for c in chans[2:-1])

  def forward(self, video, cond):
    x = torch.cat([video, cond], 1)
    missing = max(self.min_frames - x.shape[2], 0)
    x = F.pad(x, (0, 0, 0, 0, missing // 2, missing - missing // 2))
    for i, conv in enumerate(self.convs[:-1]):
      x = conv(x)
      if i > 0:
        x = self.norms[i - 1](x)
      x = F.leaky_relu(x, 0.2)
    return self.convs[-1](x)


# ----------------------------------------------------------------------------- psrjax weights
def _tensor(a, perm=None) -> torch.Tensor:
  a = np.asarray(a, np.float32)
  return torch.from_numpy(np.array(a if perm is None else np.transpose(a, perm), order="C"))


def _set_conv(module: nn.Module, p) -> None:
  """psrjax kernel [kt, kh, kw, cin, cout] -> Conv3d weight [cout, cin, kt, kh, kw]."""
  conv = module[-1] if isinstance(module, nn.Sequential) else module
  conv.weight.data = _tensor(p["kernel"], (4, 3, 0, 1, 2))
  if conv.bias is not None:
    conv.bias.data = _tensor(p["bias"])


def _set_transpose(conv: nn.ConvTranspose3d, p) -> None:
  """psrjax kernel [kt, kh, kw, cin, cout] -> ConvTranspose3d weight [cin, cout, kt, kh, kw]."""
  conv.weight.data = _tensor(p["kernel"], (3, 4, 0, 1, 2))
  conv.bias.data = _tensor(p["bias"])


def load_g1(g: TorchG1, p) -> None:
  for name, enc in g.encoders.items():
    for part in ("stem", "down0", "down1"):
      _set_conv(getattr(enc, part)[0], p[f"encoder_{name}"][part]["conv"])
  _set_conv(g.fusion[0], p["trunk"]["fusion"]["conv"])
  for i, block in enumerate(g.blocks):
    _set_conv(block.conv1[0], p["trunk"][f"block{i}"]["conv1"]["conv"])
    _set_conv(block.conv2, p["trunk"][f"block{i}"]["conv2"])
  for name, dec in g.decoders.items():
    q = p[f"decoder_{name}"]
    _set_transpose(dec.up0, q["up0"])
    _set_transpose(dec.up1, q["up1"])
    _set_conv(dec.out, q["out"])


def load_d(d: TorchVideoD, p) -> None:
  for i, conv in enumerate(d.convs):
    _set_conv(conv, p[f"conv{i}"])
  for i, norm in enumerate(d.norms, start=1):
    norm.weight.data, norm.bias.data = _tensor(p[f"norm{i}"]["scale"]), _tensor(p[f"norm{i}"]["bias"])


# ----------------------------------------------------------------------------- torch step
def _video(x) -> torch.Tensor:
  """[B, T, H, W, C] numpy -> [B, C, T, H, W] tensor."""
  return _tensor(x, (0, 4, 1, 2, 3))


class TorchStep:
  """PSR-Net layer 1's train step in PyTorch: phase "d", then phase "g" (see module docstring)."""

  def __init__(self, params, batch, inputs, config):
    self.g, self.d = TorchG1(ngf=64, blocks=6, zeta=config.model.zeta), TorchVideoD(
        ndf=config.model.disc_channels)
    load_g1(self.g, params["g1"])
    load_d(self.d, params["d1"])
    o = config.optim
    self.opt_g = torch.optim.Adam(self.g.parameters(), lr=o.lr, betas=(o.b1, o.b2))
    self.opt_d = torch.optim.Adam(self.d.parameters(), lr=o.lr, betas=(o.b1, o.b2))
    self.loss = config.loss
    self.x_i, self.x_j = _video(batch["src_rgb"]), _video(batch["tgt_rgb"])
    self.g_args = (self.x_i, _video(inputs["x0"]), _video(batch["tgt_depth"]),
                   torch.from_numpy(np.array(inputs["vis"])), _tensor(batch["tgt_flow_bwd"]))

  def step(self) -> dict[str, float]:
    """The generator runs once; phase "d" reads its output detached, then phase "g"
    backpropagates through the same graph against the just-updated discriminator."""
    pred = self.g(*self.g_args)
    self.opt_d.zero_grad(set_to_none=True)
    d_adv = (F.softplus(-self.d(self.x_j, self.x_i)).mean()
             + F.softplus(self.d(pred.detach(), self.x_i)).mean())
    d_adv.backward()
    self.opt_d.step()
    self.d.requires_grad_(False)
    self.opt_g.zero_grad(set_to_none=True)
    rec = F.huber_loss(pred, self.x_j, delta=self.loss.huber_delta)
    adv = F.softplus(-self.d(pred, self.x_i)).mean()
    total = rec + self.loss.adversarial * adv
    total.backward()
    self.opt_g.step()
    self.d.requires_grad_(True)
    return {"d/adv": d_adv.item(), "g/rec": rec.item(), "g/adv": adv.item(),
            "g/total": total.item()}

  def run(self) -> float:
    start = time.perf_counter()
    self.step()
    return time.perf_counter() - start

  def flops(self) -> float:
    from torch.utils.flop_counter import FlopCounterMode  # pylint: disable=g-import-not-at-top
    with FlopCounterMode(display=False) as counter:
      self.step()
    return float(counter.get_total_flops())


# ----------------------------------------------------------------------------- side by side
def build(steps_config=None):
  """(psrjax CompiledStep, TorchStep) from the same initial parameters and batch."""
  import jax  # pylint: disable=g-import-not-at-top
  from psrjax import config_utils  # pylint: disable=g-import-not-at-top
  from psrjax.train import benchmark  # pylint: disable=g-import-not-at-top
  config = steps_config or config_utils.load_config(CONFIG, OVERRIDES)
  jax_step = benchmark.CompiledStep(config)
  params = jax.device_get(jax_step.state["params"])
  batch = decoded_batch(jax_step)
  inputs = jax.device_get(jax.jit(jax_step.ctx.system.prepare)(batch))
  return jax_step, TorchStep(params, batch, inputs, config)


def decoded_batch(jax_step) -> dict[str, np.ndarray]:
  """The step's batch in the batch contract's dtypes (it travels in compact ones: uint8 frames,
  `psrjax.train.data.encode_batch`), on the host."""
  import jax  # pylint: disable=g-import-not-at-top
  from psrjax.train import data as data_lib  # pylint: disable=g-import-not-at-top
  return data_lib.decode_batch(jax.device_get(jax_step.batch), xp=np)


def parity(jax_step, torch_step, *, rtol: float) -> dict[str, tuple[float, float]]:
  """Step 1 on both sides from the same weights: {loss: (psrjax, torch)}; raises if they differ."""
  import jax  # pylint: disable=g-import-not-at-top
  jax_step.run()
  jax_metrics = jax.device_get(jax_step.metrics)
  torch_metrics = torch_step.step()
  out = {k: (float(jax_metrics[k]), v) for k, v in torch_metrics.items()}
  bad = {k: v for k, v in out.items() if not np.isclose(v[0], v[1], rtol=rtol, atol=0)}
  if bad:
    raise AssertionError(f"psrjax and PyTorch disagree on step 1 (psrjax, torch): {bad}")
  return out


def _release_free_memory() -> None:
  """glibc's `malloc_trim(0)`: returns the freed heap to the system. A heap left behind by one
  side's step slows the other's (a psrjax step measured 9.8 s before any PyTorch step,
  10.2-10.4 s after them, and 9.1-9.4 s after a trim)."""
  try:
    ctypes.CDLL("libc.so.6").malloc_trim(0)
  except (OSError, AttributeError):
    pass


def timed(jax_step, torch_step, *, steps: int, warmup: int,
          rounds: int = 2) -> tuple[list[float], list[float]]:
  """`rounds` rounds of a block of JAX steps then a block of PyTorch steps; each block starts
  with `warmup` untimed steps, and `ceil(steps / rounds)` timed ones follow. Returns the timed
  wall times of each side.

  Blocks, not strict alternation: each side's step leaves OpenMP threads and a heap behind that
  slow the other side's next step, so each block starts from a trimmed heap
  (`_release_free_memory`) and each side is timed in its own steady state; the rounds
  interleave the sides so both see the same drift in machine load."""
  per_block = -(-steps // rounds)
  times = {"jax": [], "torch": []}
  for _ in range(rounds):
    for side, step in (("jax", jax_step), ("torch", torch_step)):
      _release_free_memory()
      for i in range(warmup + per_block):
        t = step.run()
        if i >= warmup:
          times[side].append(t)
  jax_step.check_finite()
  return times["jax"], times["torch"]


# ----------------------------------------------------------------------------- breakdown
def _median_time(fn, repeats: int) -> float:
  fn()  # compile / warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _jax_parts(jax_step):
  """{part: zero-argument callable that runs it and waits} for the psrjax side."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from psrjax.geometry.warp import temporal_refine as jax_refine  # pylint: disable=g-import-not-at-top
  system, batch = jax_step.ctx.system, decoded_batch(jax_step)
  params = jax_step.state["params"]
  g, d, zeta = system.generators[0], system.discriminator, system.config.model.zeta
  prepare = jax.jit(system.prepare)
  inputs = prepare(batch)

  def g_out(p):
    out = g.apply({"params": p}, batch["src_rgb"], inputs["x0"], batch["tgt_depth"], inputs["vis"])
    return jax_refine(out["x_tilde"], batch["tgt_flow_bwd"], zeta=zeta)

  g_loss = lambda p: jnp.mean(jnp.abs(g_out(p) - batch["tgt_rgb"]))
  d_loss = lambda p: jnp.mean(d.apply({"params": p}, batch["tgt_rgb"], batch["src_rgb"])[0])
  fns = {"inputs (visibility, x̂⁰)": (prepare, (batch,)),
         "G forward": (jax.jit(g_out), (params["g1"],)),
         "G forward+backward": (jax.jit(jax.grad(g_loss)), (params["g1"],)),
         "D forward+backward": (jax.jit(jax.grad(d_loss)), (params["d1"],))}
  return {k: (lambda f=f, a=a: jax.block_until_ready(f(*a))) for k, (f, a) in fns.items()}


def _torch_parts(torch_step):
  g, d, args, x_i, x_j = torch_step.g, torch_step.d, torch_step.g_args, torch_step.x_i, torch_step.x_j

  def g_forward():
    with torch.no_grad():
      g(*args)

  def g_backward():
    g.zero_grad(set_to_none=True)
    (g(*args) - x_j).abs().mean().backward()

  def d_backward():
    d.zero_grad(set_to_none=True)
    d(x_j, x_i).mean().backward()

  return {"G forward": g_forward, "G forward+backward": g_backward,
          "D forward+backward": d_backward}


def breakdown(jax_step, torch_step, repeats: int) -> dict[str, dict[str, float]]:
  """Median seconds of each part of the step on both sides."""
  jax_parts, torch_parts = _jax_parts(jax_step), _torch_parts(torch_step)
  out = {}
  for name, fn in jax_parts.items():
    out[name] = {"psrjax_s": _median_time(fn, repeats)}
    if name in torch_parts:
      out[name]["torch_s"] = _median_time(torch_parts[name], repeats)
  return out


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--steps", type=int, default=5,
                      help="timed steps per side at least (median; two rounds of blocks)")
  parser.add_argument("--warmup", type=int, default=1, help="untimed steps at the start of each block")
  parser.add_argument("--breakdown", action="store_true", help="also time the step's parts")
  parser.add_argument("--json", action="store_true", help="print one JSON object")
  args = parser.parse_args(argv)
  torch.set_num_threads(os.cpu_count())
  from psrjax.train import benchmark  # pylint: disable=g-import-not-at-top
  jax_step, torch_step = build()
  losses = parity(jax_step, torch_step, rtol=2e-3)
  jax_times, torch_times = timed(jax_step, torch_step, steps=args.steps, warmup=args.warmup)
  jax_s, torch_s = statistics.median(jax_times), statistics.median(torch_times)
  torch_flops = torch_step.flops()
  peak = benchmark.peak_flops(jax_step.ctx.mesh, jax_step.ctx.options.compute_dtype, size=1024)
  result = {
      "speedup_vs_torch": torch_s / jax_s, "psrjax_step_s": jax_s, "torch_step_s": torch_s,
      "psrjax_flops_per_step": jax_step.flops, "psrjax_achieved_flops": jax_step.flops / jax_s,
      "torch_flops_per_step": torch_flops, "torch_achieved_flops": torch_flops / torch_s,
      "peak_flops": peak, "psrjax_compile_s": jax_step.compile_s,
      "psrjax_step_times_s": jax_times, "torch_step_times_s": torch_times,
      "step1_losses_psrjax_torch": losses, "torch_threads": torch.get_num_threads(),
      "torch_version": torch.__version__}
  if args.breakdown:
    result["breakdown"] = breakdown(jax_step, torch_step, repeats=max(args.steps // 2, 2))
  print(json.dumps(result) if args.json else _format(result), flush=True)
  return 0


def _format(r) -> str:
  rows = [f"PSR-Net layer-1 train step, batch 1 x 8 x 112 x 112, {r['torch_threads']} threads",
          f"psrjax   {r['psrjax_step_s']:.3f} s/step  {r['psrjax_achieved_flops']:.3g} FLOP/s "
          f"({r['psrjax_flops_per_step']:.3g} FLOPs, XLA + oneDNN)  compile {r['psrjax_compile_s']:.1f} s",
          f"torch    {r['torch_step_s']:.3f} s/step  {r['torch_achieved_flops']:.3g} FLOP/s "
          f"({r['torch_flops_per_step']:.3g} FLOPs, FlopCounterMode)  torch {r['torch_version']}",
          f"speed-up psrjax / torch: {r['speedup_vs_torch']:.2f}x   (matmul peak "
          f"{r['peak_flops']:.3g} FLOP/s)",
          "step 1 losses (psrjax, torch): " + ", ".join(
              f"{k} {a:.5f}/{b:.5f}" for k, (a, b) in r["step1_losses_psrjax_torch"].items())]
  for name, t in r.get("breakdown", {}).items():
    torch_part = f"   torch {t['torch_s']:.3f} s" if "torch_s" in t else ""
    rows.append(f"  {name:<26} psrjax {t['psrjax_s']:.3f} s{torch_part}")
  return "\n".join(rows)


if __name__ == "__main__":
  sys.exit(main())
