"""Natural-gradient preconditioning as an optax transformation, with a dense, structured or
matrix-free Fisher matrix (:mod:`zdx_opt._metric` says how each is solved)."""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import lineax as lx
import optax

import zdx_base
import zdx_batching
from zdx_base import checks

from ._metric import (
    DENSE,
    OPERATOR,
    SPARSE,
    HostFactors,
    as_operator,
    as_sparse_matrix,
    cg_solve,
    check_cg_options,
    check_mismatch,
    damped_cholesky,
    fixed_metric,
    metric_form,
    sparse_shift,
)

_SINGULAR = (
    "natural_gradient: the damped Fisher matrix is not numerically positive definite "
    "(it is singular, indefinite or non-finite); increase `damping`."
)
_NOT_DEFINITE = (
    "natural_gradient: the damped Fisher operator is not positive definite (conjugate "
    "gradients gave a direction with g^T F^-1 g <= 0, or not finite); increase `damping` "
    "or give the undetermined parameters a prior."
)
_CG_ONLY = (
    "natural_gradient: {what} applies to a matrix-free fisher only (a lineax operator, a "
    "Fisher-vector product, or a function returning one); this fisher is solved exactly."
)


class NaturalGradientState(NamedTuple):
    """State of :func:`natural_gradient` with a dense Fisher matrix.

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


class SparseNaturalGradientState(NamedTuple):
    """State of :func:`natural_gradient` with a structured (sparse) Fisher matrix.

    Attributes
    ----------
    count : Array
        The number of updates done so far (int32 scalar).
    fisher : zdx_batching.SparseMatrix
        The Fisher matrix in use (undamped).
    shift : Array
        ``(n,)`` what the damping adds to its diagonal, ``damping * d``.
    """

    count: jax.Array
    fisher: zdx_batching.SparseMatrix
    shift: jax.Array


class MatrixFreeNaturalGradientState(NamedTuple):
    """State of :func:`natural_gradient` with a matrix-free Fisher matrix.

    Attributes
    ----------
    count : Array
        The number of updates done so far (int32 scalar).
    anchor : Array
        The flat parameters at which the Fisher operator was last evaluated.
    diagonal : Array or None
        ``(n,)`` the Fisher diagonal in use (``fisher_diagonal``), or None.
    residual : Array
        The relative residual ``||g - F_d x|| / ||g||`` of the last update's conjugate
        gradients, recomputed after the solve (0 before the first update).
    steps : Array
        The conjugate-gradient steps of the last update.
    """

    count: jax.Array
    anchor: jax.Array
    diagonal: jax.Array | None
    residual: jax.Array
    steps: jax.Array


def natural_gradient(
    fisher: Any,
    *,
    damping: float = 1e-8,
    refresh_every: int | None = 1,
    fisher_diagonal: Any = None,
    rtol: float | None = None,
    max_steps: int | None = None,
) -> optax.GradientTransformation:
    """Precondition gradients by the inverse Fisher matrix: ``g -> F^-1 g``.

    The gradients (any pytree) are flattened with ``zdx_base.ravel``, the linear system
    ``F_d x = g`` is solved (never an explicit inverse) and ``x`` is returned with the
    structure of the gradients. Chain it with an optimiser that takes the step:
    ``optax.chain(natural_gradient(F), optax.sgd(lr))`` steps ``params -= lr * F^-1 g``.

    The Fisher matrix takes one of three forms, each solved its own way:

    - **dense**, an ``(n, n)`` array: Cholesky, inside the compiled program.
    - **structured**, a ``zdx_batching.SparseMatrix`` (``zdx_batching.sparse_fisher``) or a
      ``scipy.sparse`` matrix: exactly, by ``zdx_batching.SchurFactor`` (the few global
      parameters eliminated last; no ``n x n`` array). The factorisation runs on the host
      (scipy), reached from ``jit``-ed and ``vmap``-ed code through ``jax.pure_callback``;
      an unchanged matrix is factorised once (the last few factorisations are kept).
    - **matrix-free**, a lineax operator (``zdx_batching.fisher_operator``) or a
      Fisher-vector product ``v -> F v`` on flat vectors: conjugate gradients (lineax
      ``CG``) to ``rtol`` within ``max_steps``; the residual and steps are in the state.

    A callable ``fisher`` is ``params -> `` any of these (``zdx_batching.sparse_fisher_fn(
    residuals)`` gives a structured one that works under ``jit``; ``lambda p:
    zdx_batching.fisher_operator(residuals, p)`` a matrix-free one) and is re-evaluated
    every ``refresh_every`` steps. Tell a Fisher-vector product ``v -> F v`` from a function
    of the parameters by wrapping it: ``lambda p: fvp``.

    Damping (Marquardt): the Fisher matrix in use is ``F_d = F + damping * diag(d)`` with
    ``d_i = max(F_ii, eps * max_j |F_jj|)``. Scaling the damping by the diagonal makes it
    independent of the units of each parameter; it keeps a near-singular ``F`` solvable
    and changes a well-conditioned one by a relative ``damping``. ``damping=0`` solves
    with ``F`` exactly. A matrix-free ``F`` has no diagonal to read: ``d`` is then
    ``fisher_diagonal`` (which also preconditions CG), or ones (``F + damping * I``).

    Degenerate directions (a pixel response's mean against the flux, say) are a property
    of the model, not of the steps: resolve them with a prior (add its precision to ``F``,
    and its gradient to ``g``) or let the damping bound the step along them; never
    renormalise the parameters inside the loop. A metric that is singular after damping
    is refused (see Raises) rather than solved into a wrong step.

    Parameters
    ----------
    fisher : array, SparseMatrix, scipy.sparse matrix, lineax operator or callable
        The Fisher matrix of the flattened parameters (``n`` is the length of
        ``zdx_base.ravel(params).flat``), in one of the forms above, or a function
        ``params -> `` one of them (traceable by JAX).
    damping : float, default 1e-8
        The relative Marquardt damping, ``>= 0``.
    refresh_every : int or None, default 1
        For a callable ``fisher``: recompute the Fisher matrix at the ``params`` passed to
        ``update`` before steps ``refresh_every, 2 * refresh_every, ...`` (step 0 uses the
        matrix computed by ``init``). ``None`` computes it once, in ``init``. Ignored for a
        fixed matrix.
    fisher_diagonal : array or callable, optional
        Matrix-free form only: the diagonal of ``F``, ``(n,)``, or ``params -> (n,)``
        (refreshed with ``fisher``), e.g. from a sparse or low-rank approximation. It
        scales the damping and preconditions CG.
    rtol : float, optional
        Matrix-free form only: CG stops when every entry of the residual is at most
        ``rtol * max |g|``; in (0, 1), default the square root of the float epsilon.
    max_steps : int, optional
        Matrix-free form only: the most CG steps per update (default ``10 n``). A solve
        that stops there is used as it is (a descent direction all the same); read its
        residual in the state.

    Returns
    -------
    optax.GradientTransformation
        ``init(params)`` and ``update(updates, state, params=None)``; with a callable
        ``fisher`` that refreshes, ``update`` needs ``params``. The state is a
        :class:`NaturalGradientState` (dense), :class:`SparseNaturalGradientState`
        (structured) or :class:`MatrixFreeNaturalGradientState` (matrix-free).

    Raises
    ------
    TypeError
        If ``fisher`` is none of the forms above (or a callable returns none of them),
        ``damping`` or ``rtol`` is not a number or ``refresh_every`` or ``max_steps`` not
        an integer (or None).
    ValueError
        If ``fisher`` is not square, symmetric and finite, the damped matrix is not
        positive definite (also raised when a refreshed matrix is bad, or a sparse
        matrix's own check failed, inside ``jit`` as a runtime error), ``damping`` < 0,
        ``refresh_every`` < 1, ``rtol`` outside (0, 1), ``max_steps`` < 1, a matrix-free
        option is given with a dense or structured ``fisher``, the gradients do not have
        ``n`` entries, or a refreshing callable ``fisher`` gets no ``params``.

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

    The same step with the Fisher matrix as a Fisher-vector product, solved by CG:

    >>> fvp = lambda v: F @ v
    >>> ng = natural_gradient(lambda p: fvp, damping=0.0, refresh_every=None)
    >>> optim = optax.chain(ng, optax.sgd(1.0))
    >>> updates, state = optim.update({"a": jnp.array(2.0), "b": jnp.array(2.0)},
    ...                               optim.init(params))
    >>> round(float(updates["b"]), 8), bool(state[0].residual < 1e-12)
    (-0.5, True)
    """
    name = "natural_gradient"
    damping = checks.check_number(name, "damping", damping, minimum=0)
    refresh_every = checks.check_int(
        name, "refresh_every", refresh_every, minimum=1, allow_none=True
    )
    rtol, max_steps = check_cg_options(name, rtol, max_steps)
    if fisher_diagonal is not None and not callable(fisher_diagonal):
        fisher_diagonal = checks.as_array(name, "fisher_diagonal", fisher_diagonal)
    factors = HostFactors()

    if callable(fisher) and not isinstance(fisher, lx.AbstractLinearOperator):
        fisher_fn, fixed = fisher, None
    else:
        form = metric_form(name, "fisher", fisher)
        cg_options = {"fisher_diagonal": fisher_diagonal, "rtol": rtol, "max_steps": max_steps}
        given = [key for key, value in cg_options.items() if value is not None]
        if form != OPERATOR and given:
            raise ValueError(_CG_ONLY.format(what=" and ".join(f"`{k}`" for k in given)))
        if form == DENSE:
            return _dense_fixed(fisher, damping)
        fixed = fixed_metric(name, form, fisher, damping, factors)
        fisher_fn, refresh_every = (lambda params: fixed), None

    def dense_at(params: Any, value: Any = None) -> jax.Array:
        value = fisher_fn(params) if value is None else value
        matrix = checks.as_square_matrix(name, "fisher(params)", value)
        chol, ok = damped_cholesky(matrix, damping)
        return eqx.error_if(chol, ~ok, _SINGULAR)

    def sparse_at(params: Any, value: Any = None) -> tuple:
        value = fisher_fn(params) if value is None else value
        metric_form(name, "fisher(params)", value)
        matrix = check_mismatch(name, as_sparse_matrix(name, "fisher(params)", value))
        return matrix, sparse_shift(matrix, damping)

    def diagonal_at(params: Any) -> jax.Array | None:
        if fisher_diagonal is None:
            return None
        value = fisher_diagonal(params) if callable(fisher_diagonal) else fisher_diagonal
        value = checks.as_array(name, "fisher_diagonal", value)
        n = zdx_base.ravel(params).flat.shape[0]
        if value.shape != (n,):
            raise ValueError(
                f"{name}: fisher_diagonal must have shape ({n},), one entry per flattened "
                f"parameter, got shape {value.shape}."
            )
        return value

    def operator_at(params: Any, n: int, dtype: Any) -> lx.AbstractLinearOperator:
        value = fisher_fn(params)
        metric_form(name, "fisher(params)", value)
        return as_operator(name, "fisher(params)", value, n, dtype)

    def init_fn(params: Any) -> Any:
        flat = zdx_base.ravel(params).flat
        n = flat.shape[0]
        value = fisher_fn(params)
        form = metric_form(name, "fisher(params)", value)
        count = jnp.zeros([], jnp.int32)
        if form == DENSE:
            chol = dense_at(params, value)
            _check_size(flat, chol.shape[0], "params")
            return NaturalGradientState(count=count, cholesky=chol)
        if form == SPARSE:
            matrix, shift = sparse_at(params, value)
            _check_size(flat, matrix.shape[0], "params")
            _, ok = factors.solve(matrix, shift, jnp.zeros(n, matrix.data.dtype))
            shift = checks.fail_if(shift, ~ok, _SINGULAR)
            return SparseNaturalGradientState(count=count, fisher=matrix, shift=shift)
        operator_at(params, n, flat.dtype)  # checks its shape now
        return MatrixFreeNaturalGradientState(
            count=count,
            anchor=flat,
            diagonal=diagonal_at(params),
            residual=jnp.zeros([], flat.dtype),
            steps=jnp.zeros([], jnp.int32),
        )

    def needs_params(params: Any) -> bool:
        refreshing = fixed is None and refresh_every is not None
        if refreshing and params is None:
            raise ValueError(
                "natural_gradient with a callable `fisher` needs the parameters to "
                "refresh it: call `update(updates, state, params)`."
            )
        return refreshing

    def refresh_now(state: Any) -> jax.Array:
        return (state.count > 0) & (state.count % refresh_every == 0)

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        flat, unravel, _ = zdx_base.ravel(updates)
        count = optax.safe_int32_increment(state.count)
        if isinstance(state, SparseNaturalGradientState):
            _check_size(flat, state.fisher.shape[0], "updates")
            matrix, shift = state.fisher, state.shift
            if needs_params(params):
                matrix, shift = jax.lax.cond(
                    refresh_now(state), sparse_at, lambda p: (matrix, shift), params
                )
            solved, ok = factors.solve(matrix, shift, flat.astype(matrix.data.dtype))
            solved = checks.fail_if(solved, ~ok, _SINGULAR)
            new_state = SparseNaturalGradientState(count=count, fisher=matrix, shift=shift)
            return unravel(solved.astype(flat.dtype)), new_state
        if isinstance(state, MatrixFreeNaturalGradientState):
            n = state.anchor.shape[0]
            _check_size(flat, n, "updates")
            anchor, diagonal = state.anchor, state.diagonal
            if needs_params(params):
                refresh = refresh_now(state)
                anchor = jnp.where(refresh, zdx_base.ravel(params).flat, anchor)
                if diagonal is not None:
                    diagonal = jax.lax.cond(refresh, diagonal_at, lambda p: diagonal, params)
            _, unravel_params, _ = zdx_base.ravel(params if params is not None else updates)
            operator = operator_at(unravel_params(anchor), n, anchor.dtype)
            gradient = flat.astype(anchor.dtype)
            solved, ok, residual, steps = cg_solve(
                operator, diagonal, damping, gradient, rtol, max_steps
            )
            solved = checks.fail_if(solved, ~ok, _NOT_DEFINITE)
            new_state = MatrixFreeNaturalGradientState(
                count=count,
                anchor=anchor,
                diagonal=diagonal,
                residual=residual,
                steps=jnp.asarray(steps, jnp.int32),
            )
            return unravel(solved.astype(flat.dtype)), new_state
        _check_size(flat, state.cholesky.shape[0], "updates")
        chol = state.cholesky
        if needs_params(params):
            chol = jax.lax.cond(
                refresh_now(state),
                lambda p: dense_at(p).astype(chol.dtype),
                lambda p: chol,
                params,
            )
        solved = jsl.cho_solve((chol, True), flat.astype(chol.dtype))
        return unravel(solved.astype(flat.dtype)), NaturalGradientState(count=count, cholesky=chol)

    return optax.GradientTransformation(init_fn, update_fn)


def _dense_fixed(fisher: Any, damping: float) -> optax.GradientTransformation:
    """The transformation for a fixed dense matrix, factorised once, here."""
    name = "natural_gradient"
    fixed = checks.as_square_matrix(name, "fisher", fisher)
    fixed = checks.check_finite_matrix(name, "fisher", fixed)
    fixed = checks.check_symmetric_matrix(name, "fisher", fixed)
    fixed_chol, ok = damped_cholesky(fixed, damping)
    if not checks.is_traced(ok) and not bool(ok):
        raise ValueError(
            f"`fisher` plus damping={damping:g} is not numerically positive definite "
            "(it is singular or indefinite); increase `damping`."
        )

    def init_fn(params: Any) -> NaturalGradientState:
        flat = zdx_base.ravel(params).flat
        chol = eqx.error_if(fixed_chol, ~ok, _SINGULAR) if checks.is_traced(ok) else fixed_chol
        _check_size(flat, chol.shape[0], "params")
        return NaturalGradientState(count=jnp.zeros([], jnp.int32), cholesky=chol)

    def update_fn(updates: Any, state: NaturalGradientState, params: Any = None) -> tuple:
        flat, unravel, _ = zdx_base.ravel(updates)
        _check_size(flat, state.cholesky.shape[0], "updates")
        solved = jsl.cho_solve((state.cholesky, True), flat.astype(state.cholesky.dtype))
        new_state = NaturalGradientState(
            count=optax.safe_int32_increment(state.count), cholesky=state.cholesky
        )
        return unravel(solved.astype(flat.dtype)), new_state

    return optax.GradientTransformation(init_fn, update_fn)


def _check_size(flat: jax.Array, n: int, what: str) -> None:
    """A ValueError when the flattened ``what`` do not have the metric's ``n`` entries."""
    if flat.shape[0] != n:
        raise ValueError(
            f"natural_gradient: the Fisher matrix is {n} x {n} but the {what} have "
            f"{flat.shape[0]} entries once flattened (zdx_base.ravel)."
        )
