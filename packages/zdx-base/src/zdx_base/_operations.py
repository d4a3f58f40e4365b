"""``get``, ``set`` and arithmetic on the leaves of any pytree, addressed by path."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ._paths import PathLike, flatten_paths, is_single_path, path_keys, resolve

MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "<missing>"})()
"""Marks an argument that was not given (``None`` is a legitimate value for ``set``)."""


def _float_leaf(leaf: Any, path: PathLike) -> Any:
    """One leaf as a strongly typed array of JAX's default float (complex) dtype."""
    dtype = getattr(leaf, "dtype", None)
    is_complex = isinstance(leaf, complex) or (
        dtype is not None and jnp.issubdtype(dtype, jnp.complexfloating)
    )
    try:
        return jnp.asarray(leaf, dtype=complex if is_complex else float)
    except (TypeError, ValueError) as err:
        raise type(err)(
            f"get(): the value at {path!r} is a {type(leaf).__name__} ({leaf!r:.60}), which "
            "cannot become a float array; pass to_array=False to get it unchanged."
        ) from err


def _to_array(value: Any, path: PathLike) -> Any:
    """Every leaf of ``value`` as a float array, as zodiax 0.5 returns them."""
    return jax.tree.map(lambda leaf: _float_leaf(leaf, path), value)


def get(tree: Any, paths: Any, as_dict: bool = False, to_array: bool = True) -> Any:
    """The value(s) that ``paths`` name in ``tree``.

    Args:
        tree: any pytree: dicts, lists, tuples, equinox modules, objects of other libraries.
        paths: one path (``"a.b.c"`` or a :class:`Path`), or a list/tuple of paths, nested
            lists allowed.
        as_dict: return ``{path: value}`` instead of a value or a list of values.
        to_array: every leaf of the value comes back as a strongly typed array of JAX's
            default float dtype (float64 under ``jax_enable_x64``, whatever the stored
            dtype; complex leaves as the default complex dtype); a sub-tree keeps its
            structure with its leaves converted; ``None`` stays ``None``. When false,
            values come back exactly as stored.

    Returns:
        One value for one path (also when given as a one-element list), a list of values
        for several paths (in the order given, nested lists flattened), or a dict keyed by
        path when ``as_dict`` is true.

    Raises:
        KeyError: when a path does not exist, naming the path, the failing step and what
            was available there.
        TypeError: when ``paths`` is not a path or a list of paths, or a leaf cannot be
            made an array (``to_array=True``; an arbitrary object).
        ValueError: when a leaf is a string and ``to_array`` is true.

    >>> import zdx_base
    >>> tree = {"position": {"blue": 1.0, "red": 2.0}, "layers": [3.0]}
    >>> [float(v) for v in zdx_base.get(tree, ["position.red", "layers.0"])]
    [2.0, 3.0]
    """
    flat = flatten_paths(paths)
    values = [resolve(tree, p) for p in flat]
    if to_array:
        values = [_to_array(v, p) for v, p in zip(values, flat)]
    if as_dict:
        return dict(zip(flat, values))
    if len(values) == 1:  # as zodiax 0.5: a one-path list gives the value itself
        return values[0]
    return values


def _pair_up(operation: str, paths: Any, values: Any) -> list[tuple[PathLike, Any]]:
    """Pair each path with its value, group by group, as zodiax 0.5 does.

    A group of paths (a list or tuple) takes a list of values of the same length (one per
    entry, recursively), a one-element list (its value for every entry) or any other value
    (that value for every entry).
    """
    if is_single_path(paths):
        return [(paths, values)]
    if not isinstance(paths, (list, tuple)):
        flatten_paths(paths)  # raises the TypeError that names what a path may be
    if isinstance(values, (list, tuple)):
        if len(values) == len(paths):
            groups = zip(paths, values)
        elif len(values) == 1:
            groups = ((p, values[0]) for p in paths)
        else:
            raise ValueError(
                f"{operation}() got {len(paths)} paths {list(paths)!r} but {len(values)} "
                "values; give one value per path, one value in a list, or a single value "
                "for all of them."
            )
    else:
        groups = ((p, values) for p in paths)
    return [pair for p, v in groups for pair in _pair_up(operation, p, v)]


