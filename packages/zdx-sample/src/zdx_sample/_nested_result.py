"""The result type of :func:`nested_sampling`: the evidence, the weighted dead points and
equally weighted posterior draws."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

import zdx_base

from ._compare import EvidenceEstimate
from ._inference_data import draws_to_inference_data


class NestedSamplingResult(eqx.Module):
    """The evidence and posterior of :func:`nested_sampling`.

    Attributes
    ----------
    log_evidence : Array
        ``log Z``, the mean over simulated prior-volume sequences.
    log_evidence_error : Array
        Its standard deviation over those sequences (the statistical error of nested
        sampling, about ``sqrt(information / num_live)``).
    samples : PyTree
        Equally weighted posterior draws (resampled from the dead points), each leaf with
        a leading axis of ``num_samples``.
    names : tuple of str
        A name per flattened parameter.
    num_likelihood_evaluations : int
        Calls of ``log_likelihood``, counted exactly from blackjax's slice-sampler
        records: the live points, then per slice step two for the initial bracket plus
        one per bracket expansion and one per shrinkage.
    num_iterations : int
        Nested-sampling steps (each replaces ``num_delete`` points).
    information : Array
        The Kullback-Leibler divergence from prior to posterior, in nats.
    ess_kish : Array
        Kish's effective sample size of the weighted dead points, ``(sum w)^2 / sum w^2``
        (not ArviZ's ``ess_bulk``, which measures autocorrelation).
    dead_points : Array
        ``(num_dead, n)`` every dead point (and the final live points), flattened.
    log_weights : Array
        ``(num_dead,)`` their normalised log posterior weights (``logsumexp = 0``).
    log_likelihoods : Array
        ``(num_dead,)`` their log-likelihoods.
    """

    log_evidence: jax.Array
    log_evidence_error: jax.Array
    samples: Any
    names: tuple[str, ...] = eqx.field(static=True)
    num_likelihood_evaluations: int = eqx.field(static=True)
    num_iterations: int = eqx.field(static=True)
    information: jax.Array
    ess_kish: jax.Array
    dead_points: jax.Array
    log_weights: jax.Array
    log_likelihoods: jax.Array
    unravel: Callable[[jax.Array], Any] = eqx.field(static=True)

    @property
    def num_samples(self) -> int:
        return int(jax.tree.leaves(self.samples)[0].shape[0])

    @property
    def mean(self) -> Any:
        """The posterior mean (from the weighted dead points), in the prior's structure."""
        w = jnp.exp(self.log_weights)
        return self.unravel(w @ self.dead_points)

    @property
    def sigma(self) -> Any:
        """The posterior standard deviations (weighted dead points)."""
        w = jnp.exp(self.log_weights)
        mean = w @ self.dead_points
        return self.unravel(jnp.sqrt(w @ (self.dead_points - mean) ** 2))

    def evidence_estimates(self) -> list[EvidenceEstimate]:
        """The log evidence estimate of this result, for :func:`compare`."""
        return [
            EvidenceEstimate(
                "nested_sampling", float(self.log_evidence), float(self.log_evidence_error)
            )
        ]

    def to_inference_data(self):
        """An ArviZ ``InferenceData`` of the equally weighted draws (one chain):
        ``posterior.params`` with dimensions ``(chain, draw, parameter)``."""
        flat = jax.vmap(lambda p: zdx_base.ravel(p).flat)(self.samples)
        return draws_to_inference_data(
            flat[None],
            self.names,
            attrs={
                "estimator": "nested_sampling",
                "log_evidence": float(self.log_evidence),
                "log_evidence_error": float(self.log_evidence_error),
            },
        )
