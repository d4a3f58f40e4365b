"""NUTS warm-up and sampling of a batch of chains in one compiled program.

The transitions are blackjax's NUTS kernel (multinomial, iterative). Each chain runs in
coordinates ``v`` with ``u = L v``, where ``u`` is the whitened latent vector and
``L`` the Cholesky factor of the covariance adapted during warm-up: NUTS with a unit
metric in ``v`` is NUTS with the dense inverse metric ``L L^T`` in ``u``, without a
Cholesky factorisation at every transition. ``L`` changes only at the end of a slow
warm-up window, where the chain state is moved to the new coordinates.

The steps run in ``lax.scan`` with the chains ``vmap``-ed inside a step, so the progress
reports and the window ends (shared by all chains) stay outside the vectorised code.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from blackjax.mcmc import hmc as bj_hmc
from blackjax.mcmc import nuts as bj_nuts
from jax.scipy.linalg import solve_triangular

from . import _progress, _warmup

DIVERGENCE_THRESHOLD = 1000.0


class NUTSSettings(NamedTuple):
    """The static settings of one compiled program (hashable)."""

    num_warmup: int
    num_samples: int
    target_accept: float
    max_doublings: int
    dense: bool
    report_every: int  # 0: no progress reports

    def __call__(self, density, starts, keys, offset):
        return run_nuts(self, density, starts, keys, offset)


class _Chain(NamedTuple):
    key: jax.Array
    state: bj_hmc.HMCState  # in v coordinates
    factor: jax.Array  # L
    step: _warmup.DualAveraging
    window: _warmup.Welford
    gradients: jax.Array  # gradient evaluations so far


def _transition(density, chain: _Chain, step_size, max_doublings):
    key, sub = jax.random.split(chain.key)
    factor = chain.factor

    def log_density_v(v):
        return density(factor @ v)

    kernel = bj_nuts.build_kernel(divergence_threshold=DIVERGENCE_THRESHOLD)
    ones = jnp.ones(factor.shape[0], factor.dtype)
    state, info = kernel(
        sub, chain.state, log_density_v, step_size, ones, max_num_doublings=max_doublings
    )
    chain = chain._replace(
        key=key, state=state, gradients=chain.gradients + info.num_integration_steps
    )
    return chain, info


def _move_to_factor(chain: _Chain, factor: jax.Array) -> _Chain:
    """The same point in the coordinates of a new ``L``."""
    old = chain.factor
    u = old @ chain.state.position
    grad_u = solve_triangular(old.T, chain.state.logdensity_grad, lower=False)
    state = bj_hmc.HMCState(
        solve_triangular(factor, u, lower=True), chain.state.logdensity, factor.T @ grad_u
    )
    return chain._replace(state=state, factor=factor)


def _close_window(chain: _Chain, dense: bool) -> _Chain:
    factor = _warmup.metric_factor(chain.window, dense)
    chain = _move_to_factor(chain, factor)
    dim = factor.shape[0]
    return chain._replace(
        window=_warmup.welford_start(dim, factor.dtype),
        step=_warmup.dual_averaging_start(jnp.exp(chain.step.log_step)),
    )


def over_chains(fn, num: int, in_axes=0):
    """``jax.vmap(fn, in_axes)`` for a batch of ``num`` chains; for one chain, ``fn`` on
    that chain alone (a batched ``while_loop`` of one is slower than a plain one)."""
    if num > 1:
        return jax.vmap(fn, in_axes=in_axes)
    axes = in_axes if isinstance(in_axes, tuple) else None

    def single(*args):
        spec = axes or (in_axes,) * len(args)
        args = [jax.tree.map(lambda x: x[0], a) if ax == 0 else a for a, ax in zip(args, spec)]
        return jax.tree.map(lambda x: x[None], fn(*args))

    return single


def initial_step_size(dim: int) -> float:
    """A first step size for a unit normal in ``dim`` dimensions (leapfrog error
    grows like ``dim ** (1/4)``); dual averaging takes it from there."""
    return float(min(1.0, 1.5 * dim**-0.25))


def run_nuts(settings: NUTSSettings, density, starts, keys, offset):
    """Warm up and sample ``starts.shape[0]`` chains (traceable; see module docstring).

    Returns
    -------
    dict
        ``latent`` ``(chains, draws, k)``, ``log_density``, ``diverging`` and
        ``integration_steps`` ``(chains, draws)``, ``step_size`` ``(chains,)``,
        ``warmup_gradients`` ``(chains,)`` (including the first gradient).
    """
    s = settings
    num, dim = starts.shape
    dtype = starts.dtype
    eye = jnp.eye(dim, dtype=dtype)
    step0 = initial_step_size(dim)

    def start(key, u):
        state = bj_hmc.init(u, density)
        return _Chain(
            key=jax.random.wrap_key_data(key),
            state=state,
            factor=eye,
            step=_warmup.dual_averaging_start(jnp.asarray(step0, dtype)),
            window=_warmup.welford_start(dim, dtype),
            gradients=jnp.ones((), jnp.int32),
        )

    chains = over_chains(start, num)(keys, starts)

    def report(done, divergences):
        if s.report_every:
            _progress.report(done, s.report_every, offset + done, divergences)

    def warm_one(chain: _Chain, slow):
        chain, info = _transition(density, chain, jnp.exp(chain.step.log_step), s.max_doublings)
        step = _warmup.dual_averaging_update(chain.step, info.acceptance_rate, s.target_accept)
        u = chain.factor @ chain.state.position
        window = jax.tree.map(
            lambda new, old: jnp.where(slow, new, old),
            _warmup.welford_update(chain.window, u),
            chain.window,
        )
        return chain._replace(step=step, window=window)

    def warm(chains, xs):
        i, slow, end = xs
        chains = over_chains(warm_one, num, (0, None))(chains, slow)
        chains = jax.lax.cond(
            end, over_chains(lambda c: _close_window(c, s.dense), num), lambda c: c, chains
        )
        report(i + 1, _progress.zero_divergences())
        return chains, None

    if s.num_warmup:
        slow, end = _warmup.window_schedule(s.num_warmup)
        chains, _ = jax.lax.scan(
            warm, chains, (jnp.arange(s.num_warmup), jnp.asarray(slow), jnp.asarray(end))
        )
        step_size = jnp.exp(chains.step.log_step_avg)
    else:
        step_size = jnp.full((num,), step0, dtype)

    def draw_one(chain: _Chain, eps):
        chain, info = _transition(density, chain, eps, s.max_doublings)
        out = (
            chain.factor @ chain.state.position,
            chain.state.logdensity,
            info.is_divergent,
            info.num_integration_steps,
        )
        return chain, out

    def draw(carry, i):
        chains, divergences = carry
        chains, out = over_chains(draw_one, num)(chains, step_size)
        divergences = divergences + jnp.sum(out[2]).astype(jnp.int32)
        report(s.num_warmup + i + 1, divergences)
        return (chains, divergences), out

    warmup_gradients = chains.gradients
    _, (latent, logp, diverging, steps) = jax.lax.scan(
        draw, (chains, _progress.zero_divergences()), jnp.arange(s.num_samples)
    )
    return {
        "latent": jnp.swapaxes(latent, 0, 1),
        "log_density": jnp.swapaxes(logp, 0, 1),
        "diverging": jnp.swapaxes(diverging, 0, 1),
        "integration_steps": jnp.swapaxes(steps, 0, 1),
        "step_size": step_size,
        "warmup_gradients": warmup_gradients,
    }
