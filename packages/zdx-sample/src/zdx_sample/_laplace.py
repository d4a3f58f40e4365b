"""The Laplace approximation of the posterior and its evidence, with an importance-sampling
correction."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

import zdx_base
from zdx_base import checks

from ._compare import EvidenceEstimate
from ._importance import (
    CorrectedEvidenceResult,
    ImportanceEvidence,
    optional_importance_evidence,
)
from ._inference_data import draws_to_inference_data
from ._prepare import prepare


class LaplaceResult(CorrectedEvidenceResult):
    """The Gaussian (Laplace) approximation of a posterior around its mode.

    Attributes
    ----------
    mean : PyTree
        The posterior mode, in the structure of ``params``.
    covariance : Array
        ``(n, n)`` the inverse of the posterior Fisher matrix, in flattened
        (``zdx_base.ravel``) order; ``names[i]`` names row ``i``.
    fisher : Array
        ``(n, n)`` the posterior Fisher matrix (minus the Hessian of the log posterior).
    names : tuple of str
        A name per flattened parameter (``zdx_base.ravel``), e.g. ``"wfe[3]"``.
    log_likelihood_max : Array
        ``log_likelihood(mean)``.
    log_posterior_max : Array
        ``log_likelihood(mean) + log prior(mean)`` (the likelihood alone without a prior).
    laplace_log_evidence : Array or None
        The Laplace evidence (None without a proper prior); read it as ``log_evidence``.
    importance : ImportanceEvidence or None
        The importance-sampling correction of the evidence, when it was computed.
    evidence_problem, importance_problem : str or None
        Why there is no evidence, or no correction (None when there is).

    The evidence is available as ``log_evidence`` (Laplace) and ``corrected_log_evidence``,
    ``corrected_log_evidence_error``, ``pareto_k`` (importance-corrected) only with a
    proper prior; otherwise reading them raises a ``ValueError`` that says why.
    """

    _estimator_name: ClassVar[str] = "laplace"

    mean: Any
    covariance: jax.Array
    fisher: jax.Array
    names: tuple[str, ...] = eqx.field(static=True)
    log_likelihood_max: jax.Array
    log_posterior_max: jax.Array
    laplace_log_evidence: jax.Array | None
    importance: ImportanceEvidence | None
    unravel: Callable[[jax.Array], Any] = eqx.field(static=True)
    evidence_problem: str | None = eqx.field(static=True, default=None)
    importance_problem: str | None = eqx.field(static=True, default=None)

    @property
    def sigma(self) -> Any:
        """The marginal standard deviations, in the structure of ``params``."""
        return self.unravel(jnp.sqrt(jnp.diag(self.covariance)))

    @property
    def flat_mean(self) -> jax.Array:
        """The mode as a flat ``(n,)`` vector (the order of ``names``)."""
        return zdx_base.ravel(self.mean).flat

    @property
    def log_evidence(self) -> jax.Array:
        """The Laplace evidence ``log L + log prior + n/2 log 2 pi - 1/2 log det F`` at the
        mode; exact for a Gaussian posterior.

        Raises
        ------
        ValueError
            If the prior is missing or improper.
        """
        if self.laplace_log_evidence is None:
            raise ValueError(f"laplace: no evidence: {self.evidence_problem}.")
        return self.laplace_log_evidence

    def sample(self, key: Any, num_samples: int = 1000) -> Any:
        """Draws from the Gaussian approximation, each leaf with a leading axis of
        ``num_samples``."""
        num_samples = checks.check_int(
            "LaplaceResult.sample", "num_samples", num_samples, minimum=1
        )
        flat = self._draws(checks.as_key("LaplaceResult.sample", "key", key), num_samples)
        return jax.vmap(self.unravel)(flat)

    def _draws(self, key: jax.Array, num_samples: int) -> jax.Array:
        chol = jnp.linalg.cholesky(self.covariance)
        z = jax.random.normal(key, (num_samples, len(self.names)), self.covariance.dtype)
        return self.flat_mean + z @ chol.T

    def evidence_estimates(self) -> list[EvidenceEstimate]:
        """The log evidence estimates of this result, for :func:`compare`."""
        if self.laplace_log_evidence is None:
            return []
        rows = [EvidenceEstimate("laplace", float(self.laplace_log_evidence), None)]
        if self.importance is not None:
            rows.append(self.importance.estimate("laplace+is"))
        return rows

    def to_inference_data(self, key: Any = None, num_samples: int = 1000):
        """An ArviZ ``InferenceData`` of ``num_samples`` draws from the approximation.

        The posterior group holds one variable ``params`` with dimensions
        ``(chain, draw, parameter)``; ``parameter`` has the names as coordinates.
        """
        num_samples = checks.check_int(
            "LaplaceResult.to_inference_data", "num_samples", num_samples, minimum=1
        )
        flat = self._draws(
            checks.as_key("LaplaceResult.to_inference_data", "key", key), num_samples
        )
        attrs = {"estimator": "laplace"}
        if self.laplace_log_evidence is not None:
            attrs["log_evidence"] = float(self.laplace_log_evidence)
        return draws_to_inference_data(flat[None], self.names, attrs=attrs)


def laplace(
    log_likelihood: Callable[[Any], Any],
    params: Any,
    prior: Any = None,
    fisher: Any = None,
    *,
    optimise: bool = False,
    importance_samples: int = 2000,
    df: float | None = 5.0,
    key: Any = None,
    batch_size: int = 256,
) -> LaplaceResult:
    """The Laplace approximation of the posterior ``likelihood x prior`` and its evidence.

    The posterior is approximated by a Gaussian at ``params`` with covariance ``F^-1``,
    ``F`` the posterior Fisher matrix (minus the Hessian of the log posterior). The
    Laplace evidence is ``log L + log prior + n/2 log(2 pi) - 1/2 log det F`` at the mode:
    exact for a Gaussian posterior (for a uniform prior box around a Gaussian likelihood,
    ``log L_max + n/2 log 2 pi + 1/2 log det Sigma - log V``). It is then corrected by
    importance sampling from a multivariate Student-t with the same centre and scale
    matrix (heavier tails than the posterior, so the weights stay bounded), giving
    ``corrected_log_evidence``, its error and the Pareto k-hat that says when the
    correction cannot be trusted (``pareto_k > 0.7``).

    Parameters
    ----------
    log_likelihood : callable
        ``log_likelihood(params) -> scalar``, traceable by JAX.
    params : PyTree
        The posterior mode (with ``optimise=True``: a start point near it). The
        approximation is built here; away from the mode it is wrong, and ``F`` may not be
        positive definite.
    prior : PyTree of numpyro distributions, optional
        One distribution per leaf of ``params`` with the leaf's shape, e.g.
        ``{"wfe": dist.Normal(0, 100).expand([7])}``. Without one the prior is flat and
        improper: mean and covariance are those of the likelihood, and there is no evidence.
    fisher : Array, optional
        ``(n, n)`` the Fisher matrix of the log-likelihood at ``params`` in flattened order
        (e.g. from ``zdx_batching.fisher``); the prior's curvature is added to it. By
        default the Hessian of the negative log posterior is computed with
        ``zdx_batching.hessian``.
    optimise : bool, default False
        First find the posterior mode with optimistix BFGS, starting from ``params``.
    importance_samples : int, default 2000
        The number of draws for the importance correction; 0 skips it.
    df : float or None, default 5.0
        The degrees of freedom of the Student-t proposal; None for a Gaussian proposal.
    key : PRNG key or int, optional
        For the importance draws (default ``jax.random.key(0)``).
    batch_size : int, default 256
        How many importance draws are evaluated at once (vectorised with ``jax.lax.map``).

    Returns
    -------
    LaplaceResult
        ``mean``, ``covariance``, ``sigma``, ``log_evidence``, ``corrected_log_evidence``,
        ``corrected_log_evidence_error``, ``pareto_k``, ``names``.

    Raises
    ------
    TypeError, ValueError
        If ``log_likelihood`` is not callable, ``prior`` does not match ``params``, the
        log-likelihood is not finite at ``params``, ``params`` is outside the prior,
        ``fisher`` has the wrong shape or is not symmetric, or the posterior Fisher matrix
        is not positive definite.

    Warns
    -----
    RuntimeWarning
        When the Pareto k-hat of the importance weights is above 0.7, or the correction
        failed (NaN log-likelihood at some draws).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import numpyro.distributions as dist
    >>> loglike = lambda p: -0.5 * jnp.sum((p["x"] / 0.1) ** 2)
    >>> prior = {"x": dist.Uniform(-1.0, 1.0).expand([2])}
    >>> res = laplace(loglike, {"x": jnp.zeros(2)}, prior)
    >>> res.sigma["x"]
    Array([0.1, 0.1], dtype=float64)
    >>> round(float(res.log_evidence), 6)  # log(2 pi 0.1^2 / 4)
    -4.153587
    """
    importance_samples = checks.check_int(
        "laplace", "importance_samples", importance_samples, minimum=0
    )
    df = checks.check_number("laplace", "df", df, positive=True, allow_none=True)
    batch_size = checks.check_int("laplace", "batch_size", batch_size, minimum=1)
    post, curv, _ = prepare("laplace", log_likelihood, params, prior, fisher, optimise=optimise)

    log_like = jnp.asarray(post.log_likelihood_x0, post.x0.dtype)
    log_post = jnp.asarray(post.log_likelihood_x0 + post.log_prior_x0, post.x0.dtype)
    problem = post.evidence_problem()
    log_z = None
    importance = None
    importance_problem = None
    if problem is None:
        log_z = log_post + 0.5 * post.n * math.log(2 * math.pi) - 0.5 * curv.log_det
        if 0 < importance_samples < 10:
            raise ValueError(
                f"`importance_samples` must be 0 (no correction) or at least 10, got "
                f"{importance_samples}."
            )
        importance, importance_problem = optional_importance_evidence(
            post.flat_log_posterior(),
            post.x0,
            jnp.asarray(curv.sqrt_covariance, post.x0.dtype),
            -0.5 * curv.log_det,
            key,
            num_samples=importance_samples,
            df=df,
            batch_size=batch_size,
            estimator="laplace",
            warning="No importance correction of the Laplace evidence",
        )
    return LaplaceResult(
        mean=post.params,
        covariance=jnp.asarray(curv.covariance, post.x0.dtype),
        fisher=jnp.asarray(curv.fisher, post.x0.dtype),
        names=post.names,
        log_likelihood_max=log_like,
        log_posterior_max=log_post,
        laplace_log_evidence=log_z,
        importance=importance,
        unravel=post.unravel,
        evidence_problem=problem,
        importance_problem=importance_problem,
    )