def _once_each(pairs: list[tuple[PathLike, Any]]) -> list[tuple[PathLike, Any]]:
    """One update per path: a path named again keeps its first place and its last value."""
    latest: dict[tuple[Any, ...], tuple[PathLike, Any]] = {}
    for path, value in pairs:
        key = path_keys(path)
        latest[key] = (latest[key][0] if key in latest else path, value)
    return list(latest.values())


def _check_disjoint(operation: str, pairs: list[tuple[PathLike, Any]]) -> None:
    """Raise ``ValueError`` if one path names a node inside another's (``"a"`` and
    ``"a.b"``): one call replaces every node at once, as zodiax 0.5 does."""
    named = sorted(
        ((tuple(str(k) for k in path_keys(path)), path) for path, _ in pairs),
        key=lambda item: item[0],
    )  # a path sorts just before the paths inside it
    for (outer_keys, outer), (inner_keys, inner) in itertools.pairwise(named):
        if len(inner_keys) > len(outer_keys) and inner_keys[: len(outer_keys)] == outer_keys:
            raise ValueError(
                f"{operation}(): the paths {outer!r} and {inner!r} overlap ({inner!r} lies "
                f"inside {outer!r}), and one call cannot replace a node and a part of it; "
                "update them in two calls."
            )


def _all_pairs(operation: str, paths: Any, values: Any, kwargs: dict) -> list[tuple[PathLike, Any]]:
    """Turn every accepted input style into a list of ``(path, value)`` pairs, in order.

    Styles: ``(path, value)``; ``(paths, values)`` with one value per path or group, one
    value in a list, or one value for all; ``({path: value, (path, path): value})``; keyword
    arguments ``(a=1, **{"b.c": 2})``.
    """
    if kwargs:
        if paths is not MISSING or values is not MISSING:
            raise TypeError(
                f"{operation}() got both positional paths ({paths!r}) and keyword updates "
                f"({', '.join(kwargs)}); use one style: {operation}('a.b', value), "
                f"{operation}({{'a.b': value}}) or {operation}(**{{'a.b': value}})."
            )
        return list(kwargs.items())
    if paths is MISSING:
        if values is not MISSING:
            raise TypeError(f"{operation}() got values but no paths.")
        return []
    if isinstance(paths, Mapping):
        if values is not MISSING:
            raise TypeError(
                f"{operation}() received both a mapping of paths to values and separate "
                f"values {values!r}; give the mapping alone."
            )
        return [(p, value) for key, value in paths.items() for p in flatten_paths(key)]
    if values is MISSING:
        flatten_paths(paths)
        raise TypeError(
            f"{operation}() got the paths {paths!r} but no value; pass one value per path, "
            f"or one value for all (use None explicitly to store None)."
        )
    return _pair_up(operation, paths, values)


def _is_none(x: Any) -> bool:
    return x is None


def _replace(tree: Any, path: PathLike, value: Any) -> Any:
    """``tree`` with ``value`` at ``path``, which exists (``_apply`` resolved it)."""
    try:
        return eqx.tree_at(lambda t: resolve(t, path), tree, value, is_leaf=_is_none)
    except ValueError as err:
        raise ValueError(
            f"Cannot set {path!r} in this {type(tree).__name__}: the value there is not "
            "stored in the tree (it is computed, e.g. by a property), so it cannot be "
            "replaced. Set the stored parameter it is computed from instead."
        ) from err


def _apply(
    operation: str,
    combine: Callable[[Any, Any], Any] | None,
    tree: Any,
    paths: Any,
    values: Any,
    kwargs: dict,
) -> Any:
    """The updates of ``tree``, in zodiax 0.5's order: every path must exist (``KeyError``)
    before any value is combined with its leaf; every pair is combined, a path named again
    included (its error is raised), and the last value for a path is the one kept; the
    paths must not overlap (``ValueError``)."""
    pairs = _all_pairs(operation, paths, values, kwargs)
    leaves = [resolve(tree, path) for path, _ in pairs]  # a clear KeyError, before equinox's
    if combine is not None:
        pairs = [(path, combine(leaf, value)) for (path, value), leaf in zip(pairs, leaves)]
    pairs = _once_each(pairs)
    _check_disjoint(operation, pairs)
    for path, value in pairs:
        tree = _replace(tree, path, value)
    return tree


