r"""Compiled memory of CoCosNet's correspondence warp (Eq. 5) with and without tiled query rows.

  python benchmarks/cocovid_warp_memory.py            # 64x64 features, the paper's sizes
  python benchmarks/cocovid_warp_memory.py --dtype bfloat16 --blocks none,512

The warp at the paper's size: 64 x 64 = 4,096 query and key positions with 3 x 3 x 256 = 2,304
channels, each position's 4 x 4 x 3 exemplar pixels as values (`psrjax.models.cocosnet.warp`).
For each `block` (None: the whole 4096 x 4096 softmax, as the authors' code computes it; else
query rows per tile, `psrjax.nn.softmax_attention`) the forward pass and the gradient with
respect to the query and key features are compiled for one example (`--batch`), and XLA's memory
analysis gives the temporaries (the live intermediates, what tiling bounds) and the total peak
(arguments + outputs + temporaries). On the CPU the program is compiled; with `--platform` it is
lowered and compiled only where that backend is present.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

MIB = 2.0 ** 20


def measure(block, *, batch: int, side: int, channels: int, pixels: int, dtype: str) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from psrjax.models import cocosnet  # pylint: disable=g-import-not-at-top

  positions = side * side
  q = jax.ShapeDtypeStruct((batch, positions, channels), jnp.dtype(dtype))
  exemplar = jax.ShapeDtypeStruct((batch, side * pixels, side * pixels, 3), jnp.dtype(dtype))

  def loss(q, k, exemplar):
    out = cocosnet.warp(q, k, exemplar, temperature=0.01, block=block)
    return jnp.sum(out.astype(jnp.float32) ** 2)

  results = {}
  for name, fn in (("forward", loss), ("forward+backward", jax.grad(loss, argnums=(0, 1)))):
    stats = jax.jit(fn).lower(q, q, exemplar).compile().memory_analysis()
    results[name] = {"temp_mib": stats.temp_size_in_bytes / MIB,
                     "peak_mib": (stats.argument_size_in_bytes + stats.output_size_in_bytes
                                  + stats.temp_size_in_bytes - stats.alias_size_in_bytes) / MIB}
  return results


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--side", type=int, default=64, help="feature positions per side")
  parser.add_argument("--channels", type=int, default=2304, help="query / key channels")
  parser.add_argument("--pixels", type=int, default=4, help="exemplar pixels per position a side")
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--blocks", default="none,1024,256", help="comma separated; none = whole")
  parser.add_argument("--dtype", default="float32")
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args(argv)
  rows = []
  for text in args.blocks.split(","):
    block = None if text.strip().lower() == "none" else int(text)
    got = measure(block, batch=args.batch, side=args.side, channels=args.channels,
                  pixels=args.pixels, dtype=args.dtype)
    rows.append({"block": block, **got})
  if args.json:
    print(json.dumps(rows))
    return 0
  import jax  # pylint: disable=g-import-not-at-top
  print(f"warp at {args.side}x{args.side} positions, {args.channels} channels, batch "
        f"{args.batch}, {args.dtype}, {jax.default_backend()}: XLA memory analysis, MiB")
  print("| query rows per tile | forward temporaries | forward peak | forward+backward "
        "temporaries | forward+backward peak |")
  print("|---|---|---|---|---|")
  for r in rows:
    f, b = r["forward"], r["forward+backward"]
    label = "whole matrix" if r["block"] is None else str(r["block"])
    print(f"| {label} | {f['temp_mib']:.1f} | {f['peak_mib']:.1f} | {b['temp_mib']:.1f} | "
          f"{b['peak_mib']:.1f} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
