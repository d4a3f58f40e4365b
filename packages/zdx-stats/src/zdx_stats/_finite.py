"""Statistics over the finite pixels only: masks and masked chi-squared."""

from __future__ import annotations

import functools
import math
from typing import Any

import jax.numpy as jnp
from jax import Array

from zdx_base.checks import as_array, is_traced

from ._checks import bool_mask, broadcast_shape, check_dof, count, divide_by_dof, float_arrays

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def finite_mask(*arrays: Any) -> Array:
    """``True`` where every one of ``arrays`` is finite (neither NaN nor inf).

    Parameters
    ----------
    *arrays : Array
        One or more arrays (or numbers) whose shapes broadcast together, for example the
        model, the data and the errors.

    Returns
    -------
    mask : Array
        A boolean array of the broadcast shape.

    Raises
    ------
    ValueError
        If no array is given, or the shapes cannot be broadcast together.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> data = jnp.array([1.0, jnp.nan, 3.0])
    >>> error = jnp.array([1.0, 1.0, jnp.inf])
    >>> zdx_stats.finite_mask(data, error).tolist()
    [True, False, False]
    """
    if not arrays:
        raise ValueError("finite_mask: give at least one array, got none.")
    names = [f"arrays[{i}]" for i in range(len(arrays))]
    values = [as_array("finite_mask", n, a) for n, a in zip(names, arrays)]
    shape = broadcast_shape("finite_mask", names, values)
    finite = [jnp.broadcast_to(jnp.isfinite(v), shape) for v in values]
    return functools.reduce(jnp.logical_and, finite)


def _finite_parts(fn: str, x: Any, mean: Any, std: Any, mask: Any):
    """Inputs made safe where a pixel is left out, and the mask of pixels that are used.

    Left-out pixels get ``x = mean = 0`` and ``std = 1`` before any arithmetic, so that
    neither the values nor the gradients pick up NaN from them.
    """
    x, mean, std = float_arrays(fn, x=x, mean=mean, std=std)
    used = jnp.isfinite(x) & jnp.isfinite(mean) & jnp.isfinite(std)
    if mask is not None:
        used = used & bool_mask(fn, mask, x.shape)
    x = jnp.where(used, x, 0)
    mean = jnp.where(used, mean, 0)
    std = jnp.where(used, std, 1)
    return x, mean, std, used


def _z_finite(fn: str, x: Any, mean: Any, std: Any, mask: Any) -> Array:
    x, mean, std, used = _finite_parts(fn, x, mean, std, mask)
    return jnp.where(used, (mean - x) / std, 0)


def _reduced(fn: str, chi2: Array, n_used: Array, n_params: Any) -> Array:
    dof = n_used - n_params
    if not is_traced(dof):
        dof = int(dof)
        check_dof(fn, dof, f" ({int(n_used)} used data points minus {int(n_params)} parameters)")
    return divide_by_dof(chi2, dof)


def z_score_finite(x: Any, mean: Any, std: Any, *, mask: Any = None) -> Array:
    """Like :func:`z_score`, with 0 (and a zero gradient) where a pixel is left out.

    A pixel is used where ``x``, ``mean`` and ``std`` are all finite and ``mask`` (if
    given) is ``True``.

    Parameters
    ----------
    x, mean, std : Array
        As in :func:`z_score`; shapes broadcast together.
    mask : Array of bool, optional
        Also leaves out pixels where it is ``False``; broadcasts to the data.

    Returns
    -------
    z_score : Array
        ``(mean - x) / std`` where used, 0 elsewhere. A mean of its squares counts the
        left-out pixels as zeros; prefer a sum, or :func:`chi2r_finite`.

    Raises
    ------
    ValueError
        If the shapes cannot be broadcast together.
    TypeError
        If ``mask`` is not boolean.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> error = jnp.array([0.5, jnp.nan])
    >>> zdx_stats.z_score_finite(jnp.zeros(2), jnp.ones(2), error).tolist()
    [2.0, 0.0]
    """
    return _z_finite("z_score_finite", x, mean, std, mask)


def loglike_finite(x: Any, mean: Any, std: Any, *, mask: Any = None) -> Array:
    """Like :func:`loglike`, with 0 (and a zero gradient) where a pixel is left out.

    A pixel is used where ``x``, ``mean`` and ``std`` are all finite and ``mask`` (if
    given) is ``True``; the sum of the result is the log-likelihood of the used pixels.

    Parameters
    ----------
    x, mean, std, mask
        As in :func:`z_score_finite`.

    Returns
    -------
    loglike : Array
        The normal log-density where used, 0 elsewhere.

    Raises
    ------
    ValueError, TypeError
        As :func:`z_score_finite`.

    Notes
    -----
    A finite but non-positive ``std`` still gives NaN or ``-inf``, as in :func:`loglike`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> ll = zdx_stats.loglike_finite(jnp.zeros(2), jnp.zeros(2), jnp.array([1.0, jnp.nan]))
    >>> [round(v, 6) for v in ll.tolist()]
    [-0.918939, 0.0]
    """
    x, mean, std, used = _finite_parts("loglike_finite", x, mean, std, mask)
    z = (mean - x) / std
    return jnp.where(used, -0.5 * z**2 - jnp.log(std) - _HALF_LOG_2PI, 0)


