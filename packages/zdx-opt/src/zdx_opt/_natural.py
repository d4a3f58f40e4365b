"""Natural-gradient preconditioning as an optax transformation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import optax

import zdx_base
from zdx_base import checks

_SINGULAR = (
    "natural_gradient: the damped Fisher matrix is not numerically positive definite "
    "(it is singular, indefinite or non-finite); increase `damping`."
)


class NaturalGradientState(NamedTuple):
    """State of :func:`natural_gradient`.

    Attributes
    ----------
    count : Array
        The number of updates done so far (int32 scalar).
    cholesky : Array
        Lower Cholesky factor ``L`` of the damped Fisher matrix in use,
        ``F + damping * diag(d) = L @ L.T``.
    """

    count: jax.Array
    cholesky: jax.Array


def _damped_cholesky(fisher: jax.Array, damping: float) -> tuple[jax.Array, jax.Array]:
    """Cholesky factor of the Marquardt-damped Fisher matrix, and whether it is usable."""
    fisher = (fisher + fisher.T) / 2
    diag = jnp.diag(fisher)
    eps = jnp.finfo(fisher.dtype).eps
    floor = eps * jnp.max(jnp.abs(diag))
    damped = fisher + damping * jnp.diag(jnp.maximum(diag, floor))
    chol = jnp.linalg.cholesky(damped)
    pivots = jnp.diag(chol)
    ok = (
        jnp.all(jnp.isfinite(chol))
        & jnp.all(pivots > 0)
        & (jnp.min(pivots) ** 2 > eps * jnp.max(pivots) ** 2)
    )
    return chol, ok


def natural_gradient(
    fisher: jax.Array | Callable[[Any], jax.Array],
    *,
    damping: float = 1e-8,
    refresh_every: int | None = 1,
) -> optax.GradientTransformation:
    """Precondition gradients by the inverse Fisher matrix: ``g -> F^-1 g``.

    The gradients (any pytree) are flattened with ``zdx_base.ravel``, the
    linear system ``F_d x = g`` is solved with a Cholesky factorisation (never an explicit
    inverse) and ``x`` is returned with the structure of the gradients. Chain it with an
    optimiser that takes the step: ``optax.chain(natural_gradient(F), optax.sgd(lr))``
    steps ``params -= lr * F^-1 g``.

    Damping (Marquardt): the Fisher matrix in use is ``F_d = F + damping * diag(d)`` with
    ``d_i = max(F_ii, eps * max_j |F_jj|)``. Scaling the damping by the diagonal makes it
    independent of the units of each parameter; it keeps a near-singular ``F`` solvable
    and changes a well-conditioned one by a relative ``damping``. ``damping=0`` solves
    with ``F`` exactly.

    Parameters
    ----------
    fisher : Array or callable
        The ``(n, n)`` Fisher matrix of the flattened parameters (``n`` is the length of
        ``zdx_base.ravel(params).flat``), or a function ``params -> (n, n)`` matrix that is
        re-evaluated every ``refresh_every`` steps (it must be traceable by JAX).
    damping : float, default 1e-8
        The relative Marquardt damping, ``>= 0``.
    refresh_every : int or None, default 1
        For a callable ``fisher``: recompute the Fisher matrix at the ``params`` passed to
        ``update`` before steps ``refresh_every, 2 * refresh_every, ...`` (step 0 uses the
        matrix computed by ``init``). ``None`` computes it once, in ``init``. Ignored for a
        fixed matrix.

    Returns
    -------
    optax.GradientTransformation
        ``init(params)`` and ``update(updates, state, params=None)``; with a callable
        ``fisher`` that refreshes, ``update`` needs ``params``. State:
        :class:`NaturalGradientState`.

    Raises
    ------
    TypeError
        If ``fisher`` is not an array or callable, ``damping`` is not a number or
        ``refresh_every`` not an integer (or None).
    ValueError
        If ``fisher`` is not square, symmetric and finite, the damped matrix is not
        positive definite (also raised when a refreshed matrix is bad, inside ``jit`` as
        a runtime error), ``damping`` < 0 or ``refresh_every`` < 1, the gradients do
        not have ``n`` entries, or a refreshing callable ``fisher`` gets no ``params``.

    Examples
    --------
    >>> import jax.numpy as jnp, optax
    >>> F = jnp.array([[2.0, 0.0], [0.0, 4.0]])
    >>> optim = optax.chain(natural_gradient(F, damping=0.0), optax.sgd(1.0))
    >>> params = {"a": jnp.array(0.0), "b": jnp.array(0.0)}
    >>> state = optim.init(params)
    >>> updates, state = optim.update({"a": jnp.array(2.0), "b": jnp.array(2.0)}, state)
    >>> updates
    {'a': Array(-1., dtype=float64), 'b': Array(-0.5, dtype=float64)}
    """
    damping = checks.check_number("natural_gradient", "damping", damping, minimum=0)
    refresh_every = checks.check_int(
        "natural_gradient", "refresh_every", refresh_every, minimum=1, allow_none=True
    )

    if callable(fisher):
        fisher_fn = fisher
        fixed = None
    else:
        fixed = checks.as_square_matrix("natural_gradient", "fisher", fisher)
        fixed = checks.check_finite_matrix("natural_gradient", "fisher", fixed)
        fixed = checks.check_symmetric_matrix("natural_gradient", "fisher", fixed)
        fisher_fn = None
        fixed_chol, ok = _damped_cholesky(fixed, damping)
        if not checks.is_traced(ok) and not bool(ok):
            raise ValueError(
                f"`fisher` plus damping={damping:g} is not numerically positive definite "
                "(it is singular or indefinite); increase `damping`."
            )

    def evaluate(params: Any) -> jax.Array:
        matrix = checks.as_square_matrix("natural_gradient", "fisher(params)", fisher_fn(params))
        chol, ok = _damped_cholesky(matrix, damping)
        return eqx.error_if(chol, ~ok, _SINGULAR)

    def check_size(flat: jax.Array, n: int, what: str) -> None:
        if flat.shape[0] != n:
            raise ValueError(
                f"natural_gradient: the Fisher matrix is {n} x {n} but the {what} have "
                f"{flat.shape[0]} entries once flattened (zdx_base.ravel)."
            )

    def init_fn(params: Any) -> NaturalGradientState:
        flat = zdx_base.ravel(params).flat
        if fixed is not None:
            chol = eqx.error_if(fixed_chol, ~ok, _SINGULAR) if checks.is_traced(ok) else fixed_chol
        else:
            chol = evaluate(params)
        check_size(flat, chol.shape[0], "params")
        return NaturalGradientState(count=jnp.zeros([], jnp.int32), cholesky=chol)

    def update_fn(
        updates: Any, state: NaturalGradientState, params: Any = None
    ) -> tuple[Any, NaturalGradientState]:
        flat, unravel, _ = zdx_base.ravel(updates)
        n = state.cholesky.shape[0]
        check_size(flat, n, "updates")
        chol = state.cholesky
        if fisher_fn is not None and refresh_every is not None:
            if params is None:
                raise ValueError(
                    "natural_gradient with a callable `fisher` needs the parameters to "
                    "refresh it: call `update(updates, state, params)`."
                )
            refresh = (state.count > 0) & (state.count % refresh_every == 0)
            chol = jax.lax.cond(
                refresh,
                lambda p: evaluate(p).astype(chol.dtype),
                lambda p: chol,
                params,
            )
        solved = jsl.cho_solve((chol, True), flat.astype(chol.dtype))
        new_state = NaturalGradientState(
            count=optax.safe_int32_increment(state.count), cholesky=chol
        )
        return unravel(solved.astype(flat.dtype)), new_state

    return optax.GradientTransformation(init_fn, update_fn)
