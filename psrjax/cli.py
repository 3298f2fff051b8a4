"""`psrjax <verb> ...`: parses the command line and dispatches to `psrjax.commands.<verb>`.

Bad input (a `ValueError` or `FileNotFoundError` from the command) is reported as one line on stderr with exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from absl import flags

from psrjax import config_utils
from psrjax.commands import available_verbs

BAD_INPUT = 2


def _load_command(verb: str):
  """The command module for `verb`, or None if there is no such verb."""
  if not verb.replace("-", "").replace("_", "").isalnum():
    return None
  name = f"psrjax.commands.{verb.replace('-', '_')}"
  try:
    return importlib.import_module(name)
  except ModuleNotFoundError as e:
    if e.name == name:
      return None
    raise


def _usage() -> str:
  return f"usage: psrjax <verb> [options]; verbs: {', '.join(available_verbs())}"


def main(argv: Sequence[str] | None = None) -> int:
  """Runs `psrjax <verb> ...` and returns the exit code."""
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] in ("-h", "--help"):
    print(_usage(), file=sys.stdout if argv else sys.stderr)
    return 0 if argv else BAD_INPUT
  verb, rest = argv[0], argv[1:]
  command = _load_command(verb)
  if command is None:
    print(f"psrjax: unknown verb {verb!r}; verbs: {', '.join(available_verbs())}", file=sys.stderr)
    return BAD_INPUT
  # grain worker processes read absl flags: make them parsed before any worker starts.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS(["psrjax"])
  parser = argparse.ArgumentParser(prog=f"psrjax {verb}", description=command.__doc__,
                                   add_help=False)
  command.add_arguments(parser)
  try:
    overrides, rest = config_utils.split_overrides(rest)
    if hasattr(command, "add_dynamic_arguments"):
      # Options that depend on other options (e.g. the system a --workdir holds), added before
      # --help is answered so that it lists them.
      known = _parse_leniently(parser, rest)
      command.add_dynamic_arguments(parser, known)
  except (ValueError, FileNotFoundError) as e:
    parser.error(" ".join(str(e).split()))
  parser.add_argument("-h", "--help", action="help", help="show this help message and exit")
  args = parser.parse_args(rest)
  args.config_overrides = overrides
  try:
    return int(command.run(args))
  except (ValueError, FileNotFoundError) as e:  # Bad input, missing weights/data files.
    print(f"psrjax {verb}: error: {' '.join(str(e).split())}", file=sys.stderr)
    return BAD_INPUT


def _parse_leniently(parser, argv):
  """The options given so far, with required ones not yet enforced (so that `--help` works
  without them)."""
  required = [a for a in parser._actions if a.required]  # pylint: disable=protected-access
  for action in required:
    action.required = False
  try:
    return parser.parse_known_args(argv)[0]
  finally:
    for action in required:
      action.required = True


if __name__ == "__main__":
  sys.exit(main())
