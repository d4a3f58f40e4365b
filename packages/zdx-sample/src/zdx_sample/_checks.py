"""Input checks shared by the estimators: clear errors naming the bad argument."""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp


def check_callable(fn: Any, name: str) -> None:
    """Raise a ``TypeError`` unless ``fn`` is callable."""
    if not callable(fn):
        raise TypeError(
            f"`{name}` must be a function `params -> scalar log-likelihood`, got "
            f"{type(fn).__name__} {fn!r}."
        )


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """The value as an ``int``, or a ``ValueError`` if it is not an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_positive_float(value: Any, name: str, *, allow_none: bool = False) -> float | None:
    """The value as a ``float``, or a ``ValueError`` if it is not a finite number > 0."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a positive number, got {value!r}.")
    value = float(value)
    if not (value > 0 and value < float("inf")):
        raise ValueError(f"`{name}` must be a finite positive number, got {value!r}.")
    return value


def as_key(key: Any, name: str = "key") -> jax.Array:
    """A JAX PRNG key from a key (typed or raw ``uint32[2]``), an ``int`` seed, or None (seed 0)."""
    if key is None:
        return jax.random.key(0)
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if isinstance(key, jax.Array):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
            return key
        if key.dtype == jnp.uint32 and key.shape == (2,):
            return jax.random.wrap_key_data(key)
    raise TypeError(
        f"`{name}` must be a JAX PRNG key (jax.random.key(0)), an int seed or None, got {key!r}."
    )


def scalar_value(value: Any, what: str) -> jax.Array:
    """``value`` as a real floating-point scalar array, or a clear error saying what it was."""
    arr = jnp.asarray(value)
    if arr.shape != ():
        raise ValueError(f"{what} must return a scalar, got an array of shape {arr.shape}.")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(f"{what} must return a real floating-point scalar, got dtype {arr.dtype}.")
    return arr
