"""Variational inference (numpyro SVI) with a full-rank Gaussian in the whitened space."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as onp

import zdx_base
from zdx_base import checks
from zdx_opt import LatentMap

from . import _progress
from ._chains import LatentDensity
from ._compare import EvidenceEstimate
from ._importance import (
    CorrectedEvidenceResult,
    ImportanceEvidence,
    optional_importance_evidence,
)
from ._inference_data import draws_to_inference_data
from ._prepare import prepare
from ._variational_fit import FIT, fit_in_segments


class VariationalResult(CorrectedEvidenceResult):
    """The full-rank Gaussian fitted by :func:`variational`, its ELBO and evidence.

    Attributes
    ----------
    mean : PyTree
        The mean of the Gaussian, in the structure of ``params``.
    covariance : Array
        ``(n, n)`` its covariance, in flattened order (``names``).
    names : tuple of str
        A name per flattened parameter.
    elbo : Array
        The evidence lower bound ``E_q[log L + log prior - log q]`` of the final Gaussian,
        in the parameters' own units (``log |det P|`` of the whitening included), from
        ``elbo_samples`` draws; a lower bound on ``log Z`` when the prior is proper.
    elbo_error : Array
        The Monte Carlo standard error of ``elbo``.
    losses : Array
        ``(num_steps,)`` the SVI loss (minus the ELBO in the latent space, one draw per
        step) along the optimisation.
    importance : ImportanceEvidence or None
        The importance-corrected evidence (Student-t proposal on the fitted Gaussian).
    latent_map : zdx_opt.LatentMap
        The whitening ``u -> params`` the Gaussian was fitted in.
    loc, scale_tril : Array
        The Gaussian in the latent space: ``u ~ N(loc, scale_tril @ scale_tril.T)``.
    evidence_problem, importance_problem : str or None
        Why there is no evidence, or no correction (None when there is).
    """

    _estimator_name: ClassVar[str] = "variational"

    mean: Any
    covariance: jax.Array
    names: tuple[str, ...] = eqx.field(static=True)
    elbo: jax.Array
    elbo_error: jax.Array
    losses: jax.Array
    importance: ImportanceEvidence | None
    latent_map: LatentMap
    loc: jax.Array
    scale_tril: jax.Array
    evidence_problem: str | None = eqx.field(static=True, default=None)
    importance_problem: str | None = eqx.field(static=True, default=None)

    @property
    def sigma(self) -> Any:
        """The marginal standard deviations, in the structure of ``params``."""
        return self.latent_map.unravel(jnp.sqrt(jnp.diag(self.covariance)))

    def _draws(self, key: jax.Array, num_samples: int) -> jax.Array:
        z = jax.random.normal(key, (num_samples, self.loc.shape[0]), self.loc.dtype)
        u = self.loc + z @ self.scale_tril.T
        return self.latent_map.x0 + u @ self.latent_map.projection.T

    def sample(self, key: Any, num_samples: int = 1000) -> Any:
        """Draws from the fitted Gaussian, each leaf with a leading axis of ``num_samples``."""
        num_samples = checks.check_int(
            "VariationalResult.sample", "num_samples", num_samples, minimum=1
        )
        return jax.vmap(self.latent_map.unravel)(
            self._draws(checks.as_key("VariationalResult.sample", "key", key), num_samples)
        )

    def evidence_estimates(self) -> list[EvidenceEstimate]:
        """The ELBO (a lower bound) and the corrected log evidence, for :func:`compare`."""
        if self.evidence_problem is not None:
            return []
        rows = [EvidenceEstimate("elbo", float(self.elbo), float(self.elbo_error), bound=True)]
        if self.importance is not None:
            rows.append(self.importance.estimate("variational+is"))
        return rows

    def to_inference_data(self, key: Any = None, num_samples: int = 1000):
        """An ArviZ ``InferenceData`` of ``num_samples`` draws from the fitted Gaussian:
        ``posterior.params`` with dimensions ``(chain, draw, parameter)``."""
        num_samples = checks.check_int(
            "VariationalResult.to_inference_data", "num_samples", num_samples, minimum=1
        )
        flat = self._draws(
            checks.as_key("VariationalResult.to_inference_data", "key", key), num_samples
        )
        return draws_to_inference_data(
            flat[None], self.names, attrs={"estimator": "variational", "elbo": float(self.elbo)}
        )


@jax.jit
def _gaussian_in_params(latent_map, loc, scale_tril):
    """The fitted Gaussian in the parameters: a square root of its covariance and its mean."""
    return latent_map.projection @ scale_tril, latent_map.x0 + latent_map.projection @ loc


def variational(
    log_likelihood: Callable[[Any], Any],
    params: Any,
    prior: Any = None,
    fisher: Any = None,
    *,
    num_steps: int = 2000,
    learning_rate: float = 1e-2,
    num_particles: int = 1,
    key: Any = None,
    progress: bool = True,
    optimise: bool = False,
    elbo_samples: int = 2000,
    importance_samples: int = 2000,
    df: float | None = 5.0,
    batch_size: int = 256,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 200,
    checkpoint_seconds: float | None = None,
) -> VariationalResult:
    """Fit a full-rank Gaussian to the posterior by stochastic variational inference.

    numpyro's SVI (``Trace_ELBO``, Adam) fits ``AutoMultivariateNormal`` to the posterior
    of the latent vector ``u`` of ``params = x0 + P @ u``, where ``P`` whitens the
    posterior Fisher matrix at ``params`` (as in :func:`nuts`). It starts from the Laplace
    solution, ``u ~ N(0, I)``, so it only has to learn how the posterior departs from it.
    The result reports the ELBO and the evidence corrected by importance sampling from a
    Student-t with the fitted mean and covariance.

    Parameters
    ----------
    log_likelihood, params, prior, fisher, optimise
        As for :func:`laplace`.
    num_steps : int, default 2000
        SVI steps.
    learning_rate : float, default 1e-2
        Adam's initial step size (the latent space has unit scale); it decays
        exponentially to 1 % of this over the run.
    num_particles : int, default 1
        Draws per ELBO gradient.
    key : PRNG key or int, optional
        Default ``jax.random.key(0)``.
    progress : bool, default True
        Show a progress bar (moved about 50 times over the run, from inside the program).
    elbo_samples : int, default 2000
        Draws for the final ELBO estimate.
    importance_samples : int, default 2000
        Draws for the importance correction; 0 skips it.
    df : float or None, default 5.0
        Degrees of freedom of the Student-t proposal (None: the Gaussian itself).
    batch_size : int, default 256
        How many draws are evaluated at once.
    checkpoint : str or os.PathLike, optional
        A file that keeps the optimisation's progress (``zdx_base.Checkpoint``): Adam's
        state, the random key and the losses so far. When it exists, the run continues
        from it and ends with the same result, bit for bit, as a run never stopped; one
        written for another model or other settings is refused. SIGINT and SIGTERM
        write a last checkpoint and stop the run (``zdx_base.CheckpointInterrupted``).
        The steps then run in compiled segments of ``checkpoint_every``.
    checkpoint_every : int, default 200
        SVI steps between checkpoints.
    checkpoint_seconds : float, optional
        Write at most this often instead (the last step is always written).

    Returns
    -------
    VariationalResult
        The fitted Gaussian (``mean``, ``covariance``, ``sigma``), its ``elbo``, the
        corrected evidence (``corrected_log_evidence`` with its error and ``pareto_k``)
        and the SVI ``losses``.

    Raises
    ------
    TypeError, ValueError
        As :func:`laplace` does for bad input, and if the optimisation produces NaN.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> loglike = lambda p: -0.5 * jnp.sum((p["x"] / 0.1) ** 2)
    >>> res = variational(loglike, {"x": jnp.zeros(2)}, num_steps=100, progress=False)
    >>> bool(jnp.allclose(res.sigma["x"], 0.1, rtol=0.1))
    True
    """
    num_steps = checks.check_int("variational", "num_steps", num_steps, minimum=1)
    learning_rate = checks.check_number(
        "variational", "learning_rate", learning_rate, positive=True
    )
    num_particles = checks.check_int("variational", "num_particles", num_particles, minimum=1)
    elbo_samples = checks.check_int("variational", "elbo_samples", elbo_samples, minimum=2)
    importance_samples = checks.check_int(
        "variational", "importance_samples", importance_samples, minimum=0
    )
    if 0 < importance_samples < 10:
        raise ValueError(
            "`importance_samples` must be 0 (no correction) or at least 10, got "
            f"{importance_samples}."
        )
    df = checks.check_number("variational", "df", df, positive=True, allow_none=True)
    batch_size = checks.check_int("variational", "batch_size", batch_size, minimum=1)
    key = checks.as_key("variational", "key", key)
    post, curv, latent_map = prepare(
        "variational", log_likelihood, params, prior, fisher, optimise=optimise
    )
    log_det_p = -0.5 * curv.log_det  # log |det P|, with P.T F P = I
    density = LatentDensity(post.log_posterior(), latent_map)
    run_key, elbo_key, is_key = jax.random.split(key, 3)
    fit_inputs = (density, run_key, elbo_key, jnp.asarray(learning_rate, post.x0.dtype))
    fit_settings = dict(
        num_steps=num_steps,
        num_particles=num_particles,
        elbo_samples=elbo_samples,
        batch_size=batch_size,
        report_every=_progress.report_interval(num_steps) if progress else 0,
    )
    with _progress.progress_bar(num_steps, "variational", bool(progress)):
        if checkpoint is None:
            loc, scale_tril, losses, terms = FIT(*fit_inputs, **fit_settings)
        else:
            saver = zdx_base.Checkpoint(
                "variational",
                checkpoint,
                model=(log_likelihood, prior, latent_map.x0, latent_map.projection),
                settings=dict(
                    num_steps=num_steps,
                    learning_rate=learning_rate,
                    num_particles=num_particles,
                    elbo_samples=elbo_samples,
                    batch_size=batch_size,
                    key=onp.asarray(jax.random.key_data(key)).tolist(),
                ),
                every=checkpoint_every,
                seconds=checkpoint_seconds,
            )
            loc, scale_tril, losses, terms = fit_in_segments(saver, *fit_inputs, **fit_settings)
    if not (
        onp.all(onp.isfinite(onp.asarray(loc))) and onp.all(onp.isfinite(onp.asarray(scale_tril)))
    ):
        raise ValueError(
            "variational: the optimisation produced NaN or inf (the last losses were "
            f"{losses[-3:]}); try a smaller `learning_rate`."
        )

    # the ELBO in the parameters' units, from fresh draws of the final Gaussian
    terms = onp.asarray(terms) + log_det_p
    if not onp.all(onp.isfinite(terms)):
        bad = int(onp.sum(~onp.isfinite(terms)))
        raise ValueError(
            f"variational: the log posterior is not finite at {bad} of {elbo_samples} draws "
            "of the fitted Gaussian (outside the prior's support, or NaN), so the ELBO is "
            "-inf or undefined; use a prior without hard edges near the posterior, or nuts."
        )
    elbo = jnp.asarray(onp.mean(terms))
    elbo_error = jnp.asarray(onp.std(terms) / math.sqrt(elbo_samples))

    problem = post.evidence_problem()
    importance = None
    importance_problem = None
    sqrt_cov, mean_flat = _gaussian_in_params(latent_map, loc, scale_tril)
    if problem is None:
        importance, importance_problem = optional_importance_evidence(
            post.flat_log_posterior(),
            mean_flat,
            sqrt_cov,
            log_det_p + float(onp.sum(onp.log(onp.diag(onp.asarray(scale_tril))))),
            is_key,
            num_samples=importance_samples,
            df=df,
            batch_size=batch_size,
            estimator="variational",
            warning="No importance-corrected evidence",
        )
    return VariationalResult(
        mean=latent_map.unravel(mean_flat),
        covariance=sqrt_cov @ sqrt_cov.T,
        names=post.names,
        elbo=elbo,
        elbo_error=elbo_error,
        losses=losses,
        importance=importance,
        latent_map=latent_map,
        loc=loc,
        scale_tril=scale_tril,
        evidence_problem=problem,
        importance_problem=importance_problem,
    )
