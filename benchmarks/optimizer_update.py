"""What updating each parameter group as one vector (`psrjax.train.fused`) changes in a train
step: the step's size before and after XLA, the bytes it accesses and its compile time, per
system, with the per-array optax update beside it.

    python benchmarks/optimizer_update.py [--systems cocovid,pix2pixhd] [--arg tiny]

For each system, the first stage's train step of `configs/<system>.py:<arg>` on one CPU device
(the tiny variants by default: the counts scale with the number of parameter arrays, which the
tiny networks share with the paper's except where a network's depth is a config option), traced
and compiled twice, with `ScaleOptions.fused_update` on and off. Printed per system and variant:
the jaxpr's equations (all nested ones counted), those inside the optimizer's named scopes, the
compiled HLO's instructions and fusions, XLA's cost analysis "bytes accessed", and the compile
time (CPU seconds of this process). Flags: XLA_FLAGS as set in the environment (the figures
depend on XLA's CPU emitters: say which were used).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402  pylint: disable=g-import-not-at-top

from psrjax import config_utils  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.train import context as context_lib  # noqa: E402  pylint: disable=g-import-not-at-top
from psrjax.train import partitioning  # noqa: E402  pylint: disable=g-import-not-at-top

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")
SYSTEMS = ("pix2pix", "pix2pixhd", "edn", "cocovid", "d2gnet", "fomm", "internet", "mfci",
           "psrnet")


def equations(jaxpr) -> tuple[int, int]:
  """(all equations, those under an `optimizer_*` named scope), nested jaxprs included."""
  total = optimizer = 0
  for eqn in jaxpr.eqns:
    total += 1
    optimizer += str(eqn.source_info.name_stack).startswith("optimizer_")
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      t, o = equations(sub)
      total, optimizer = total + t, optimizer + o
  return total, optimizer


def measure(ctx, fused: bool) -> dict[str, float]:
  """The figures of the first stage's step with `fused_update=fused`."""
  limit = sys.maxsize if fused else 0
  ctx = dataclasses.replace(ctx, options=dataclasses.replace(ctx.options, fused_update=limit))
  batch = partitioning.abstract_batch(ctx.first_batch, ctx.batch_sharding,
                                      ctx.config.train.batch_size)
  args = (ctx.restore_target(), batch, ctx.base_key, ctx.constants)
  traced = ctx.jit_step(ctx.stages[0]).trace(*args)
  lowered = traced.lower()
  start = time.process_time()
  compiled = lowered.compile()
  seconds = time.process_time() - start
  text = compiled.as_text()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  total, optimizer = equations(traced.jaxpr.jaxpr)
  return {"equations": total, "optimizer_equations": optimizer,
          "hlo_instructions": len(re.findall(r"^\s+\S+ = ", text, re.M)),
          "fusions": text.count(" fusion("), "bytes_accessed": cost.get("bytes accessed", 0.0),
          "compile_s": seconds}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--systems", default=",".join(SYSTEMS))
  parser.add_argument("--arg", default="tiny", help="the config variant (default tiny)")
  args = parser.parse_args(argv)
  print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  print("| system | update | equations | optimizer eqns | HLO instructions | fusions | "
        "bytes accessed (MB) | compile (CPU s) |")
  print("|---|---|---|---|---|---|---|---|")
  for name in args.systems.split(","):
    config = config_utils.load_config(os.path.join(CONFIGS, f"{name}.py") + f":{args.arg}")
    ctx = context_lib.build_context(config, None, devices=jax.devices()[:1], evals=())
    for fused in (False, True):
      m = measure(ctx, fused)
      print(f"| {name} | {'fused' if fused else 'per array'} | {m['equations']} | "
            f"{m['optimizer_equations']} | {m['hlo_instructions']} | {m['fusions']} | "
            f"{m['bytes_accessed'] / 1e6:.1f} | {m['compile_s']:.1f} |", flush=True)


if __name__ == "__main__":
  main()
