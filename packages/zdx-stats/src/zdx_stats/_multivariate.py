"""Correlated Gaussian errors: Mahalanobis distance, log-likelihood, Gauss-Newton Hessian."""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
from jax import Array
from jax.scipy.linalg import solve_triangular

from zdx_base.checks import as_array

from ._checks import float_arrays, square_matrix


def _mv_parts(fn: str, x: Any, mean: Any, cov: Any):
    """Broadcast ``x`` and ``mean`` to (..., n), check ``cov`` is (n, n); whiten residuals."""
    x, mean = float_arrays(fn, x=x, mean=mean)
    if x.ndim == 0:
        raise ValueError(
            f"{fn}: x and mean must be vectors of shape (n,) or (..., n), got scalars."
        )
    n = x.shape[-1]
    cov = square_matrix(fn, "cov", cov, n)
    cov = cov.astype(jnp.result_type(cov, x.dtype))
    chol = jnp.linalg.cholesky(cov)
    residual = (mean - x).astype(cov.dtype)
    # Solve L y = r for every row of r at once: columns of r.T.
    flat = residual.reshape(-1, n).T
    whitened = solve_triangular(chol, flat, lower=True)
    maha = jnp.sum(whitened**2, axis=0).reshape(x.shape[:-1])
    return maha, chol, n


def mv_z_score(x: Any, mean: Any, cov: Any) -> Array:
    r"""The squared Mahalanobis distance $(\mu - x)^\top \Sigma^{-1} (\mu - x)$.

    Parameters
    ----------
    x : Array
        A vector of shape ``(n,)``, or a batch of vectors ``(..., n)``.
    mean : Array
        The mean vector; broadcasts against ``x``.
    cov : Array
        The covariance matrix, ``(n, n)``, symmetric positive definite.

    Returns
    -------
    mv_z_score : Array
        A scalar for one vector, or an array of shape ``(...)`` for a batch.

    Raises
    ------
    ValueError
        If ``cov`` is not a square matrix, its side differs from the length of ``x``, or
        ``x`` and ``mean`` cannot be broadcast together.

    Notes
    -----
    Computed with a Cholesky factor of the symmetric part ``(cov + cov.T) / 2`` (``cov``
    itself for a covariance). A ``cov`` whose symmetric part is not positive definite, or
    that contains NaN, gives NaN. NaN in ``x`` or ``mean`` gives NaN for that vector.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> float(zdx_stats.mv_z_score(jnp.ones(2), jnp.zeros(2), jnp.diag(jnp.array([1.0, 4.0]))))
    1.25
    """
    maha, _, _ = _mv_parts("mv_z_score", x, mean, cov)
    return maha


def mv_loglike(x: Any, mean: Any, cov: Any) -> Array:
    r"""The log-likelihood of a multivariate normal distribution.

    $-\tfrac{1}{2}\left[(\mu - x)^\top \Sigma^{-1} (\mu - x) + \log\det\Sigma
    + n \log 2\pi\right]$; the same as
    ``jax.scipy.stats.multivariate_normal.logpdf(x, mean, cov)``.

    Parameters
    ----------
    x, mean, cov : Array
        The vector (or batch of vectors), the mean vector and the covariance matrix, as in
        :func:`mv_z_score`.

    Returns
    -------
    mv_loglike : Array
        The log-density of each vector: a scalar, or an array of shape ``(...)``.

    Raises
    ------
    ValueError
        As :func:`mv_z_score`.

    Notes
    -----
    A ``cov`` that is not positive definite, or contains NaN, gives NaN; NaN in ``x`` or
    ``mean`` gives NaN for that vector.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> round(float(zdx_stats.mv_loglike(jnp.zeros(2), jnp.zeros(2), jnp.eye(2))), 6)
    -1.837877
    """
    maha, chol, n = _mv_parts("mv_loglike", x, mean, cov)
    logdet = 2 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    return -0.5 * (maha + logdet + n * math.log(2 * math.pi))


def gauss_hessian(J: Any, cov: Any = None) -> Array:
    r"""The Gauss-Newton approximation to the Hessian of a Gaussian negative log-likelihood.

    $J^\top J$ without ``cov``, or $J^\top \Sigma^{-1} J$ with it: the Fisher matrix of a
    model with Jacobian $J$ and Gaussian errors of covariance $\Sigma$ (the Gauss-Newton
    matrix of the whitened residuals; the expected Fisher information).

    Parameters
    ----------
    J : Array
        The Jacobian of the model, shape ``(m, p)``: ``m`` data points, ``p`` parameters.
    cov : Array, optional
        The covariance of the data: an ``(m, m)`` symmetric positive definite matrix, or a
        vector ``(m,)`` of variances for independent data. ``None`` weights every data
        point by one. Variances must be positive (a negative one gives NaN).

    Returns
    -------
    hessian : Array
        A symmetric ``(p, p)`` matrix.

    Raises
    ------
    ValueError
        If ``J`` is not 2-D, or ``cov`` does not have shape ``(m, m)`` or ``(m,)``.

    Notes
    -----
    A full ``cov`` is used through the Cholesky factor of its symmetric part
    ``(cov + cov.T) / 2`` (``cov`` itself for a covariance): the result is exactly
    symmetric, and a ``cov`` whose symmetric part is not positive definite gives NaN.
    NaN in ``J`` or ``cov`` propagates to the entries it touches.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> zdx_stats.gauss_hessian(jnp.array([[1.0, 0.0], [1.0, 2.0]]), jnp.array([1.0, 4.0])).tolist()
    [[1.25, 0.5], [0.5, 1.0]]
    """
    J = as_array("gauss_hessian", "J", J)
    if J.ndim != 2:
        raise ValueError(
            f"gauss_hessian: J must be a Jacobian of shape (m, p) (data points, "
            f"parameters), got shape {tuple(J.shape)}."
        )
    J = J.astype(jnp.result_type(J, float))
    m = J.shape[0]
    if cov is None:
        return J.T @ J
    cov = as_array("gauss_hessian", "cov", cov)
    dtype = jnp.result_type(J, cov)
    J, cov = J.astype(dtype), cov.astype(dtype)
    if cov.shape == (m,):
        whitened = J / jnp.sqrt(cov)[:, None]
        return whitened.T @ whitened
    if cov.shape != (m, m):
        raise ValueError(
            f"gauss_hessian: cov must have shape ({m}, {m}) (a covariance) or ({m},) "
            f"(variances) to match the {m} rows of J, got shape {tuple(cov.shape)}."
        )
    whitened = solve_triangular(jnp.linalg.cholesky(cov), J, lower=True)
    return whitened.T @ whitened
