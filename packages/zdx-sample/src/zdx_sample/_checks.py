"""Checks with a meaning in zdx-sample, built on ``zdx_base.checks`` (which holds the
generic ones: integers, numbers, callables, keys, matrices)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from zdx_base import checks


def check_probability(fn: str, name: str, value: Any) -> float:
    """``value`` as a ``float`` strictly between 0 and 1 (an acceptance probability).

    Raises
    ------
    TypeError
        If it is not a real number.
    ValueError
        If it is NaN, infinite, or not in ``(0, 1)``.
    """
    value = checks.check_number(fn, name, value, positive=True)
    if value >= 1:
        raise ValueError(f"{fn}: {name} must be a number in (0, 1), got {name}={value!r}.")
    return value


def scalar_value(value: Any, what: str) -> jax.Array:
    """``value`` as a real floating-point scalar array, or a clear error saying what it was."""
    arr = jnp.asarray(value)
    if arr.shape != ():
        raise ValueError(f"{what} must return a scalar, got an array of shape {arr.shape}.")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(f"{what} must return a real floating-point scalar, got dtype {arr.dtype}.")
    return arr
