"""Checks with a statistical meaning: broadcast data, masks, counts and degrees of freedom.

The generic checks (types, numbers, arrays) are ``zdx_base.checks``; what is here is built on
them and says what the statistics need (data that broadcast together, a count of data points
or parameters, positive degrees of freedom).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from zdx_base.checks import as_array, describe, is_traced


def broadcast_shape(fn: str, names: Sequence[str], arrays: Sequence[Array]) -> tuple[int, ...]:
    """The common broadcast shape of ``arrays``, or a ``ValueError`` listing every shape."""
    shapes = [tuple(a.shape) for a in arrays]
    try:
        return tuple(jnp.broadcast_shapes(*shapes))
    except ValueError:
        listed = ", ".join(f"{n} (shape {s})" for n, s in zip(names, shapes))
        raise ValueError(
            f"{fn}: the shapes of {listed} cannot be broadcast together; "
            "give arrays of the same shape, or shapes that broadcast under numpy rules."
        ) from None


def float_arrays(fn: str, **named: Any) -> tuple[Array, ...]:
    """Convert the named arguments to arrays of one floating dtype and one broadcast shape.

    The dtype is the promoted dtype of the inputs, raised to the default floating dtype
    when every input is an integer (so float32 inputs stay float32).
    """
    names = list(named)
    arrays = [as_array(fn, n, v) for n, v in named.items()]
    dtype = jnp.result_type(*arrays, float)
    shape = broadcast_shape(fn, names, arrays)
    return tuple(jnp.broadcast_to(a.astype(dtype), shape) for a in arrays)


def bool_mask(fn: str, mask: Any, shape: tuple[int, ...]) -> Array:
    """A user mask as a boolean array of ``shape``; it must be boolean and broadcast to it."""
    array = as_array(fn, "mask", mask)
    if array.dtype != jnp.bool_:
        raise TypeError(
            f"{fn}: mask must be a boolean array (True where a pixel is used), "
            f"got dtype {array.dtype}."
        )
    try:
        return jnp.broadcast_to(array, shape)
    except ValueError:
        raise ValueError(
            f"{fn}: mask has shape {tuple(array.shape)}, which does not broadcast to the "
            f"shape of the data, {shape}."
        ) from None


def square_matrix(fn: str, name: str, value: Any, size: int | None = None) -> Array:
    """``value`` as a square 2-D array (of side ``size``, the length of the data, if given).

    Unlike ``zdx_base.checks.as_square_matrix`` it keeps the dtype and accepts a ``(0, 0)``
    matrix, as zodiax 0.5's statistics did. Raises ``ValueError`` for any other shape.
    """
    array = as_array(fn, name, value)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(
            f"{fn}: {name} must be a square matrix of shape (n, n), got shape {tuple(array.shape)}."
        )
    if size is not None and array.shape[0] != size:
        raise ValueError(
            f"{fn}: {name} has shape {tuple(array.shape)}, but the data have {size} "
            f"values along their last axis; expected shape ({size}, {size})."
        )
    return array


def count_scalars(fn: str, name: str, tree: Any) -> int:
    """The number of scalars in every leaf of ``tree`` (an array counts its size).

    Raises ``TypeError`` naming the path of a leaf that is neither an array nor a number.
    """
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    total = 0
    for path, leaf in leaves:
        shape = getattr(leaf, "shape", None)
        if shape is not None:
            total += math.prod(shape)
        elif isinstance(leaf, (bool, int, float, complex)):
            total += 1
        else:
            raise TypeError(
                f"{fn}: every leaf of {name} must be an array or a number, got "
                f"{describe(leaf)} at {name}{jax.tree_util.keystr(path)}; remove such "
                "leaves first, e.g. with equinox.filter(tree, equinox.is_array)."
            )
    return total


def _is_integer_scalar(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    dtype = getattr(value, "dtype", None)
    return (
        dtype is not None
        and getattr(value, "shape", None) == ()
        and jnp.issubdtype(dtype, jnp.integer)
    )


def count(fn: str, name: str, value: Any) -> int | Array:
    """A count given either directly (an integer) or as a pytree whose scalars are counted.

    An integer (a Python ``int`` or a 0-d integer array, which may be traced) is taken as
    the count itself; anything else is a pytree and its scalars are counted. A concrete
    negative count raises ``ValueError``; a bool raises ``TypeError``.
    """
    if isinstance(value, bool):
        raise TypeError(
            f"{fn}: {name} must be an integer count or a pytree of arrays, got bool {value!r}."
        )
    if _is_integer_scalar(value):
        if not is_traced(value) and int(value) < 0:
            raise ValueError(f"{fn}: {name} must be a count >= 0, got {name}={int(value)}.")
        return value if is_traced(value) else int(value)
    return count_scalars(fn, name, value)


def check_dof(fn: str, ddof: Any, detail: str = "") -> Any:
    """Check concrete degrees of freedom are a positive scalar; traced ones pass through.

    ``detail`` is appended to the message (e.g. how the value was obtained).
    """
    if is_traced(ddof):
        if jnp.ndim(ddof) != 0:
            raise ValueError(f"{fn}: ddof must be a scalar, got shape {tuple(jnp.shape(ddof))}.")
        return ddof
    if isinstance(ddof, bool):
        raise TypeError(f"{fn}: ddof must be a number, got bool {ddof!r}.")
    if isinstance(ddof, (int, float)):
        value = ddof
    elif getattr(ddof, "shape", None) is not None:
        # a concrete array (numpy, or a jax.Array computed outside jit)
        if tuple(ddof.shape) != ():
            raise ValueError(f"{fn}: ddof must be a scalar, got shape {tuple(ddof.shape)}.")
        value = ddof.item()
    else:
        raise TypeError(f"{fn}: ddof must be a number or a scalar array, got {describe(ddof)}.")
    if not value > 0:
        raise ValueError(
            f"{fn}: ddof must be positive (the number of data points minus the number of "
            f"parameters), got ddof={value!r}{detail}."
        )
    return ddof


def divide_by_dof(chi2: Array, ddof: Any) -> Array:
    """``chi2 / ddof``; where ``ddof`` is traced and not positive, NaN (it cannot raise)."""
    dof = jnp.asarray(ddof).astype(chi2.dtype)
    if is_traced(ddof):
        safe = jnp.where(dof > 0, dof, 1)
        return jnp.where(dof > 0, chi2 / safe, jnp.nan)
    return chi2 / dof
