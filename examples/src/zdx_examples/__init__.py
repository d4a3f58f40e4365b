"""zdx-examples: the worked examples of the zodiax tutorial.

``zdx_examples.optics`` is the hierarchical optics fit (a dLux telescope imaging one star
through several filters) with its end-to-end ``fit``; ``zdx_examples.gaussians`` is the
sum-of-Gaussians fit; ``zdx_examples.plots`` and ``zdx_examples.report`` draw the figures
and write the report of an optics fit. The command ``zdx-examples`` (or ``python -m
zdx_examples``) runs both fits.
"""

import importlib
import importlib.metadata
from typing import Any

__all__ = ["gaussians", "optics", "plots", "report"]
__version__ = importlib.metadata.version("zdx-examples")


def __getattr__(name: str) -> Any:
    """The modules ``gaussians``, ``optics``, ``plots`` and ``report``, imported when first
    used: importing dLux starts JAX, and the command must first be able to call
    ``jax.distributed.initialize`` (which has to come before anything starts JAX)."""
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
