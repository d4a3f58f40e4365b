"""Argument checks shared by every package of the family.

One convention everywhere (see CONTRIBUTING.md):

- a value of the wrong *type* raises ``TypeError``, a value of the right type that is out of
  range raises ``ValueError``;
- every message starts with the public function and the argument, ``"fn: name must be ...,
  got ..."``, says what was expected and shows what was given;
- each check returns the value in the form the caller goes on with (an ``int``, a
  ``float``, an array), so that a call site is one line.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def describe(value: Any, width: int = 60) -> str:
    """``value``'s type and a shortened ``repr``, for the ``got ...`` part of a message."""
    text = repr(value)
    if len(text) > width:
        text = text[: width - 3] + "..."
    return f"{type(value).__name__} {text}"


def is_traced(*values: Any) -> bool:
    """Whether any of ``values`` is a JAX tracer (its value is known only when the program runs)."""
    return any(isinstance(v, jax.core.Tracer) for v in values)


def fail_if(x: Any, pred: Any, message: str, error: type[Exception] = ValueError) -> Any:
    """Return ``x``, or raise ``error(message)`` where ``pred`` is true.

    A concrete ``pred`` raises at once; a traced one goes through ``equinox.error_if``, so
    the compiled program raises when it runs.
    """
    if is_traced(pred):
        return eqx.error_if(x, pred, message)
    if bool(pred):
        raise error(message)
    return x


def check_callable(fn: str, name: str, value: Any, expected: str = "a callable") -> Callable:
    """Return ``value`` if it can be called; raise ``TypeError`` otherwise.

    ``expected`` describes the callable wanted, e.g. ``"a function params -> scalar"``.
    """
    if not callable(value):
        raise TypeError(f"{fn}: {name} must be {expected}, got {describe(value)}.")
    return value


def check_bool(fn: str, name: str, value: Any) -> bool:
    """Return ``value`` as a ``bool``; raise ``TypeError`` unless it is ``True`` or ``False``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be True or False, got {describe(value)}.")
    return bool(value)


def _range_text(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def _is_scalar_array(value: Any, *kinds: type) -> bool:
    """Whether ``value`` is a concrete 0-d NumPy or JAX array of one of the dtype ``kinds``."""
    return (
        isinstance(value, (np.ndarray, jax.Array))
        and value.shape == ()
        and any(np.issubdtype(value.dtype, kind) for kind in kinds)
        and not is_traced(value)
    )


def check_int(
    fn: str,
    name: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    allow_none: bool = False,
) -> int | None:
    """Return ``value`` as an ``int`` in ``[minimum, maximum]``.

    Python and NumPy integers are accepted (and 0-d integer arrays); ``bool`` is not.

    Raises
    ------
    TypeError
        If ``value`` is not an integer (or ``None`` when ``allow_none``).
    ValueError
        If it lies outside the range.
    """
    if value is None and allow_none:
        return None
    wanted = "an integer" + _range_text(minimum, maximum) + (" or None" if allow_none else "")
    integral = isinstance(value, numbers.Integral) or _is_scalar_array(value, np.integer)
    if isinstance(value, (bool, np.bool_)) or not integral:
        raise TypeError(f"{fn}: {name} must be {wanted}, got {describe(value)}.")
    number = int(value)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ValueError(f"{fn}: {name} must be {wanted}, got {name}={number}.")
    return number


def check_number(
    fn: str,
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
    allow_none: bool = False,
) -> float | None:
    """Return ``value`` as a finite ``float`` within the bounds.

    ``positive=True`` asks for ``value > 0`` (the usual case of a step size, a scale or a
    tolerance); ``minimum`` and ``maximum`` are inclusive.

    Raises
    ------
    TypeError
        If ``value`` is not a real number (``bool`` is not one), or ``None`` when not allowed.
    ValueError
        If it is NaN or infinite, or outside the bounds.
    """
    if value is None and allow_none:
        return None
    if positive:
        wanted = "a finite number > 0" + (f" and <= {maximum}" if maximum is not None else "")
    else:
        wanted = "a finite number" + _range_text(minimum, maximum)
    if allow_none:
        wanted += " or None"
    real = isinstance(value, numbers.Real) or _is_scalar_array(value, np.floating, np.integer)
    if isinstance(value, (bool, np.bool_)) or not real:
        raise TypeError(f"{fn}: {name} must be {wanted}, got {describe(value)}.")
    number = float(value)
    if (
        not math.isfinite(number)
        or (positive and not number > 0)
        or (minimum is not None and number < minimum)
        or (maximum is not None and number > maximum)
    ):
        raise ValueError(f"{fn}: {name} must be {wanted}, got {name}={number!r}.")
    return number


def check_choice(fn: str, name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``; raise ``ValueError`` listing them otherwise."""
    choices = tuple(choices)
    try:
        known = value in choices
    except TypeError:  # an unhashable or incomparable value
        known = False
    if not known:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{fn}: {name} must be one of {listed}, got {describe(value)}.")
    return value


def as_key(fn: str, name: str, key: Any) -> jax.Array:
    """A typed JAX PRNG key from a key (typed, or raw ``uint32[2]``), an ``int`` seed or None.

    ``None`` means seed 0. Raises ``TypeError`` for anything else.
    """
    if key is None:
        return jax.random.key(0)
    if isinstance(key, numbers.Integral) and not isinstance(key, (bool, np.bool_)):
        return jax.random.key(int(key))
    if isinstance(key, jax.Array):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
            return key
        if key.dtype == jnp.uint32 and key.shape == (2,):
            return jax.random.wrap_key_data(key)
    raise TypeError(
        f"{fn}: {name} must be a JAX PRNG key (jax.random.key(0)), an int seed or None, "
        f"got {describe(key)}."
    )


def as_array(fn: str, name: str, value: Any) -> jax.Array:
    """``value`` as a JAX array; ``TypeError`` if it cannot be one."""
    try:
        return jnp.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{fn}: {name} must be an array or a number, got {describe(value)}."
        ) from error
