"""The error bars of the optics fit: the Hessian of minus the log-likelihood, inverted."""

from __future__ import annotations

import jax
import jax.numpy as jnp

import zdx_base
import zdx_batching
from zdx_base import checks

from ._fit import loglike_fn

_FN = "hessian_covariance"


def hessian_covariance(
    params: dict, args: tuple, progress: bool = True
) -> tuple[jax.Array, jax.Array]:
    """The Hessian of minus the log-likelihood at ``params`` and its inverse.

    Parameters
    ----------
    params : dict
        The best fit.
    args : tuple
        ``(optics, observations)``.
    progress : bool
        Show ``zdx_batching.hessian``'s progress bar.

    Returns
    -------
    hessian, covariance : Array
        ``(n, n)`` each; the covariance from the one eigendecomposition that checked the
        Hessian.

    Raises
    ------
    ValueError
        If the Hessian is not finite and positive definite
        (``zdx_base.checks.decompose_positive_definite``): no covariance exists, the fit is
        not at a minimum or a parameter is not constrained by the data.
    """
    names = zdx_base.scalar_names(params)

    def neg_loglike(p):
        return -loglike_fn(p, args)

    hessian, _ = zdx_batching.hessian(
        neg_loglike, params, nbatches=min(4, len(names)), progress=progress
    )
    what = "the Hessian of -loglike at the best fit"
    hessian = checks.check_symmetric_matrix(
        _FN, what, checks.check_finite_matrix(_FN, what, hessian)
    )
    eigenvalues, eigenvectors = checks.decompose_positive_definite(
        _FN,
        what,
        hessian,
        names=names,
        advice="The fit did not reach a minimum, or some parameter is not constrained by "
        "the data; no covariance exists.",
    )
    covariance = (eigenvectors / eigenvalues) @ eigenvectors.T
    return hessian, jnp.asarray(covariance)
