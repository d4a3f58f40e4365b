"""Marginal variances of chosen parameters by conjugate gradients (lineax's ``CG``).

The variance of parameter ``i`` under a Gaussian with precision ``A`` (a Hessian or a
Fisher matrix) is ``(A^{-1})_{ii} = e_i^T x`` where ``A x = e_i``: one CG solve per chosen
parameter, the solves of a batch vmapped, the batches in a ``lax.map``. Each solve is
checked afterwards with one more product: its residual ``r = e_i - A x`` and a bound on
the variance's error follow from it (see :class:`MarginalVariances`).
"""

from __future__ import annotations

import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np

from zdx_base import checks

from ._operators import names_of, select_indices
from ._precision import _stacklevel


class MarginalVariances(eqx.Module):
    """The marginal variances of chosen parameters, each with its accuracy.

    Attributes
    ----------
    variances
        ``(k,)``: ``(A^{-1})_{ii}`` for each chosen flat index ``i``.
    indices
        ``(k,)``: the flat indices, in the order chosen.
    names
        The chosen parameters' names (``"wfe[3]"``), as ``zdx_base.ravel`` gives them.
    residual_norms
        ``(k,)``: ``||e_i - A x_i||_2`` of each solve, recomputed after it (relative to
        ``||e_i|| = 1``).
    relative_error_bounds
        ``(k,)``: ``||x_i||_2 ||r_i||_2 / variance``, a bound on each variance's relative
        error to first order in the residual. The error is exactly ``x*^T r`` for the
        exact solution ``x*``, so ``|error| <= ||x*|| ||r||``; the bound uses ``x``
        for ``x*``, which neglects a term of order ``||r||^2 / lambda_min``.
    steps
        ``(k,)``: the CG steps each solve took.
    converged
        ``(k,)``: whether each solve met its tolerance within ``max_steps``.
    """

    variances: jax.Array
    indices: jax.Array
    names: tuple[str, ...] = eqx.field(static=True)
    residual_norms: jax.Array
    relative_error_bounds: jax.Array
    steps: jax.Array
    converged: jax.Array

    @property
    def sigmas(self) -> jax.Array:
        """``(k,)``: the standard deviations, ``sqrt(variances)``."""
        return jnp.sqrt(self.variances)


def marginal_variances(
    operator: lx.AbstractLinearOperator,
    which: Any,
    *,
    rtol: float | None = None,
    max_steps: int | None = None,
    batch_size: int = 16,
    preconditioner: lx.AbstractLinearOperator | None = None,
) -> MarginalVariances:
    """The marginal variances ``(A^{-1})_{ii}`` of chosen parameters, by conjugate gradients.

    ``A`` is a precision matrix given as an operator (:func:`hessian_operator` at a
    minimum of a negative log-posterior, or :func:`fisher_operator`): one CG solve
    ``A x = e_i`` per chosen parameter (lineax's ``CG``), never the matrix. Each costs a
    number of products that grows with the square root of ``A``'s condition number.

    Parameters
    ----------
    operator
        A symmetric lineax operator on flat ``(n,)`` vectors, positive definite. A
        :class:`CurvatureOperator` also allows paths in ``which``.
    which
        The parameters: a flat index, a path (``"wfe"``, ``"position.x"``, a
        ``zdx_base.Path``: every scalar under it), or a list of them.
    rtol
        The tolerance of each solve: CG stops when every entry of ``e_i - A x`` is at
        most ``rtol`` (``2 rtol`` at entry ``i``) and the last step changed each entry of
        ``x`` by at most ``rtol (1 + |x_j|)``. In ``(0, 1)``; default the square root of
        the operator's float epsilon (1.5e-8 in float64, 3.5e-4 in float32).
    max_steps
        The most CG steps per solve (default ``10 n``). A solve that stops there warns
        (``RuntimeWarning``) and is flagged in ``converged``.
    batch_size
        How many solves run side by side (vmapped); more is faster and holds
        ``batch_size`` vectors of ``n`` numbers more.
    preconditioner
        A positive definite lineax operator approximating ``A^{-1}`` (e.g. a
        ``lineax.DiagonalLinearOperator`` of ``1 / diag(A)``), or ``None``.

    Returns
    -------
    A :class:`MarginalVariances`: the variances, the names, the residual norms and
    relative error bounds, the steps, and whether each solve converged.

    Raises
    ------
    TypeError
        If ``operator`` is not a lineax operator, or ``which`` or an option has the wrong
        type.
    ValueError
        If the operator is not square on flat vectors or not tagged symmetric, an index is
        out of range, an option is out of range, or a variance comes out non-positive or
        not finite (``A`` is then not positive definite; inside ``jax.jit`` this is raised
        when the program runs).
    KeyError
        If a path in ``which`` does not exist.

    Warns
    -----
    RuntimeWarning
        When a solve did not converge within ``max_steps`` (outside ``jax.jit``; inside,
        read ``converged``).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from zdx_batching import hessian_operator
    >>> f = lambda p: 0.5 * jnp.sum(p["a"] ** 2 * jnp.array([1.0, 4.0]))
    >>> op = hessian_operator(f, {"a": jnp.zeros(2)})
    >>> marginal_variances(op, "a").variances
    Array([1.  , 0.25], dtype=float64)
    """
    name = "marginal_variances"
    indices = select_indices(name, operator, which)
    n = operator.in_size()
    if rtol is None:
        rtol = float(np.sqrt(np.finfo(operator.in_structure().dtype).eps))
    rtol = checks.check_number(name, "rtol", rtol, positive=True, maximum=1.0)
    if rtol >= 1.0:
        raise ValueError(f"{name}: rtol must be a finite number in (0, 1), got rtol={rtol!r}.")
    max_steps = checks.check_int(name, "max_steps", max_steps, minimum=1, allow_none=True)
    max_steps = 10 * n if max_steps is None else max_steps
    batch_size = checks.check_int(name, "batch_size", batch_size, minimum=1)
    if preconditioner is not None and not isinstance(preconditioner, lx.AbstractLinearOperator):
        raise TypeError(
            f"{name}: preconditioner must be a lineax linear operator or None, got "
            f"{checks.describe(preconditioner)}."
        )
    names = names_of(operator, n)
    chosen = tuple(names[i] for i in indices)
    solver = lx.CG(rtol=rtol, atol=rtol, max_steps=max_steps)
    result = _solve(
        operator, jnp.asarray(indices), solver, preconditioner, min(batch_size, len(indices))
    )
    variances, residuals, bounds, steps, converged = result
    variances = _check_positive(name, variances, chosen)
    out = MarginalVariances(
        variances=variances,
        indices=jnp.asarray(indices),
        names=chosen,
        residual_norms=residuals,
        relative_error_bounds=bounds,
        steps=steps,
        converged=converged,
    )
    if not checks.is_traced(converged):
        _warn_unconverged(name, out, max_steps)
    return out


