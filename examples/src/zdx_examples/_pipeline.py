"""The hierarchical optics fit end to end: start, natural gradient, L-BFGS, Hessian, NUTS."""

from __future__ import annotations

import numbers
import re
import sys
import time
import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as onp
import optax
import optimistix as optx
from jax.flatten_util import ravel_pytree
from tqdm.auto import tqdm

import zdx_base
import zdx_batching
import zdx_opt

from ._fit import get_reduced_chi2, loglike_fn, loss_fn
from ._sampling import PosteriorSamples, sample_posterior
from ._simulate import OpticsSimulation, start_params
from ._start import StartChoice, choose_start


class OpticsFit(eqx.Module):
    """Everything the end-to-end optics fit (:func:`fit`) found, stage by stage.

    Attributes
    ----------
    simulation : OpticsSimulation
        The data that was fitted, with the truth and the optics.
    start : dict
        The starting guess estimated from the data (:func:`start_params`).
    ngd_params : dict
        The fit of the natural-gradient descent.
    lbfgs_params : dict
        The fit of the whitened L-BFGS.
    params : dict
        The fit the error bars are taken at: whichever of the two has the lower loss (each
        method's own reduced chi-squared is in ``stages`` and :meth:`method_chi2r`).
    best_method : str
        ``"natural_gradient"`` or ``"lbfgs"``: where ``params`` comes from.
    fisher : Array
        ``(n, n)`` the Fisher matrix of the loss at the start both methods ran from (the
        chosen start, or the data-based one without a sign search; Gauss-Newton, the Hessian of
        the loss at zero residuals, :func:`loss_fisher`), the first metric of the natural
        gradient.
    hessian : Array
        ``(n, n)`` the Hessian of minus the log-likelihood at the best fit.
    covariance : Array
        ``(n, n)`` its inverse: the covariance of the fitted parameters.
    names : tuple[str, ...]
        A name per flattened parameter (``zdx_base.scalar_names``).
    ngd_losses : Array
        ``(steps,)`` the loss before each natural-gradient step.
    ngd_history : Array
        ``(steps + 1, n)`` the flattened parameters at the start and after each step.
    lbfgs_losses : Array
        The loss at every evaluation made by L-BFGS (line-search trials included).
    samples : PosteriorSamples | None
        The NUTS draws, or None when sampling was skipped.
    stages : dict[str, dict]
        Per stage (in the order they ran): ``steps``, ``seconds`` and what else the stage
        reports (``chi2r`` after it, the solver's ``result``, NUTS diagnostics).
    start_choice : StartChoice | None
        The sign search over the even Zernike terms that chose where both methods start
        (:func:`choose_start`), or None when it was skipped.
    """

    simulation: OpticsSimulation
    start: dict
    ngd_params: dict
    lbfgs_params: dict
    params: dict
    best_method: str = eqx.field(static=True)
    fisher: jax.Array
    hessian: jax.Array
    covariance: jax.Array
    names: tuple[str, ...] = eqx.field(static=True)
    ngd_losses: jax.Array
    ngd_history: jax.Array
    lbfgs_losses: jax.Array
    samples: PosteriorSamples | None
    stages: dict = eqx.field(static=True)
    start_choice: StartChoice | None = None

    @property
    def truth(self) -> jax.Array:
        """``(n,)`` the flattened true parameters."""
        return ravel_pytree(self.simulation.true_params)[0]

    @property
    def best(self) -> jax.Array:
        """``(n,)`` the flattened best fit."""
        return ravel_pytree(self.params)[0]

    @property
    def sigma(self) -> jax.Array:
        """``(n,)`` the one-sigma uncertainties, square roots of the covariance diagonal."""
        return jnp.sqrt(jnp.diag(self.covariance))

    @property
    def pulls(self) -> jax.Array:
        """``(n,)`` ``(fit - truth) / sigma`` per parameter."""
        return (self.best - self.truth) / self.sigma

    @property
    def max_abs_pull(self) -> float:
        """The largest ``|fit - truth| / sigma`` over all parameters."""
        return float(jnp.max(jnp.abs(self.pulls)))

    def method_chi2r(self) -> dict[str, float]:
        """The reduced chi-squared each method reached on its own, by method name."""
        return {
            "natural_gradient": self.chi2r(self.ngd_params),
            "lbfgs": self.chi2r(self.lbfgs_params),
        }

    def chi2r(self, params: dict | None = None) -> float:
        """The reduced chi-squared of ``params`` (default: the best fit) on the data."""
        params = self.params if params is None else params
        sim = self.simulation
        return float(_chi2r(params, sim.optics, sim.observations))


