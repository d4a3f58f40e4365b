"""Least-squares fits at scale with nothing to tune: Gauss-Newton steps on a sparse Fisher matrix.

Each step solves ``(F + P + lambda D) step = -(J^T r + P (x - mu))`` exactly, where ``F =
J^T J`` is the Fisher matrix of the residuals ``r`` computed by colouring
(``zdx_batching.sparse_fisher``), ``P`` and ``mu`` the precision and mean of an optional
Gaussian prior, and ``lambda D`` Levenberg-Marquardt's damping (``D`` the diagonal of ``F +
P``), raised when a step does not lower the objective and lowered when it does. The solve
is a :class:`zdx_batching.SchurFactor`: the few global parameters are eliminated last, so
nothing ``n x n`` is formed. There is no learning rate: the curvature sets the step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

import zdx_base
import zdx_batching
from zdx_base import checks
from zdx_batching import CapturedJit, capture

from ._paths import leaf_names

CURVATURES = ("sparse", "dense")
_MAX_RETRIES = 12  # damping raised tenfold at most this many times in one step


class GaussNewtonResult(NamedTuple):
    """What :func:`gauss_newton` returns."""

    params: Any
    """The fitted parameters, with the structure of ``x0``."""
    chi2: float
    """``sum(residuals(params) ** 2)``."""
    objective: float
    """``chi2 / 2`` plus the prior's ``sum(((x - mu) / sd) ** 2) / 2``: what is minimised."""
    steps: int
    """Steps taken (accepted or not)."""
    converged: bool
    """Whether the objective stopped changing (relative change below ``rtol``)."""
    chi2_history: np.ndarray
    """``chi2`` at the start and after every step."""
    objective_history: np.ndarray
    """The objective at the start and after every step."""
    seconds: np.ndarray
    """Seconds since the start, at the start (0) and after every step."""
    errors: Any
    """The standard deviation of every parameter (the square root of the diagonal of
    ``(F + P)^-1`` at the solution), with the structure of ``x0``."""
    fisher: Any
    """The Fisher matrix ``J^T J`` at the solution (a ``zdx_batching.SparseMatrix``, or a
    dense array with ``curvature="dense"``)."""
    factor: zdx_batching.SchurFactor
    """The factorised ``F + P`` at the solution: ``factor.solve``, ``factor.logdet()``,
    ``factor.inverse_diagonal()``."""


def _prior(name: str, prior: Any, x0: Any) -> tuple[np.ndarray, np.ndarray]:
    """The prior's mean and precision as flat vectors (precision 0 where none is given)."""
    flat, _, _ = zdx_base.ravel(x0)
    n = flat.shape[0]
    mean, precision = np.zeros(n), np.zeros(n)
    if prior is None:
        return mean, precision
    if not isinstance(prior, Mapping):
        raise TypeError(
            f"{name}: prior must be a dict from leaf path to (mean, sd), got "
            f"{type(prior).__name__}."
        )
    paths, leaves, _ = leaf_names(x0)
    offsets = np.concatenate([[0], np.cumsum([np.size(leaf) for leaf in leaves])]).astype(int)
    for path, value in prior.items():
        if path not in paths:
            raise ValueError(
                f"{name}: prior names the leaf {path!r}, which x0 does not have; its leaves "
                f"are {paths}."
            )
        if not isinstance(value, tuple) or len(value) != 2:
            raise TypeError(f"{name}: prior[{path!r}] must be a (mean, sd) pair, got {value!r}.")
        k = paths.index(path)
        shape = np.shape(leaves[k])
        try:
            mu = np.broadcast_to(np.asarray(value[0], float), shape).ravel()
            sd = np.broadcast_to(np.asarray(value[1], float), shape).ravel()
        except ValueError as error:
            raise ValueError(
                f"{name}: prior[{path!r}] does not broadcast to the leaf's shape {shape}."
            ) from error
        if not np.all(np.isfinite(sd) & (sd > 0)):
            raise ValueError(f"{name}: prior[{path!r}] needs every sd finite and > 0.")
        mean[offsets[k] : offsets[k + 1]] = mu
        precision[offsets[k] : offsets[k + 1]] = sd**-2
    return mean, precision


def _chi2_and_gradient(point: Any, pair: Any) -> tuple[jax.Array, Any]:
    """``sum(r ** 2)`` and ``J^T r`` (a pytree like ``point``) for the captured
    ``(residuals, args)``."""
    residuals, data = pair.function

    def flat_residuals(p):
        return jnp.ravel(residuals(p, data))

    r, pullback = jax.vjp(flat_residuals, point)
    return jnp.sum(r**2), pullback(r)[0]


# One compiled program for every fit of the same code and equal captures (the family's
# reuse rule): a new lambda or new data of the same shapes compiles nothing.
_EVALUATE = CapturedJit(_chi2_and_gradient)


