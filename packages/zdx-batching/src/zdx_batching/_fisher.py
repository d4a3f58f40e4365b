"""Fisher information matrices of Gaussian likelihoods (Gauss-Newton), batched."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from ._columns import FisherColumns
from ._engine import matrix


def fisher(
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
    """The Fisher information ``F = J^T J`` of a Gaussian likelihood, by forward mode.

    ``f`` returns the model divided by its standard error (the data need not be
    subtracted: it does not change ``J``). For independent Gaussian errors ``sigma``,
    ``F`` is the Fisher information of the log-likelihood and the Gauss-Newton
    approximation of its Hessian: exact in the parameters the model is linear in, and
    needing first derivatives only. The Jacobian ``J`` is built block by block from
    forward-mode products of ``f`` linearised once, then ``J^T J`` is formed, all in one
    cached compiled program: much cheaper than a Hessian of the log-likelihood.

    Parameters
    ----------
    f
        ``x -> model(x) / sigma``: one real floating-point array of any shape.
    x
        As in :func:`hessian`.
    nbatches
        How many blocks the ``n`` columns of ``J`` are split into
        (``1 <= nbatches <= n``). More blocks, less peak memory for the products; the
        whole ``J`` (``f(x).size * n`` numbers) is held once. ``None`` (the default):
        chosen by the library, as in :func:`hessian`.
    jit, checkpoint, args, max_memory, progress
        As in :func:`hessian`.

    Returns
    -------
    F
        The ``(n, n)`` matrix ``J^T J``, symmetric and positive semi-definite.
    unflatten
        Maps a flat vector of ``n`` numbers back to the structure of ``x``.

    Raises
    ------
    TypeError, ValueError
        As in :func:`jacobian`.

    Warns
    -----
    UserWarning
        Once per process, when float64 is disabled.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> t = jnp.linspace(0.0, 1.0, 5)
    >>> sigma = 0.1
    >>> F, unflatten = fisher(lambda p: (p["a"] + p["b"] * t) / sigma, {"a": 0.0, "b": 1.0})
    >>> F.shape
    (2, 2)
    """
    return matrix(FisherColumns(), f, x, nbatches, jit, checkpoint, args, max_memory, progress)
