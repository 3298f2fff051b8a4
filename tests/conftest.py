"""Test-session setup: eight fake CPU devices and a persistent XLA compilation cache.

Both must be configured before JAX initialises its backend, so they live here.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

_CACHE = os.environ.get(
    "PSRJAX_TEST_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "psrjax", "jax-test-cache"))
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
