"""Published clients of zodiax run on this zodiax.

These tests need dLuxToliman and virgil-astro from the registry, which only the ``clients``
hatch environment installs (``hatch run clients:test``; CI runs it). It sets
``ZDX_CLIENT_TESTS=1``; elsewhere (``hatch test``) this folder is not collected. In the
clients environment a missing client is an import error, never a skip.
"""

import os

import jax

jax.config.update("jax_enable_x64", True)

if os.environ.get("ZDX_CLIENT_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]

import pathlib  # noqa: E402

import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def assert_zodiax_is_ours():
    """Checks that ``import zodiax`` loaded packages/zodiax, not the registry's zodiax."""

    def check(zodiax_module) -> None:
        here = pathlib.Path(zodiax_module.__file__).resolve()
        assert here == ROOT / "packages" / "zodiax" / "src" / "zodiax" / "__init__.py", here
        assert zodiax_module.__version__.startswith("0.5.")
        assert zodiax_module.base.__name__ == "zdx_base"

    return check


@pytest.fixture(scope="session")
def central_difference():
    """``(f(x + step) - f(x - step)) / (2 step)`` for a scalar function of a scalar."""
    return lambda f, x, step: float((f(x + step) - f(x - step)) / (2 * step))
