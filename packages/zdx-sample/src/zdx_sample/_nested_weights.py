"""The weights of nested sampling's dead points: the effective number of live points at
each death, simulated prior volumes, the evidence and its error."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as onp
from jax.scipy.special import logsumexp


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


def padded_weights(key: jax.Array, particles: Any, num_draws: int):
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
