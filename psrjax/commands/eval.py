"""Evaluate a workdir's latest checkpoint: `psrjax eval --workdir DIR [--config FILE[:arg]]`.

`--best` evaluates the best-validation snapshot `train.keep_best` kept in DIR/best/ instead
(exit code 2 when there is none). `--raw` evaluates the trained parameters instead of their
moving averages (`train.ema`), each entry written as `<name>-raw` (DIR/eval/<name>-raw/<step>.json).
`--batch-norm population` normalises every batch norm of the evaluated outputs (FOMM's,
INTERnet's) with the training split's population statistics instead of each evaluation batch's
own, so that the scores do not depend on the evaluation batch size; entries `<name>-population`.

Runs every `config.evals` entry, whatever its `every` (-> DIR/eval/<name>/<step>.json), the
system's own metrics being the `system` entry (added when the config declares none, from
`train.eval_every` and the `config.eval` block: see psrjax/evals/__init__.py), and prints
{"step": ..., "<name>/<metric>": ...}. `--evals fvd,kid` runs only those entries, `--evals system`
only the system's metrics. Without --config the workdir's saved config.json is used;
`--config.evals.NAME="dict(type='fid', ...)"` adds an entry. `--compilation-cache DIR|off` as
for `psrjax train`.
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
                      help="comma-separated config.evals names to run instead of all of them "
                           "(system: the system's own metrics)")
  parser.add_argument("--best", action="store_true",
                      help="evaluate the snapshot train.keep_best kept in WORKDIR/best/ instead "
                           "of the latest checkpoint")
  parser.add_argument("--raw", action="store_true",
                      help="evaluate the trained parameters, not their moving averages "
                           "(train.ema); results named <name>-raw")
  parser.add_argument("--batch-norm", choices=("batch", "population"), default="batch",
                      help="population: batch norms use the training split's statistics, not "
                           "each evaluation batch's; results named <name>-population")
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
  step, results = offline_eval.evaluate_checkpoint(config, args.workdir, only=only,
                                                   best=args.best, raw=args.raw,
                                                   batch_norm=args.batch_norm)
  print(json.dumps({"step": step, **results}, indent=2, sort_keys=True))
  return 0
