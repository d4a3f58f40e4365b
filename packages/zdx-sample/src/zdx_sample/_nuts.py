"""NUTS (numpyro) in the whitened latent space ``params = x0 + P u``."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as onp
from numpyro.infer import MCMC, NUTS

from zdx_opt import LatentMap

from ._checks import as_key, check_positive_int
from ._diagnostics import rhat_and_ess
from ._inference_data import draws_to_inference_data
from ._posterior import curvature, positive_definite, setup, whitening

_CHAIN_METHODS = ("parallel", "vectorized", "sequential")


class NUTSResult(eqx.Module):
    """Posterior draws of :func:`nuts`, in physical units, with convergence diagnostics.

    Attributes
    ----------
    samples : PyTree
        The draws in the structure of ``params``, each leaf with a leading axis of
        ``num_chains * num_samples`` (chain after chain).
    draws : Array
        ``(num_chains, num_samples, n)`` the same draws, flattened (order of ``names``).
    names : tuple of str
        A name per flattened parameter.
    r_hat : Array
        ``(n,)`` rank-normalised split R-hat per parameter (a single chain is split in two).
    ess_bulk : Array
        ``(n,)`` bulk effective sample size per parameter.
    divergences : Array
        ``(num_chains,)`` the number of divergent transitions of each chain.
    diverging : Array
        ``(num_chains, num_samples)`` which draws ended a divergent transition.
    log_density : Array
        ``(num_chains, num_samples)`` the log posterior density (up to a constant) of each
        draw.
    latent_map : zdx_opt.LatentMap
        The whitening map ``u -> params`` the chains ran in.
    chain_method : str
        How the chains ran: ``"parallel"`` (one per device), ``"vectorized"`` or
        ``"sequential"``.
    """

    samples: Any
    draws: jax.Array
    names: tuple[str, ...] = eqx.field(static=True)
    r_hat: jax.Array
    ess_bulk: jax.Array
    divergences: jax.Array
    diverging: jax.Array
    log_density: jax.Array
    latent_map: LatentMap
    chain_method: str = eqx.field(static=True)

    @property
    def num_chains(self) -> int:
        return int(self.draws.shape[0])

    @property
    def num_samples(self) -> int:
        """Draws per chain."""
        return int(self.draws.shape[1])

    @property
    def num_divergences(self) -> int:
        return int(jnp.sum(self.divergences))

    @property
    def mean(self) -> Any:
        """The posterior mean, in the structure of ``params``."""
        return self.latent_map.unravel(jnp.mean(self.draws, axis=(0, 1)))

    @property
    def sigma(self) -> Any:
        """The posterior standard deviations, in the structure of ``params``."""
        return self.latent_map.unravel(jnp.std(self.draws, axis=(0, 1)))

    def diagnostics(self) -> dict[str, dict[str, float]]:
        """``name -> {"mean", "sd", "r_hat", "ess_bulk"}`` for every scalar parameter."""
        mean = onp.mean(onp.asarray(self.draws), axis=(0, 1))
        sd = onp.std(onp.asarray(self.draws), axis=(0, 1))
        return {
            name: {
                "mean": float(mean[i]),
                "sd": float(sd[i]),
                "r_hat": float(self.r_hat[i]),
                "ess_bulk": float(self.ess_bulk[i]),
            }
            for i, name in enumerate(self.names)
        }

    def summary(self) -> str:
        """A table of mean, sd, R-hat and bulk ESS per parameter, and the divergences."""
        rows = self.diagnostics()
        width = max(len("parameter"), *(len(n) for n in rows))
        lines = [f"{'parameter':<{width}}  {'mean':>12}  {'sd':>12}  {'r_hat':>7}  {'ess_bulk':>9}"]
        for name, d in rows.items():
            lines.append(
                f"{name:<{width}}  {d['mean']:>12.5g}  {d['sd']:>12.5g}  {d['r_hat']:>7.3f}  "
                f"{d['ess_bulk']:>9.1f}"
            )
        lines.append(
            f"{self.num_chains} chain(s) x {self.num_samples} draws, "
            f"{self.num_divergences} divergence(s)"
        )
        return "\n".join(lines)

    def to_inference_data(self):
        """An ArviZ ``InferenceData``: ``posterior.params`` with dimensions
        ``(chain, draw, parameter)`` (names as coordinates), and ``sample_stats`` with
        ``diverging`` and ``lp``."""
        return draws_to_inference_data(
            self.draws,
            self.names,
            sample_stats={"diverging": self.diverging, "lp": self.log_density},
            attrs={"estimator": "nuts", "chain_method": self.chain_method},
        )


def choose_chain_method(num_chains: int, chain_method: str | None) -> str:
    """``"parallel"`` when there are at least ``num_chains`` devices, else ``"vectorized"``
    (a single chain runs ``"sequential"``)."""
    if chain_method is not None:
        if chain_method not in _CHAIN_METHODS:
            raise ValueError(
                f"`chain_method` must be one of {_CHAIN_METHODS} or None, got {chain_method!r}."
            )
        return chain_method
    if num_chains == 1:
        return "sequential"
    return "parallel" if jax.local_device_count() >= num_chains else "vectorized"


class _Potential(eqx.Module):
    log_density: Callable[[Any], jax.Array]
    latent_map: LatentMap

    def __call__(self, u: jax.Array) -> jax.Array:
        return -self.log_density(self.latent_map(u))


@eqx.filter_jit
def _to_physical(latent_map: LatentMap, latent: jax.Array) -> tuple[jax.Array, Any]:
    chains, num, _ = latent.shape
    draws = latent_map.x0 + latent @ latent_map.projection.T
    return draws, jax.vmap(latent_map.unravel)(draws.reshape(chains * num, -1))


def _initial_points(
    potential: _Potential, key: jax.Array, num_chains: int, k: int, dtype
) -> jax.Array:
    """Overdispersed starts ``u ~ N(0, I)``, pulled towards 0 where the posterior is zero."""
    u = jax.random.normal(key, (num_chains, k), dtype)
    energy = jax.jit(jax.vmap(potential))
    for _ in range(4):
        bad = ~jnp.isfinite(energy(u))
        if not bool(jnp.any(bad)):
            break
        u = jnp.where(bad[:, None], 0.1 * u, u)
    return jnp.where(jnp.isfinite(energy(u))[:, None], u, 0.0)


def nuts(
    log_likelihood: Callable[[Any], Any],
    params: Any,
    prior: Any = None,
    fisher: Any = None,
    *,
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 1,
    key: Any = None,
    progress: bool = True,
    chain_method: str | None = None,
    optimise: bool = False,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    dense_mass: bool = False,
) -> NUTSResult:
    """Sample the posterior ``likelihood x prior`` with numpyro's NUTS in whitened coordinates.

    The chains run on the latent vector ``u`` of ``params = x0 + P @ u``, where ``x0`` is
    ``params`` and ``P`` whitens the posterior Fisher matrix ``F`` at ``x0``
    (``P.T @ F @ P = I``, ``zdx_opt.eigen_projection``): the posterior is then close to a
    unit normal, the easiest target for NUTS. The potential is
    ``-(log_likelihood + log prior)`` of the parameters (the constant ``log |det P|`` is
    left out). Draws are returned in physical units.

    Parameters
    ----------
    log_likelihood : callable
        ``log_likelihood(params) -> scalar``, traceable by JAX.
    params : PyTree
        The posterior mode, or near it (``optimise=True`` finds it first).
    prior : PyTree of numpyro distributions, optional
        One distribution per leaf of ``params`` (see :func:`laplace`); without one the
        prior is flat (improper), and the posterior must still be proper.
    fisher : Array, optional
        ``(n, n)`` the likelihood's Fisher matrix at ``params`` (flattened order); default
        the Hessian of the negative log posterior, by ``zdx_batching.hessian``.
    num_warmup, num_samples, num_chains : int
        Warm-up steps and kept draws per chain, and the number of chains.
    key : PRNG key or int, optional
        Default ``jax.random.key(0)``.
    progress : bool, default True
        Show numpyro's progress bar.
    chain_method : {"parallel", "vectorized", "sequential"}, optional
        Default: ``"parallel"`` (chains spread over devices) when ``jax.local_device_count()
        >= num_chains``, else ``"vectorized"``.
    optimise : bool, default False
        Move ``params`` to the posterior mode first (optimistix BFGS).
    target_accept_prob, max_tree_depth, dense_mass
        Passed to ``numpyro.infer.NUTS``.

    Returns
    -------
    NUTSResult
        ``samples`` (pytree, leading sample axis), ``r_hat``, ``ess_bulk``,
        ``divergences``, ``summary()``, ``to_inference_data()``.

    Raises
    ------
    TypeError, ValueError
        As :func:`laplace` does for bad input, and for bad sampler settings.

    Warns
    -----
    RuntimeWarning
        When some transitions diverged.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> loglike = lambda p: -0.5 * jnp.sum((p["x"] / 0.1) ** 2)
    >>> res = nuts(loglike, {"x": jnp.zeros(2)}, num_warmup=100, num_samples=200, progress=False)
    >>> res.samples["x"].shape
    (200, 2)
    """
    num_warmup = check_positive_int(num_warmup, "num_warmup", minimum=0)
    num_samples = check_positive_int(num_samples, "num_samples", minimum=4)
    num_chains = check_positive_int(num_chains, "num_chains")
    method = choose_chain_method(num_chains, chain_method)
    key = as_key(key)
    post = setup("nuts", log_likelihood, params, prior, optimise=optimise)
    mat, source = curvature("nuts", post, fisher)
    positive_definite("nuts", mat, source, post.names)
    latent_map = whitening(post, mat)
    potential = _Potential(post.log_density, latent_map)
    k = latent_map.dim

    init_key, run_key = jax.random.split(key)
    init = _initial_points(potential, init_key, num_chains, k, post.x0.dtype)
    kernel = NUTS(
        # numpyro also calls the potential outside jit at the start: keep that one program
        potential_fn=jax.jit(lambda u: potential(u)),
        target_accept_prob=target_accept_prob,
        max_tree_depth=max_tree_depth,
        dense_mass=dense_mass,
    )
    mcmc = MCMC(
        kernel,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=method,
        progress_bar=bool(progress),
    )
    with warnings.catch_warnings():
        # numpyro warns when chains are not "parallel" over devices; that choice is ours
        warnings.filterwarnings("ignore", message=".*There are not enough devices.*")
        mcmc.run(
            run_key,
            init_params=init if num_chains > 1 else init[0],
            extra_fields=("potential_energy", "diverging"),
        )
    latent = jnp.asarray(mcmc.get_samples(group_by_chain=True)).reshape(num_chains, num_samples, k)
    extra = mcmc.get_extra_fields(group_by_chain=True)
    diverging = jnp.asarray(extra["diverging"]).reshape(num_chains, num_samples)
    energy = jnp.asarray(extra["potential_energy"]).reshape(num_chains, num_samples)

    draws, samples = _to_physical(latent_map, latent)
    r_hat, ess = rhat_and_ess(onp.asarray(draws))
    divergences = jnp.asarray(onp.sum(onp.asarray(diverging), axis=1))
    total = int(onp.sum(onp.asarray(divergences)))
    if total:
        warnings.warn(
            f"nuts: {total} of {num_chains * num_samples} transitions diverged; the draws "
            "may be biased (try a larger target_accept_prob, or check the posterior for "
            "sharp edges and funnels).",
            RuntimeWarning,
            stacklevel=2,
        )
    return NUTSResult(
        samples=samples,
        draws=draws,
        names=post.names,
        r_hat=jnp.asarray(r_hat),
        ess_bulk=jnp.asarray(ess),
        divergences=divergences,
        diverging=diverging,
        log_density=-energy,
        latent_map=latent_map,
        chain_method=method,
    )