_chi2r = eqx.filter_jit(get_reduced_chi2)
_loss = eqx.filter_jit(loss_fn)


def _say(progress: bool, message: str) -> None:
    if progress:
        tqdm.write(message, file=sys.stderr)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _check_rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 10:
        raise ValueError(f"`learning_rate` must be a number in (0, 10), got {value!r}.")
    return float(value)


class _ZModel(eqx.Module):
    """``params -> model / error`` for every observation: the Fisher matrix's input."""

    optics: Any
    observations: list

    def __call__(self, params: dict) -> jax.Array:
        return jnp.stack([obs(params, self.optics) / obs.error for obs in self.observations])


def loss_fisher(params: dict, optics: Any, observations: list, progress: bool = False):
    """The Fisher matrix of :func:`loss_fn` at ``params``: its Hessian at zero residuals.

    The loss is the mean over the pixels of an image of the squared z-scores summed over
    images, so its Hessian where the model meets the data is ``(2 / pixels) J^T J`` with
    ``J`` the Jacobian of ``model / error`` (``zdx_batching.fisher``). Only first
    derivatives are needed, and it does not depend on the data, only on the errors.

    Parameters
    ----------
    params : dict
        Where to evaluate it (e.g. the starting guess).
    optics : FilteredOpticalSystem
        The optical system.
    observations : list[Observation]
        Observations with errors.
    progress : bool
        Show a progress bar over the column blocks.

    Returns
    -------
    fisher : Array
        ``(n, n)``, in ``ravel_pytree(params)`` order.
    """
    pixels = observations[0].data.size
    jtj, _ = zdx_batching.fisher(_ZModel(optics, observations), params, progress=progress)
    return (2.0 / pixels) * jtj


def _error_message(error: Exception) -> str:
    """The message of an error raised inside ``jit`` (equinox puts it after the stacks)."""
    text = str(error)
    found = re.findall(r"EquinoxRuntimeError: (.+)", text)
    if found:
        return found[-1].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else repr(error)


class _LossFisher(eqx.Module):
    """``params -> (2 / pixels) J^T J``: the Fisher matrix of the loss, traceable by JAX."""

    z_model: _ZModel
    pixels: int = eqx.field(static=True)

    def __call__(self, params: dict) -> jax.Array:
        jtj, _ = zdx_batching.fisher(self.z_model, params)
        return (2.0 / self.pixels) * jtj


