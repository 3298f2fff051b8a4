"""Config file for the toy system: `psrjax train --config tests/train/toy_config.py[:k=v,...]`.

The argument is a comma-separated list of `dotted.key=value` settings (Python literals).
"""
import ast
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import toy_system  # noqa: E402  pylint: disable=g-import-not-at-top


def get_config(arg=None):
  overrides = {}
  for item in filter(None, (arg or "").split(",")):
    key, _, text = item.partition("=")
    overrides[key.strip()] = ast.literal_eval(text.strip())
  return toy_system.toy_config(**overrides)
