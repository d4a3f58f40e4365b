"""Batched Hessians, their diagonals, and Hessian-vector products of scalar functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from ._columns import DiagonalColumns, HessianColumns, HvpColumns
from ._engine import evaluate, matrix
from ._request import make_request


def hessian(
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
    """The Hessian of a scalar ``f`` at ``x``, computed ``ceil(n / nbatches)`` columns at a time.

    Column ``k`` is the forward-over-reverse product ``H e_k`` (``jax.jvp`` of
    ``jax.grad(f)``, linearised once); the products of a block are vmapped and every
    block runs inside one compiled program, spread over all of ``jax.devices()``. The
    program is cached: calling again with the same function (or a new function with the
    same code and captures, see the package README) and the same shapes neither traces
    nor compiles.

    Parameters
    ----------
    f
        A function of ``x`` (or of ``x, args``) returning a real scalar (e.g. a negative
        log-likelihood).
    x
        The point: any pytree (dict, list, tuple, ``equinox.Module``...) whose leaves are
        floating-point arrays or floats. Its ``n`` scalars are ordered as by
        ``jax.flatten_util.ravel_pytree``.
    nbatches
        How many blocks the ``n`` columns are split into (``1 <= nbatches <= n``; ``n``
        need not be a multiple). More blocks, less peak memory. ``None`` (the default)
        lets the library choose from the shapes of the program, the same way on every
        run: on one CPU device, blocks of four columns when each column makes values much
        larger than itself (they then stay in cache, often twice as fast), else every
        column at once, as ``jax.hessian``; elsewhere every column at once (one block per
        device). ``nbatches=1`` on one device is always every column at once.
    jit
        Compile (and cache) the whole computation. ``jit=False`` runs it op by op, for
        debugging; nothing is cached then.
    checkpoint
        Wrap ``f`` in ``jax.checkpoint``: recompute the forward pass instead of storing
        it, less memory for more computation.
    max_memory
        A bound on the bytes one device may use, as a number or a string such as
        ``"2GB"`` or ``"512MiB"``: the block size is chosen from the compiled program's
        memory analysis (with at least ``nbatches`` blocks). Needs ``jit=True``.
    progress
        Show a ``tqdm`` progress bar over the column blocks.
    args
        Data for ``f``, any pytree (arrays, numbers, ``equinox`` modules...): given, ``f``
        is called as ``f(x, args)`` (optimistix's convention). Its arrays are inputs of
        the compiled program, so new data of the same shapes runs the same program.
        Keyword only; ``None`` (the default) calls ``f(x)``.

    Returns
    -------
    H
        The ``(n, n)`` Hessian in flat coordinates, as ``jax.hessian`` of ``f`` on the
        flat parameters.
    unflatten
        Maps a flat vector of ``n`` numbers (a row, a column, a diagonal) back to the
        structure of ``x``. :func:`hessian_to_pytree` gives the whole matrix as blocks.

    Raises
    ------
    TypeError
        If ``f`` is not callable, a leaf of ``x`` is not a floating-point array or float,
        or ``f`` does not return a floating-point array.
    ValueError
        If ``f`` does not return a scalar, ``nbatches`` is below 1 or above ``n``, or
        ``max_memory`` is malformed or too small for one column.

    Warns
    -----
    UserWarning
        Once per process, when float64 is disabled (float32 second derivatives are often
        NaN or inaccurate).
    RuntimeWarning
        When the result contains NaN or inf.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> x = {"a": jnp.array([1.0, 2.0]), "b": 3.0}
    >>> f = lambda p: jnp.sum(p["a"] ** 2) * p["b"]
    >>> H, unflatten = hessian(f, x, nbatches=2)
    >>> H.shape
    (3, 3)
    >>> unflatten(H[0])["b"]
    Array(2., dtype=float64)
    """
    return matrix(HessianColumns(), f, x, nbatches, jit, checkpoint, args, max_memory, progress)


def hessian_diagonal(
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
    """The diagonal of the Hessian of a scalar ``f`` at ``x``, without the full matrix.

    Each diagonal entry needs one Hessian-vector product, so the work is that of
    :func:`hessian`, but only ``n`` numbers are kept instead of ``n * n``: the memory of a
    block of products plus the output.

    Parameters
    ----------
    f, x, nbatches, jit, checkpoint, args, max_memory, progress
        As in :func:`hessian`.

    Returns
    -------
    diagonal
        The ``(n,)`` vector ``H[k, k]`` in flat coordinates.
    unflatten
        Maps it (or any flat vector of ``n`` numbers) back to the structure of ``x``.

    Raises
    ------
    TypeError, ValueError
        As in :func:`hessian`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> d, unflatten = hessian_diagonal(lambda p: jnp.sum(p ** 3), jnp.array([1.0, 2.0]))
    >>> d
    Array([ 6., 12.], dtype=float64)
    """
    return matrix(DiagonalColumns(), f, x, nbatches, jit, checkpoint, args, max_memory, progress)


def hvp(
    f: Callable[[Any], Any],
    x: Any,
    v: Any,
    jit: bool = True,
    checkpoint: bool = False,
    *,
    args: Any = None,
) -> Any:
    """The Hessian-vector product ``H(x) v`` of a scalar ``f``, without forming ``H``.

    Computed forward-over-reverse (``jax.jvp`` of ``jax.grad(f)``) in one cached
    compiled program, at about the cost of two gradients: the same machinery as
    :func:`hessian`, with one column whose tangent is ``v``.

    Parameters
    ----------
    f, x
        As in :func:`hessian`.
    v
        The vector: a pytree with the structure and leaf shapes of ``x``, or a flat
        array of shape ``(n,)`` in ``ravel_pytree`` order.
    jit, checkpoint, args
        As in :func:`hessian`.

    Returns
    -------
    ``H v`` in the form ``v`` was given: a pytree like ``x``, or a flat ``(n,)`` array.

    Raises
    ------
    TypeError, ValueError
        As in :func:`hessian`, and if ``v`` has neither form.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> f = lambda p: jnp.sum(p["a"] ** 2) + p["a"][0] * p["b"]
    >>> x = {"a": jnp.array([1.0, 2.0]), "b": 3.0}
    >>> hvp(f, x, {"a": jnp.array([1.0, 0.0]), "b": 0.0})["b"]
    Array(1., dtype=float64)
    """
    request = make_request(
        HvpColumns(),
        f,
        x,
        args=args,
        nbatches=1,
        jit=jit,
        checkpoint=checkpoint,
        max_memory=None,
        progress=False,
        v=v,
    )
    product = evaluate(request)
    return product if request.vector_given_flat else request.layout.unravel(product)
