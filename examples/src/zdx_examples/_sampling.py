"""A short NUTS run in the whitened latent space, with zdx-sample when it offers one."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as onp

import zdx_base
import zdx_opt


class PosteriorSamples(eqx.Module):
    """Posterior draws of a NUTS run, in physical units.

    Attributes
    ----------
    draws : Array
        ``(num_chains, num_samples, n)`` the draws of the flattened parameters
        (``jax.flatten_util.ravel_pytree`` order).
    names : tuple[str, ...]
        A name per flattened parameter (``zdx_base.scalar_names``).
    r_hat : Array
        ``(n,)`` split R-hat per parameter.
    ess : Array
        ``(n,)`` effective sample size per parameter.
    divergences : int
        The number of divergent transitions (all chains).
    backend : str
        ``"zdx_sample"`` when :func:`zdx_sample.nuts` ran the chains, ``"numpyro"`` when
        they ran on numpyro directly.
    """

    draws: jax.Array
    names: tuple[str, ...] = eqx.field(static=True)
    r_hat: jax.Array
    ess: jax.Array
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
    def std(self) -> jax.Array:
        """``(n,)`` the posterior standard deviation of each flattened parameter."""
        return jnp.std(self.flat, axis=0)


def _zdx_sample_nuts() -> Callable | None:
    """``zdx_sample.nuts`` when zdx-sample is importable and has it, else None."""
    try:
        import zdx_sample
    except ImportError:
        return None
    return getattr(zdx_sample, "nuts", None)


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return int(value)


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
    use_zdx_sample: bool | None = None,
) -> PosteriorSamples:
    """Sample ``log_likelihood`` (flat prior) with NUTS in the whitened latent space.

    The chains run on ``u`` with ``params = x0 + P @ u``, where ``x0`` is the best fit
    and ``P`` whitens ``fisher`` (``zdx_opt.reparametrise``): the posterior is close to a
    unit normal there, the easiest target for NUTS. With zdx-sample installed (and
    offering ``nuts``) the run is :func:`zdx_sample.nuts`; otherwise numpyro's NUTS runs
    on the same latent potential, as section 7 of the tutorial does.

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
        Seed of the chains.
    progress : bool
        Show the sampler's progress bar.
    use_zdx_sample : bool | None
        ``None`` uses zdx-sample when it is there (and, with a warning, numpyro directly
        when its ``nuts`` raises); ``False`` always runs numpyro directly; ``True``
        requires zdx-sample and lets its errors through.

    Returns
    -------
    samples : PosteriorSamples

    Raises
    ------
    ValueError
        If a count is out of range, or ``fisher`` is not positive definite.
    ImportError
        If ``use_zdx_sample=True`` and zdx-sample (with ``nuts``) is not importable.
    """
    num_warmup = _check_count("num_warmup", num_warmup, 0)
    num_samples = _check_count("num_samples", num_samples, 4)
    num_chains = _check_count("num_chains", num_chains, 1)
    seed = _check_count("seed", seed, 0)
    names = zdx_base.scalar_names(params)
    nuts = _zdx_sample_nuts() if use_zdx_sample is not False else None
    if use_zdx_sample and nuts is None:
        raise ImportError("use_zdx_sample=True, but zdx_sample (with `nuts`) is not importable.")
    if nuts is not None:
        try:
            result = nuts(
                log_likelihood,
                params,
                fisher=fisher,
                num_warmup=num_warmup,
                num_samples=num_samples,
                num_chains=num_chains,
                key=jax.random.key(seed),
                progress=progress,
            )
        except Exception as error:
            if use_zdx_sample:
                raise
            warnings.warn(
                f"zdx_sample.nuts failed ({type(error).__name__}: {error}); running "
                "numpyro's NUTS directly instead.",
                RuntimeWarning,
                stacklevel=2,
            )
        else:
            return PosteriorSamples(
                draws=jnp.asarray(result.draws),
                names=names,
                r_hat=jnp.asarray(result.r_hat),
                ess=jnp.asarray(result.ess_bulk),
                divergences=int(jnp.sum(result.divergences)),
                backend="zdx_sample",
            )
    return _numpyro_nuts(
        log_likelihood, params, fisher, names, num_warmup, num_samples, num_chains, seed, progress
    )


def _numpyro_nuts(
    log_likelihood, params, fisher, names, num_warmup, num_samples, num_chains, seed, progress
) -> PosteriorSamples:
    from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
    from numpyro.infer import MCMC, NUTS

    _, latent_map = zdx_opt.reparametrise(params, fmat=fisher)

    def potential(u):  # a plain function: JAX hashes the functions it differentiates
        return -log_likelihood(latent_map(u))

    k = latent_map.dim
    init_key, run_key = jax.random.split(jax.random.PRNGKey(seed))
    # Starts spread like the posterior (a unit normal in the latent space), shrunk a little.
    init = 0.5 * jax.random.normal(init_key, (num_chains, k), latent_map.x0.dtype)
    mcmc = MCMC(
        NUTS(potential_fn=potential),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="sequential" if num_chains == 1 else "vectorized",
        progress_bar=bool(progress),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*There are not enough devices.*")
        mcmc.run(
            run_key, init_params=init[0] if num_chains == 1 else init, extra_fields=("diverging",)
        )
    latent = jnp.asarray(mcmc.get_samples(group_by_chain=True)).reshape(num_chains, num_samples, k)
    diverging = onp.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
    draws = latent_map.x0 + latent @ latent_map.projection.T
    flat = onp.asarray(draws)
    return PosteriorSamples(
        draws=draws,
        names=names,
        r_hat=jnp.asarray(split_gelman_rubin(flat)),
        ess=jnp.asarray(effective_sample_size(flat)),
        divergences=int(diverging.sum()),
        backend="numpyro",
    )
