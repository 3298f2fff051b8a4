"""`psrjax <verb>` commands, one module per verb (`render-synthetic` -> `render_synthetic.py`).

Each module defines `add_arguments(parser)` and `run(args) -> int` (the exit code); its
docstring's first line is the verb's help text. Commands that take a config accept
`--config.key=value` overrides, collected by the CLI into `args.config_overrides`.

`train`, `eval` and `bench` keep JAX's persistent compilation cache on (`add_cache_argument`,
`configure_compilation_cache`): a rerun of the same config loads its compiled steps instead
of compiling them again. Programs are kept in a subdirectory per host kind
(`cache_namespace`), so that a cache shared between machines never hands one a program it
cannot run.
"""
from __future__ import annotations

import glob
import hashlib
import os
import platform
import re

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
  ~/.cache/psrjax/jax; programs go to its subdirectory `cache_namespace()`. "off" (either way)
  disables the cache.
  """
  import jax  # pylint: disable=g-import-not-at-top  # Only commands that compile import JAX.
  chosen = value if value is not None else os.environ.get(CACHE_ENV)
  if chosen is None:
    chosen = jax.config.jax_compilation_cache_dir or DEFAULT_CACHE_DIR
  if chosen.strip().lower() in (CACHE_OFF, ""):
    jax.config.update("jax_enable_compilation_cache", False)
    return None
  directory = os.path.abspath(os.path.expanduser(chosen))
  if os.path.basename(directory) != cache_namespace():   # not already this host's subdirectory
    directory = os.path.join(directory, cache_namespace())
  use_compilation_cache(directory)
  return directory


def use_compilation_cache(directory: str) -> None:
  """Keeps compiled programs in `directory` (JAX's persistent compilation cache), including
  those with psrjax's custom-partitioned CPU convolutions.

  JAX keys such a program by the address of its Python partitioning callback by default, so it
  would never be found again (every trace makes new callbacks): a resumed CPU run would compile
  every step anew. The key leaves the address out here; what the callbacks do is psrjax's
  `nn/cpu` code, whose sources `cache_namespace` hashes into the directory's name.
  """
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_enable_compilation_cache", True)
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_remove_custom_partitioning_ptr_from_cache_key", True)


# CPU flags that change the machine code XLA:CPU generates for the host.
_ISA_FLAGS = re.compile(r"^(avx|amx|fma|f16c|sse|ssse|bmi|adx|sha|vaes|vpclmul|gfni|movbe|popcnt|"
                        r"aes|pclmul|asimd|sve|neon)")


def cache_namespace() -> str:
  """`<machine>-<12 hex digits>`: the compilation-cache subdirectory of this kind of host.

  It hashes the CPU's vector extensions (XLA:CPU compiles for the host's instruction set and
  JAX's cache key does not name it, so a program compiled on an AVX-512 CPU would fault on an
  AVX2 one sharing the directory) and the sources of psrjax's CPU convolutions (their custom
  partitioning rules shape the compiled program but JAX's key leaves them out).
  """
  digest = hashlib.sha1(" ".join(_isa_flags()).encode())
  here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "nn", "cpu")
  for path in sorted(glob.glob(os.path.join(here, "*.py")) + glob.glob(os.path.join(here, "*.cc"))):
    with open(path, "rb") as f:
      digest.update(os.path.basename(path).encode() + f.read())
  return f"{platform.machine() or 'cpu'}-{digest.hexdigest()[:12]}"


def _isa_flags() -> list[str]:
  """The sorted vector-extension flags of the first CPU in /proc/cpuinfo (else the processor
  name platform reports)."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
          return sorted({v for v in value.split() if _ISA_FLAGS.match(v)})
  except OSError:
    pass
  return [platform.processor()]
