"""Flat coordinates of a pytree of parameters, in ``jax.flatten_util.ravel_pytree`` order."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_parameters


class Layout(NamedTuple):
    """Where each leaf of ``x`` lives in the flat vector of its ``n`` scalars."""

    treedef: Any
    shapes: tuple
    dtypes: tuple
    sizes: tuple
    dtype: Any
    n: int

    def ravel(self, leaves: list) -> jax.Array:
        """Concatenate the leaves into one flat vector (traceable)."""
        parts = [jnp.ravel(jnp.asarray(leaf, self.dtype)) for leaf in leaves]
        return jnp.concatenate(parts) if len(parts) > 1 else parts[0]

    def unravel(self, flat: jax.Array) -> Any:
        """Split a flat vector back into leaves of the original shapes and dtypes."""
        out = []
        start = 0
        for shape, dtype, size in zip(self.shapes, self.dtypes, self.sizes):
            out.append(jnp.reshape(flat[start : start + size], shape).astype(dtype))
            start += size
        return jax.tree_util.tree_unflatten(self.treedef, out)


_LAYOUTS: dict = {}
_MAX_LAYOUTS = 1024


def layout_of(name: str, x: Any) -> tuple[Layout, list]:
    """Check ``x`` and describe its flat coordinates; also return its leaves.

    Layouts of arrays are remembered by structure, shapes and dtypes (a repeated call
    with new values of the same form reuses its layout).
    """
    leaves, treedef = check_parameters(name, x)
    try:
        signature = (treedef, *[(leaf.shape, leaf.dtype) for leaf in leaves])
    except AttributeError:  # a Python float among the leaves
        signature = None
    layout = None if signature is None else _LAYOUTS.get(signature)
    if layout is None:
        layout = _describe(name, x, leaves, treedef)
        if signature is not None:
            if len(_LAYOUTS) >= _MAX_LAYOUTS:
                _LAYOUTS.clear()
            _LAYOUTS[signature] = layout
    return layout, leaves


def _describe(name: str, x: Any, leaves: list, treedef: Any) -> Layout:
    shapes = tuple(tuple(np.shape(leaf)) for leaf in leaves)
    dtypes = tuple(_dtype(leaf) for leaf in leaves)
    sizes = tuple(math.prod(shape) for shape in shapes)
    n = sum(sizes)
    if n == 0:
        raise ValueError(f"{name}: x has no parameters (every leaf is empty): got {x!r:.80}.")
    dtype = dtypes[0] if len(set(dtypes)) == 1 else np.dtype(jnp.result_type(*leaves))
    return Layout(treedef, shapes, dtypes, sizes, dtype, n)


def _dtype(leaf: Any) -> np.dtype:
    if isinstance(leaf, float):
        return np.dtype(jnp.result_type(float))
    return np.dtype(leaf.dtype)


def flat_vector(name: str, layout: Layout, v: Any) -> tuple[jax.Array, bool]:
    """``v`` as a flat vector of ``n`` numbers; also whether it was given flat."""
    n = layout.n
    if isinstance(v, (jax.Array, np.ndarray)) and tuple(np.shape(v)) == (n,):
        leaves, given_flat = [v], True
    else:
        leaves, treedef = jax.tree_util.tree_flatten(v)
        shapes = tuple(tuple(np.shape(leaf)) for leaf in leaves)
        if treedef != layout.treedef or shapes != layout.shapes:
            raise ValueError(
                f"{name}: v must be a flat vector of shape ({n},) (the number of parameters) "
                f"or a pytree with the structure and leaf shapes of x {layout.shapes}; got "
                f"{v!r:.80}."
            )
        given_flat = False
    for leaf in leaves:
        dtype = np.dtype(jnp.result_type(leaf))
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"{name}: v must hold real floating-point numbers, got dtype {dtype}.")
    flat = leaves[0] if given_flat else layout.ravel(leaves)
    return jnp.asarray(flat, layout.dtype), given_flat


def make_unflatten(layout: Layout) -> Callable[[Any], Any]:
    """The ``unflatten`` function handed back to users: a flat vector to ``x``'s structure."""
    n = layout.n

    def unflatten(flat: Any) -> Any:
        """Map a flat vector of the ``n`` parameters back to the structure of ``x``.

        Parameters
        ----------
        flat
            An array of shape ``(n,)`` in ``ravel_pytree`` order (a row or column of the
            matrix, a gradient, a standard deviation...).

        Returns
        -------
        A pytree with the structure, shapes and dtypes of ``x``.
        """
        shape = tuple(np.shape(flat))
        if shape != (n,):
            raise ValueError(
                f"unflatten: expected a flat vector of shape ({n},) (the number of "
                f"parameters), got shape {shape}."
            )
        return layout.unravel(jnp.asarray(flat))

    return unflatten


def hessian_to_pytree(H: Any, x: Any) -> Any:
    """Turn a flat ``(n, n)`` matrix (w.r.t. ``ravel_pytree(x)``) into a pytree of pytrees.

    Parameters
    ----------
    H
        A matrix of shape ``(n, n)`` in the flat coordinates of ``x``, as returned by
        :func:`hessian` or :func:`fisher`.
    x
        The parameters the matrix was computed at (only the structure and the shapes of
        its leaves are used).

    Returns
    -------
    A pytree with ``x``'s structure whose every leaf is again a pytree with ``x``'s
    structure: the block ``H_tree[a][b]`` has shape ``a.shape + b.shape`` and holds the
    second derivatives with respect to leaves ``a`` and ``b``.

    Raises
    ------
    ValueError
        If ``H`` is not of shape ``(n, n)`` for the ``n`` scalars of ``x``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> x = {"a": jnp.zeros(2), "b": 1.0}
    >>> tree = hessian_to_pytree(jnp.eye(3), x)
    >>> tree["a"]["a"].shape, tree["a"]["b"].shape, tree["b"]["a"].shape
    ((2, 2), (2,), (2,))
    """
    layout, _ = layout_of("hessian_to_pytree", x)
    n = layout.n
    shape = tuple(np.shape(H))
    if shape != (n, n):
        raise ValueError(
            f"hessian_to_pytree: H has shape {shape}, but x flattens to n={n} parameters, "
            f"so H must have shape ({n}, {n}). Pass the same x that H was computed at."
        )
    H = jnp.asarray(H)
    starts = np.cumsum((0, *layout.sizes[:-1]))
    rows = []
    for start_i, size_i, shape_i in zip(starts, layout.sizes, layout.shapes):
        row = []
        for start_j, size_j, shape_j in zip(starts, layout.sizes, layout.shapes):
            block = H[start_i : start_i + size_i, start_j : start_j + size_j]
            row.append(jnp.reshape(block, shape_i + shape_j))
        rows.append(jax.tree_util.tree_unflatten(layout.treedef, row))
    return jax.tree_util.tree_unflatten(layout.treedef, rows)
