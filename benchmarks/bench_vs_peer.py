r"""psrjax's train step against the PyTorch code its users would otherwise run, as whole commands
run alternately on one machine: `psrjax bench` and `benchmarks/peer_steps.py`.

  python benchmarks/bench_vs_peer.py pix2pixhd --checkout ~/src/pix2pixHD --pairs 9
  python benchmarks/bench_vs_peer.py edn --checkout ~/src/EverybodyDanceNow --pairs 9
  python benchmarks/bench_vs_peer.py cocosnet --checkout ~/src/CoCosNet --pairs 3 --steps 3
  python benchmarks/bench_vs_peer.py fomm --checkout ~/src/first-order-model --pairs 3 --steps 3
  python benchmarks/bench_vs_peer.py d2gnet --checkout ~/src/Neural-Human-Video-Rendering \
      --pairs 3 --steps 3
  python benchmarks/bench_vs_peer.py vid2vid --checkout ~/src/vid2vid --pairs 3 --steps 1 --warmup 0
  python benchmarks/bench_vs_peer.py lwgan --checkout ~/src/impersonator --pairs 3 --steps 2

The peer's repository is a checkout given on the command line (nothing is fetched; its commit
is printed): NVIDIA/pix2pixHD for `pix2pixhd`, carolineec/EverybodyDanceNow for `edn`,
microsoft/CoCosNet for `cocosnet` (psrjax's configs/cocovid.py first stage, batch 1),
AliaksandrSiarohin/first-order-model for `fomm` (configs/fomm.py, batch 1),
SunYangtian/Neural-Human-Video-Rendering for `d2gnet` (configs/d2gnet.py at 256x256, batch 2
pairs; its D²G-Net given the release's shape: 4 stride-2 levels, 2 blocks, no pose input),
NVIDIA/vid2vid for `vid2vid` (configs/vid2vid.py's first clip stage at batch 1: one clip of 12
frames a step, and one iteration of the peer's train.py on such a clip, FlowNet2 replaced by a
fixed reference flow: peer_steps.vid2vid_step; psrjax's side keeps the activations of the 12
frames for one backward pass, 36.4 GiB in float32 by `psrjax plan`, so it runs with block
rematerialisation, 15.8 GiB, recomputing each block's forward; the peer keeps those of a load
of 3),
svip-lab/impersonator for `lwgan` (configs/lwgan.py at its paper config, batch 4 at 256x256, as
the peer's scripts/train_iPER.sh; the peer's body recovery, HMR, SMPL and the mesh renderer,
replaced by fixed uv_seg maps, transform and joints, its face loss's SphereFace random:
peer_steps.lwgan_step). Both sides build the same networks at 256x256, batch 1 unless named
above, with random weights (the VGG19 of both losses loads one random torchvision state dict,
written once into `--workdir`, unless `--vgg-weights` names a file), and time `--steps` steps
after `--warmup` untimed ones; each command reports its median step. psrjax's side is

  psrjax bench --config configs/<peer>.py --config.loss.vgg_net=vgg19 \
      --config.loss.vgg_weights=FILE --steps 5 --json

A pair is one run of each, the order alternating from pair to pair; its ratio is peer step /
psrjax step (above 1: psrjax is faster). While each command runs, the CPU time that other
processes use is measured (all CPUs' busy time from /proc/stat minus the command's own,
per second of the command's wall time); a pair where it exceeds `--busy-threshold` cores is
flagged `busy` and left out of the median. Prints the CPU's model and flags, the versions,
every pair and the median (min-max) of the clean ones; `--json` prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_STEPS = os.path.join(REPO, "benchmarks", "peer_steps.py")
CONFIGS = {"pix2pixhd": "configs/pix2pixhd.py", "edn": "configs/edn.py",
           "cocosnet": "configs/cocovid.py", "fomm": "configs/fomm.py", "d2gnet": "configs/d2gnet.py",
           "vid2vid": "configs/vid2vid.py", "lwgan": "configs/lwgan.py"}
# psrjax's side beyond the paper config: CoCosNet's peer runs batch 1 (the per-person paper
# config trains batch 4) and only its first stage has a counterpart.
EXTRA = {"cocosnet": ["--config.train.batch_size=1", "--stage", "main"],
         "fomm": ["--config.train.batch_size=1"],   # the yaml's 27 is a multi-GPU batch
         # 256x256 (the paper's 512 halved, as every peer here); D²G-Net in the shape of the
         # release's FgFeature2RGB (4 stride-2 levels, 2 residual blocks, no pose at the
         # bottleneck; its last level keeps 512 channels where pix2pixHD's doubles to 1024); a
         # few frames for the initial texture and background (not part of the step).
         "d2gnet": ["--config.data.resolution=256", "--config.model.n_downsample=4",
                    "--config.model.n_blocks=2", "--config.model.pose_condition=False",
                    "--config.texture.init_frames=8", "--config.background.init_frames=8",
                    "--config.train.data_workers=0"],
         # the paper config's first clip stage (12 frames at 256x256) for one GPU's batch of
         # the 8 (its batch 8 is one clip a GPU), with block rematerialisation: the whole
         # clip's float32 activations (36.4 GiB planned) exceed a 24-GiB host, blocks 15.8.
         "vid2vid": ["--config.train.batch_size=1", "--config.data.frames_per_example=12",
                     "--config.schedule.clip_doublings=0", "--config.model.remat=blocks"]}
# A file each peer's checkout holds (pix2pixHD's layout unless named).
MARKERS = {"fomm": ("modules/model.py",), "d2gnet": ("models/pix2pixHD_Avatar.py",),
           "vid2vid": ("models/vid2vid_model_G.py",),
           "lwgan": ("networks/generator.py", "models/impersonator_trainer.py")}
FLAGS = re.compile(r"^(avx\w*|amx\w*|fma|f16c|sse4_2)$")


def cpu_description() -> tuple[str, list[str]]:
  """(model name, the vector-ISA flags) of this machine's CPU, from /proc/cpuinfo."""
  model, flags = platform.processor() or "unknown CPU", []
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
          model = value.strip()
        elif key.strip() == "flags":
          flags = sorted(f for f in value.split() if FLAGS.match(f))
          break
  except OSError:
    pass
  return model, flags


