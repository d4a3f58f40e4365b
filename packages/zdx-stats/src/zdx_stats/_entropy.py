"""Entropy of a Gaussian with a given covariance."""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
from jax import Array

from ._checks import square_matrix

_LOG_2PI_E = math.log(2 * math.pi * math.e)


def _logdet(fn: str, cov: Any) -> tuple[Array, int]:
    cov = square_matrix(fn, "cov", cov)
    cov = cov.astype(jnp.result_type(cov, float))
    chol = jnp.linalg.cholesky(cov)
    return 2 * jnp.sum(jnp.log(jnp.diagonal(chol))), cov.shape[0]


def calc_entropy(cov: Any) -> Array:
    r"""The entropy measure of zodiax 0.5: $\tfrac{1}{2}\left[\log(2\pi e) + \log\det\Sigma\right]$.

    For a 1x1 covariance this is the differential entropy of a normal distribution. For
    ``n > 1`` it differs from the differential entropy of an ``n``-dimensional normal
    distribution by the constant $\tfrac{n-1}{2}\log(2\pi e)$, so it ranks covariances of
    the same size the same way; use :func:`gaussian_entropy` for the entropy itself.

    Parameters
    ----------
    cov : Array
        A symmetric positive definite covariance matrix, ``(n, n)``.

    Returns
    -------
    entropy : Array
        A scalar.

    Raises
    ------
    ValueError
        If ``cov`` is not a square 2-D matrix.

    Notes
    -----
    Computed from a Cholesky factor of the symmetric part ``(cov + cov.T) / 2`` (``cov``
    itself for a covariance): a ``cov`` whose symmetric part is not positive definite,
    or that contains NaN, gives NaN.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> round(float(zdx_stats.calc_entropy(jnp.eye(3))), 6)
    1.418939
    """
    logdet, _ = _logdet("calc_entropy", cov)
    return 0.5 * (_LOG_2PI_E + logdet)


def gaussian_entropy(cov: Any) -> Array:
    r"""The differential entropy of a normal distribution with covariance $\Sigma$.

    $H = \tfrac{1}{2}\left[n \log(2\pi e) + \log\det\Sigma\right]$ (in nats).

    Parameters
    ----------
    cov : Array
        As in :func:`calc_entropy`.

    Returns
    -------
    entropy : Array
        A scalar, in nats.

    Raises
    ------
    ValueError
        As :func:`calc_entropy`; a ``cov`` that is not positive definite gives NaN.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> round(float(zdx_stats.gaussian_entropy(jnp.eye(2))), 6)
    2.837877
    """
    logdet, n = _logdet("gaussian_entropy", cov)
    return 0.5 * (n * _LOG_2PI_E + logdet)
