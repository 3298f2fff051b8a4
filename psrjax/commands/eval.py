"""Evaluate a workdir's latest checkpoint: `psrjax eval --workdir DIR [--config FILE[:arg]]`.

Runs the config's `eval` block (-> DIR/eval/<step>.json) and every `config.evals` entry
(-> DIR/eval/<name>/<step>.json); `--evals fvd,kid` runs only those entries. Without --config
the workdir's saved config.json is used. `--compilation-cache DIR|off` as for `psrjax train`.
"""
from __future__ import annotations

import json

from psrjax import commands
from psrjax import config_utils


def add_arguments(parser) -> None:
  parser.add_argument("--config", default="",
                      help="config file and argument (default: the workdir's config.json)")
  parser.add_argument("--workdir", required=True, help="directory written by psrjax train")
  parser.add_argument("--evals", default="",
                      help="comma-separated config.evals names to run instead of everything")
  commands.add_cache_argument(parser)


def run(args) -> int:
  commands.configure_compilation_cache(args.compilation_cache)
  if args.config:
    config = config_utils.load_config(args.config, args.config_overrides)
  else:
    config = config_utils.load_workdir_config(args.workdir)
    for key, text in args.config_overrides:
      config_utils.apply_override(config, key, text)
  from psrjax.train import offline_eval  # pylint: disable=g-import-not-at-top
  only = tuple(n.strip() for n in args.evals.split(",") if n.strip()) or None
  step, results = offline_eval.evaluate_checkpoint(config, args.workdir, only=only)
  print(json.dumps({"step": step, **results}, indent=2, sort_keys=True))
  return 0
