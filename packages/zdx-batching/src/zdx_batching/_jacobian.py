"""Batched Jacobians of functions of pytrees."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from ._columns import JacobianColumns
from ._engine import matrix


def jacobian(
    f: Callable[[Any], Any],
    x: Any,
    nbatches: int | None = None,
    jit: bool = True,
    checkpoint: bool = False,
    *,
    args: Any = None,
    max_memory: int | str | None = None,
    progress: bool = False,
) -> tuple[jax.Array, Callable[[Any], Any]]:
    """The Jacobian of ``f`` at ``x``, computed ``ceil(n / nbatches)`` columns at a time.

    Column ``k`` is the forward-mode product ``J e_k``; ``f`` is linearised once and the
    products of a block are vmapped, every block inside one compiled program. The program
    is cached: calling again with the same function (or a new function with the same code
    and captures, see the package README) and the same shapes neither traces nor compiles.

    Parameters
    ----------
    f
        A function of ``x`` (or of ``x, args``) returning one real floating-point array
        of any shape.
    x, nbatches, jit, checkpoint, args, max_memory, progress
        As in :func:`hessian`.

    Returns
    -------
    J
        An array of shape ``(*f(x).shape, n)``, equal to ``jax.jacfwd`` of ``f`` on the
        flat parameters.
    unflatten
        Maps a flat vector of ``n`` numbers back to the structure of ``x``.

    Raises
    ------
    TypeError, ValueError
        As in :func:`hessian`, except that ``f`` may return an array of any shape.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> x = {"a": jnp.array([1.0, 2.0]), "b": 3.0}
    >>> J, unflatten = jacobian(lambda p: p["a"] * p["b"], x, nbatches=2)
    >>> J.shape
    (2, 3)
    """
    return matrix(JacobianColumns(), f, x, nbatches, jit, checkpoint, args, max_memory, progress)
