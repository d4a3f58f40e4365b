"""Warm-up and sampling of a batch of chains in one compiled program: NUTS or MAMS.

The transitions are blackjax's kernels: NUTS (multinomial, iterative), or the
Metropolis-adjusted microcanonical sampler (MAMS, ``adjusted_mclmc_dynamic``: isokinetic
dynamics with the McLachlan integrator, a full momentum refresh and a Metropolis test
per proposal, and a random number of integration steps around ``L / step_size``). Each
chain runs in
coordinates ``v`` with ``u = L v``, where ``u`` is the whitened latent vector and
``L`` the Cholesky factor of the covariance adapted during warm-up: NUTS with a unit
metric in ``v`` is NUTS with the dense inverse metric ``L L^T`` in ``u``, without a
Cholesky factorisation at every transition. ``L`` changes only at the end of a slow
warm-up window, where the chain state is moved to the new coordinates.

Warm-up and sampling are two ``lax.scan`` loops of one program, with the chains
``vmap``-ed inside a step, so the progress reports and the window ends (shared by all
chains) stay outside the vectorised code. The sampling loop carries the kernel's state
alone: the metric and the step size are fixed by then, ``P @ L`` is formed once and the
keys are split up front. A single chain is not batched at all.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from blackjax.mcmc import adjusted_mclmc_dynamic as bj_mams
from blackjax.mcmc import hmc as bj_hmc
from blackjax.mcmc import nuts as bj_nuts
from jax.scipy.linalg import solve_triangular

from . import _progress, _warmup

DIVERGENCE_THRESHOLD = 1000.0


class Settings(NamedTuple):
    """The static settings of one compiled program (hashable).

    ``method`` is ``"nuts"`` or ``"mams"``; ``max_doublings`` bounds a transition at
    ``2 ** max_doublings - 1`` integration steps for both.
    """

    method: str
    num_warmup: int
    num_samples: int
    target_accept: float
    max_doublings: int
    dense: bool
    report_every: int  # 0: no progress reports

    def __call__(self, density, starts, keys, offset):
        return run(self, density, starts, keys, offset)


class _Chain(NamedTuple):
    key: jax.Array
    state: bj_hmc.HMCState  # in v coordinates
    factor: jax.Array  # L
    step: _warmup.DualAveraging
    window: _warmup.Welford
    gradients: jax.Array  # gradient evaluations so far
    sampling_step: jax.Array  # the step size to sample with (the warm-up's average)


def trajectory_length(dim: int) -> float:
    """MAMS's mean trajectory length in the adapted coordinates, where the posterior is
    close to a unit normal: ``2 sqrt(dim)``, twice the square root of the sum of the
    variances. (Of 1, 2 and 4 times ``sqrt(dim)``, 2 gave the most effective draws per
    gradient on a 10-D and a 100-D Gaussian and a 10-D logistic regression.)"""
    return 2.0 * float(dim) ** 0.5


def _mams_steps(key: jax.Array, mean_steps: jax.Array, cap: jax.Array) -> jax.Array:
    """A random number of integration steps, uniform on ``1 .. 2 mean_steps`` (capped)."""
    steps = jnp.ceil(jax.random.uniform(key) * 2.0 * mean_steps)
    return jnp.clip(steps, 1, cap).astype(jnp.int32)


def _init_state(method: str, u, log_density, key):
    if method == "nuts":
        return bj_hmc.init(u, log_density)
    return bj_mams.init(u, log_density, key)


def _kernel_step(s: Settings, key, state, log_density_v, step_size):
    """One transition of the blackjax kernel in ``v`` coordinates: the new state, its
    info and the number of gradient evaluations it took."""
    dim = state.position.shape[0]
    if s.method == "nuts":
        kernel = bj_nuts.build_kernel(divergence_threshold=DIVERGENCE_THRESHOLD)
        ones = jnp.ones(dim, state.position.dtype)
        state, info = kernel(
            key, state, log_density_v, step_size, ones, max_num_doublings=s.max_doublings
        )
        return state, info, info.num_integration_steps
    kernel = bj_mams.build_kernel(
        integration_steps_fn=_mams_steps, divergence_threshold=DIVERGENCE_THRESHOLD
    )
    mean_steps = trajectory_length(dim) / step_size
    cap = jnp.asarray(2**s.max_doublings - 1, jnp.int32)
    state, info = kernel(
        key, state, log_density_v, step_size, integration_steps_params=(mean_steps, cap)
    )
    return state, info, 2 * info.num_integration_steps  # two gradients per McLachlan step


def _move_to_factor(chain: _Chain, factor: jax.Array) -> _Chain:
    """The same point in the coordinates of a new ``L``."""
    old = chain.factor
    u = old @ chain.state.position
    grad_u = solve_triangular(old.T, chain.state.logdensity_grad, lower=False)
    state = chain.state._replace(
        position=solve_triangular(factor, u, lower=True), logdensity_grad=factor.T @ grad_u
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
    """``jax.vmap(fn, in_axes)`` for a batch of ``num`` chains; for one chain, ``fn``
    itself on that chain's unbatched state (a batched ``while_loop`` of one is slower
    than a plain one): :func:`run` drops the chain axis before its scans and puts it
    back after them."""
    if num > 1:
        return jax.vmap(fn, in_axes=in_axes)
    return fn


def initial_step_size(method: str, dim: int) -> float:
    """A first step size for a unit normal in ``dim`` dimensions; dual averaging takes it
    from there. NUTS: leapfrog errors grow like ``dim ** (1/4)``. MAMS: a tenth of the
    trajectory length (the velocity has unit norm)."""
    if method == "nuts":
        return float(min(1.0, 1.5 * dim**-0.25))
    return 0.1 * trajectory_length(dim)


def pulled_inside(density, u: jax.Array) -> jax.Array:
    """``u`` pulled towards 0 (four times by a factor 10) while the posterior density there
    is zero or not finite; 0 itself when that does not help."""

    def pull(_, u):
        return jnp.where(jnp.isfinite(density(u)), u, 0.1 * u)

    u = jax.lax.fori_loop(0, 4, pull, u)
    return jnp.where(jnp.isfinite(density(u)), u, jnp.zeros_like(u))


def start_chains(s: Settings, density, starts, keys):
    """The chains' first state (batched over chains; one chain unbatched, see
    :func:`over_chains`), at ``starts`` pulled inside the posterior's support."""
    num, dim = starts.shape
    dtype = starts.dtype
    eye = jnp.eye(dim, dtype=dtype)
    step0 = jnp.asarray(initial_step_size(s.method, dim), dtype)

    def start(key, u):
        key, sub = jax.random.split(jax.random.wrap_key_data(key))
        state = _init_state(s.method, pulled_inside(density, u), density, sub)
        return _Chain(
            key=key,
            state=state,
            factor=eye,
            step=_warmup.dual_averaging_start(step0),
            window=_warmup.welford_start(dim, dtype),
            gradients=jnp.ones((), jnp.int32),
            sampling_step=step0,
        )

    if num > 1:
        return jax.vmap(start)(keys, starts)
    return start(keys[0], starts[0])  # one chain: unbatched to the end