def natural_gradient_descent(
    params: dict,
    args: tuple,
    steps: int = 100,
    learning_rate: float = 0.1,
    refresh_every: int = 5,
    progress: bool = True,
) -> tuple[dict, jax.Array, jax.Array]:
    """Natural-gradient descent on :func:`loss_fn`, the tutorial's section 5.

    ``optax.chain(zdx_opt.natural_gradient(F, refresh_every=...), optax.sgd(learning_rate,
    momentum=0.5))``, with ``F(params)`` the Fisher matrix of the loss
    (:func:`loss_fisher`) recomputed every ``refresh_every`` steps. Two departures from
    the tutorial, both for robustness: the Fisher matrix is refreshed (at a start with no
    wavefront error the even aberrations are barely constrained, so the start's matrix is
    a poor metric once they grow), and every parameter moves from the first step (with the
    natural gradient all of them settle at the same rate; holding the wavefront error
    still while the positions settle can lead into the mirror-image minimum, where the
    even aberrations have the wrong sign). Stops early, with a warning, if the loss stops
    being finite or a refreshed Fisher matrix is not positive definite.

    Parameters
    ----------
    params : dict
        The start.
    args : tuple
        ``(optics, observations)``.
    steps : int
        Number of steps, >= 1.
    learning_rate : float
        Step size in units of the Newton step, in (0, 10).
    refresh_every : int
        Recompute the Fisher matrix every this many steps, >= 1.
    progress : bool
        Show a ``tqdm`` bar with the loss.

    Returns
    -------
    params : dict
        The parameters with the lowest loss seen.
    losses : Array
        ``(steps_done,)`` the loss before each step.
    history : Array
        ``(steps_done + 1, n)`` the flattened parameters at the start and after each step.
    """
    steps = _check_int("steps", steps, 1)
    learning_rate = _check_rate(learning_rate)
    refresh_every = _check_int("refresh_every", refresh_every, 1)
    optics, observations = args
    fisher_fn = _LossFisher(_ZModel(optics, observations), int(observations[0].data.size))
    optim = optax.chain(
        zdx_opt.natural_gradient(fisher_fn, refresh_every=refresh_every),
        optax.sgd(learning_rate, momentum=0.5),
    )
    state = eqx.filter_jit(optim.init)(params)
    value_and_grad = eqx.filter_value_and_grad(loss_fn)

    @eqx.filter_jit
    def step(params, state, args):
        loss, grads = value_and_grad(params, args)
        updates, state = optim.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    losses, history = [], [onp.asarray(ravel_pytree(params)[0])]
    best, best_loss = params, onp.inf
    bar = tqdm(range(steps), desc="natural gradient", unit="step", disable=not progress)
    for _ in bar:
        try:
            new, state, loss = step(params, state, args)
        except RuntimeError as error:  # a refreshed Fisher matrix that is not usable
            message = _error_message(error)
            warnings.warn(
                f"natural gradient: stopped after {len(losses)} steps: {message}",
                RuntimeWarning,
                stacklevel=2,
            )
            break
        loss = float(loss)
        if not onp.isfinite(loss):
            warnings.warn(
                f"natural gradient: the loss became {loss} after {len(losses)} steps; "
                "stopping there (try a smaller learning_rate).",
                RuntimeWarning,
                stacklevel=2,
            )
            break
        if loss < best_loss:
            best, best_loss = params, loss
        params = new
        losses.append(loss)
        history.append(onp.asarray(ravel_pytree(params)[0]))
        bar.set_postfix(log10_loss=f"{onp.log10(loss):.4f}")
    bar.close()
    final = float(eqx.filter_jit(loss_fn)(params, args)) if losses else onp.inf
    if onp.isfinite(final) and final <= best_loss:
        best = params
    return best, jnp.asarray(losses), jnp.asarray(onp.array(history))


class _Recorder:
    """Collects the loss at every evaluation and moves a progress bar."""

    def __init__(self, bar: Any):
        self.losses: list[float] = []
        self.bar = bar

    def __call__(self, loss: Any) -> None:
        loss = float(loss)
        self.losses.append(loss)
        self.bar.update(1)
        if onp.isfinite(loss) and loss > 0:
            self.bar.set_postfix(log10_loss=f"{onp.log10(loss):.4f}")


