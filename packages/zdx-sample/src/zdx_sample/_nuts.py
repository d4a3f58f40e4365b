"""NUTS in the whitened latent space ``params = x0 + P u``: warm-up and sampling of all
chains in one compiled program."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as onp

import zdx_base
from zdx_base import checks
from zdx_opt import LatentMap

from . import _progress
from ._chains import LatentDensity, choose_chain_method, run_chains
from ._checks import check_probability
from ._diagnostics import rhat_and_ess
from ._inference_data import draws_to_inference_data
from ._nuts_checkpoint import run_in_segments
from ._prepare import prepare
from ._program import Settings

__all__ = ["NUTSResult", "choose_chain_method", "nuts"]

METHODS = ("nuts", "mams")
# The mean acceptance probability each method tunes its step size to, by default.
TARGET_ACCEPT = {"nuts": 0.8, "mams": 0.9}


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
        How the chains ran: ``"parallel"`` (spread over devices), ``"vectorized"`` (all
        at once on one device) or ``"sequential"`` (one after another).
    integration_steps : Array
        ``(num_chains, num_samples)`` the gradient evaluations of each kept transition
        (NUTS: its leapfrog steps; MAMS: two per McLachlan step).
    warmup_gradients : Array
        ``(num_chains,)`` the gradient evaluations of each chain's warm-up (and start).
    step_size : Array
        ``(num_chains,)`` the step size each chain sampled with.
    method : str
        The sampler: ``"nuts"`` or ``"mams"``.
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
    integration_steps: jax.Array
    warmup_gradients: jax.Array
    step_size: jax.Array
    method: str = eqx.field(static=True)

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
    def num_gradient_evaluations(self) -> int:
        """Gradient evaluations of the whole run, warm-up included, over all chains."""
        return int(jnp.sum(self.integration_steps) + jnp.sum(self.warmup_gradients))

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
            sample_stats={
                "diverging": self.diverging,
                "lp": self.log_density,
                "n_steps": self.integration_steps,
            },
            attrs={"estimator": self.method, "chain_method": self.chain_method},
        )


@eqx.filter_jit
def _to_physical(latent_map: LatentMap, latent: jax.Array) -> tuple[jax.Array, Any]:
    chains, num, _ = latent.shape
    draws = latent_map.x0 + latent @ latent_map.projection.T
    return draws, jax.vmap(latent_map.unravel)(draws.reshape(chains * num, -1))


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
    target_accept_prob: float | None = None,
    max_tree_depth: int = 10,
    dense_mass: bool = True,
    method: str = "nuts",
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    checkpoint_seconds: float | None = None,
) -> NUTSResult:
    """Sample the posterior ``likelihood x prior`` with NUTS in whitened coordinates.

    The chains run on the latent vector ``u`` of ``params = x0 + P @ u``, where ``x0`` is
    ``params`` and ``P`` whitens the posterior Fisher matrix ``F`` at ``x0``
    (``P.T @ F @ P = I``, ``zdx_opt.eigen_projection``): the posterior is then close to a
    unit normal, the easiest target for NUTS. The log density is
    ``log_likelihood + log prior`` of the parameters (the constant ``log |det P|`` is
    left out). Draws are returned in physical units.

    Warm-up and sampling of every chain run as one compiled program (blackjax's NUTS
    transitions in ``lax.scan``, the chains vectorised inside each step, or spread over
    devices), reused when ``nuts`` is called again with a ``log_likelihood`` of the same
    code and equal captures (``zdx_batching.capture``: the arrays it captures are inputs
    of the program, so new data of the same shapes runs it too) and the same shapes. The
    warm-up follows Stan's windows: dual averaging of the step size towards
    ``target_accept_prob`` and, in the slow windows, the covariance of the draws in the
    whitened space (shrunk towards the identity) as the inverse metric.

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
        Show a progress bar (moved about 50 times over the run, from inside the program).
    chain_method : {"parallel", "vectorized", "sequential"}, optional
        Default: ``"parallel"`` (chains spread over devices) when ``jax.local_device_count()
        >= num_chains``, else ``"vectorized"``.
    optimise : bool, default False
        Move ``params`` to the posterior mode first (optimistix BFGS).
    target_accept_prob : float, optional
        The mean acceptance probability the step size is tuned to: default 0.8 for NUTS,
        0.9 for MAMS.
    max_tree_depth : int, default 10
        At most ``2 ** max_tree_depth - 1`` integration steps per transition.
    dense_mass : bool, default True
        Adapt a dense inverse metric in the whitened space (else a diagonal one).
    method : {"nuts", "mams"}, default "nuts"
        The sampler. ``"mams"`` is the Metropolis-adjusted microcanonical sampler
        (Robnik, Cohn-Gordon & Seljak 2025; blackjax's ``adjusted_mclmc_dynamic``): each
        transition draws a new unit-norm velocity, follows isokinetic dynamics for a
        random number of steps around ``2 sqrt(k) / step_size`` (``k`` latent dimensions)
        and is accepted or rejected by a Metropolis test, so its draws are exact like
        NUTS's. Its step size is tuned to ``target_accept_prob`` (0.9) and its metric as
        NUTS's.
    checkpoint : str or os.PathLike, optional
        A file that keeps the run's progress (``zdx_base.Checkpoint``): every chain's
        state (random key, step-size adaptation, metric, kernel state) and the draws so
        far. When it exists, the run continues from it and ends with the same draws,
        bit for bit, as a run never stopped; one written for another model, other
        settings or another key is refused. SIGINT and SIGTERM write a last checkpoint
        and stop the run (``zdx_base.CheckpointInterrupted``). The steps then run in
        compiled segments of ``checkpoint_every``, with the chains vectorised on one
        device (``chain_method="vectorized"``; a single chain runs unbatched); the
        draws are those of the same run without a checkpoint.
    checkpoint_every : int, default 100
        Steps per chain (warm-up and sampling) between checkpoints.
    checkpoint_seconds : float, optional
        Write at most this often instead (the last step is always written).

    Returns
    -------
    NUTSResult
        ``samples`` (pytree, leading sample axis), ``r_hat``, ``ess_bulk``,
        ``divergences``, ``integration_steps``, ``summary()``, ``to_inference_data()``.

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
    checks.check_choice("nuts", "method", method, METHODS)
    num_warmup = checks.check_int("nuts", "num_warmup", num_warmup, minimum=0)
    num_samples = checks.check_int("nuts", "num_samples", num_samples, minimum=4)
    num_chains = checks.check_int("nuts", "num_chains", num_chains, minimum=1)
    max_tree_depth = checks.check_int("nuts", "max_tree_depth", max_tree_depth, minimum=1)
    if target_accept_prob is None:
        target_accept_prob = TARGET_ACCEPT[method]
    target_accept_prob = check_probability("nuts", "target_accept_prob", target_accept_prob)
    if checkpoint is not None:
        chain_method = _checkpoint_chain_method(num_chains, chain_method)
    chain_method = choose_chain_method(num_chains, chain_method)
    key = checks.as_key("nuts", "key", key)
    post, _, latent_map = prepare("nuts", log_likelihood, params, prior, fisher, optimise=optimise)
    density = LatentDensity(post.log_posterior(), latent_map)

    init_key, run_key = jax.random.split(key)
    starts = jax.random.normal(init_key, (num_chains, latent_map.dim), post.x0.dtype)
    steps_per_chain = num_warmup + num_samples
    settings = Settings(
        method=method,
        num_warmup=num_warmup,
        num_samples=num_samples,
        target_accept=target_accept_prob,
        max_doublings=max_tree_depth,
        dense=bool(dense_mass),
        report_every=_progress.report_interval(steps_per_chain) if progress else 0,
    )
    sequential = chain_method == "sequential" and num_chains > 1
    total = steps_per_chain * (num_chains if sequential else 1)
    desc = f"{method}, {num_chains} chain(s)"
    chain_keys = jax.random.split(run_key, num_chains)
    with _progress.progress_bar(total, desc, bool(progress)):
        if checkpoint is None:
            out = run_chains(settings, density, starts, chain_keys, chain_method, steps_per_chain)
        else:
            saver = zdx_base.Checkpoint(
                "nuts",
                checkpoint,
                model=(log_likelihood, prior, latent_map.x0, latent_map.projection),
                settings={
                    **settings._replace(report_every=0)._asdict(),
                    "num_chains": num_chains,
                    "key": onp.asarray(jax.random.key_data(key)).tolist(),
                },
                every=checkpoint_every,
                seconds=checkpoint_seconds,
            )
            out = run_in_segments(saver, settings, density, starts, chain_keys)
    return _result(out, latent_map, post.names, chain_method, method)


def _checkpoint_chain_method(num_chains: int, chain_method: str | None) -> str:
    """A checkpointed run vectorises its chains on one device (one chain: unbatched)."""
    wanted = "sequential" if num_chains == 1 else "vectorized"
    if chain_method is not None and chain_method != wanted:
        raise ValueError(
            f"nuts: with a checkpoint the chains run {wanted} on one device; got "
            f"chain_method={chain_method!r}. Leave chain_method out, or run without a "
            "checkpoint."
        )
    return wanted


def _result(out: dict, latent_map: LatentMap, names, chain_method: str, method: str):
    draws, samples = _to_physical(latent_map, out["latent"])
    r_hat, ess = rhat_and_ess(onp.asarray(draws))
    diverging = out["diverging"]
    divergences = jnp.sum(diverging, axis=1)
    total = int(jnp.sum(divergences))
    if total:
        warnings.warn(
            f"{method}: {total} of {diverging.size} transitions diverged; the draws "
            "may be biased (try a larger target_accept_prob, or check the posterior for "
            "sharp edges and funnels).",
            RuntimeWarning,
            stacklevel=3,
        )
    return NUTSResult(
        samples=samples,
        draws=draws,
        names=names,
        r_hat=jnp.asarray(r_hat),
        ess_bulk=jnp.asarray(ess),
        divergences=divergences,
        diverging=diverging,
        log_density=out["log_density"],
        latent_map=latent_map,
        chain_method=chain_method,
        integration_steps=out["gradients"],
        warmup_gradients=out["warmup_gradients"],
        step_size=out["step_size"],
        method=method,
    )
