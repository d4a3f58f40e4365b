"""The zodiax 0.4 inputs of the deprecated names: parameter paths, schedule steps, shapes.

zodiax 0.4 took a path (``"a.b.c"``, a ``zdx_base.Path``) or a nested list of them where
the current API takes one path or a flat list; these helpers read that form and check it
as zodiax 0.4 did, with messages that name the deprecated function.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp

import zdx_base


def flat_paths(parameters: Any, function: str) -> list[Any]:
    """The paths in ``parameters`` (a path or a nested list of paths), in order."""
    if isinstance(parameters, (str, zdx_base.Path)):
        return [parameters]
    if isinstance(parameters, (list, tuple)):
        return [path for entry in parameters for path in flat_paths(entry, function)]
    raise TypeError(
        f"{function}(): `parameters` must be a path like 'a.b', a zdx_base.Path, or a "
        f"(nested) list of those; got {parameters!r} of type {type(parameters).__name__}."
    )


def keys(path: Any) -> tuple:
    """The keys of one path: a ``zdx_base.Path``'s own, or a string's split on dots."""
    return tuple(path) if isinstance(path, zdx_base.Path) else tuple(path.split("."))


def refuse_repeats(paths: list[Any], function: str) -> None:
    """Raise ``ValueError`` naming the first path that ``paths`` gives twice (in any form)."""
    seen: set = set()
    for path in paths:
        if keys(path) in seen:
            raise ValueError(
                f"{function}(): the path {path!r} is given more than once in `parameters`; "
                "give each parameter once."
            )
        seen.add(keys(path))


def flags(pytree: Any, paths: list[Any], at_paths: bool) -> Any:
    """``pytree`` with ``at_paths`` at ``paths`` (one per named sub-tree), else its negation."""
    return zdx_base.set(jax.tree.map(lambda _: not at_paths, pytree), paths, at_paths)


def is_numeric(leaf: Any) -> bool:
    """A number (``bool`` included), or an array or numpy scalar of booleans or numbers."""
    if isinstance(leaf, numbers.Number):
        return True
    dtype = getattr(leaf, "dtype", None)
    return (
        dtype is not None
        and hasattr(leaf, "shape")
        and bool(jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_))
    )


def as_float(leaf: Any) -> Any:
    """A numeric leaf as a jax array that keeps a float (complex) dtype and makes any other
    numeric dtype the default float; a leaf that is not numeric comes back unchanged."""
    if not is_numeric(leaf):
        return leaf
    if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.inexact):
        return jnp.asarray(leaf)
    return jnp.asarray(leaf, dtype=complex if isinstance(leaf, complex) else float)


def set_float_arrays(pytree: Any, paths: list[Any], function: str) -> Any:
    """What ``zodiax.set_array`` does at ``paths``, its errors naming ``function``."""
    values = [zdx_base.get(pytree, path, to_array=False) for path in paths]
    for path, value in zip(paths, values):
        is_leaf = value is not None and jax.tree_util.treedef_is_leaf(jax.tree.structure(value))
        if is_leaf and not is_numeric(value):
            raise TypeError(
                f"{function}(): the parameter {path!r} is a {type(value).__name__}, not a "
                "number or an array, so it cannot be made a float array."
            )
    return zdx_base.set(pytree, paths, [jax.tree.map(as_float, value) for value in values])


def is_step(value: Any) -> bool:
    """An integer (not a ``bool``) ``>= 0``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0


def is_multiplier(value: Any) -> bool:
    """A finite real number (not a ``bool``) ``>= 0``."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    return real and math.isfinite(value) and value >= 0


def dotted(path: Any) -> str:
    """A path as the dotted name that ``zdx_opt.map_optimisers`` matches."""
    return ".".join(str(key) for key in keys(path))


def shift_shape(path: Any, value: Any, shape_dict: dict, function: str) -> tuple:
    """The shape of the shift added to ``value``: its own, or ``shape_dict[path]``."""
    if path not in shape_dict:
        return tuple(jnp.shape(value))
    shape = shape_dict[path]
    shape = (shape,) if isinstance(shape, numbers.Integral) else shape
    ok = isinstance(shape, (tuple, list)) and all(is_step(n) and n >= 1 for n in shape)
    try:
        ok = ok and jnp.broadcast_shapes(jnp.shape(value), tuple(shape)) == jnp.shape(value)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{function}(): shape_dict[{path!r}] = {shape!r} does not broadcast onto the "
            f"parameter's shape {tuple(jnp.shape(value))}; give a tuple of positive integers "
            "that broadcasting stretches to it, such as (1,) for one shift of every element."
        )
    return tuple(int(n) for n in shape)