def whitened_lbfgs(
    params: dict,
    args: tuple,
    fisher: jax.Array,
    max_steps: int = 256,
    progress: bool = True,
) -> tuple[zdx_opt.MinimiseResult, jax.Array]:
    """L-BFGS in the latent space whitened by ``fisher``, the tutorial's section 6.

    One call to ``zdx_opt.minimise(loss_fn, params, args, fmat=fisher)``; the loss of every
    evaluation is recorded (and moves a ``tqdm`` bar) through ``jax.debug.callback``.

    Parameters
    ----------
    params : dict
        The start.
    args : tuple
        ``(optics, observations)``.
    fisher : Array
        ``(n, n)`` Fisher matrix of the loss, to whiten with.
    max_steps : int
        Most L-BFGS steps, >= 1.
    progress : bool
        Show a ``tqdm`` bar over the loss evaluations.

    Returns
    -------
    result : zdx_opt.MinimiseResult
        ``params``, ``num_steps``, ``result``...
    losses : Array
        The loss at each evaluation, in order.
    """
    max_steps = _check_int("max_steps", max_steps, 1)
    bar = tqdm(desc="L-BFGS", unit="eval", disable=not progress)
    recorder = _Recorder(bar)

    def recorded_loss(params, args):
        loss = loss_fn(params, args)
        jax.debug.callback(recorder, loss, ordered=True)
        return loss

    try:
        result = zdx_opt.minimise(recorded_loss, params, args, fmat=fisher, max_steps=max_steps)
        jax.block_until_ready(result.params)
        jax.effects_barrier()
    finally:
        bar.close()
    return result, jnp.asarray(recorder.losses)


def hessian_covariance(
    params: dict, args: tuple, progress: bool = True
) -> tuple[jax.Array, jax.Array]:
    """The Hessian of minus the log-likelihood at ``params`` and its inverse.

    Parameters
    ----------
    params : dict
        The best fit.
    args : tuple
        ``(optics, observations)``.
    progress : bool
        Show ``zdx_batching.hessian``'s progress bar.

    Returns
    -------
    hessian, covariance : Array
        ``(n, n)`` each.

    Raises
    ------
    ValueError
        If the Hessian is not finite and numerically positive definite (its smallest
        eigenvalue above ``n * eps`` times the largest): no covariance exists, the fit is
        not at a minimum or a parameter is not constrained by the data.
    """
    n = ravel_pytree(params)[0].size

    def neg_loglike(p):
        return -loglike_fn(p, args)

    hessian, _ = zdx_batching.hessian(neg_loglike, params, nbatches=min(4, n), progress=progress)
    hessian = (hessian + hessian.T) / 2
    finite = bool(jnp.all(jnp.isfinite(hessian)))
    eigenvalues = jnp.linalg.eigvalsh(hessian) if finite else jnp.full(n, jnp.nan)
    smallest, largest = float(eigenvalues[0]), float(eigenvalues[-1])
    if not smallest > n * float(jnp.finfo(hessian.dtype).eps) * abs(largest):
        raise ValueError(
            "The Hessian of -loglike at the best fit is not positive definite (eigenvalues "
            f"from {smallest:.3g} to {largest:.3g}): the fit did not reach a minimum, or "
            "some parameter is not constrained by the data; no covariance exists."
        )
    return hessian, jnp.linalg.inv(hessian)


