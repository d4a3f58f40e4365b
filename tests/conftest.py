"""Settings shared by every test: float64, strict JAX checks, a persistent compile cache,
and the slow tests skipped on the legs of the test matrix that leave them out."""

import os
import pathlib

import jax
import pytest

jax.config.update("jax_enable_x64", True)

# Compiling dominates the run time of this suite on a small machine: keep compiled
# programs between runs on the same machine (ZDX_TEST_JAX_CACHE moves the cache).
_CACHE = pathlib.Path(
    os.environ.get("ZDX_TEST_JAX_CACHE", pathlib.Path.home() / ".cache" / "zdx-tests-jax")
)
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


# The slow end-to-end tests run on one leg of the test matrix only (hatch.toml: Python 3.11);
# the other legs set ZDX_SKIP_SLOW=1 and skip them, saying where they run.
SKIP_SLOW = os.environ.get("ZDX_SKIP_SLOW", "") not in ("", "0")


def pytest_collection_modifyitems(config, items):
    if not SKIP_SLOW:
        return
    skip = pytest.mark.skip(
        reason="slow end-to-end test: ZDX_SKIP_SLOW is set (the Python 3.13 leg of "
        "`hatch test --all`); it runs on the Python 3.11 leg"
    )
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
