"""Independent Gaussian errors: z-scores, log-likelihood and chi-squared."""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
from jax import Array

from zdx_base.checks import as_array

from ._checks import check_dof, divide_by_dof, float_arrays

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def z_score(x: Any, mean: Any, std: Any) -> Array:
    r"""The z-score $(\mu - x) / \sigma$, element by element.

    Note the sign: with ``x`` a model and ``mean`` the data, as in
    ``z_score(model(params), data, error)``, this is the residual data minus model in units
    of the error.

    Parameters
    ----------
    x : Array
        The values (for example a model prediction).
    mean : Array
        The means (for example the data). Broadcasts against ``x``.
    std : Array
        The standard deviations: the 1-sigma errors of the data, expected positive.
        Broadcasts against ``x`` and ``mean``.

    Returns
    -------
    z_score : Array
        ``(mean - x) / std`` with the broadcast shape of the inputs, in their floating dtype.

    Raises
    ------
    ValueError
        If the shapes of ``x``, ``mean`` and ``std`` cannot be broadcast together.
    TypeError
        If an argument is not an array or a number.

    Notes
    -----
    NaN in any input gives NaN in that element only. ``std == 0`` gives ``+-inf`` (NaN where
    also ``x == mean``). To leave such pixels out, use :func:`z_score_finite`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> zdx_stats.z_score(jnp.array([1.0, 2.0]), jnp.array([2.0, 2.0]), 0.5).tolist()
    [2.0, 0.0]
    """
    x, mean, std = float_arrays("z_score", x=x, mean=mean, std=std)
    return (mean - x) / std


def loglike(x: Any, mean: Any, std: Any) -> Array:
    r"""The log-likelihood of a normal distribution, element by element.

    $\log p(x) = -\tfrac{1}{2} z^2 - \log\sigma - \tfrac{1}{2}\log 2\pi$ with
    $z = (\mu - x)/\sigma$; the same as ``jax.scipy.stats.norm.logpdf(x, mean, std)``.
    Sum the result for the log-likelihood of independent data.

    Parameters
    ----------
    x, mean, std : Array
        The values, and the means and standard deviations of the normal distributions,
        as in :func:`z_score`.

    Returns
    -------
    loglike : Array
        The log-density of every element, with the broadcast shape of the inputs.

    Raises
    ------
    ValueError, TypeError
        As :func:`z_score`: shapes that do not broadcast, an argument that is not an array.

    Notes
    -----
    NaN in any input gives NaN in that element only, so a sum over all elements is NaN;
    :func:`loglike_finite` leaves non-finite pixels out of the sum (and of the gradient).
    A negative ``std`` gives NaN; ``std == 0`` gives ``-inf`` (NaN where ``x == mean``).

    Examples
    --------
    >>> import zdx_stats
    >>> round(float(zdx_stats.loglike(0.0, 0.0, 1.0)), 6)
    -0.918939
    """
    x, mean, std = float_arrays("loglike", x=x, mean=mean, std=std)
    z = (mean - x) / std
    return -0.5 * z**2 - jnp.log(std) - _HALF_LOG_2PI


def chi2(x: Any, mean: Any, std: Any) -> Array:
    r"""The chi-squared statistic $\sum z^2$ over every element.

    Parameters
    ----------
    x, mean, std : Array
        The model, the data and their 1-sigma errors, as in :func:`z_score`.

    Returns
    -------
    chi2 : Array
        A scalar: the sum of the squared z-scores (see :func:`z_score`).

    Raises
    ------
    ValueError, TypeError
        As :func:`z_score`.

    Notes
    -----
    Any NaN in the inputs makes the result NaN. :func:`chi2_finite` sums over the pixels
    where every input is finite instead.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> float(zdx_stats.chi2(jnp.array([1.0, 2.0, 3.0]), jnp.array([1.5, 1.0, 3.5]),
    ...                      jnp.array([0.5, 2.0, 1.0])))
    1.5
    """
    x, mean, std = float_arrays("chi2", x=x, mean=mean, std=std)
    return jnp.sum(((mean - x) / std) ** 2)


def chi2r(x: Any, mean: Any, std: Any, ddof: Any) -> Array:
    """The reduced chi-squared statistic, ``chi2(x, mean, std) / ddof``.

    Parameters
    ----------
    x, mean, std : Array
        The model, the data and their 1-sigma errors, as in :func:`chi2`.
    ddof : int or Array
        The degrees of freedom, usually ``ddof(params, data)``: a positive scalar.

    Returns
    -------
    chi2r : Array
        A scalar: chi-squared divided by ``ddof``; close to 1 for a good fit.

    Raises
    ------
    ValueError
        If ``ddof`` is a concrete value that is not positive, or not a scalar, or as
        :func:`z_score` if the shapes of ``x``, ``mean`` and ``std`` do not broadcast.

    Notes
    -----
    Any NaN in the inputs makes the result NaN; :func:`chi2r_finite` uses only finite
    pixels and counts only those as data. Under ``jax.jit`` with ``ddof`` traced, the check
    on ``ddof`` cannot raise: a ``ddof <= 0`` gives NaN instead.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> params = {"mean": jnp.array(1.0)}
    >>> data, model, error = jnp.ones(5), jnp.zeros(5), jnp.ones(5)
    >>> float(zdx_stats.chi2r(model, data, error, zdx_stats.ddof(params, data)))
    1.25
    """
    check_dof("chi2r", ddof)
    return divide_by_dof(chi2(x, mean, std), ddof)


def chi2r_from_z(z_score: Any, ddof: Any) -> Array:
    r"""The reduced chi-squared statistic from z-scores, $\sum z^2 / \mathrm{ddof}$.

    Parameters
    ----------
    z_score : Array
        The z-scores, of any shape (for example stacked over several images).
    ddof : int or Array
        The degrees of freedom, usually ``ddof(params, data)``: a positive scalar.

    Returns
    -------
    chi2r : Array
        A scalar: the sum of the squared z-scores divided by ``ddof``.

    Raises
    ------
    ValueError
        As :func:`chi2r`, if ``ddof`` is a concrete value that is not positive or not a scalar.

    Notes
    -----
    Any NaN z-score makes the result NaN; :func:`chi2r_from_z_finite` sums over finite
    z-scores only and counts only those as data. Under ``jax.jit`` with ``ddof`` traced, a
    ``ddof <= 0`` gives NaN instead of raising.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> float(zdx_stats.chi2r_from_z(jnp.array([1.0, 2.0]), 2))
    2.5
    """
    check_dof("chi2r_from_z", ddof)
    z = as_array("chi2r_from_z", "z_score", z_score)
    z = z.astype(jnp.result_type(z, float))
    return divide_by_dof(jnp.sum(z**2), ddof)
