"""The zodiax 0.4 ``fisher_matrix`` and ``covariance_matrix``, over ``zdx_batching.hessian``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

import zdx_base
import zdx_batching
from zdx_base import checks

from ._legacy_inputs import flat_paths, is_numeric, refuse_repeats, shift_shape
from ._replacements import deprecated


def _fail_if_not_finite(x: jax.Array, message: str) -> jax.Array:
    """``x``, raising ``ValueError(message)`` if it has a NaN or inf (at run time under jit)."""
    return checks.fail_if(x, ~jnp.all(jnp.isfinite(x)), message)


def _loglike_of_shifts(shifts: list, data: tuple) -> jax.Array:
    """The log-likelihood with ``shifts`` added to the parameters at ``paths``.

    Module level, with everything in ``data``: zdx_batching then keeps one compiled Hessian
    per log-likelihood, structure and shapes, and takes the arrays of ``data`` as inputs.
    """
    loglike_fn, paths, pytree, args, kwargs = data
    return loglike_fn(zdx_base.add(pytree, list(paths), shifts), *args, **dict(kwargs))


def _fisher(
    pytree: Any,
    parameters: Any,
    loglike_fn: Callable,
    args: tuple,
    kwargs: dict,
    shape_dict: dict | None,
    save_memory: bool,
    function: str,
) -> jax.Array:
    """Minus the Hessian of ``loglike_fn`` in the shifts added to the parameters, from
    ``zdx_batching.hessian`` (compiled once per log-likelihood, structure and shapes)."""
    checks.check_callable(function, "loglike_fn", loglike_fn, "a function of the pytree")
    paths = flat_paths(parameters, function)
    if not paths:
        raise ValueError(f"{function}(): `parameters` is empty; name at least one parameter.")
    refuse_repeats(paths, function)
    if not isinstance(shape_dict, (dict, type(None))):
        raise TypeError(
            f"{function}(): `shape_dict` must be a dict of path to shape, got {shape_dict!r}."
        )
    shifts = []
    for path in paths:
        value = zdx_base.get(pytree, path, to_array=False)
        if not is_numeric(value):
            raise TypeError(
                f"{function}(): the parameter {path!r} is a {type(value).__name__}, not an "
                "array or a number; name the arrays inside it, one path each."
            )
        shifts.append(jnp.zeros(shift_shape(path, value, shape_dict or {}, function)))

    data = (loglike_fn, tuple(paths), pytree, args, tuple(kwargs.items()))
    n = sum(shift.size for shift in shifts)
    try:
        hessian, _ = zdx_batching.hessian(
            _loglike_of_shifts, shifts, n if save_memory else 1, args=data
        )
    except ValueError:
        shape = jnp.shape(jax.eval_shape(lambda s: _loglike_of_shifts(s, data), shifts))
        if shape != ():  # zodiax 0.4 raised TypeError here
            raise TypeError(
                f"{function}(): `loglike_fn` must return a scalar log-likelihood, but it "
                f"returned an array of shape {shape}."
            ) from None
        raise
    return _fail_if_not_finite(
        -hessian,
        f"{function}(): the Hessian of the log-likelihood has non-finite entries at the "
        "current parameter values; check that loglike_fn is finite and twice "
        "differentiable there.",
    )


@deprecated
def fisher_matrix(
    pytree: Any,
    parameters: Any,
    loglike_fn: Callable,
    *loglike_args: Any,
    shape_dict: dict | None = None,
    save_memory: bool = False,
    **loglike_kwargs: Any,
) -> jax.Array:
    """The observed information: minus the Hessian of ``loglike_fn(pytree, *loglike_args,
    **loglike_kwargs)`` with respect to the leaves at ``parameters``, at their current values.

    zodiax calls it the Fisher matrix (the name is kept for zodiax 0.4 code); it is the
    observed information ``-H`` of the log-likelihood given, not the Gauss-Newton matrix
    ``J^T J`` of whitened residuals that the family calls the Fisher matrix elsewhere (see
    the glossary).

    Rows and columns follow the parameters in the order given, each flattened row-major.
    ``shape_dict={path: shape}`` differentiates with respect to a shift of that shape
    broadcast onto the parameter (``(1,)``: one shift of every element); keys not in
    ``parameters`` are ignored. ``save_memory=True`` builds the matrix one column at a time.

    Returns
    -------
    fisher : jax.Array
        The ``(n, n)`` observed information, ``n`` the number of differentiated scalars.

    Raises
    ------
    KeyError
        If a path does not exist in ``pytree``.
    TypeError
        If a path names something other than an array or a number, or ``loglike_fn`` does
        not return a scalar.
    ValueError
        If ``parameters`` is empty or repeats a path, a ``shape_dict`` shape does not
        broadcast onto its parameter, or the Hessian has non-finite entries.
    """
    return _fisher(
        pytree,
        parameters,
        loglike_fn,
        loglike_args,
        loglike_kwargs,
        shape_dict,
        save_memory,
        "fisher_matrix",
    )


@deprecated
def covariance_matrix(
    pytree: Any,
    parameters: Any,
    loglike_fn: Callable,
    *loglike_args: Any,
    shape_dict: dict | None = None,
    save_memory: bool = False,
    **loglike_kwargs: Any,
) -> jax.Array:
    """The inverse of :func:`fisher_matrix` (same arguments): the Laplace covariance.

    That is the inverse of the observed information, ``(-H)^-1``.

    Returns
    -------
    covariance : jax.Array
        The ``(n, n)`` covariance matrix.

    Raises
    ------
    KeyError, TypeError, ValueError
        As :func:`fisher_matrix`; also ``ValueError`` when the Fisher matrix is singular.
    """
    fisher = _fisher(
        pytree,
        parameters,
        loglike_fn,
        loglike_args,
        loglike_kwargs,
        shape_dict,
        save_memory,
        "covariance_matrix",
    )
    return _fail_if_not_finite(
        jnp.linalg.inv(fisher),
        "covariance_matrix(): the Fisher matrix is singular, so it has no inverse; some "
        "parameters are not constrained by the log-likelihood (fix them or drop them from "
        "`parameters`).",
    )