def warmup_xs(s: Settings):
    """The inputs of every warm-up step: its index, and whether it is in a slow window
    and closes one."""
    slow, end = _warmup.window_schedule(s.num_warmup)
    return jnp.arange(s.num_warmup), jnp.asarray(slow, bool), jnp.asarray(end, bool)


def warmup(s: Settings, density, chains: _Chain, num: int, xs, offset):
    """The warm-up steps ``xs`` (see :func:`warmup_xs`): the chains after them and the
    gradient evaluations of each step."""

    def adapt(chain: _Chain, slow):
        key, sub = jax.random.split(chain.key)
        log_density_v = density.in_coordinates(chain.factor)
        state, info, gradients = _kernel_step(
            s, sub, chain.state, log_density_v, jnp.exp(chain.step.log_step)
        )
        step = _warmup.dual_averaging_update(chain.step, info.acceptance_rate, s.target_accept)
        window = jax.tree.map(
            lambda new, old: jnp.where(slow, new, old),
            _warmup.welford_update(chain.window, chain.factor @ state.position),
            chain.window,
        )
        chain = chain._replace(
            key=key,
            state=state,
            step=step,
            window=window,
            gradients=chain.gradients + gradients,
            sampling_step=jnp.exp(step.log_step_avg),
        )
        return chain, gradients

    def warmup_step(chains, xs):
        i, slow, end = xs
        chains, steps = over_chains(adapt, num, (0, None))(chains, slow)
        chains = jax.lax.cond(
            end, over_chains(lambda c: _close_window(c, s.dense), num), lambda c: c, chains
        )
        if s.report_every:
            _progress.report(
                i + 1, s.report_every, offset + i + 1, divergences=_progress.zero_divergences()
            )
        return chains, steps

    return jax.lax.scan(warmup_step, chains, xs)


