"""Step-size and metric adaptation of HMC-type samplers, as pure functions for ``lax.scan``.

The warm-up follows Stan's windows: a fast window (step size only), slow windows
doubling in length (step size and the covariance of the draws), and a final fast
window. The step size is tuned by Nesterov dual averaging (Hoffman & Gelman 2014) to a
target acceptance probability. The chains run in a whitened space where the posterior
is close to a unit normal, so the covariance estimate of a window is shrunk towards the
identity, more strongly when the window holds few draws for the dimension.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as onp

_T0 = 10.0
_GAMMA = 0.05
_KAPPA = 0.75


def window_schedule(
    num_warmup: int, initial: int = 75, first_window: int = 25, final: int = 50
) -> tuple[onp.ndarray, onp.ndarray]:
    """Stan's warm-up windows.

    Returns
    -------
    slow, window_end : ndarray of bool
        ``(num_warmup,)`` each: whether a warm-up step collects draws for the covariance,
        and whether it closes a slow window (the metric is updated after it). Fewer than
        20 steps adapt the step size only.
    """
    slow = onp.zeros(num_warmup, bool)
    end = onp.zeros(num_warmup, bool)
    if num_warmup < 20:
        return slow, end
    if initial + first_window + final > num_warmup:
        initial = int(0.15 * num_warmup)
        final = int(0.1 * num_warmup)
        first_window = num_warmup - initial - final
    final_start = num_warmup - final
    start, size = initial, first_window
    while start < final_start:
        if 3 * size > final_start - start:
            size = final_start - start
        slow[start : start + size] = True
        end[start + size - 1] = True
        start, size = start + size, 2 * size
    return slow, end


class DualAveraging(NamedTuple):
    """The state of dual-averaging step-size adaptation (log step sizes)."""

    log_step: jax.Array
    log_step_avg: jax.Array
    error_avg: jax.Array
    count: jax.Array
    mu: jax.Array


def dual_averaging_start(step_size: jax.Array) -> DualAveraging:
    """Start (or restart) dual averaging from ``step_size``, aiming at ``log(10 step_size)``."""
    log_step = jnp.log(step_size)
    zero = jnp.zeros_like(log_step)
    return DualAveraging(log_step, zero, zero, zero, jnp.log(10.0) + log_step)


def dual_averaging_update(
    state: DualAveraging, accept_prob: jax.Array, target: float
) -> DualAveraging:
    """One update towards the acceptance probability ``target``."""
    count = state.count + 1
    eta = 1.0 / (count + _T0)
    accept_prob = jnp.where(jnp.isfinite(accept_prob), accept_prob, 0.0)
    error_avg = (1.0 - eta) * state.error_avg + eta * (target - accept_prob)
    log_step = state.mu - jnp.sqrt(count) / _GAMMA * error_avg
    weight = count**-_KAPPA
    log_step_avg = weight * log_step + (1.0 - weight) * state.log_step_avg
    return DualAveraging(log_step, log_step_avg, error_avg, count, state.mu)


class Welford(NamedTuple):
    """Running mean and scatter matrix of the draws of a window."""

    count: jax.Array
    mean: jax.Array
    scatter: jax.Array


def welford_start(dim: int, dtype) -> Welford:
    return Welford(jnp.zeros((), dtype), jnp.zeros(dim, dtype), jnp.zeros((dim, dim), dtype))


def welford_update(state: Welford, x: jax.Array) -> Welford:
    count = state.count + 1
    delta = x - state.mean
    mean = state.mean + delta / count
    return Welford(count, mean, state.scatter + jnp.outer(delta, x - mean))


def metric_factor(state: Welford, dense: bool) -> jax.Array:
    """A lower-triangular ``L`` with ``L @ L.T`` the shrunk covariance of the window.

    The sample covariance of ``n`` draws in ``k`` dimensions is averaged with the
    identity (the covariance of the whitened posterior) with weights ``n`` and ``k + 5``.
    With ``dense=False`` only its diagonal is kept.
    """
    dim = state.mean.shape[0]
    n = state.count
    cov = state.scatter / jnp.maximum(n - 1.0, 1.0)
    prior_weight = dim + 5.0
    shrunk = (n * cov + prior_weight * jnp.eye(dim, dtype=cov.dtype)) / (n + prior_weight)
    if dense:
        return jnp.linalg.cholesky(shrunk)
    return jnp.diag(jnp.sqrt(jnp.diag(shrunk)))
