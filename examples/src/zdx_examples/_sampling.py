"""A short NUTS run in the whitened latent space (``zdx_sample.nuts``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

import zdx_base
import zdx_sample
from zdx_base import checks


class PosteriorSamples(eqx.Module):
    """Posterior draws of a NUTS run, in physical units.

    Attributes
    ----------
    draws : Array
        ``(num_chains, num_samples, n)`` the draws of the flattened parameters
        (``zdx_base.ravel`` order).
    names : tuple[str, ...]
        A name per flattened parameter (``zdx_base.scalar_names``).
    r_hat : Array
        ``(n,)`` split R-hat per parameter.
    ess_bulk : Array
        ``(n,)`` the bulk effective sample size (ArviZ's ``ess_bulk``) per parameter.
    divergences : int
        The number of divergent transitions (all chains).
    backend : str
        What ran the chains: ``"zdx_sample"`` (:func:`zdx_sample.nuts`).
    """

    draws: jax.Array
    names: tuple[str, ...] = eqx.field(static=True)
    r_hat: jax.Array
    ess_bulk: jax.Array
    divergences: int = eqx.field(static=True)
    backend: str = eqx.field(static=True)

    @property
    def flat(self) -> jax.Array:
        """``(num_chains * num_samples, n)``: the draws of every chain, one after another."""
        return self.draws.reshape(-1, self.draws.shape[-1])

    @property
    def mean(self) -> jax.Array:
        """``(n,)`` the posterior mean of each flattened parameter."""
        return jnp.mean(self.flat, axis=0)

    @property
    def sigma(self) -> jax.Array:
        """``(n,)`` the posterior standard deviation (the 1-sigma width) of each flattened
        parameter."""
        return jnp.std(self.flat, axis=0)


_FN = "sample_posterior"


def sample_posterior(
    log_likelihood: Callable[[Any], jax.Array],
    params: Any,
    fisher: Any,
    *,
    num_warmup: int = 200,
    num_samples: int = 200,
    num_chains: int = 1,
    seed: int = 0,
    progress: bool = True,
) -> PosteriorSamples:
    """Sample ``log_likelihood`` (flat prior) with NUTS in the whitened latent space.

    The chains run on ``u`` with ``params = x0 + P @ u``, where ``x0`` is the best fit
    and ``P`` whitens ``fisher``: the posterior is close to a unit normal there, the
    easiest target for NUTS. The run is :func:`zdx_sample.nuts`, as section 7 of the
    tutorial does.

    Parameters
    ----------
    log_likelihood : callable
        ``log_likelihood(params) -> scalar``, traceable by JAX.
    params : PyTree
        The best fit (posterior mode of a flat prior).
    fisher : Array
        ``(n, n)`` Hessian of minus the log-likelihood at ``params`` (flattened order).
    num_warmup, num_samples, num_chains : int
        Warm-up steps (>= 0), kept draws (>= 4) per chain, and chains (>= 1).
    seed : int
        Seed of the chains, >= 0.
    progress : bool
        Show the sampler's progress bar.

    Returns
    -------
    samples : PosteriorSamples

    Raises
    ------
    TypeError
        If a count is not an integer.
    ValueError
        If a count is out of range, or ``fisher`` is not positive definite.
    """
    num_warmup = checks.check_int(_FN, "num_warmup", num_warmup, minimum=0)
    num_samples = checks.check_int(_FN, "num_samples", num_samples, minimum=4)
    num_chains = checks.check_int(_FN, "num_chains", num_chains, minimum=1)
    seed = checks.check_int(_FN, "seed", seed, minimum=0)
    result = zdx_sample.nuts(
        log_likelihood,
        params,
        fisher=fisher,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        key=jax.random.key(seed),
        progress=progress,
    )
    return PosteriorSamples(
        draws=jnp.asarray(result.draws),
        names=zdx_base.scalar_names(params),
        r_hat=jnp.asarray(result.r_hat),
        ess_bulk=jnp.asarray(result.ess_bulk),
        divergences=int(jnp.sum(result.divergences)),
        backend="zdx_sample",
    )
