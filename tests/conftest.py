"""Settings shared by every test: float64, strict JAX checks, a persistent compile cache."""

import os
import pathlib

import jax

jax.config.update("jax_enable_x64", True)

# Compiling dominates the run time of this suite on a small machine: keep compiled
# programs between runs on the same machine (ZDX_TEST_JAX_CACHE moves the cache).
_CACHE = pathlib.Path(
    os.environ.get("ZDX_TEST_JAX_CACHE", pathlib.Path.home() / ".cache" / "zdx-tests-jax")
)
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