def set(tree: Any, paths: Any = MISSING, values: Any = MISSING, /, **updates: Any) -> Any:
    """A copy of ``tree`` with the leaves (or sub-trees) named by ``paths`` replaced.

    Accepted styles, which all agree:

    - ``set(tree, "a.b", value)``;
    - ``set(tree, ["a", "b"], [1, 2])``: one value per path, or ``set(tree, ["a", "b"],
      0.0)`` (or ``[0.0]``): one value for all;
    - ``set(tree, [["a", "b"], "d.0"], [1, 2])``: one value per entry, where an entry is a
      path or a group of paths; a group takes one value for all its paths, or a list with
      one value per path (``[[1, 3], 2]``);
    - ``set(tree, {"a": 1, ("b", "c"): 0.0})``: a tuple key maps several paths to one value;
    - ``set(tree, a=1, **{"b.c": 2})``.

    A path named more than once is updated once, with the last value given for it. These
    are zodiax 0.5's rules. ``None`` is a legitimate value. Mixing styles is an error.

    Raises:
        KeyError: when a path does not exist (checked for every path before anything else).
        TypeError: when styles are mixed or no value is given.
        ValueError: when the number of values does not match the number of paths, or two
            paths overlap (``"a"`` and ``"a.b"``).

    >>> import zdx_base
    >>> zdx_base.set({"a": {"b": 1.0}, "c": 2.0}, "a.b", 5.0)
    {'a': {'b': 5.0}, 'c': 2.0}
    """
    return _apply("set", None, tree, paths, values, updates)


def add(tree: Any, paths: Any = MISSING, values: Any = MISSING, /, **updates: Any) -> Any:
    """A copy of ``tree`` with ``values`` added to the leaves named by ``paths``.

    Takes the same input styles as :func:`set`.
    """
    return _apply("add", lambda leaf, v: leaf + v, tree, paths, values, updates)


def multiply(tree: Any, paths: Any = MISSING, values: Any = MISSING, /, **updates: Any) -> Any:
    """A copy of ``tree`` with the leaves named by ``paths`` multiplied by ``values``.

    Takes the same input styles as :func:`set`.
    """
    return _apply("multiply", lambda leaf, v: leaf * v, tree, paths, values, updates)


def divide(tree: Any, paths: Any = MISSING, values: Any = MISSING, /, **updates: Any) -> Any:
    """A copy of ``tree`` with the leaves named by ``paths`` divided by ``values``.

    Takes the same input styles as :func:`set`.
    """
    return _apply("divide", lambda leaf, v: leaf / v, tree, paths, values, updates)


def power(tree: Any, paths: Any = MISSING, values: Any = MISSING, /, **updates: Any) -> Any:
    """A copy of ``tree`` with the leaves named by ``paths`` raised to the power ``values``.

    Takes the same input styles as :func:`set`.
    """
    return _apply("power", lambda leaf, v: leaf**v, tree, paths, values, updates)


def min(tree: Any, paths: Any = MISSING, values: Any = MISSING, /, **updates: Any) -> Any:
    """A copy of ``tree`` with each named leaf replaced by its elementwise minimum with ``values``.

    Takes the same input styles as :func:`set`.
    """
    return _apply("min", jnp.minimum, tree, paths, values, updates)


def max(tree: Any, paths: Any = MISSING, values: Any = MISSING, /, **updates: Any) -> Any:
    """A copy of ``tree`` with each named leaf replaced by its elementwise maximum with ``values``.

    Takes the same input styles as :func:`set`.
    """
    return _apply("max", jnp.maximum, tree, paths, values, updates)
