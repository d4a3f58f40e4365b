"""Argument checks of zdx-batching's public functions: clear errors, named arguments.

The generic checks (a callable, a flag) are ``zdx_base.checks``; what has a meaning only
here (``nbatches`` against the number of parameters, memory sizes, the leaves that
derivatives are taken with respect to) is checked in this module.
"""

from __future__ import annotations

import numbers
import re
from typing import Any

import jax
import numpy as np

from zdx_base import checks

_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_MEMORY_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def check_callable(name: str, f: Any) -> None:
    """Raise a ``TypeError`` unless ``f`` can be called."""
    checks.check_callable(name, "f", f, expected="a callable f(x)")


def check_flag(name: str, argument: str, value: Any) -> None:
    """Raise a ``TypeError`` unless ``value`` is a bool."""
    checks.check_bool(name, argument, value)


def check_nbatches(name: str, nbatches: Any, n: int | None) -> int | None:
    """Return ``nbatches`` as an int in ``[1, n]`` (or ``None``: left to the library),
    or raise a clear error (``n=None``: not yet known, no upper bound)."""
    if nbatches is None:
        return None
    if isinstance(nbatches, (bool, np.bool_)) or not isinstance(nbatches, numbers.Integral):
        raise TypeError(
            f"{name}: nbatches must be a positive integer or None (chosen by the library), "
            f"got {nbatches!r} of type {type(nbatches).__name__}."
        )
    nbatches = int(nbatches)
    if nbatches < 1:
        raise ValueError(
            f"{name}: nbatches must be at least 1, got nbatches={nbatches}. Use "
            "nbatches=1 for a single block of columns, or None to let the library choose."
        )
    if n is not None and nbatches > n:
        raise ValueError(
            f"{name}: nbatches={nbatches} is larger than the number of parameters "
            f"n={n}; choose 1 <= nbatches <= {n}."
        )
    return nbatches


def parse_memory(name: str, max_memory: Any) -> int | None:
    """Turn ``max_memory`` (bytes, or a string such as ``"2GB"``) into bytes.

    Units: ``B``, ``kB``/``MB``/``GB``/``TB`` (powers of 1000) and
    ``KiB``/``MiB``/``GiB``/``TiB`` (powers of 1024); case does not matter.
    """
    if max_memory is None:
        return None
    expected = 'a positive number of bytes or a string such as "2GB" or "512MiB"'
    if isinstance(max_memory, (bool, np.bool_)):
        raise TypeError(f"{name}: max_memory must be {expected}, got {max_memory!r}.")
    if isinstance(max_memory, numbers.Real):
        value = float(max_memory)
    elif isinstance(max_memory, str):
        match = _MEMORY_PATTERN.match(max_memory)
        unit = match.group(2).lower() if match else None
        if match is None or (unit or "b") not in _UNITS:
            raise ValueError(
                f"{name}: max_memory={max_memory!r} is not understood; expected {expected} "
                f"(units: B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)."
            )
        value = float(match.group(1)) * _UNITS[unit or "b"]
    else:
        raise TypeError(
            f"{name}: max_memory must be {expected}, got {max_memory!r} "
            f"of type {type(max_memory).__name__}."
        )
    if not np.isfinite(value) or value < 1:
        raise ValueError(f"{name}: max_memory must be {expected}, got {max_memory!r}.")
    return int(value)


def _is_float_array(leaf: Any) -> bool:
    if type(leaf) is float:
        return True
    dtype = getattr(leaf, "dtype", None)
    return (
        dtype is not None
        and isinstance(leaf, (np.ndarray, jax.Array, np.generic))
        and (getattr(dtype, "kind", None) == "f" or np.issubdtype(dtype, np.floating))
    )


def check_parameters(name: str, x: Any) -> tuple[list, Any]:
    """Flatten ``x`` and check that every leaf is a real floating-point array or float.

    Returns the leaves and the tree definition; raises ``TypeError`` naming the path of
    the first leaf that derivatives cannot be taken with respect to.
    """
    leaves, treedef = jax.tree_util.tree_flatten(x)
    if leaves and all(_is_float_array(leaf) for leaf in leaves):  # the usual case, fast
        return leaves, treedef
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(x)
    leaves = []
    for path, leaf in with_paths:
        where = jax.tree_util.keystr(path) or "(the root)"
        if isinstance(leaf, (bool, np.bool_)) or isinstance(leaf, numbers.Integral):
            raise TypeError(
                f"{name}: x has an integer leaf at {where} (value {leaf!r}); derivatives "
                "need floating-point leaves. Write it as a float (e.g. 3.0), or keep it out "
                "of x (equinox.partition(x, equinox.is_inexact_array) separates the "
                "parameters from the rest)."
            )
        if isinstance(leaf, float):
            leaves.append(leaf)
            continue
        if isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
            dtype = np.dtype(leaf.dtype)
            if not np.issubdtype(dtype, np.floating):
                raise TypeError(
                    f"{name}: x has a leaf of dtype {dtype} at {where} (shape "
                    f"{tuple(np.shape(leaf))}); derivatives need real floating-point "
                    "leaves. Cast it with jnp.asarray(leaf, float), or keep it out of x "
                    "(equinox.partition(x, equinox.is_inexact_array) separates the "
                    "parameters from the rest)."
                )
            leaves.append(leaf)
            continue
        raise TypeError(
            f"{name}: x has a leaf of type {type(leaf).__name__} at {where} ({leaf!r:.60}); "
            "derivatives need floating-point arrays or floats. Keep other objects out of "
            "x (equinox.partition(x, equinox.is_inexact_array) separates them), or mark "
            "them static."
        )
    if not leaves:
        raise ValueError(f"{name}: x has no parameters (it flattens to no leaves): got {x!r:.80}.")
    return leaves, treedef
