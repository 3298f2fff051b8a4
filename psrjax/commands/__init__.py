"""`psrjax <verb>` commands, one module per verb (`render-synthetic` -> `render_synthetic.py`).

Each module defines `add_arguments(parser)` and `run(args) -> int` (the exit code); its
docstring's first line is the verb's help text. Commands that take a config accept
`--config.key=value` overrides, collected by the CLI into `args.config_overrides`.
"""
from __future__ import annotations

import os


def available_verbs() -> list[str]:
  """Verbs of the command modules in this package."""
  here = os.path.dirname(__file__)
  return sorted(f[:-3].replace("_", "-") for f in os.listdir(here)
                if f.endswith(".py") and not f.startswith("_"))