@eqx.filter_jit
def _solve(operator, indices, solver, preconditioner, batch_size):
    """The variances, residual norms, error bounds, steps and flags of the solves."""
    n = operator.in_size()
    dtype = operator.in_structure().dtype
    psd = lx.TaggedLinearOperator(operator, (lx.symmetric_tag, lx.positive_semidefinite_tag))
    options = {} if preconditioner is None else {"preconditioner": preconditioner}

    def one(index: jax.Array) -> tuple:
        unit = jnp.zeros(n, dtype).at[index].set(1)
        solution = lx.linear_solve(psd, unit, solver, options=options, throw=False)
        x = solution.value
        residual = unit - operator.mv(x)
        variance = x[index]
        residual_norm = jnp.linalg.norm(residual)
        bound = jnp.linalg.norm(x) * residual_norm / jnp.abs(variance)
        converged = solution.result == lx.RESULTS.successful
        return variance, residual_norm, bound, solution.stats["num_steps"], converged

    return jax.lax.map(one, indices, batch_size=batch_size)


_NOT_POSITIVE = (
    "{name}: {what} came out non-positive or not finite: the operator is not positive "
    "definite (a Hessian away from a minimum, or a Fisher matrix of parameters the data "
    "do not constrain). Check the point, or add a prior."
)


def _check_positive(name: str, variances: jax.Array, chosen: tuple[str, ...]) -> jax.Array:
    """``variances``, or a ``ValueError`` naming those that are not positive and finite
    (inside ``jax.jit``, raised when the program runs)."""
    bad = ~(jnp.isfinite(variances) & (variances > 0))
    if checks.is_traced(variances):
        return checks.fail_if(
            variances, jnp.any(bad), _NOT_POSITIVE.format(name=name, what="a variance")
        )
    where = np.flatnonzero(np.asarray(bad))
    if where.size:
        shown = ", ".join(f"{chosen[k]} = {float(variances[k]):.3g}" for k in where[:5])
        what = f"the variance of {shown}" + (
            f" and {where.size - 5} more" if where.size > 5 else ""
        )
        raise ValueError(_NOT_POSITIVE.format(name=name, what=what))
    return variances


def _warn_unconverged(name: str, out: MarginalVariances, max_steps: int) -> None:
    converged = np.asarray(out.converged)
    if converged.all():
        return
    failed = np.flatnonzero(~converged)
    shown = ", ".join(
        f"{out.names[k]} (residual {float(out.residual_norms[k]):.2e}, relative error "
        f"<= {float(out.relative_error_bounds[k]):.2e})"
        for k in failed[:5]
    )
    more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
    warnings.warn(
        f"{name}: conjugate gradients did not converge within max_steps={max_steps} for "
        f"{len(failed)} of {len(converged)} parameters: {shown}{more}. Raise max_steps, "
        "loosen rtol or give a preconditioner; the flags are in result.converged.",
        RuntimeWarning,
        stacklevel=_stacklevel(),
    )