def busy_seconds() -> float:
  """CPU seconds all CPUs have spent busy since boot (/proc/stat; 0 where it is missing)."""
  try:
    with open("/proc/stat") as f:
      fields = [int(v) for v in f.readline().split()[1:]]
  except OSError:
    return 0.0
  idle = fields[3] + (fields[4] if len(fields) > 4 else 0)   # idle + iowait
  return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_measured(command: list[str]) -> dict:
  """Runs `command`; returns its last stdout line as JSON plus `wall_s` and `other_cores` (CPU
  used by other processes per second of wall time). Raises with the command's stderr tail."""
  own0 = resource.getrusage(resource.RUSAGE_CHILDREN)
  busy0, start = busy_seconds(), time.perf_counter()
  done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
  wall = time.perf_counter() - start
  busy1, own1 = busy_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
  if done.returncode != 0:
    raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
  own = (own1.ru_utime - own0.ru_utime) + (own1.ru_stime - own0.ru_stime)
  result = json.loads(done.stdout.strip().splitlines()[-1])
  result.update(wall_s=wall, other_cores=max(busy1 - busy0 - own, 0.0) / wall)
  return result


def random_vgg19(workdir: str) -> str:
  """A torchvision-format VGG19 state dict with random weights (seed 0), written once."""
  path = os.path.join(workdir, "vgg19_random_seed0.pth")
  if not os.path.exists(path):
    sys.path.insert(0, os.path.dirname(PEER_STEPS))
    import peer_steps  # pylint: disable=g-import-not-at-top
    import torch  # pylint: disable=g-import-not-at-top
    torch.manual_seed(0)
    net = peer_steps.import_torchvision().models.vgg19()
    os.makedirs(workdir, exist_ok=True)
    torch.save(net.state_dict(), path + ".tmp")
    os.replace(path + ".tmp", path)
  return path


def commands(args, vgg: str) -> dict[str, list[str]]:
  psrjax = [sys.executable, "-m", "psrjax.cli", "bench", "--config", CONFIGS[args.peer],
            "--config.loss.vgg_net=vgg19", f"--config.loss.vgg_weights={vgg}",
            "--steps", str(args.steps), "--warmup", str(args.warmup), "--pipeline-batches", "1",
            "--json", *EXTRA.get(args.peer, []), *getattr(args, "psrjax_arg", [])]
  peer = [sys.executable, PEER_STEPS, args.peer, "--checkout", args.checkout, "--steps",
          str(args.steps), "--warmup", str(args.warmup), "--vgg-weights", vgg,
          "--threads", str(args.threads), "--workdir", os.path.join(args.workdir, "peer"),
          "--json"]
  return {"psrjax": psrjax, "peer": peer}


