"""Importance-sampling evidence from a Gaussian approximation with heavier (Student-t) tails."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as onp
from jax.scipy.special import gammaln

from zdx_base import checks

from ._compare import EvidenceEstimate
from ._compiled import Program
from ._pareto import pareto_khat

#: Above this Pareto k-hat the importance estimate is not to be trusted (PSIS).
KHAT_THRESHOLD = 0.7


class ImportanceEvidence(eqx.Module):
    """An importance-sampling estimate of the log evidence.

    Attributes
    ----------
    log_evidence : Array
        ``log Z``: the log of the mean importance weight.
    log_evidence_error : Array
        Its standard error, ``std(w) / (sqrt(S) mean(w))`` (delta method); meaningful
        only when ``pareto_k`` is small.
    pareto_k : float
        The Pareto k-hat of the weights (:func:`pareto_khat`): below 0.5 good, up to 0.7
        usable, above 0.7 the estimate and its error cannot be trusted.
    ess_kish : float
        Kish's effective sample size of the weights, ``(sum w)^2 / sum w^2``.
    num_samples : int
        The number of draws ``S`` from the proposal.
    df : float or None
        The degrees of freedom of the Student-t proposal (None: Gaussian).
    """

    log_evidence: jax.Array
    log_evidence_error: jax.Array
    pareto_k: float
    ess_kish: float
    num_samples: int = eqx.field(static=True)
    df: float | None = eqx.field(static=True)

    @property
    def reliable(self) -> bool:
        """True when ``pareto_k <= 0.7``."""
        return self.pareto_k <= KHAT_THRESHOLD

    def estimate(self, method: str) -> EvidenceEstimate:
        """This correction as one row of :func:`zdx_sample.compare`, named ``method``."""
        return EvidenceEstimate(
            method,
            float(self.log_evidence),
            float(self.log_evidence_error),
            reliable=self.reliable,
        )


def _log_weights(
    key: jax.Array,
    loc: jax.Array,
    sqrt_cov: jax.Array,
    log_det_sqrt: jax.Array,
    log_target: Callable[[jax.Array], jax.Array],
    num_samples: int,
    df: float | None,
    batch_size: int,
) -> jax.Array:
    """Draws from the proposal and their log importance weights."""
    n = loc.shape[0]
    key_z, key_g = jax.random.split(key)
    z = jax.random.normal(key_z, (num_samples, n), dtype=loc.dtype)
    if df is None:
        y = z
        log_q = -0.5 * n * math.log(2 * math.pi) - 0.5 * jnp.sum(y**2, axis=1)
    else:
        g = jax.random.gamma(key_g, df / 2, (num_samples, 1), dtype=loc.dtype) / (df / 2)
        y = z / jnp.sqrt(g)
        log_q = (
            gammaln((df + n) / 2)
            - gammaln(df / 2)
            - 0.5 * n * math.log(df * math.pi)
            - 0.5 * (df + n) * jnp.log1p(jnp.sum(y**2, axis=1) / df)
        )
    xs = loc + y @ sqrt_cov.T
    log_p = jax.lax.map(log_target, xs, batch_size=min(batch_size, num_samples))
    return log_p - (log_q - log_det_sqrt)


_LOG_WEIGHTS = Program(_log_weights, static_argnames=("num_samples", "df", "batch_size"))


def importance_evidence(
    log_target: Callable[[jax.Array], jax.Array],
    loc: jax.Array,
    sqrt_cov: jax.Array,
    log_det_sqrt: jax.Array,
    key: jax.Array,
    *,
    num_samples: int,
    df: float | None,
    batch_size: int = 256,
    what: str = "importance sampling",
) -> ImportanceEvidence:
    """Estimate ``log Z = log int exp(log_target(x)) dx`` by importance sampling.

    The proposal is a multivariate Student-t (``df`` degrees of freedom; a Gaussian when
    ``df`` is None) centred on ``loc`` with scale matrix ``sqrt_cov @ sqrt_cov.T``.
    ``log_target`` is a pytree (a ``FlatLogPosterior``, its likelihood captured), an
    input of the compiled program.

    Raises
    ------
    ValueError
        If ``log_target`` is NaN or ``+inf`` at some draws, or zero at all of them.
    """
    loc = jnp.asarray(loc)
    log_w = onp.asarray(
        _LOG_WEIGHTS(
            key,
            loc,
            jnp.asarray(sqrt_cov),
            jnp.asarray(log_det_sqrt, dtype=loc.dtype),
            log_target,
            num_samples=num_samples,
            df=df,
            batch_size=batch_size,
        ),
        dtype=float,
    )
    bad = int(onp.sum(onp.isnan(log_w) | (log_w == onp.inf)))
    if bad:
        raise ValueError(
            f"{what}: the log-likelihood (or prior) was NaN or +inf at {bad} of "
            f"{num_samples} draws from the proposal, so the importance weights are undefined."
        )
    if not onp.any(onp.isfinite(log_w)):
        raise ValueError(
            f"{what}: every one of the {num_samples} draws has zero posterior density "
            "(outside the prior, or a log-likelihood of -inf)."
        )
    top = onp.max(log_w)
    w = onp.exp(log_w - top)
    mean_w = onp.mean(w)
    rel_var = max(onp.mean(w**2) / mean_w**2 - 1.0, 0.0)
    log_z = float(top + math.log(mean_w))
    k = pareto_khat(log_w)
    if not k <= KHAT_THRESHOLD:
        warnings.warn(
            f"{what}: the Pareto k-hat of the importance weights is {k:.2f} > "
            f"{KHAT_THRESHOLD}, so the corrected evidence and its error cannot be trusted "
            "(the posterior is far from the proposal: try more samples, a smaller `df`, or "
            "nested_sampling).",
            RuntimeWarning,
            stacklevel=3,
        )
    return ImportanceEvidence(
        log_evidence=jnp.asarray(log_z),
        log_evidence_error=jnp.asarray(math.sqrt(rel_var / num_samples)),
        pareto_k=float(k),
        ess_kish=float(onp.sum(w) ** 2 / onp.sum(w**2)),
        num_samples=int(num_samples),
        df=df,
    )


def optional_importance_evidence(
    log_target: Callable[[jax.Array], jax.Array],
    loc: jax.Array,
    sqrt_cov: jax.Array,
    log_det_sqrt: jax.Array,
    key: Any,
    *,
    num_samples: int,
    df: float | None,
    batch_size: int,
    estimator: str,
    warning: str,
) -> tuple[ImportanceEvidence | None, str | None]:
    """The importance correction of an estimator's evidence, or why there is none.

    ``num_samples=0`` skips it. Otherwise ``key`` is checked (``zdx_base.checks.as_key``)
    and :func:`importance_evidence` runs; the ``ValueError`` it raises for weights that are
    undefined becomes the reason, with a ``RuntimeWarning`` ``"{warning}: {reason}"``
    pointing at the estimator's caller.

    Returns
    -------
    tuple
        ``(ImportanceEvidence, None)``, or ``(None, reason)``.
    """
    if num_samples == 0:
        return None, "importance_samples=0"
    try:
        importance = importance_evidence(
            log_target,
            loc,
            sqrt_cov,
            log_det_sqrt,
            checks.as_key(estimator, "key", key),
            num_samples=num_samples,
            df=df,
            batch_size=batch_size,
            what=estimator,
        )
    except ValueError as err:
        warnings.warn(f"{warning}: {err}", RuntimeWarning, stacklevel=3)
        return None, str(err)
    return importance, None


def corrected_evidence(
    estimator: str,
    importance: ImportanceEvidence | None,
    evidence_problem: str | None,
    importance_problem: str | None,
) -> ImportanceEvidence:
    """The importance correction of a result's evidence.

    Raises
    ------
    ValueError
        Saying why, when the posterior has no evidence (``evidence_problem``) or the
        correction was not made (``importance_problem``).
    """
    if evidence_problem is not None:
        raise ValueError(f"{estimator}: no evidence: {evidence_problem}.")
    if importance is None:
        raise ValueError(f"{estimator}: no importance-corrected evidence: {importance_problem}.")
    return importance


class CorrectedEvidenceResult(eqx.Module):
    """The importance-corrected evidence of a Gaussian approximation, read from the fields
    ``importance``, ``evidence_problem`` and ``importance_problem`` of the subclass.

    Reading a property raises ``ValueError`` saying why when there is no evidence (an
    improper prior) or no correction.
    """

    #: The estimator's name, which starts the error messages.
    _estimator_name: ClassVar[str]

    def _importance(self) -> ImportanceEvidence:
        return corrected_evidence(
            self._estimator_name, self.importance, self.evidence_problem, self.importance_problem
        )

    @property
    def corrected_log_evidence(self) -> jax.Array:
        """The log evidence by importance sampling from a Student-t with the
        approximation's mean and covariance (see ``importance``)."""
        return self._importance().log_evidence

    @property
    def corrected_log_evidence_error(self) -> jax.Array:
        """The standard error of ``corrected_log_evidence``."""
        return self._importance().log_evidence_error

    @property
    def pareto_k(self) -> float:
        """The Pareto k-hat of the importance weights: above 0.7 the corrected evidence
        cannot be trusted."""
        return self._importance().pareto_k
