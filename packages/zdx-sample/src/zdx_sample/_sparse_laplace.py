"""The Laplace approximation at scale: every error bar and the evidence from sparse curvature
(exact, by its Schur complement) or matrix-free curvature (estimated, with its accuracy)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax.numpy as jnp
import lineax as lx
import numpy as onp
import scipy.sparse as sp

import zdx_batching
from zdx_base import checks

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
    precision: Any
    """The posterior precision ``F + P``: a ``scipy.sparse`` matrix, or a lineax operator when
    the curvature was given matrix-free."""
    factor: zdx_batching.SchurFactor | None
    """The factorised precision: ``factor.solve``, ``factor.dense_covariance()``... (None
    when matrix-free)."""
    approximate: tuple[str, ...] = ()
    """The fields that hold estimates rather than exact values: empty from sparse curvature;
    ``("sigma", "flat_sigma", "log_det", "log_evidence")`` from matrix-free curvature."""
    flat_sigma_error: onp.ndarray | None = None
    """A bound on each standard deviation's error from the conjugate-gradient residual
    (``sigma * relative_error_bound / 2``; zeros when exact, NaN where not computed)."""
    log_det_standard_error: float = 0.0
    """The standard error of ``log_det`` (stochastic Lanczos quadrature; 0 when exact)."""
    log_evidence_standard_error: float | None = 0.0
    """``log_det_standard_error / 2``, the standard error of ``log_evidence`` (None without
    evidence)."""
    variances: zdx_batching.MarginalVariances | None = None
    """Matrix-free: the conjugate-gradient estimate behind ``sigma`` (residuals, steps,
    convergence of every solve)."""
    log_determinant: zdx_batching.LogDeterminant | None = None
    """Matrix-free: the estimate behind ``log_det`` (``order_change`` gauges the quadrature
    error, which the standard error does not include)."""


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
    which: Any = None,
    rtol: float | None = None,
    max_steps: int | None = None,
    probes: int = 64,
    order: int = 30,
    key: Any = None,
) -> SparseLaplaceResult:
    """The Laplace approximation of a posterior of thousands of parameters, never dense.

    The posterior precision is ``F + P``: ``F`` the likelihood's curvature (the Fisher
    matrix given, e.g. ``zdx_batching.sparse_fisher`` of the residuals, or by default the
    Hessian of the negative log-likelihood by colouring, ``zdx_batching.sparse_hessian``)
    and ``P`` the prior's (by colouring too). It is factorised by its Schur complement
    (:class:`zdx_batching.SchurFactor`), which gives every parameter's variance and the
    log-determinant exactly with no ``n x n`` array: the cost grows with the number of
    non-zero entries and the cube of the few global parameters.

    When no structure helps, give ``fisher`` as a lineax operator
    (``zdx_batching.fisher_operator`` or ``hessian_operator``): the prior's curvature is
    added as an operator too, and nothing ``n x n`` is formed. Each standard deviation is
    then one conjugate-gradient solve (``zdx_batching.marginal_variances``), with an error
    bound from its residual, and the log-determinant is estimated by stochastic Lanczos
    quadrature (``zdx_batching.log_determinant``), with its standard error; the result
    lists these fields in ``approximate`` and carries their errors.

    Degenerate directions (a pixel response's mean against the flux) make the precision
    singular: they are resolved by a prior on the parameters involved (its precision is
    part of ``F + P``), never by renormalising the parameters. Left unresolved, the exact
    path refuses the matrix and the matrix-free one raises (a non-positive variance or
    Ritz value) or reports unconverged solves (``variances.converged``, a large
    ``flat_sigma_error``).

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
        A lineax operator (symmetric, on flat vectors in ``zdx_base.ravel`` order) is
        matrix-free curvature, estimated as described above.
    declare
        Sparsity declarations by leaf path for the Hessian (``zdx_batching.sparse_hessian``).
    which
        Matrix-free only: the parameters whose standard deviation is estimated, as
        ``zdx_batching.marginal_variances`` takes them (flat indices; paths too when
        ``fisher`` is a ``zdx_batching.CurvatureOperator``); default all. The others'
        ``sigma`` is NaN.
    rtol, max_steps
        Matrix-free only: each conjugate-gradient solve's tolerance and step limit, as in
        ``zdx_batching.marginal_variances``.
    probes, order, key
        Matrix-free only: the stochastic Lanczos quadrature's random probes, Lanczos steps
        per probe (at most ``n``) and seed, as in ``zdx_batching.log_determinant``.

    Returns
    -------
    SparseLaplaceResult

    Raises
    ------
    TypeError, ValueError
        On a bad argument (as :func:`laplace`), a ``fisher`` of the wrong type or shape (an
        operator that is not symmetric, or not on the ``n`` flat parameters), a matrix-free
        option given with sparse curvature, or a posterior precision that is not positive
        definite at ``params``.
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
    if isinstance(fisher, lx.AbstractLinearOperator):
        options = dict(rtol=rtol, max_steps=max_steps, probes=probes, order=order, key=key)
        return _matrix_free(name, post, fisher, which, options)
    given = {"which": which, "rtol": rtol, "max_steps": max_steps, "key": key}
    given = [k for k, v in given.items() if v is not None]
    if given:
        raise ValueError(
            f"{name}: {', '.join(given)} apply to matrix-free curvature only (fisher given "
            "as a lineax operator); sparse curvature is exact."
        )
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
        flat_sigma_error=onp.zeros(n),
    )


