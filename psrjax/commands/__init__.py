"""`psrjax <verb>` commands, one module per verb (`render-synthetic` -> `render_synthetic.py`).

Each module defines `add_arguments(parser)` and `run(args) -> int` (the exit code); its
docstring's first line is the verb's help text. Commands that take a config accept
`--config.key=value` overrides, collected by the CLI into `args.config_overrides`.

`train`, `eval` and `bench` keep JAX's persistent compilation cache on (`add_cache_argument`,
`configure_compilation_cache`): a rerun of the same config loads its compiled steps instead
of compiling them again.
"""
from __future__ import annotations

import os

CACHE_ENV = "PSRJAX_CACHE_DIR"
CACHE_OFF = "off"
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "psrjax", "jax")


def available_verbs() -> list[str]:
  """Verbs of the command modules in this package."""
  here = os.path.dirname(__file__)
  return sorted(f[:-3].replace("_", "-") for f in os.listdir(here)
                if f.endswith(".py") and not f.startswith("_"))


def add_cache_argument(parser) -> None:
  parser.add_argument(
      "--compilation-cache", default=None, metavar="DIR",
      help=f"JAX persistent compilation cache directory, or {CACHE_OFF!r} to compile "
           f"everything afresh (default: ${CACHE_ENV}, else a directory JAX was already given "
           f"with JAX_COMPILATION_CACHE_DIR, else {DEFAULT_CACHE_DIR})")


def configure_compilation_cache(value: str | None = None) -> str | None:
  """Turns JAX's persistent compilation cache on in a directory, or off; call it before the
  first compilation. Returns the directory in use (None: off).

  `value` (the --compilation-cache flag) wins, then $PSRJAX_CACHE_DIR, then a directory JAX
  already has (JAX_COMPILATION_CACHE_DIR or an earlier `jax.config.update`), then
  ~/.cache/psrjax/jax. "off" (either way) disables the cache.
  """
  import jax  # pylint: disable=g-import-not-at-top  # Only commands that compile import JAX.
  chosen = value if value is not None else os.environ.get(CACHE_ENV)
  if chosen is None:
    chosen = jax.config.jax_compilation_cache_dir or DEFAULT_CACHE_DIR
  if chosen.strip().lower() in (CACHE_OFF, ""):
    jax.config.update("jax_enable_compilation_cache", False)
    return None
  directory = os.path.abspath(os.path.expanduser(chosen))
  jax.config.update("jax_enable_compilation_cache", True)
  jax.config.update("jax_compilation_cache_dir", directory)
  return directory
