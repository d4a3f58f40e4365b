"""Input checks shared by the public functions: concrete values raise, traced values use
``equinox.error_if`` so that a bad matrix fails loudly inside ``jit`` as well."""

from __future__ import annotations

import math
import numbers
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp


def is_traced(*values: Any) -> bool:
    """Whether any of ``values`` is a JAX tracer (we are inside ``jit``, ``vmap``, ...)."""
    return any(isinstance(v, jax.core.Tracer) for v in values)


def fail_if(x: Any, pred: Any, message: str, error: type[Exception] = ValueError) -> Any:
    """Raise ``error(message)`` when ``pred`` is true; return ``x`` otherwise.

    A concrete ``pred`` raises at once; a traced one goes through ``eqx.error_if`` (the
    program then raises when it runs).
    """
    if is_traced(pred):
        return eqx.error_if(x, pred, message)
    if bool(pred):
        raise error(message)
    return x


def as_square_matrix(matrix: Any, name: str) -> jax.Array:
    """``matrix`` as a 2-d square floating-point array, or a ``ValueError`` naming ``name``."""
    try:
        arr = jnp.asarray(matrix)
    except TypeError as exc:
        raise TypeError(
            f"`{name}` must be a square matrix (an array of shape (n, n)), "
            f"got an object of type {type(matrix).__name__}."
        ) from exc
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise ValueError(
            f"`{name}` must be a square matrix of shape (n, n) with n >= 1, got shape {arr.shape}."
        )
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"`{name}` must be a real matrix, got dtype {arr.dtype}.")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    return arr


def check_finite(matrix: jax.Array, name: str) -> jax.Array:
    """Refuse a matrix with NaN or inf entries, saying how many there are."""
    bad = ~jnp.isfinite(matrix)
    if is_traced(matrix):
        return eqx.error_if(matrix, jnp.any(bad), f"`{name}` has NaN or inf entries.")
    count = int(jnp.sum(bad))
    if count:
        raise ValueError(
            f"`{name}` has {count} NaN or inf entries (of {matrix.size}); "
            "a matrix with non-finite entries cannot be decomposed."
        )
    return matrix


def symmetry_tolerance(matrix: jax.Array) -> jax.Array:
    """Largest asymmetry accepted as rounding: sqrt(eps) times the largest entry."""
    eps = jnp.finfo(matrix.dtype).eps
    return jnp.sqrt(eps) * jnp.max(jnp.abs(matrix))


def check_symmetric(matrix: jax.Array, name: str) -> jax.Array:
    """Refuse a matrix that is not symmetric up to rounding; return its symmetric part."""
    asym = jnp.max(jnp.abs(matrix - matrix.T))
    tol = symmetry_tolerance(matrix)
    if is_traced(asym):
        matrix = eqx.error_if(
            matrix, asym > tol, f"`{name}` is not symmetric (beyond rounding error)."
        )
    elif float(asym) > float(tol):
        raise ValueError(
            f"`{name}` must be symmetric: the largest |M - M.T| entry is {float(asym):.3g}, "
            f"above the rounding tolerance {float(tol):.3g} (sqrt(eps) * max|M|)."
        )
    return (matrix + matrix.T) / 2


def check_int(function: str, name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{function}: `{name}` must be an integer, got {type(value).__name__} {value!r}."
        )
    if value < minimum:
        raise ValueError(f"{function}: `{name}` must be >= {minimum}, got {value}.")
    return int(value)


def check_real(function: str, name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{function}: `{name}` must be a number, got {type(value).__name__}.")
    if not (math.isfinite(value) and low <= value < high):
        raise ValueError(f"{function}: `{name}` must be in [{low}, {high}), got {value!r}.")
    return float(value)
