"""The compiled programs of :func:`zdx_sample.variational`: numpyro's SVI of a full-rank
Gaussian over the whitened latent vector, and the ELBO terms of the fitted Gaussian.

:func:`fit` runs every step in one program. A checkpointed run uses
:func:`fit_in_segments`: the same steps (the same functions, traced into one program per
segment length), with SVI's state (Adam's moments, the step count and the random key) and
the losses so far written to a ``zdx_base.Checkpoint`` between segments, so a resumed run
continues with the numbers an uninterrupted one would have had.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as onp
import numpyro
import numpyro.distributions as dist
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoMultivariateNormal
from numpyro.infer.initialization import init_to_value

import zdx_base

from . import _progress
from ._chains import LatentDensity
from ._compiled import Program


def elbo_terms(key, loc, scale_tril, log_density_u, num, batch_size):
    """``log p(u) - log q(u)`` at ``num`` draws of the Gaussian ``q``."""
    k = loc.shape[0]
    eps = jax.random.normal(key, (num, k), loc.dtype)
    us = loc + eps @ scale_tril.T
    log_q = (
        -0.5 * k * math.log(2 * math.pi)
        - jnp.sum(jnp.log(jnp.diag(scale_tril)))
        - 0.5 * jnp.sum(eps**2, axis=1)
    )
    log_p = jax.lax.map(log_density_u, us, batch_size=min(batch_size, num))
    return log_p - log_q


def _svi(density: LatentDensity, learning_rate: jax.Array, num_steps: int, num_particles: int):
    """numpyro's SVI of the full-rank Gaussian over the latent vector ``u``."""
    k = density.latent_map.dim

    def model():
        u = numpyro.sample("u", dist.ImproperUniform(dist.constraints.real_vector, (), (k,)))
        numpyro.factor("log_density", density(u))

    start = jnp.zeros(k, density.latent_map.x0.dtype)
    guide = AutoMultivariateNormal(
        model, init_loc_fn=init_to_value(values={"u": start}), init_scale=1.0
    )

    # Adam's steps keep a size of about the step size even at the optimum, where the
    # gradients are pure Monte Carlo noise: decay it to 1 % over the run so that the fit
    # settles instead of wandering around the optimum.
    def step_size(i):
        return learning_rate * 0.01 ** jnp.minimum(i / num_steps, 1.0)

    return SVI(model, guide, numpyro.optim.Adam(step_size), Trace_ELBO(num_particles))


def _svi_steps(svi, state, steps: jax.Array, report_every: int):
    """The SVI steps ``steps`` (their indices) from ``state``: the state and the losses."""

    def step(state, i):
        state, loss = svi.update(state)
        if report_every:
            _progress.report(i + 1, report_every, i + 1, loss=loss)
        return state, loss

    return jax.lax.scan(step, state, steps)


def _svi_result(svi, state, density, elbo_key, elbo_samples: int, batch_size: int):
    params = svi.get_params(state)
    loc, scale_tril = params["auto_loc"], params["auto_scale_tril"]
    terms = elbo_terms(elbo_key, loc, scale_tril, density, elbo_samples, batch_size)
    return loc, scale_tril, terms


def _fit_whole(
    density: LatentDensity,
    run_key: jax.Array,
    elbo_key: jax.Array,
    learning_rate: jax.Array,
    num_steps: int,
    num_particles: int,
    elbo_samples: int,
    batch_size: int,
    report_every: int,
):
    """numpyro's SVI over the latent vector ``u`` and the ELBO terms of the fitted
    Gaussian at ``elbo_samples`` fresh draws, in one program.

    Returns ``loc``, ``scale_tril``, the ``(num_steps,)`` losses and the ELBO terms
    (:func:`_elbo_terms`).
    """
    svi = _svi(density, learning_rate, num_steps, num_particles)
    state, losses = _svi_steps(svi, svi.init(run_key), jnp.arange(num_steps), report_every)
    loc, scale_tril, terms = _svi_result(svi, state, density, elbo_key, elbo_samples, batch_size)
    return loc, scale_tril, losses, terms


FIT = Program(
    _fit_whole,
    static_argnames=("num_steps", "num_particles", "elbo_samples", "batch_size", "report_every"),
)


# The same fit in segments, for checkpointed runs: the state between segments is SVI's
# (Adam's moments, the step count and the random key), so the steps are those of _fit.
def _fit_start(density, run_key, learning_rate, num_steps: int, num_particles: int):
    return _svi(density, learning_rate, num_steps, num_particles).init(run_key)


def _svi_at(density, state, learning_rate, num_steps: int, num_particles: int):
    """The SVI of :func:`_svi`, set up to continue from ``state`` (numpyro's SVI learns
    the guide's constraints in ``init``; the state ``init`` returns here is not used)."""
    svi = _svi(density, learning_rate, num_steps, num_particles)
    svi.init(state.rng_key)
    return svi


def _fit_segment(
    density, state, steps, learning_rate, num_steps: int, num_particles: int, report_every: int
):
    svi = _svi_at(density, state, learning_rate, num_steps, num_particles)
    return _svi_steps(svi, state, steps, report_every)


def _fit_end(
    density,
    state,
    elbo_key,
    learning_rate,
    num_steps: int,
    num_particles: int,
    elbo_samples: int,
    batch_size: int,
):
    svi = _svi_at(density, state, learning_rate, num_steps, num_particles)
    return _svi_result(svi, state, density, elbo_key, elbo_samples, batch_size)


_SETTINGS = ("num_steps", "num_particles")
_FIT_START = Program(_fit_start, static_argnames=_SETTINGS)
_FIT_SEGMENT = Program(_fit_segment, static_argnames=(*_SETTINGS, "report_every"))
_FIT_END = Program(_fit_end, static_argnames=(*_SETTINGS, "elbo_samples", "batch_size"))


def fit_in_segments(
    checkpoint: zdx_base.Checkpoint,
    density: LatentDensity,
    run_key: jax.Array,
    elbo_key: jax.Array,
    learning_rate: jax.Array,
    num_steps: int,
    num_particles: int,
    elbo_samples: int,
    batch_size: int,
    report_every: int,
):
    """:func:`_fit`, written to ``checkpoint`` between segments and resumed from it."""
    settings = dict(num_steps=num_steps, num_particles=num_particles)
    state = _FIT_START(density, run_key, learning_rate, **settings)
    state_def = jax.tree.structure(state)
    losses = onp.zeros(num_steps, onp.asarray(learning_rate).dtype)
    done = 0
    loaded = checkpoint.load()
    if loaded is not None:
        entries, done = loaded
        leaves = [jnp.asarray(entries[f"state.{i}"]) for i in range(state_def.num_leaves)]
        state = jax.tree.unflatten(state_def, leaves)
        losses[:done] = entries["losses"]

    def entries_of(state, done):
        out = {f"state.{i}": leaf for i, leaf in enumerate(jax.tree.leaves(state))}
        out["losses"] = losses[:done]
        return out

    with checkpoint.interruptible():
        for start, stop in checkpoint.segments(done, num_steps):
            state, part = _FIT_SEGMENT(
                density,
                state,
                jnp.arange(start, stop),
                learning_rate,
                report_every=report_every,
                **settings,
            )
            losses[start:stop] = onp.asarray(part)
            checkpoint.reached(stop, num_steps, functools.partial(entries_of, state, stop))
    loc, scale_tril, terms = _FIT_END(
        density,
        state,
        elbo_key,
        learning_rate,
        elbo_samples=elbo_samples,
        batch_size=batch_size,
        **settings,
    )
    return loc, scale_tril, jnp.asarray(losses), terms