def sampling_keys(s: Settings, chains: _Chain, num: int) -> jax.Array:
    """The key of every sampling step, ``(num_samples, chains)`` (``(num_samples,)`` for
    one chain), split up front from each chain's key after warm-up."""

    def split(key):
        return jax.random.split(key, s.num_samples)

    return jax.vmap(split, out_axes=1)(chains.key) if num > 1 else split(chains.key)


def sample(s: Settings, density, chains: _Chain, num: int, carry, xs, offset):
    """The sampling steps ``xs = (indices, keys)`` from ``carry = (kernel states,
    divergences so far)``: the metric and the step size are fixed now, so the scan
    carries the kernel's state alone. Returns the carry and the ``(position,
    log density, divergent, gradients)`` of every step."""

    def draw(state, key, factor, step_size):
        state, info, gradients = _kernel_step(
            s, key, state, density.in_coordinates(factor), step_size
        )
        return state, (state.position, state.logdensity, info.is_divergent, gradients)

    def sampling_step(carry, xs):
        states, divergences = carry
        i, keys = xs
        states, out = over_chains(draw, num)(states, keys, chains.factor, chains.sampling_step)
        divergences = divergences + jnp.sum(out[2]).astype(jnp.int32)
        if s.report_every:
            _progress.report(i + 1, s.report_every, offset + i + 1, divergences=divergences)
        return (states, divergences), out

    return jax.lax.scan(sampling_step, carry, xs)


def outputs(chains: _Chain, num: int, warmup_steps, position, logp, diverging, steps):
    """The run's outputs (see :func:`run`) from the chains after warm-up and what the
    scans gave, chains first."""
    if num == 1:  # the chain axis back, after the step axis
        position, logp, diverging, steps, warmup_steps = (
            a[:, None] for a in (position, logp, diverging, steps, warmup_steps)
        )
        chains = jax.tree.map(lambda a: a[None], chains)
    latent = jnp.einsum("ckj,scj->csk", chains.factor, position)  # u = L v, chains first
    return {
        "latent": latent,
        "log_density": jnp.swapaxes(logp, 0, 1),
        "diverging": jnp.swapaxes(diverging, 0, 1),
        "gradients": jnp.swapaxes(steps, 0, 1),
        "step_size": chains.sampling_step,
        "warmup_gradients": 1 + jnp.sum(warmup_steps, axis=0),
    }


def run(settings: Settings, density, starts, keys, offset):
    """Warm up and sample ``starts.shape[0]`` chains (traceable; see module docstring).

    ``starts`` are overdispersed latent starts (draws of ``N(0, I)``), pulled inside the
    posterior's support by :func:`pulled_inside`.

    Warm-up (``num_warmup`` steps, adapting) and sampling (``num_samples`` steps) are two
    ``lax.scan`` loops of the one program.

    Returns
    -------
    dict
        ``latent`` ``(chains, draws, k)``, ``log_density``, ``diverging`` and
        ``gradients`` ``(chains, draws)``, ``step_size`` ``(chains,)``,
        ``warmup_gradients`` ``(chains,)`` (including the first gradient).
    """
    s = settings
    num = starts.shape[0]
    chains = start_chains(s, density, starts, keys)
    chains, warmup_steps = warmup(s, density, chains, num, warmup_xs(s), offset)
    total = s.num_warmup + s.num_samples
    xs = (jnp.arange(s.num_warmup, total), sampling_keys(s, chains, num))
    _, (position, logp, diverging, steps) = sample(
        s, density, chains, num, (chains.state, _progress.zero_divergences()), xs, offset
    )
    return outputs(chains, num, warmup_steps, position, logp, diverging, steps)
