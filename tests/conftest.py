"""Test-session setup: eight fake CPU devices and a persistent XLA compilation cache.

Both must be configured before JAX initialises its backend, so they live here. The cache is
`$PSRJAX_TEST_JAX_CACHE` (default ~/.cache/psrjax/jax-test-cache) in this host's subdirectory
(`psrjax.commands.cache_namespace`: the CPU's instruction set and psrjax's CPU convolution
sources; JAX's own key covers the program, the jax/jaxlib versions and the XLA flags), so an
entry compiled for another CPU or by other convolution code is never used. `psrjax` commands
started in subprocesses share it (`$PSRJAX_CACHE_DIR`).
"""
import gc
import os

import pytest

# Eight CPU devices; XLA's CPU code compiled fast: LLVM's optimisation level 0, its expensive
# passes off, and the classic loop emitters instead of the MLIR fusion emitters (the suite's
# tiny programs spend far more time compiling than running: CoCosNet video's three train steps
# compile in about half the time without the MLIR emitters; oneDNN's convolutions and the
# library matrix products are unaffected).
os.environ.setdefault(
    "XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0 "
    "--xla_llvm_disable_expensive_passes=true --xla_cpu_use_fusion_emitters=false")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

from psrjax import commands  # noqa: E402

_BASE = os.environ.get(
    "PSRJAX_TEST_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "psrjax", "jax-test-cache"))
os.environ.setdefault(commands.CACHE_ENV, _BASE)
commands.use_compilation_cache(os.path.join(_BASE, commands.cache_namespace()))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

# Tracing the systems' steps allocates millions of short-lived Python objects; CPython's default
# collection thresholds (700, 10, 10) then scan the whole heap of JAX and psrjax objects over and
# over (a cold compile of CoCosNet video's first stage: 64 s -> 60 s). The objects alive now never
# die: they leave the collector's generations, and it runs less often.
gc.collect()
gc.freeze()
gc.set_threshold(100_000, 50, 100)


@pytest.fixture(scope="session")
def system_runs(tmp_path_factory):
  """`system_runs(name)`: the session's shared runs of system `name` (tests/systems/
  conformance.py), made on first use. Tests reading them carry the xdist group of the system's
  name (`--dist loadgroup`), so that one test process makes them once."""
  import conformance  # pylint: disable=g-import-not-at-top  # JAX-heavy: only when used.
  runs = {}

  def get(name: str):
    if name not in runs:
      runs[name] = conformance.Runs(name, tmp_path_factory)
    return runs[name]

  return get