def _matrix_free(
    name: str, post: Any, fisher: Any, which: Any, options: dict
) -> SparseLaplaceResult:
    """The Laplace approximation from a curvature operator: CG variances, SLQ log-det."""
    n = post.n
    structure = fisher.in_structure()
    if getattr(structure, "shape", None) != (n,) or fisher.out_structure().shape != (n,):
        raise ValueError(
            f"{name}: fisher must act on flat vectors of the {n} parameters (zdx_base.ravel "
            f"order), got an operator from {structure} to {fisher.out_structure()}."
        )
    if not lx.is_symmetric(fisher):
        raise ValueError(
            f"{name}: fisher must be tagged symmetric (lineax.symmetric_tag), as "
            "zdx_batching.fisher_operator is; wrap it in lineax.TaggedLinearOperator."
        )
    precision = fisher
    if post.prior is not None:
        prior_curvature = zdx_batching.hessian_operator(lambda p: -post.log_prior(p), post.params)
        precision = fisher + prior_curvature
    tags = (lx.symmetric_tag, lx.positive_semidefinite_tag)
    if isinstance(fisher, zdx_batching.CurvatureOperator):  # knows the paths of `which`
        precision = zdx_batching.CurvatureOperator(
            precision, tags, fisher.layout, fisher.names, fisher.kind
        )
    else:
        precision = lx.TaggedLinearOperator(precision, tags)
    variances = zdx_batching.marginal_variances(
        precision,
        onp.arange(n) if which is None else which,
        rtol=options["rtol"],
        max_steps=options["max_steps"],
    )
    indices = onp.asarray(variances.indices)
    order = checks.check_int(name, "order", options["order"], minimum=2)
    log_det = zdx_batching.log_determinant(
        precision, probes=options["probes"], order=min(order, n), key=options["key"]
    )
    flat_sigma = onp.full(n, onp.nan)
    flat_sigma[indices] = onp.sqrt(onp.asarray(variances.variances))
    flat_sigma_error = onp.full(n, onp.nan)
    flat_sigma_error[indices] = (
        flat_sigma[indices] * onp.asarray(variances.relative_error_bounds) / 2
    )
    log_det_value = float(log_det.value)
    log_posterior = post.log_likelihood_x0 + post.log_prior_x0
    problem = post.evidence_problem()
    log_evidence = evidence_error = None
    if problem is None:
        log_evidence = log_posterior + 0.5 * n * math.log(2 * math.pi) - 0.5 * log_det_value
        evidence_error = 0.5 * float(log_det.standard_error)
    return SparseLaplaceResult(
        mean=post.params,
        sigma=post.unravel(jnp.asarray(flat_sigma, post.x0.dtype)),
        names=post.names,
        flat_sigma=flat_sigma,
        log_likelihood_max=post.log_likelihood_x0,
        log_posterior_max=log_posterior,
        log_det=log_det_value,
        log_evidence=log_evidence,
        evidence_problem=problem,
        precision=precision,
        factor=None,
        approximate=("sigma", "flat_sigma", "log_det", "log_evidence"),
        flat_sigma_error=flat_sigma_error,
        log_det_standard_error=float(log_det.standard_error),
        log_evidence_standard_error=evidence_error,
        variances=variances,
        log_determinant=log_det,
    )
