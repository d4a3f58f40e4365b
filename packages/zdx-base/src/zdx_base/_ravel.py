"""Flatten a pytree into one vector, with a name for every scalar."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as onp
from jax.flatten_util import ravel_pytree

from ._paths import iter_leaf_paths


class Raveled(NamedTuple):
    """What :func:`ravel` returns: unpack it as ``flat, unravel, names = ravel(tree)``."""

    flat: jax.Array
    """All scalars of the tree in one vector, in ``jax.flatten_util.ravel_pytree`` order."""
    unravel: Callable[[jax.Array], Any]
    """Rebuilds a tree of the same structure from a vector like ``flat``."""
    names: tuple[str, ...]
    """One name per entry of ``flat``: ``"position.blue[0]"``, ``"wfe[3]"``, ``"flux"``."""


def _index_suffix(index: tuple[int, ...]) -> str:
    return "[" + ",".join(str(i) for i in index) + "]" if index else ""


def scalar_names(tree: Any) -> tuple[str, ...]:
    """A name for every scalar of ``tree``, in ``jax.flatten_util.ravel_pytree`` order.

    A leaf's name is its path (dict keys, attribute names and list indices joined by dots);
    scalars inside an array leaf add their index: ``"position.blue[0]"``, ``"cov[1,2]"``.

    Raises:
        TypeError: when a leaf is not numeric (a string, an object), naming the leaf.

    >>> import jax.numpy as jnp, zdx_base
    >>> zdx_base.scalar_names({"flux": 1.0, "position": {"blue": jnp.zeros(2)}})
    ('flux', 'position.blue[0]', 'position.blue[1]')
    """
    names: list[str] = []
    for keypath, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = ".".join(iter_leaf_paths(keypath))
        shape = jnp.shape(leaf) if _is_numeric(leaf) else None
        if shape is None:
            raise TypeError(
                f"Leaf {name!r} is a {type(leaf).__name__}, not a number or an array; only "
                "numeric leaves can be flattened into a parameter vector (filter the tree "
                "first, e.g. with equinox.filter(tree, equinox.is_inexact_array))."
            )
        names.extend(name + _index_suffix(i) for i in onp.ndindex(*shape))
    return tuple(names)


def _is_numeric(leaf: Any) -> bool:
    if isinstance(leaf, (bool, int, float, complex, onp.number, onp.bool_)):
        return True
    return hasattr(leaf, "shape") and hasattr(leaf, "dtype")


def ravel(tree: Any) -> Raveled:
    """Flatten ``tree`` into one vector, the function rebuilding it, and scalar names.

    The order is ``jax.flatten_util.ravel_pytree``'s, so the vector, a Hessian or a
    covariance over it, and the names all line up.

    Returns:
        ``Raveled(flat, unravel, names)``.

    Raises:
        TypeError: when a leaf is not numeric.

    >>> import jax.numpy as jnp, zdx_base
    >>> flat, unravel, names = zdx_base.ravel({"wfe": jnp.zeros(2), "flux": 3.0})
    >>> names
    ('flux', 'wfe[0]', 'wfe[1]')
    >>> float(unravel(flat)["flux"])
    3.0
    """
    names = scalar_names(tree)
    flat, unravel = ravel_pytree(tree)
    return Raveled(flat, unravel, names)