def fit(
    simulation: OpticsSimulation,
    *,
    ngd_steps: int = 100,
    learning_rate: float = 0.1,
    refresh_every: int = 5,
    max_steps: int = 256,
    nuts_warmup: int = 200,
    nuts_samples: int = 200,
    nuts_chains: int = 1,
    seed: int = 0,
    progress: bool = True,
    stages: dict[str, dict] | None = None,
    use_zdx_sample: bool | None = None,
    resolve_signs: bool = True,
) -> OpticsFit:
    """Fit a simulated optics data set end to end, as the tutorial's sections 4 to 7 do.

    1. ``start``: the starting guess from the data (:func:`start_params`);
    2. ``choose_start``: the sign search over the even Zernike terms
       (:func:`choose_start`): from a start without wavefront error either method can end
       in the mirror-image minimum (even aberrations with the wrong sign); the search
       picks the basin first, and both methods start from its choice;
    3. ``fisher``: the Fisher matrix of the loss there (:func:`loss_fisher`);
    4. ``natural_gradient``: :func:`natural_gradient_descent` for ``ngd_steps`` steps
       (section 5);
    5. ``lbfgs``: :func:`whitened_lbfgs`, whitened by that Fisher matrix (section 6).
       Each method's reduced chi-squared is reported (``stages``), and a method that
       did not reach the noise is warned about; the error bars are taken at the fit
       with the lower loss;
    6. ``hessian``: :func:`hessian_covariance` at the best fit, the error bars;
    7. ``nuts``: a short NUTS run in the latent space whitened by that Hessian
       (:func:`sample_posterior`; skipped when ``nuts_samples == 0``).

    Parameters
    ----------
    simulation : OpticsSimulation
        The data, optics and truth (:func:`simulate`).
    ngd_steps : int
        Natural-gradient steps, >= 1.
    learning_rate : float
        The natural-gradient step size, in units of the Newton step.
    refresh_every : int
        Recompute the natural gradient's Fisher matrix every this many steps.
    max_steps : int
        Most L-BFGS steps, >= 1.
    nuts_warmup, nuts_samples, nuts_chains : int
        Length of the NUTS run: warm-up and kept draws per chain (``nuts_samples == 0``
        skips sampling, otherwise >= 4), number of chains.
    seed : int
        Seed of the NUTS chains.
    progress : bool
        Show progress bars and one line per stage on standard error.
    stages : dict | None
        Stages that ran before (e.g. ``{"simulate": {"steps": ..., "seconds": ...}}``),
        put first in the result's ``stages``.
    use_zdx_sample : bool | None
        See :func:`sample_posterior`.
    resolve_signs : bool
        Run the ``choose_start`` sign search (default); False starts both methods from
        the data-based start, as the tutorial does.

    Returns
    -------
    result : OpticsFit

    Raises
    ------
    ValueError
        If a setting is out of range, or the Fisher matrix or the Hessian is not positive
        definite.

    Warns
    -----
    RuntimeWarning
        When a method's reduced chi-squared is above 1.5: that fit did not reach the
        noise (a local minimum, or too few steps); the report still shows it.
    """
    ngd_steps = _check_int("ngd_steps", ngd_steps, 1)
    learning_rate = _check_rate(learning_rate)
    refresh_every = _check_int("refresh_every", refresh_every, 1)
    max_steps = _check_int("max_steps", max_steps, 1)
    nuts_warmup = _check_int("nuts_warmup", nuts_warmup, 0)
    nuts_samples = _check_int("nuts_samples", nuts_samples, 0)
    if 0 < nuts_samples < 4:
        raise ValueError(f"`nuts_samples` must be 0 (no sampling) or >= 4, got {nuts_samples}.")
    nuts_chains = _check_int("nuts_chains", nuts_chains, 1)
    if not jax.config.jax_enable_x64:
        warnings.warn(
            "fit: float64 is disabled; Hessians of the optics model in float32 are "
            "unreliable. Call jax.config.update('jax_enable_x64', True) first.",
            UserWarning,
            stacklevel=2,
        )
    optics, observations = simulation.optics, simulation.observations
    args = (optics, observations)
    record = dict(stages or {})
    names = zdx_base.scalar_names(simulation.true_params)
    n = len(names)

    def done(stage, steps, seconds, **extra):
        record[stage] = {"steps": int(steps), "seconds": round(seconds, 3), **extra}
        details = ", ".join(
            f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in extra.items()
        )
        _say(
            progress,
            f"[{stage}] {steps} steps in {seconds:.1f} s" + (f", {details}" if details else ""),
        )

    clock = time.perf_counter()
    start = jax.block_until_ready(start_params(observations, optics))
    done("start", 1, time.perf_counter() - clock, chi2r=float(_chi2r(start, optics, observations)))

    choice = None
    origin = start
    if resolve_signs:
        clock = time.perf_counter()
        choice = choose_start(start, args, learning_rate=learning_rate, refresh_every=refresh_every)
        origin = jax.block_until_ready(choice.params)
        done(
            "choose_start",
            len(choice.losses),
            time.perf_counter() - clock,
            chi2r=float(_chi2r(origin, optics, observations)),
            choice=choice.describe(),
        )

    clock = time.perf_counter()
    fisher = jax.block_until_ready(loss_fisher(origin, optics, observations, progress=progress))
    done("fisher", n, time.perf_counter() - clock)

    clock = time.perf_counter()
    ngd_params, ngd_losses, ngd_history = natural_gradient_descent(
        origin,
        args,
        steps=ngd_steps,
        learning_rate=learning_rate,
        refresh_every=refresh_every,
        progress=progress,
    )
    done(
        "natural_gradient",
        ngd_losses.size,
        time.perf_counter() - clock,
        chi2r=float(_chi2r(ngd_params, optics, observations)),
    )

    clock = time.perf_counter()
    solution, lbfgs_losses = whitened_lbfgs(
        origin, args, fisher, max_steps=max_steps, progress=progress
    )
    lbfgs_params = solution.params
    converged = solution.result == optx.RESULTS.successful
    done(
        "lbfgs",
        int(solution.num_steps),
        time.perf_counter() - clock,
        chi2r=float(_chi2r(lbfgs_params, optics, observations)),
        result="successful" if converged else "max_steps or failure",
    )
    ngd_loss = float(_loss(ngd_params, args))
    lbfgs_loss = float(_loss(lbfgs_params, args))
    best_method = "lbfgs" if not ngd_loss < lbfgs_loss else "natural_gradient"
    best = lbfgs_params if best_method == "lbfgs" else ngd_params
    each = {
        "natural_gradient": float(_chi2r(ngd_params, optics, observations)),
        "lbfgs": float(_chi2r(lbfgs_params, optics, observations)),
    }
    _say(progress, f"error bars at the fit of {best_method}, chi2r {each[best_method]:.6g}")
    for method, chi2r in each.items():
        if not chi2r < 1.5:
            warnings.warn(
                f"fit: the {method} fit has a reduced chi-squared of {chi2r:.4g}, far above "
                "1: it did not reach the noise. It may sit in a local minimum (the even "
                "aberrations with the wrong sign) or need more steps (ngd_steps, max_steps).",
                RuntimeWarning,
                stacklevel=2,
            )

    clock = time.perf_counter()
    hessian, covariance = hessian_covariance(best, args, progress=progress)
    done("hessian", n, time.perf_counter() - clock)

    samples = None
    if nuts_samples:
        clock = time.perf_counter()

        def log_likelihood(p):
            return loglike_fn(p, args)

        samples = sample_posterior(
            log_likelihood,
            best,
            hessian,
            num_warmup=nuts_warmup,
            num_samples=nuts_samples,
            num_chains=nuts_chains,
            seed=seed,
            progress=progress,
            use_zdx_sample=use_zdx_sample,
        )
        done(
            "nuts",
            (nuts_warmup + nuts_samples) * nuts_chains,
            time.perf_counter() - clock,
            backend=samples.backend,
            max_r_hat=float(jnp.max(samples.r_hat)),
            min_ess=float(jnp.min(samples.ess)),
            divergences=samples.divergences,
        )

    return OpticsFit(
        simulation=simulation,
        start=start,
        ngd_params=ngd_params,
        lbfgs_params=lbfgs_params,
        params=best,
        best_method=best_method,
        fisher=fisher,
        hessian=hessian,
        covariance=covariance,
        names=names,
        ngd_losses=ngd_losses,
        ngd_history=ngd_history,
        lbfgs_losses=lbfgs_losses,
        samples=samples,
        stages=record,
        start_choice=choice,
    )