def chi2_finite(x: Any, mean: Any, std: Any, *, mask: Any = None) -> Array:
    """The chi-squared statistic over the pixels where every input is finite.

    Parameters
    ----------
    x, mean, std, mask
        The model, the data, their 1-sigma errors and the mask, as in :func:`z_score_finite`.

    Returns
    -------
    chi2 : Array
        A scalar: the sum of squared z-scores over the used pixels (0 if none is used).
        Its gradient is zero with respect to left-out pixels, never NaN from them.

    Raises
    ------
    ValueError, TypeError
        Shapes that do not broadcast, or a mask that is not boolean (see
        :func:`z_score_finite`).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> data = jnp.array([1.0, 2.0, jnp.nan])
    >>> float(zdx_stats.chi2_finite(jnp.zeros(3), data, jnp.ones(3)))
    5.0
    """
    return jnp.sum(_z_finite("chi2_finite", x, mean, std, mask) ** 2)


def chi2r_finite(x: Any, mean: Any, std: Any, params: Any, *, mask: Any = None) -> Array:
    """The reduced chi-squared statistic over the pixels where every input is finite.

    ``chi2_finite(x, mean, std) / (n_used - n_params)``, where ``n_used`` counts only the
    used pixels: the degrees of freedom ignore the left-out ones.

    Parameters
    ----------
    x, mean, std : Array
        The model, the data and their 1-sigma errors, as in :func:`chi2_finite`.
    params : PyTree or int
        The model parameters, whose scalars are counted (as in :func:`ddof`), or their
        number as an integer.
    mask : Array of bool, optional
        As in :func:`chi2_finite`.

    Returns
    -------
    chi2r : Array
        A scalar.

    Raises
    ------
    ValueError
        If the degrees of freedom are not positive (fewer used pixels than parameters
        plus one); the message gives both counts. Inside ``jax.jit`` the count is traced and
        the result is NaN instead.
    TypeError
        If ``mask`` is not boolean, or ``params`` has a leaf that is not an array.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> data = jnp.array([1.0, 2.0, jnp.nan, 1.0])
    >>> float(zdx_stats.chi2r_finite(jnp.zeros(4), data, jnp.ones(4), {"a": 1.0}))
    3.0
    """
    n_params = count("chi2r_finite", "params", params)
    x, mean, std, used = _finite_parts("chi2r_finite", x, mean, std, mask)
    chi2 = jnp.sum(jnp.where(used, ((mean - x) / std) ** 2, 0))
    return _reduced("chi2r_finite", chi2, jnp.sum(used), n_params)


def chi2r_from_z_finite(z_score: Any, params: Any, *, mask: Any = None) -> Array:
    """The reduced chi-squared statistic from the finite z-scores only.

    ``sum(z**2 over finite z) / (n_finite - n_params)``.

    Parameters
    ----------
    z_score : Array
        The z-scores, of any shape; NaN and inf entries are left out.
    params : PyTree or int
        As in :func:`chi2r_finite`: the parameters, or how many there are.
    mask : Array of bool, optional
        Also leaves out entries where it is ``False``; broadcasts to ``z_score``.

    Returns
    -------
    chi2r : Array
        A scalar. Its gradient with respect to ``z_score`` is zero at left-out entries;
        but z-scores computed from NaN inputs carry NaN gradients back to those inputs
        (``0 * nan``): to differentiate with respect to a model, use
        :func:`chi2r_finite` or :func:`z_score_finite`, which never touch the NaN.

    Raises
    ------
    ValueError
        If the degrees of freedom are not positive; inside ``jax.jit`` the result is NaN
        instead.
    TypeError
        If ``mask`` is not boolean, or ``params`` is a bool or has a leaf that is not an
        array or a number.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> float(zdx_stats.chi2r_from_z_finite(jnp.array([1.0, jnp.nan, 3.0, 0.0]), 1))
    5.0
    """
    n_params = count("chi2r_from_z_finite", "params", params)
    z = as_array("chi2r_from_z_finite", "z_score", z_score)
    z = z.astype(jnp.result_type(z, float))
    used = jnp.isfinite(z)
    if mask is not None:
        used = used & bool_mask("chi2r_from_z_finite", mask, z.shape)
    z = jnp.where(used, z, 0)
    return _reduced("chi2r_from_z_finite", jnp.sum(z**2), jnp.sum(used), n_params)
