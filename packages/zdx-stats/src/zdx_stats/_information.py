"""Model comparison: the Akaike and Bayesian information criteria."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import Array

from zdx_base.checks import as_array, is_traced

from ._checks import count


def _loglike(fn: str, max_loglike: Any) -> Array:
    value = as_array(fn, "max_loglike", max_loglike)
    return value.astype(jnp.result_type(value, float))


def aic(max_loglike: Any, params: Any) -> Array:
    r"""The Akaike information criterion, $\mathrm{AIC} = 2k - 2\log\hat L$.

    Lower is better; differences between models fitted to the same data are what count.

    Parameters
    ----------
    max_loglike : Array
        The maximum log-likelihood $\log\hat L$ of the fit (a scalar, or an array of
        several models).
    params : PyTree or int
        The fitted parameters, whose scalars are counted (as in :func:`ddof`), or their
        number ``k`` as an integer (a Python int or 0-d integer array).

    Returns
    -------
    aic : Array
        The criterion, of the shape of ``max_loglike``.

    Raises
    ------
    ValueError
        If ``params`` is a negative count.
    TypeError
        If ``params`` is a bool or has a leaf that is not an array or a number.

    Notes
    -----
    NaN or ``-inf`` in ``max_loglike`` gives NaN or ``inf``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> float(zdx_stats.aic(-10.0, 3))
    26.0
    >>> float(zdx_stats.aic(-10.0, {"a": jnp.zeros(2), "b": 1.0}))
    26.0
    """
    k = count("aic", "params", params)
    loglike = _loglike("aic", max_loglike)
    return 2 * jnp.asarray(k, loglike.dtype) - 2 * loglike


def bic(max_loglike: Any, params: Any, data: Any) -> Array:
    r"""The Bayesian information criterion, $\mathrm{BIC} = k\log n - 2\log\hat L$.

    Lower is better; differences between models fitted to the same data are what count.

    Parameters
    ----------
    max_loglike, params
        As in :func:`aic`.
    data : PyTree or int
        The data, whose scalars are counted, or their number ``n`` as an integer (for
        example ``finite_mask(model, data, error).sum()`` when NaN pixels are left out).

    Returns
    -------
    bic : Array
        The criterion, of the shape of ``max_loglike`` (NaN or ``inf`` where it is NaN or
        ``-inf``).

    Raises
    ------
    ValueError
        If ``params`` is a negative count, or ``data`` counts no data point (the message
        gives ``n``). A traced ``n`` cannot be checked: ``n == 0`` then gives NaN.
    TypeError
        If ``params`` or ``data`` is a bool or has a leaf that is not an array or a number.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> round(float(zdx_stats.bic(-10.0, 2, jnp.ones(100))), 6)
    29.21034
    """
    k = count("bic", "params", params)
    n = count("bic", "data", data)
    if not is_traced(n) and n < 1:
        raise ValueError(f"bic: data must hold at least one data point, got n={n}.")
    loglike = _loglike("bic", max_loglike)
    n = jnp.asarray(n, loglike.dtype)
    log_n = jnp.where(n >= 1, jnp.log(jnp.maximum(n, 1)), jnp.nan)
    return jnp.asarray(k, loglike.dtype) * log_n - 2 * loglike