def run_pairs(args, cmds) -> list[dict]:
  pairs = []
  for i in range(args.pairs):
    order = ("psrjax", "peer") if i % 2 == 0 else ("peer", "psrjax")
    runs = {side: run_measured(cmds[side]) for side in order}
    busy = max(r["other_cores"] for r in runs.values()) > args.busy_threshold
    pair = {"pair": i + 1, "first": order[0], "psrjax_s": runs["psrjax"]["step_time_s"],
            "peer_s": runs["peer"]["step_time_s"],
            "other_cores": {s: round(r["other_cores"], 3) for s, r in runs.items()},
            "busy": busy, "peer_commit": runs["peer"]["commit"],
            "torch": runs["peer"]["torch"]}
    pair["ratio"] = pair["peer_s"] / pair["psrjax_s"]
    pairs.append(pair)
    print(_row(pair), file=sys.stderr, flush=True)
  return pairs


def summary(pairs: list[dict]) -> dict:
  clean = [p["ratio"] for p in pairs if not p["busy"]]
  if not clean:
    return {"clean_pairs": 0}
  return {"clean_pairs": len(clean), "median_ratio": statistics.median(clean),
          "min_ratio": min(clean), "max_ratio": max(clean),
          "median_psrjax_s": statistics.median(p["psrjax_s"] for p in pairs if not p["busy"]),
          "median_peer_s": statistics.median(p["peer_s"] for p in pairs if not p["busy"])}


def _row(p: dict) -> str:
  flag = "  busy" if p["busy"] else ""
  return (f"{p['pair']:4d}  {p['first']:6s}  {p['psrjax_s']:8.3f}  {p['peer_s']:8.3f}  "
          f"{p['ratio']:6.3f}  {p['other_cores']['psrjax']:5.2f} / {p['other_cores']['peer']:4.2f}"
          f"{flag}")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("peer", choices=sorted(CONFIGS))
  parser.add_argument("--checkout", required=True, help="the peer repository's checkout")
  parser.add_argument("--pairs", type=int, default=9)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=1)
  parser.add_argument("--threads", type=int, default=os.cpu_count(),
                      help="PyTorch's threads (default: every core, as XLA uses)")
  parser.add_argument("--vgg-weights", default=None)
  parser.add_argument("--psrjax-arg", action="append", default=[], metavar="ARG",
                      help="one more argument of psrjax's side (repeatable), e.g. "
                           "--psrjax-arg=--config.model.remat=blocks")
  parser.add_argument("--busy-threshold", type=float, default=0.15,
                      help="cores other processes may use before a pair is flagged")
  parser.add_argument("--workdir", default="/tmp/psrjax_bench_vs_peer")
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args(argv)
  args.checkout = os.path.abspath(os.path.expanduser(args.checkout))
  marker = MARKERS.get(args.peer, ("models/networks", "models/networks.py"))
  if not any(os.path.exists(os.path.join(args.checkout, m)) for m in marker):
    parser.error(f"--checkout {args.checkout} has no {' or '.join(marker)}: pass a checkout of "
                 f"the {args.peer} repository")
  if args.pairs < 1 or args.steps < 1:
    parser.error("--pairs and --steps must be >= 1")
  model, flags = cpu_description()
  print(f"CPU: {model}, {os.cpu_count()} cores; flags: {' '.join(flags)}", file=sys.stderr)
  print("pair  first   psrjax s    peer s   ratio  other cores (psrjax / peer)",
        file=sys.stderr, flush=True)
  pairs = run_pairs(args, commands(args, args.vgg_weights or random_vgg19(args.workdir)))
  result = {"peer": args.peer, "psrjax_args": args.psrjax_arg, "cpu": model, "cpu_flags": flags, "cores": os.cpu_count(),
            "peer_commit": pairs[0]["peer_commit"], "torch": pairs[0]["torch"],
            "steps": args.steps, "pairs": pairs, **summary(pairs)}
  if args.json:
    print(json.dumps(result))
  elif result["clean_pairs"]:
    print(f"{args.peer} at {result['peer_commit']} (torch {result['torch']}) vs psrjax: "
          f"median peer/psrjax {result['median_ratio']:.3f} (range {result['min_ratio']:.3f}-"
          f"{result['max_ratio']:.3f}) over {result['clean_pairs']} of {len(pairs)} pairs; "
          f"median step psrjax {result['median_psrjax_s']:.3f} s, peer "
          f"{result['median_peer_s']:.3f} s")
  else:
    print(f"every one of the {len(pairs)} pairs was busy: no ratio", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