def gauss_newton(
    residuals: Callable,
    x0: Any,
    *,
    args: Any = None,
    prior: Mapping[str, tuple] | None = None,
    curvature: str = "sparse",
    declare: Mapping | None = None,
    max_steps: int = 30,
    rtol: float = 1e-10,
    progress: bool = False,
) -> GaussNewtonResult:
    """Minimise ``sum(residuals(x) ** 2) / 2`` (plus a Gaussian prior) by damped Gauss-Newton steps.

    Parameters
    ----------
    residuals
        ``x -> (model(x) - data) / sigma`` (or ``(x, args) -> ...``): an array of any shape.
    x0
        The starting point: any pytree of floating-point arrays.
    args
        Data for ``residuals``, keyword only, as in ``zdx_batching.fisher``.
    prior
        Independent Gaussian priors by leaf path: ``{"response": (1.0, 0.05)}`` (mean and
        standard deviation, broadcast to the leaf). A prior is how a degeneracy (a pixel
        response's mean against the flux) is resolved without touching the steps.
    curvature
        ``"sparse"`` (the default): the Fisher matrix by colouring
        (``zdx_batching.sparse_fisher``); ``"dense"``: by dense columns
        (``zdx_batching.fisher``), for small problems.
    declare
        Sparsity declarations by leaf path, passed to ``zdx_batching.sparse_fisher``.
    max_steps
        The most steps taken.
    rtol
        Stop when an accepted step lowers the objective by less than ``rtol`` times it.
    progress
        Show a progress bar with the chi-squared.

    Returns
    -------
    GaussNewtonResult

    Raises
    ------
    TypeError, ValueError
        On a bad argument, naming it; ``zdx_batching.SparsityError`` when the Fisher
        matrix's pattern is wrong; ValueError when ``F + P`` is not positive definite at
        the solution (a degeneracy no prior resolves).
    """
    name = "gauss_newton"
    if not callable(residuals):
        raise TypeError(f"{name}: residuals must be callable, got {type(residuals).__name__}.")
    if curvature not in CURVATURES:
        raise ValueError(f"{name}: curvature must be one of {CURVATURES}, got {curvature!r}.")
    max_steps = checks.check_int(name, "max_steps", max_steps, minimum=1)
    rtol = checks.check_number(name, "rtol", rtol, minimum=0)
    flat, unravel, _ = zdx_base.ravel(x0)
    mean, precision = _prior(name, prior, x0)
    with_args = args is not None

    def tree_residuals(params, data=None):
        return residuals(params, data) if with_args else residuals(params)

    def evaluate(vector, data):
        pair = capture((tree_residuals, data))
        value, gradient = _EVALUATE(unravel(vector), pair)
        return value, zdx_base.ravel(gradient).flat

    def fisher_at(vector):
        point = unravel(jnp.asarray(vector))
        if curvature == "dense":
            matrix, _ = zdx_batching.fisher(tree_residuals, point, args=args)
            return matrix, sp.csr_matrix(np.asarray(matrix))
        matrix = zdx_batching.sparse_fisher(tree_residuals, point, args=args, declare=declare)
        return matrix, matrix.to_scipy()

    def objective_of(vector, chi2):
        return 0.5 * chi2 + 0.5 * float(np.sum(precision * (vector - mean) ** 2))

    start = time.perf_counter()
    x = np.asarray(flat, dtype=np.float64)
    chi2, gradient = (np.asarray(v, dtype=np.float64) for v in evaluate(jnp.asarray(x), args))
    chi2 = float(chi2)
    objective = objective_of(x, chi2)
    history, objectives, seconds = [chi2], [objective], [0.0]
    damping, converged, steps = 1e-3, False, 0
    bar = tqdm(total=max_steps, desc=name, disable=not progress, leave=False)
    for steps in range(1, max_steps + 1):  # noqa: B007
        _, matrix = fisher_at(x)
        curvature_matrix = matrix + sp.diags(precision)
        diagonal = np.maximum(curvature_matrix.diagonal(), np.finfo(float).tiny)
        total_gradient = gradient + precision * (x - mean)
        accepted = False
        for _ in range(_MAX_RETRIES):
            try:
                factor = zdx_batching.SchurFactor(curvature_matrix + sp.diags(damping * diagonal))
            except ValueError:
                damping *= 10.0
                continue
            trial = x - factor.solve(total_gradient)
            trial_chi2, trial_gradient = evaluate(jnp.asarray(trial), args)
            trial_chi2 = float(trial_chi2)
            trial_objective = objective_of(trial, trial_chi2)
            if math.isfinite(trial_objective) and trial_objective <= objective:
                accepted = True
                break
            damping *= 10.0
        if not accepted:
            converged = True  # no step lowers the objective: at the minimum to rounding
            history.append(chi2)
            objectives.append(objective)
            seconds.append(time.perf_counter() - start)
            break
        decrease = objective - trial_objective
        x, chi2, objective = trial, trial_chi2, trial_objective
        gradient = np.asarray(trial_gradient, dtype=np.float64)
        damping = max(damping / 10.0, 1e-12)
        history.append(chi2)
        objectives.append(objective)
        seconds.append(time.perf_counter() - start)
        bar.update(1)
        bar.set_postfix(chi2=f"{chi2:.6g}")
        if decrease <= rtol * max(abs(objective), 1.0):
            converged = True
            break
    bar.close()
    fisher, matrix = fisher_at(x)
    try:
        factor = zdx_batching.SchurFactor(matrix + sp.diags(precision))
    except ValueError as error:
        raise ValueError(
            f"{name}: at the solution the Fisher matrix plus the prior's precision is not "
            "positive definite, so some parameters (or combinations) are not constrained by "
            f"the data; give them a prior ({error})."
        ) from error
    errors = np.sqrt(factor.inverse_diagonal())
    return GaussNewtonResult(
        params=unravel(jnp.asarray(x, dtype=flat.dtype)),
        chi2=chi2,
        objective=objective,
        steps=steps,
        converged=converged,
        chi2_history=np.asarray(history),
        objective_history=np.asarray(objectives),
        seconds=np.asarray(seconds),
        errors=unravel(jnp.asarray(errors, dtype=flat.dtype)),
        fisher=fisher,
        factor=factor,
    )
