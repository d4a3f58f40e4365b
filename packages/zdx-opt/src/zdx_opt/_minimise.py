"""Minimise a loss with optimistix in a whitened latent space."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import equinox as eqx
import jax

from zdx_base import checks

if TYPE_CHECKING:  # imported when minimise() runs: it costs ~0.3 s at `import zdx_opt`
    import optimistix as optx

from ._fisher_name import fisher_argument
from ._reparam import LatentMap, reparametrise


class MinimiseResult(eqx.Module):
    """What :func:`minimise` returns.

    Attributes
    ----------
    params : PyTree
        The solution as a parameter pytree (the structure of the ``params`` given).
    value : PyTree
        The solution in the space the solver worked in: the latent vector ``u`` when a
        matrix was given, otherwise the same as ``params``.
    loss : Array
        The loss at the solution, ``loss_fn(params, args)``.
    result : optimistix.RESULTS
        Whether the solver converged (``result == optx.RESULTS.successful``).
    num_steps : Array
        The number of solver steps taken.
    latent_map : LatentMap or None
        The map from latent vectors to parameters (``None`` without a matrix).
    solution : optimistix.Solution
        The full optimistix solution (``stats``, ``state``, ...).
    """

    params: Any
    value: Any
    loss: jax.Array
    result: optx.RESULTS
    num_steps: jax.Array
    latent_map: LatentMap | None
    solution: optx.Solution


class _LatentLoss(eqx.Module):
    """``u, args -> loss_fn(latent_map(u), args)``; a module, so repeated calls reuse the
    compiled solver when ``loss_fn`` and the shapes are the same."""

    loss_fn: Callable[[Any, Any], jax.Array]
    latent_map: LatentMap

    def __call__(self, u: jax.Array, args: Any) -> jax.Array:
        return self.loss_fn(self.latent_map(u), args)


def minimise(
    loss_fn: Callable[[Any, Any], jax.Array],
    params: Any,
    args: Any = None,
    *,
    fisher: Any = None,
    cov: Any = None,
    fmat: Any = None,
    solver: optx.AbstractMinimiser | None = None,
    max_steps: int | None = 256,
    throw: bool = False,
    options: dict[str, Any] | None = None,
    on_bad: str = "raise",
    rtol: float | None = None,
) -> MinimiseResult:
    """Minimise ``loss_fn(params, args)`` with optimistix, in whitened coordinates.

    With a Fisher (``fisher``) or covariance (``cov``) matrix of the flattened parameters,
    the solver works on the latent vector ``u`` of ``params = x0 + P @ u``
    (:func:`reparametrise`, ``x0`` = the given ``params``), where the problem is
    well-scaled; the solution is returned as a parameter pytree. Without a matrix it
    minimises over ``params`` directly.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(params, args) -> scalar``, traceable by JAX.
    params : PyTree
        The starting parameters (floating-point arrays).
    args : PyTree, optional
        Passed through to ``loss_fn``.
    fisher, cov : Array, optional
        At most one: the ``(n, n)`` Fisher or covariance matrix of
        ``zdx_base.ravel(params).flat``.
    fmat : Array, optional
        The zodiax 0.5 name of ``fisher``, kept for its code: give at most one of the two.
    solver : optimistix.AbstractMinimiser, optional
        Default ``optx.BestSoFarMinimiser(optx.LBFGS(rtol=1e-6, atol=1e-6))``.
    max_steps : int or None, default 256
        The solver's step limit.
    throw : bool, default False
        If True, a solver failure (e.g. ``max_steps`` reached) raises; if False it is
        reported in ``result``.
    options : dict, optional
        Solver options, passed to ``optimistix.minimise``.
    on_bad, rtol
        How to treat singular or indefinite directions of the matrix; see
        :func:`eigen_projection`.

    Returns
    -------
    MinimiseResult
        ``params``, ``value`` (latent), ``loss``, ``result``, ``num_steps``,
        ``latent_map`` and the optimistix ``solution``.

    Raises
    ------
    TypeError
        If ``loss_fn`` is not callable, or both ``fisher`` and ``fmat`` are given.
    ValueError
        If both the Fisher matrix and ``cov`` are given, or the matrix is bad (see
        :func:`eigen_projection`) or does not match the parameters.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> loss = lambda p, args: jnp.sum((p["x"] - 3.0) ** 2)
    >>> out = minimise(loss, {"x": jnp.zeros(2)}, fisher=2.0 * jnp.eye(2))
    >>> out.params["x"]
    Array([3., 3.], dtype=float64)
    """
    import optimistix as optx

    fisher_name = "fmat" if fmat is not None else "fisher"
    if fisher_argument("minimise", fisher, fmat) is not None and cov is not None:
        raise ValueError(f"minimise takes at most one of `{fisher_name}` and `cov`, got both.")
    checks.check_callable("minimise", "loss_fn", loss_fn, "a function (params, args) -> scalar")
    if solver is None:
        solver = optx.BestSoFarMinimiser(optx.LBFGS(rtol=1e-6, atol=1e-6))
    if fisher is None and fmat is None and cov is None:
        latent_map = None
        fn, y0 = loss_fn, params
    else:
        y0, latent_map = reparametrise(params, fisher, cov, fmat=fmat, on_bad=on_bad, rtol=rtol)
        fn = _LatentLoss(loss_fn, latent_map)
    solution = optx.minimise(
        fn, solver, y0, args, options=options, max_steps=max_steps, throw=throw
    )
    best = solution.value if latent_map is None else latent_map(solution.value)
    return MinimiseResult(
        params=best,
        value=solution.value,
        loss=eqx.filter_jit(loss_fn)(best, args),
        result=solution.result,
        num_steps=solution.stats["num_steps"],
        latent_map=latent_map,
        solution=solution,
    )
