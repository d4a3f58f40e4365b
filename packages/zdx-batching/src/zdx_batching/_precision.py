"""Warnings about results that float32 or the function itself may have spoiled."""

from __future__ import annotations

import os
import sys
import warnings

import jax

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _stacklevel() -> int:
    """The stack level of the first caller outside this package (for ``warnings``)."""
    level = 1
    frame = sys._getframe(1)
    while frame is not None and os.path.dirname(
        os.path.abspath(frame.f_code.co_filename)
    ).startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


_FLOAT32_MESSAGE = (
    "{name}: float64 is disabled, so second derivatives are computed in float32, which "
    "often gives NaN or inaccurate Hessian and Fisher matrices. Turn float64 on at the "
    'start of the program with jax.config.update("jax_enable_x64", True). (This warning '
    "is shown once.)"
)
_warned_float32 = False


def warn_if_float32(name: str) -> None:
    """Warn once per process when a second-order call runs with float64 disabled."""
    global _warned_float32
    if _warned_float32 or jax.config.jax_enable_x64:
        return
    _warned_float32 = True
    warnings.warn(_FLOAT32_MESSAGE.format(name=name), UserWarning, stacklevel=_stacklevel())


def reset_float32_warning() -> None:
    """Let the float32 warning be shown again (for tests)."""
    global _warned_float32
    _warned_float32 = False


def warn_if_not_finite(name: str, finite: bool) -> None:
    """Warn when the result holds NaN or inf, so that it is never silently wrong."""
    if not finite:
        hint = (
            ""
            if jax.config.jax_enable_x64
            else ' float64 is disabled: try jax.config.update("jax_enable_x64", True).'
        )
        warnings.warn(
            f"{name}: the result contains NaN or inf values. Check that f(x) is finite "
            f"and differentiable at x.{hint}",
            RuntimeWarning,
            stacklevel=_stacklevel(),
        )
