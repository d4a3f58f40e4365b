"""Nested sampling with blackjax's nested slice sampler (``blackjax.nss``)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as onp
from jax.scipy.special import logsumexp
from tqdm.auto import tqdm

import zdx_base
from zdx_base import checks

from ._checks import check_probability
from ._compare import EvidenceEstimate
from ._inference_data import draws_to_inference_data
from ._prior import check_prior


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


def nested_sampling(
    log_likelihood: Callable[[Any], Any],
    prior: Any,
    *,
    key: Any = None,
    num_live: int = 500,
    num_delete: int | None = None,
    num_inner_steps: int | None = None,
    termination: float = 1e-3,
    max_iterations: int = 100_000,
    num_samples: int | None = None,
    num_weight_draws: int = 100,
    progress: bool = True,
) -> NestedSamplingResult:
    """The evidence and posterior of ``likelihood x prior`` by nested sampling.

    Runs blackjax's nested slice sampler (``blackjax.nss``: hit-and-run slice moves shaped
    by the covariance of the live points) in the parameter space: the live points start as
    draws from the prior's numpyro distributions, and the prior's log-density (``-inf``
    outside each distribution's support) bounds the moves. The evidence and its error
    come from ``num_weight_draws`` simulated sequences of prior volumes
    (``blackjax.ns.utils.log_weights``).

    Parameters
    ----------
    log_likelihood : callable
        ``log_likelihood(params) -> scalar``, traceable by JAX; ``params`` has the
        structure of ``prior``.
    prior : PyTree of numpyro distributions
        Proper distributions (they are sampled), e.g.
        ``{"x": dist.Uniform(-5, 5).expand([3])}``.
    key : PRNG key or int, optional
        Default ``jax.random.key(0)``.
    num_live : int, default 500
        Live points; the error of ``log Z`` falls as ``1 / sqrt(num_live)``.
    num_delete : int, optional
        Points replaced per step (in parallel); default ``num_live // 10``.
    num_inner_steps : int, optional
        Slice steps per new point; default ``max(5, 3 * n)`` (``n`` the number of scalar
        parameters). blackjax advises at least ``2 n``; on a correlated 10-dimensional
        Gaussian, ``2 n`` biased ``log Z`` up by about 0.1 (half a sigma at 500 live
        points) while ``3 n`` was unbiased.
    termination : float, default 1e-3
        Stop when the live points hold less than this fraction of the evidence.
    max_iterations : int, default 100000
        A bound on the steps (a warning says if it stopped the run).
    num_samples : int, optional
        Equally weighted posterior draws to return; default the effective sample size of
        the dead points.
    num_weight_draws : int, default 100
        Simulated prior-volume sequences for the evidence and its error.
    progress : bool, default True
        Show a ``tqdm`` bar over the dead points, with ``log Z`` and the log of the
        evidence fraction still in the live points.

    Returns
    -------
    NestedSamplingResult
        ``log_evidence``, ``log_evidence_error``, ``samples``,
        ``num_likelihood_evaluations``, ``information``, ``ess_kish``...

    Raises
    ------
    TypeError, ValueError
        If ``log_likelihood`` is not callable, ``prior`` is not a pytree of proper
        numpyro distributions, the settings are out of range, or the log-likelihood is NaN
        or ``+inf`` at the initial draws from the prior, or ``-inf`` at all of them.

    Warns
    -----
    RuntimeWarning
        When ``max_iterations`` stopped the run before ``termination``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import numpyro.distributions as dist
    >>> loglike = lambda p: -0.5 * jnp.sum((p["x"] / 0.1) ** 2) - jnp.log(2 * jnp.pi * 0.01)
    >>> prior = {"x": dist.Uniform(-1.0, 1.0).expand([2])}
    >>> res = nested_sampling(loglike, prior, num_live=200, progress=False)
    >>> bool(abs(res.log_evidence - jnp.log(0.25)) < 4 * res.log_evidence_error)
    True
    """
    checks.check_callable(
        "nested_sampling",
        "log_likelihood",
        log_likelihood,
        "a function params -> scalar log-likelihood",
    )
    checked = check_prior(prior)
    checked.require_proper("nested_sampling")
    num_live = checks.check_int("nested_sampling", "num_live", num_live, minimum=2)
    num_delete = max(1, num_live // 10) if num_delete is None else num_delete
    num_delete = checks.check_int("nested_sampling", "num_delete", num_delete, minimum=1)
    if num_delete >= num_live:
        raise ValueError(
            f"nested_sampling: num_delete must be smaller than num_live ({num_live}), got "
            f"num_delete={num_delete}."
        )
    termination = check_probability("nested_sampling", "termination", termination)
    max_iterations = checks.check_int(
        "nested_sampling", "max_iterations", max_iterations, minimum=1
    )
    num_weight_draws = checks.check_int(
        "nested_sampling", "num_weight_draws", num_weight_draws, minimum=2
    )
    key = checks.as_key("nested_sampling", "key", key)

    example = checked.example()
    _, unravel, names = zdx_base.ravel(example)
    n = len(names)
    num_inner_steps = max(5, 3 * n) if num_inner_steps is None else num_inner_steps
    num_inner_steps = checks.check_int(
        "nested_sampling", "num_inner_steps", num_inner_steps, minimum=1
    )
    if num_samples is not None:
        num_samples = checks.check_int("nested_sampling", "num_samples", num_samples, minimum=1)

    key, init_key = jax.random.split(key)
    positions = _prior_draws(init_key, prior, num_live)

    # The likelihood's arrays (an equinox module's data, say) are arguments of the compiled
    # programs and the rest is static, so that a new likelihood of the same structure and
    # shapes reuses them.
    arrays, static = eqx.partition(log_likelihood, eqx.is_array)
    try:
        hash(static)
        cached = True
    except TypeError:  # a static part that cannot be hashed: compile for this call only
        cached = False
    settings = _Settings(static, num_inner_steps, num_delete)
    if cached:  # compiled once per likelihood structure, prior structure, settings and shapes
        init_fn = partial(_init, arrays=arrays, prior=prior, settings=settings)
        step_fn = partial(_step, arrays=arrays, prior=prior, settings=settings)
    else:
        init_fn = jax.jit(partial(_init_impl, prior=prior, settings=settings))
        step_fn = jax.jit(partial(_step_impl, prior=prior, settings=settings))
        init_fn = partial(init_fn, arrays=arrays)
        step_fn = partial(step_fn, arrays=arrays)
    state = init_fn(positions)
    _check_initial(state.particles.loglikelihood)

    log_stop = math.log(termination)
    dead = []
    evaluations = num_live
    iterations = 0
    logz, logz_live = -math.inf, float(state.integrator.logZ_live)
    bar = tqdm(total=None, disable=not progress, unit=" dead", desc="nested sampling")
    try:
        while True:
            remaining = logz_live - logz
            if remaining < log_stop:
                break
            if iterations >= max_iterations:
                warnings.warn(
                    f"nested_sampling: stopped at max_iterations={max_iterations} with "
                    f"log(Z_live / Z) = {remaining:.3g} > log(termination) = {log_stop:.3g}; "
                    "the evidence may be underestimated.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                break
            key, state, particles, calls, integrator = step_fn(key, state)
            dead.append(jax.device_get(particles))
            evaluations += int(calls)
            iterations += 1
            logz, logz_live = float(integrator.logZ), float(integrator.logZ_live)
            bar.update(num_delete)
            bar.set_postfix_str(
                f"logZ={logz:.3f}, log(Z_live/Z)={logz_live - logz:.2f}", refresh=False
            )
    finally:
        bar.close()

    # every dead point, then the final live points
    live = jax.device_get(state.particles)
    particles = jax.tree.map(lambda *xs: onp.concatenate(xs, axis=0), *dead, live)
    key, weight_key, sample_key = jax.random.split(key, 3)
    log_z, log_z_err, logw_mean = _padded_weights(weight_key, particles, num_weight_draws)
    if not (bool(jnp.isfinite(log_z)) and bool(jnp.isfinite(log_z_err))):
        raise ValueError(
            f"nested_sampling: the evidence came out as {float(log_z)} +- {float(log_z_err)}; "
            "the log-likelihood may be NaN or +inf somewhere in the prior."
        )
    weights = onp.exp(onp.asarray(logw_mean, dtype=float))
    weights = weights / weights.sum()
    ess = 1.0 / onp.sum(weights**2)
    loglikes = onp.asarray(particles.loglikelihood)
    information = float(onp.sum(weights * onp.where(weights > 0, loglikes, 0.0)) - log_z)
    count = int(ess) if num_samples is None else num_samples
    rng = onp.random.default_rng(onp.asarray(jax.random.key_data(sample_key)))
    idx = rng.choice(weights.shape[0], size=max(count, 1), p=weights)
    points = onp.asarray(particles.position)
    samples = jax.vmap(unravel)(jnp.asarray(points[idx]))
    return NestedSamplingResult(
        log_evidence=log_z,
        log_evidence_error=log_z_err,
        samples=samples,
        names=names,
        num_likelihood_evaluations=evaluations,
        num_iterations=iterations,
        information=jnp.asarray(information),
        ess_kish=jnp.asarray(ess),
        # device_put, not jnp.asarray: the number of points changes from run to run, and
        # jnp.asarray compiles a small program per shape
        dead_points=jax.device_put(points),
        log_weights=jax.device_put(logw_mean),
        log_likelihoods=jax.device_put(loglikes),
        unravel=unravel,
    )


class _Settings(NamedTuple):
    """What the compiled programs of a run depend on besides array shapes (hashable):
    ``log_likelihood`` is the likelihood without its arrays (``eqx.partition``)."""

    log_likelihood: Callable[[Any], Any]
    num_inner_steps: int
    num_delete: int


def _algorithm(arrays: Any, prior: Any, settings: _Settings):
    """``blackjax.nss`` on flat parameter vectors; traced inside the compiled programs.
    ``arrays`` are the likelihood's arrays, put back into ``settings.log_likelihood``."""
    checked = check_prior(prior)
    _, unravel, _ = zdx_base.ravel(checked.example())
    log_likelihood = eqx.combine(arrays, settings.log_likelihood)

    def loglikelihood_flat(x):
        return jnp.asarray(log_likelihood(unravel(x)), dtype=x.dtype)

    def logprior_flat(x):
        return checked.log_density(unravel(x)).astype(x.dtype)

    return blackjax.nss(
        logprior_fn=logprior_flat,
        loglikelihood_fn=loglikelihood_flat,
        num_inner_steps=settings.num_inner_steps,
        num_delete=settings.num_delete,
    )


@partial(jax.jit, static_argnums=2)
def _prior_draws(key: jax.Array, prior: Any, num: int) -> jax.Array:
    """``(num, n)`` flattened draws from the prior: the first live points."""
    draws = check_prior(prior).sample(key, num)
    positions = jax.vmap(lambda p: zdx_base.ravel(p).flat)(draws)
    return positions.astype(jnp.result_type(float))


def _init_impl(positions: jax.Array, arrays: Any, prior: Any, settings: _Settings):
    return _algorithm(arrays, prior, settings).init(positions)


def _step_impl(key: jax.Array, state: Any, arrays: Any, prior: Any, settings: _Settings):
    """One nested-sampling step: the new state, the dead points, and the likelihood calls
    (two per slice for its initial bracket, one per expansion and one per shrinkage)."""
    key, step_key = jax.random.split(key)
    state, info = _algorithm(arrays, prior, settings).step(step_key, state)
    slices = info.update_info
    calls = jnp.sum(2 + slices.num_expansions + slices.num_shrink)
    return key, state, info.particles, calls, state.integrator


_init = jax.jit(_init_impl, static_argnames="settings")
_step = jax.jit(_step_impl, static_argnames="settings")


def num_live_at_death(birth: jax.Array, death: jax.Array) -> jax.Array:
    """How many points were alive when each point died, in order of death.

    A point is alive at a death contour ``L`` when it was born below ``L`` (initial points
    have a NaN birth contour: born before everything) and has not died yet; a birth exactly
    at ``L`` comes after the death at ``L``. This is the effective number of live points of
    Fowlie, Handley & Su (2021) (``blackjax.ns.utils.compute_num_live``), in a form that
    compiles (no boolean indexing).

    Parameters
    ----------
    birth, death : Array
        ``(M,)`` the birth and death log-likelihood contours of every point.

    Returns
    -------
    Array
        ``(M,)`` for the points sorted by ``death``.
    """
    died = jnp.sort(death)
    initial = jnp.sum(jnp.isnan(birth))
    born = jnp.sort(jnp.where(jnp.isnan(birth), jnp.inf, birth))
    born_before = initial + jnp.searchsorted(born, died, side="left")
    order = jnp.arange(death.shape[0])
    return jnp.maximum(born_before - order - 1, 0) + 1


def _padded_weights(key: jax.Array, particles: Any, num_draws: int):
    """:func:`_weights` of every point, with the points padded to the next power of two so
    that runs ending with different numbers of dead points share a compiled program."""
    count = particles.loglikelihood.shape[0]
    size = 1 << max(count - 1, 1).bit_length()
    pad = onp.full(size - count, onp.inf)
    death = onp.concatenate([onp.asarray(particles.loglikelihood, float), pad])
    birth = onp.concatenate([onp.asarray(particles.loglikelihood_birth, float), pad])
    log_z, log_z_err, logw_mean = _weights(key, death, birth, count, num_draws)
    return log_z, log_z_err, onp.asarray(logw_mean)[:count]


@partial(jax.jit, static_argnums=4)
def _weights(key: jax.Array, death: jax.Array, birth: jax.Array, count, num_draws: int):
    """log Z, its spread over ``num_draws`` simulated sequences of prior volumes, and each
    point's expected normalised log weight, in one compiled program.

    Skilling (2006): sorted by death contour, the prior volume shrinks at each death by
    ``t ~ Beta(n, 1)`` (``log t = log(u) / n``, ``n`` the live points then); a point's
    weight is its likelihood times the trapezoid ``(X_prev - X_next) / 2``. Only the first
    ``count`` points are real; the others (death and birth contours ``+inf``: they die
    after and are born after every real point) get weight zero.
    """
    order = jnp.argsort(death)
    n_live = num_live_at_death(birth, death)
    u = jax.random.uniform(key, (death.shape[0], num_draws), dtype=death.dtype)
    log_x = jnp.cumsum(jnp.log1p(-u) / n_live[:, None], axis=0)
    real = (jnp.arange(death.shape[0]) < count)[:, None]  # in order of death
    prev = jnp.concatenate([jnp.zeros((1, num_draws), death.dtype), log_x[:-1]])
    nxt = jnp.concatenate([log_x[1:], jnp.full((1, num_draws), -jnp.inf, death.dtype)])
    nxt = jnp.where(jnp.roll(real, -1, axis=0) & real, nxt, -jnp.inf)
    # log((X_prev - X_next) / 2), with X_next < X_prev
    log_dx = prev + jnp.log(-jnp.expm1(nxt - prev)) - jnp.log(2.0)
    log_w_sorted = jnp.where(real, log_dx + jnp.where(real, death[order][:, None], 0.0), -jnp.inf)
    log_w = jnp.empty_like(log_w_sorted).at[order].set(log_w_sorted)
    logz_draws = logsumexp(log_w, axis=0)
    logw_mean = logsumexp(log_w - logz_draws, axis=1) - math.log(num_draws)
    return jnp.mean(logz_draws), jnp.std(logz_draws), logw_mean - logsumexp(logw_mean)


def _check_initial(loglikes: jax.Array) -> None:
    values = onp.asarray(loglikes)
    bad = onp.isnan(values) | (values == onp.inf)
    if bad.any():
        raise ValueError(
            f"nested_sampling: `log_likelihood` returned NaN or +inf at {int(bad.sum())} of "
            f"{values.size} initial draws from the prior; it must be finite (or -inf for "
            "impossible parameters) everywhere in the prior's support."
        )
    if not onp.isfinite(values).any():
        raise ValueError(
            "nested_sampling: `log_likelihood` is -inf at every initial draw from the prior; "
            "the likelihood must be positive somewhere the prior puts mass."
        )
