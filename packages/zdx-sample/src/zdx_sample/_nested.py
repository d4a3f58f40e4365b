"""Nested sampling with blackjax's nested slice sampler (``blackjax.nss``)."""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import numpy as onp
from tqdm.auto import tqdm

import zdx_base
from zdx_base import checks
from zdx_batching import Captured

from ._checks import check_probability
from ._compiled import Program, capture_log_likelihood
from ._nested_result import NestedSamplingResult
from ._nested_weights import padded_weights
from ._prior import check_prior


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
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 20,
    checkpoint_seconds: float | None = None,
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
    checkpoint : str or os.PathLike, optional
        A file that keeps the run's progress (``zdx_base.Checkpoint``): the live points,
        the dead points so far and the random key. When it exists, the run continues
        from it and ends with the same result, bit for bit, as a run never stopped;
        one written for another likelihood, prior or settings is refused. SIGINT and
        SIGTERM write a last checkpoint and stop the run
        (``zdx_base.CheckpointInterrupted``).
    checkpoint_every : int, default 20
        Iterations between checkpoints.
    checkpoint_seconds : float, optional
        Write at most this often instead (the last iteration is always written).

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

    # The likelihood is captured (zdx_batching.capture): its arrays are inputs of the
    # compiled programs and the rest is compared by equality, so that a new likelihood of
    # the same code and equal captures (and the same prior structure and shapes) reuses them.
    settings = _Settings(num_inner_steps, num_delete)

    def start(captured):
        return _INIT.for_inputs(captured)(positions, captured, prior, settings)

    captured, state = capture_log_likelihood(log_likelihood, start)
    step_fn = _STEP.for_inputs(captured)
    _check_initial(state.particles.loglikelihood)

    log_stop = math.log(termination)
    progress_state = _Progress(
        key=key,
        state=state,
        dead=[],
        evaluations=num_live,
        iterations=0,
        logz=-math.inf,
        logz_live=float(state.integrator.logZ_live),
    )
    saver = None
    if checkpoint is not None:
        settings_record = {
            "num_live": num_live,
            "num_delete": num_delete,
            "num_inner_steps": num_inner_steps,
            "termination": termination,
            "max_iterations": max_iterations,
            "key": onp.asarray(jax.random.key_data(key)).tolist(),
        }
        saver = _NestedCheckpoint(
            zdx_base.Checkpoint(
                "nested_sampling",
                checkpoint,
                model=(log_likelihood, prior),
                settings=settings_record,
                every=checkpoint_every,
                seconds=checkpoint_seconds,
                unit="iterations",
            ),
            progress_state,
        )
        progress_state = saver.resume()
    key, state, dead = progress_state.key, progress_state.state, progress_state.dead
    evaluations, iterations = progress_state.evaluations, progress_state.iterations
    logz, logz_live = progress_state.logz, progress_state.logz_live
    bar = tqdm(total=None, disable=not progress, unit=" dead", desc="nested sampling")
    bar.update(iterations * num_delete)
    guard = saver.checkpoint.interruptible() if saver else contextlib.nullcontext()
    try:
        with guard:
            while True:
                remaining = logz_live - logz
                if remaining < log_stop:
                    break
                if iterations >= max_iterations:
                    warnings.warn(
                        f"nested_sampling: stopped at max_iterations={max_iterations} with "
                        f"log(Z_live / Z) = {remaining:.3g} > log(termination) = "
                        f"{log_stop:.3g}; the evidence may be underestimated.",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    break
                key, state, particles, calls, integrator = step_fn(
                    key, state, captured, prior, settings
                )
                dead.append(jax.device_get(particles))
                evaluations += int(calls)
                iterations += 1
                logz, logz_live = float(integrator.logZ), float(integrator.logZ_live)
                bar.update(num_delete)
                bar.set_postfix_str(
                    f"logZ={logz:.3f}, log(Z_live/Z)={logz_live - logz:.2f}", refresh=False
                )
                if saver is not None and iterations % saver.checkpoint.every == 0:
                    saver.reached(
                        _Progress(key, state, dead, evaluations, iterations, logz, logz_live),
                        max_iterations,
                    )
            if saver is not None:
                saver.reached(
                    _Progress(key, state, dead, evaluations, iterations, logz, logz_live),
                    iterations,
                )
    finally:
        bar.close()

    # every dead point, then the final live points
    live = jax.device_get(state.particles)
    particles = jax.tree.map(lambda *xs: onp.concatenate(xs, axis=0), *dead, live)
    key, weight_key, sample_key = jax.random.split(key, 3)
    log_z, log_z_err, logw_mean = padded_weights(weight_key, particles, num_weight_draws)
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


class _Progress(NamedTuple):
    """Where a run stands after an iteration: all a checkpoint holds."""

    key: jax.Array
    state: Any
    dead: list
    evaluations: int
    iterations: int
    logz: float
    logz_live: float


class _NestedCheckpoint:
    """The progress of :func:`nested_sampling` in a ``zdx_base.Checkpoint``: the random
    key, the leaves of the sampler's state, the dead points so far (concatenated) and the
    counters."""

    def __init__(self, checkpoint: zdx_base.Checkpoint, first: _Progress):
        self.checkpoint = checkpoint
        self.first = first
        self.state_def = jax.tree.structure(first.state)
        self.dead_def = jax.tree.structure(first.state.particles)

    def resume(self) -> _Progress:
        """The saved progress, or the first when there is no checkpoint yet."""
        loaded = self.checkpoint.load()
        if loaded is None:
            return self.first
        entries, iterations = loaded
        state = jax.tree.unflatten(
            self.state_def,
            [jnp.asarray(entries[f"state.{i}"]) for i in range(self.state_def.num_leaves)],
        )
        dead = []
        if iterations:
            dead = [
                jax.tree.unflatten(
                    self.dead_def,
                    [entries[f"dead.{i}"] for i in range(self.dead_def.num_leaves)],
                )
            ]
        return _Progress(
            key=jax.random.wrap_key_data(jnp.asarray(entries["key"])),
            state=state,
            dead=dead,
            evaluations=int(entries["evaluations"]),
            iterations=iterations,
            logz=float(entries["logz"]),
            logz_live=float(entries["logz_live"]),
        )

    def reached(self, now: _Progress, total: int) -> None:
        def entries():
            out = {
                "key": jax.random.key_data(now.key),
                "evaluations": onp.asarray(now.evaluations),
                "logz": onp.asarray(now.logz, onp.float64),
                "logz_live": onp.asarray(now.logz_live, onp.float64),
            }
            for i, leaf in enumerate(jax.tree.leaves(now.state)):
                out[f"state.{i}"] = leaf
            if now.dead:
                joined = jax.tree.map(lambda *xs: onp.concatenate(xs, axis=0), *now.dead)
                for i, leaf in enumerate(jax.tree.leaves(joined)):
                    out[f"dead.{i}"] = leaf
            return out

        self.checkpoint.reached(now.iterations, total, entries)


class _Settings(NamedTuple):
    """The settings the compiled programs of a run depend on (hashable)."""

    num_inner_steps: int
    num_delete: int


def _algorithm(log_likelihood: Captured, prior: Any, settings: _Settings):
    """``blackjax.nss`` on flat parameter vectors; traced inside the compiled programs."""
    checked = check_prior(prior)
    _, unravel, _ = zdx_base.ravel(checked.example())

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


def _init(positions: jax.Array, log_likelihood: Captured, prior: Any, settings: _Settings):
    return _algorithm(log_likelihood, prior, settings).init(positions)


def _step(key: jax.Array, state: Any, log_likelihood: Captured, prior: Any, settings: _Settings):
    """One nested-sampling step: the new state, the dead points, and the likelihood calls
    (two per slice for its initial bracket, one per expansion and one per shrinkage)."""
    key, step_key = jax.random.split(key)
    state, info = _algorithm(log_likelihood, prior, settings).step(step_key, state)
    slices = info.update_info
    calls = jnp.sum(2 + slices.num_expansions + slices.num_shrink)
    return key, state, info.particles, calls, state.integrator


_INIT = Program(_init, static_argnames=("settings",))
_STEP = Program(_step, static_argnames=("settings",))


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
