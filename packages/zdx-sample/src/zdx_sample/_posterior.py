"""The posterior every estimator starts from: likelihood x prior around a start point,
and its curvature (the posterior Fisher matrix)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as onp
import optimistix as optx

import zdx_base
import zdx_batching
from zdx_base import checks
from zdx_batching import Captured

from ._checks import scalar_value
from ._compiled import Program, capture_log_likelihood
from ._prior import Prior, check_prior, is_distribution


def log_prior_density(params: Any, prior: Any) -> jax.Array:
    """The log density of ``params`` under ``prior``, a pytree of numpyro distributions."""
    dists = jax.tree.leaves(prior, is_leaf=is_distribution)
    treedef = jax.tree.structure(prior, is_leaf=is_distribution)
    return Prior(prior, [], dists, treedef).log_density(params)


class LogPosterior(eqx.Module):
    """``sign * (log_likelihood(params) + log prior(params))`` as a pytree: the arrays of
    the captured likelihood and of the prior are its leaves, so that a compiled program
    built on it is reused for a new likelihood of the same code and equal captures
    (``zdx_batching.capture``) and a prior of the same structure.
    """

    # a zdx_batching.Captured (the function itself, given to zdx_batching.hessian, when
    # the capture is not reusable: zdx_batching then computes afresh)
    log_likelihood: Callable[[Any], Any]
    prior: Any  # a pytree of numpyro distributions, or None for a flat prior
    sign: float = eqx.field(static=True, default=1.0)

    def log_prior(self, params: Any) -> jax.Array:
        return jnp.zeros(()) if self.prior is None else log_prior_density(params, self.prior)

    def __call__(self, params: Any) -> jax.Array:
        return self.sign * (self.log_likelihood(params) + self.log_prior(params))


class FlatLogPosterior(eqx.Module):
    """A :class:`LogPosterior` of the flat parameter vector ``x``: ``log_posterior(unravel(x))``."""

    log_posterior: LogPosterior
    unravel: Callable[[jax.Array], Any] = eqx.field(static=True)

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.asarray(self.log_posterior(self.unravel(x)), x.dtype)


class Posterior:
    """The captured ``log_likelihood`` (a ``zdx_batching.Captured``, see
    :func:`~zdx_sample._compiled.capture_log_likelihood`) and a checked prior around the
    flattened start point ``x0``."""

    def __init__(
        self,
        log_likelihood: Captured,
        x0: jax.Array,
        unravel: Callable[[jax.Array], Any],
        names: tuple[str, ...],
        prior: Prior | None,
    ):
        self.log_likelihood = log_likelihood
        self.x0 = x0
        self.unravel = unravel
        self.names = names
        self.prior = prior
        self.log_likelihood_x0: float | None = None
        self.log_prior_x0: float | None = None

    @property
    def n(self) -> int:
        return int(self.x0.shape[0])

    @property
    def params(self) -> Any:
        return self.unravel(self.x0)

    def log_prior(self, params: Any) -> jax.Array:
        return jnp.zeros(()) if self.prior is None else self.prior.log_density(params)

    def log_posterior(self, sign: float = 1.0) -> LogPosterior:
        """``sign`` times the unnormalised log posterior, as a :class:`LogPosterior`."""
        prior = None if self.prior is None else self.prior.tree
        return LogPosterior(self.log_likelihood, prior, sign)

    def flat_log_posterior(self) -> FlatLogPosterior:
        """The unnormalised log posterior of the flat parameter vector."""
        return FlatLogPosterior(self.log_posterior(), self.unravel)

    @property
    def reusable(self) -> bool:
        """Whether the compiled programs of this posterior may be kept for later calls
        (``zdx_batching.Captured.reusable`` of the likelihood)."""
        return self.log_likelihood.reusable

    def evidence_problem(self) -> str | None:
        """Why this posterior has no evidence (None when it has one)."""
        if self.prior is None:
            return (
                "no `prior` was given, so the prior is flat and improper and the evidence is "
                "not defined; pass `prior=` (a pytree of proper numpyro distributions)"
            )
        if self.prior.improper:
            return (
                f"`prior` has an improper distribution (ImproperUniform) at "
                f"{self.prior.improper}, so the evidence is not defined"
            )
        return None


def _check_floating(params: Any, fn_name: str) -> None:
    for keypath, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            name = jax.tree_util.keystr(keypath) or "the root"
            raise TypeError(
                f"{fn_name}: every leaf of `params` must be a floating-point array or float; "
                f"{name} has dtype {dtype}."
            )


def setup(
    fn_name: str,
    log_likelihood: Callable[[Any], Any],
    params: Any,
    prior: Any = None,
    *,
    optimise: bool = False,
    max_steps: int = 1000,
) -> Posterior:
    """Check the arguments, optionally move to the posterior mode, and check the start.

    Raises
    ------
    TypeError, ValueError
        For a likelihood that is not callable, non-float parameters, a prior that does not
        match, a start point outside the prior's support, or a log-likelihood that is not a
        finite scalar at the start point.
    """
    checks.check_callable(
        fn_name, "log_likelihood", log_likelihood, "a function params -> scalar log-likelihood"
    )
    if params is None or not jax.tree.leaves(params):
        raise ValueError(f"{fn_name}: `params` must be a pytree of parameters, got {params!r}.")
    _check_floating(params, fn_name)
    checked_prior = None if prior is None else check_prior(prior, params)
    x0, unravel, names = zdx_base.ravel(params)

    def checked_start(captured: Captured) -> Posterior:
        post = Posterior(captured, x0, unravel, names, checked_prior)
        _check_start(fn_name, post)
        return post

    _, post = capture_log_likelihood(log_likelihood, checked_start)
    if optimise:
        post = _optimise(fn_name, post, max_steps)
    return post


def _start_values(log_posterior: LogPosterior, params: Any):
    value = log_posterior.log_likelihood(params)
    if log_posterior.prior is None:
        return value, jnp.zeros(()), ()
    dists = jax.tree.leaves(log_posterior.prior, is_leaf=is_distribution)
    treedef = jax.tree.structure(log_posterior.prior, is_leaf=is_distribution)
    leaves = treedef.flatten_up_to(params)
    inside = tuple(jnp.all(d.support(jnp.asarray(x))) for d, x in zip(dists, leaves))
    return value, log_posterior.log_prior(params), inside


_START_VALUES = Program(_start_values)


def _check_start(fn_name: str, post: Posterior, where: str = "the start point `params`") -> None:
    value, logp, inside = _START_VALUES(post.log_posterior(), post.params)
    value = scalar_value(value, "`log_likelihood(params)`")
    if not bool(jnp.isfinite(value)):
        raise ValueError(
            f"{fn_name}: `log_likelihood` returned {float(value)} at {where}; it must be "
            "finite there. Check the model and the data for NaN or inf (e.g. with "
            "jax.config.update('jax_debug_nans', True)), or start from another point."
        )
    if post.prior is not None:
        outside = [n for n, ok in zip(post.prior.names, inside) if not bool(ok)]
        if outside:
            raise ValueError(
                f"{fn_name}: {where} lies outside the support of `prior` at {outside}; "
                "start inside the prior (the prior density there is zero)."
            )
        if not onp.isfinite(float(logp)):
            raise ValueError(
                f"{fn_name}: the log prior density is {float(logp)} at {where}; it must be finite."
            )
    post.log_likelihood_x0 = float(value)
    post.log_prior_x0 = float(logp)


def _negative_log_posterior(x: jax.Array, args: tuple) -> jax.Array:
    """Minus the log posterior of the flat vector ``x``; ``args`` is ``(LogPosterior with
    sign -1, unravel)``."""
    negative_log_posterior, unravel = args
    return negative_log_posterior(unravel(x))


def _minimise(negative_log_posterior: LogPosterior, x0: jax.Array, unravel, max_steps: int):
    """optimistix BFGS from ``x0``: the point reached, the solver's verdict and its steps."""
    solver = optx.BFGS(rtol=1e-10, atol=1e-10)
    args = (negative_log_posterior, unravel)
    sol = optx.minimise(_negative_log_posterior, solver, x0, args, max_steps=max_steps, throw=False)
    return sol.value, sol.result, sol.stats["num_steps"]


