"""The Laplace approximation at scale: every error bar and the evidence from sparse curvature."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as onp
import scipy.sparse as sp

import zdx_batching

from ._posterior import setup


class SparseLaplaceResult(NamedTuple):
    """What :func:`sparse_laplace` returns."""

    mean: Any
    """The posterior mode, in the structure of ``params``."""
    sigma: Any
    """Every parameter's marginal standard deviation, in the structure of ``params``."""
    names: tuple[str, ...]
    """A name per flattened parameter (``zdx_base.ravel``), the order of ``flat_sigma``."""
    flat_sigma: onp.ndarray
    """The standard deviations as one vector."""
    log_likelihood_max: float
    """``log_likelihood(mean)``."""
    log_posterior_max: float
    """``log_likelihood(mean) + log prior(mean)``."""
    log_det: float
    """``log det`` of the posterior precision ``F + P`` (exact)."""
    log_evidence: float | None
    """``log L + log prior + n/2 log 2 pi - 1/2 log det (F + P)`` at the mode; None without
    a proper prior (see ``evidence_problem``)."""
    evidence_problem: str | None
    """Why there is no evidence (None when there is)."""
    precision: sp.csr_matrix
    """The posterior precision ``F + P`` (``scipy.sparse``)."""
    factor: zdx_batching.SchurFactor
    """The factorised precision: ``factor.solve``, ``factor.dense_covariance()``..."""


def _as_sparse(name: str, value: Any, n: int) -> sp.csr_matrix:
    if isinstance(value, zdx_batching.SparseMatrix):
        value = value.to_scipy()
    if not sp.issparse(value):
        raise TypeError(
            f"{name}: fisher must be a zdx_batching.SparseMatrix or a scipy.sparse matrix (or "
            f"None), got {type(value).__name__}."
        )
    if value.shape != (n, n):
        raise ValueError(f"{name}: fisher has shape {value.shape}; params have {n} scalars.")
    return sp.csr_matrix(value, dtype=onp.float64)


def sparse_laplace(
    log_likelihood: Callable[[Any], Any],
    params: Any,
    prior: Any = None,
    fisher: Any = None,
    *,
    declare: Mapping | None = None,
) -> SparseLaplaceResult:
    """The Laplace approximation of a posterior of thousands of parameters, never dense.

    The posterior precision is ``F + P``: ``F`` the likelihood's curvature (the Fisher
    matrix given, e.g. ``zdx_batching.sparse_fisher`` of the residuals, or by default the
    Hessian of the negative log-likelihood by colouring, ``zdx_batching.sparse_hessian``)
    and ``P`` the prior's (by colouring too). It is factorised by its Schur complement
    (:class:`zdx_batching.SchurFactor`), which gives every parameter's variance and the
    log-determinant exactly with no ``n x n`` array: the cost grows with the number of
    non-zero entries and the cube of the few global parameters.

    Parameters
    ----------
    log_likelihood
        ``params -> scalar``, traceable by JAX.
    params
        The posterior mode (e.g. from ``zdx_opt.gauss_newton``).
    prior
        One numpyro distribution per leaf of ``params``, as for :func:`laplace`; without
        one the prior is flat and there is no evidence.
    fisher
        The likelihood's curvature at ``params`` as a ``zdx_batching.SparseMatrix`` or a
        ``scipy.sparse`` matrix in flattened order; ``None``: the Hessian by colouring.
    declare
        Sparsity declarations by leaf path for the Hessian (``zdx_batching.sparse_hessian``).

    Returns
    -------
    SparseLaplaceResult

    Raises
    ------
    TypeError, ValueError
        On a bad argument (as :func:`laplace`), a ``fisher`` of the wrong type or shape, or a
        posterior precision that is not positive definite at ``params``.
    zdx_batching.SparsityError
        When a sparsity pattern is wrong or cannot be detected (declare it).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import numpyro.distributions as dist
    >>> loglike = lambda p: -0.5 * jnp.sum(((p["x"] - 1.0) / 0.1) ** 2)
    >>> prior = {"x": dist.Normal(0.0, 1.0).expand([3])}
    >>> res = sparse_laplace(loglike, {"x": jnp.ones(3) / 1.01}, prior)
    >>> [round(float(s), 5) for s in res.sigma["x"]]
    [0.0995, 0.0995, 0.0995]
    """
    name = "sparse_laplace"
    post = setup(name, log_likelihood, params, prior)
    n = post.n
    point = post.params
    if fisher is None:
        likelihood = zdx_batching.sparse_hessian(
            lambda p: -log_likelihood(p), point, declare=declare
        ).to_scipy()
    else:
        likelihood = _as_sparse(name, fisher, n)
    precision = likelihood
    if post.prior is not None:
        prior_curvature = zdx_batching.sparse_hessian(lambda p: -post.log_prior(p), point)
        precision = likelihood + prior_curvature.to_scipy()
    precision = sp.csr_matrix(0.5 * (precision + precision.T))
    try:
        factor = zdx_batching.SchurFactor(precision)
    except ValueError as error:
        raise ValueError(
            f"{name}: the posterior precision is not positive definite at `params` ({error}); "
            "start from the mode, or give the unconstrained parameters a prior."
        ) from error
    flat_sigma = onp.sqrt(factor.inverse_diagonal())
    log_det = factor.logdet()
    log_posterior = post.log_likelihood_x0 + post.log_prior_x0
    problem = post.evidence_problem()
    log_evidence = None
    if problem is None:
        log_evidence = log_posterior + 0.5 * n * math.log(2 * math.pi) - 0.5 * log_det
    return SparseLaplaceResult(
        mean=point,
        sigma=post.unravel(jnp.asarray(flat_sigma, post.x0.dtype)),
        names=post.names,
        flat_sigma=flat_sigma,
        log_likelihood_max=post.log_likelihood_x0,
        log_posterior_max=log_posterior,
        log_det=log_det,
        log_evidence=log_evidence,
        evidence_problem=problem,
        precision=precision,
        factor=factor,
    )
