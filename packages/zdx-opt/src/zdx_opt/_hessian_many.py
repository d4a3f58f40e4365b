"""The Hessians of many independent data sets in one compiled program (:func:`hessian_many`).

With minus a log-likelihood at each data set's best fit, their inverses are the fits'
covariances (error bars). Each data set's Hessian is ``zdx_batching.hessian_fn``'s,
vmapped over the data sets, in blocks over all devices (:mod:`zdx_opt._blocks`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax

from zdx_base import checks
from zdx_batching import hessian_fn

from ._blocks import Unravel, check_vectorise, prepare, run_blocks


class _HessianOf(eqx.Module):
    """One data set's symmetrised Hessian of ``fn`` (an ordinary field: the block program
    captures it, ``zdx_batching.capture``)."""

    fn: Callable
    unravel: Unravel

    def __call__(self, x, one_args):
        fn, unravel = self.fn, self.unravel
        # One device: the block program already deals the data sets out over the devices.
        hessian_of = hessian_fn(lambda y: fn(unravel(y), one_args), devices=jax.devices()[:1])
        hessian = hessian_of(x)
        return (hessian + hessian.T) / 2


def hessian_many(
    fn: Callable[[Any, Any], Any],
    params: Any,
    args: Any = None,
    *,
    args_axes: Any = 0,
    block_size: int | None = None,
    vectorise: bool | None = None,
    progress: bool = False,
) -> jax.Array:
    """The Hessian of ``fn(params_i, args_i)`` for every data set, in one compiled program.

    With ``fn`` minus a log-likelihood, at the best fit of each data set, the inverses are
    the covariances of the fits (their error bars). Each Hessian is that of
    ``zdx_batching.hessian_fn``; the data sets run ``block_size`` at a time, vmapped, each
    block spread over ``jax.devices()``. The program is reused as in :func:`fit_many`.

    Parameters
    ----------
    fn : callable
        ``fn(params, args) -> scalar`` for one data set, traceable by JAX.
    params : PyTree
        Where to take each Hessian: leaves with a leading axis of length ``N``.
    args : PyTree, optional
        The data, batched along ``args_axes`` (see :func:`fit_many`).
    args_axes : 0, None or a prefix pytree of them
        As for :func:`fit_many`.
    block_size : int, optional
        Data sets per compiled block; default all in one.
    vectorise : bool, optional
        ``jax.vmap`` over a block's data sets, or one after another (``jax.lax.map``); as
        for :func:`fit_many` (default: one after another on CPU).
    progress : bool, default False
        Show a ``tqdm`` bar over the blocks.

    Returns
    -------
    hessians : Array
        ``(N, n, n)`` in ``zdx_base.ravel(params_i)`` order, symmetrised.

    Raises
    ------
    TypeError
        If ``fn`` is not callable.
    ValueError
        If the leading axes differ or a setting is out of range.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> scale = jnp.array([1.0, 2.0])
    >>> fn = lambda p, s: s * jnp.sum(p ** 2)
    >>> hessian_many(fn, jnp.zeros((2, 3)), scale)[:, 0, 0].tolist()
    [2.0, 4.0]
    """
    name = "hessian_many"
    checks.check_callable(name, "fn", fn, "a function (params, args) -> scalar")
    block_size = checks.check_int(name, "block_size", block_size, minimum=1, allow_none=True)
    vectorise = check_vectorise(name, vectorise)
    flat, unravel, arg_axes = prepare(name, params, args, args_axes)

    single = _HessianOf(fn=fn, unravel=unravel)
    return run_blocks(
        single, flat, args, arg_axes, block_size, vectorise, progress, "Hessians (blocks)"
    )