_MINIMISE = Program(_minimise, static_argnames=("unravel", "max_steps"))


def _optimise(fn_name: str, post: Posterior, max_steps: int) -> Posterior:
    value, result, steps = _MINIMISE(
        post.log_posterior(sign=-1.0), post.x0, post.unravel, max_steps
    )
    if result != optx.RESULTS.successful:
        warnings.warn(
            f"{fn_name}: optimise=True did not converge to the posterior mode in "
            f"{int(steps)} BFGS steps ({result}); the result is built "
            "around the last point reached.",
            RuntimeWarning,
            stacklevel=3,
        )
    moved = Posterior(post.log_likelihood, value, post.unravel, post.names, post.prior)
    _check_start(fn_name, moved, where="the optimised point")
    return moved


def _as_matrix(fn_name: str, fisher: Any, n: int, dtype) -> onp.ndarray:
    mat = checks.as_square_matrix(fn_name, "fisher", fisher, size=n).astype(dtype)
    mat = checks.check_symmetric_matrix(
        fn_name, "fisher", checks.check_finite_matrix(fn_name, "fisher", mat)
    )
    return onp.asarray(mat)


def curvature(fn_name: str, post: Posterior, fisher: Any = None) -> tuple[onp.ndarray, str]:
    """The posterior Fisher matrix ``F`` at ``x0`` (minus the Hessian of the log posterior).

    With ``fisher`` given it is the likelihood's Fisher matrix and the prior's curvature is
    added; otherwise the Hessian of the negative log posterior is computed with
    ``zdx_batching.hessian``.

    Returns
    -------
    F, source
        The symmetric ``(n, n)`` matrix (numpy, the dtype of the parameters) and a
        description of where it came from (for error messages).
    """
    dtype = onp.dtype(post.x0.dtype)
    if fisher is not None:
        mat = _as_matrix(fn_name, fisher, post.n, dtype)
        source = "`fisher`" + (" plus the prior's curvature" if post.prior is not None else "")
        if post.prior is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # NaN is reported below
                prior_h, _ = zdx_batching.hessian(
                    log_prior_density, post.params, args=post.prior.tree
                )
            prior_h = onp.asarray(prior_h)
            if not onp.all(onp.isfinite(prior_h)):
                raise ValueError(
                    f"{fn_name}: the Hessian of the log prior at `params` has NaN or inf "
                    "entries; the prior must be twice differentiable at the start point."
                )
            mat = mat - 0.5 * (prior_h + prior_h.T)
    else:
        source = "the Hessian of the negative log posterior at `params`"
        target = post.log_posterior(-1.0)
        if not post.reusable:  # zdx_batching then sees the function itself: computed afresh
            target = LogPosterior(post.log_likelihood.function, target.prior, target.sign)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NaN is reported below
            hess, _ = zdx_batching.hessian(target, post.params)
        hess = onp.asarray(hess)
        if not onp.all(onp.isfinite(hess)):
            raise ValueError(
                f"{fn_name}: {source} has NaN or inf entries; the log-likelihood and the "
                "prior must be twice differentiable (and finite) there."
            )
        mat = 0.5 * (hess + hess.T)
    return mat.astype(dtype), source
