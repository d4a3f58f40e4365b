"""Lanczos estimates of a symmetric operator: a low-rank-plus-diagonal approximation and
the log-determinant by stochastic Lanczos quadrature.

Both use matfree's Lanczos tridiagonalisation (``matfree.decomp.tridiag_sym``, with full
reorthogonalisation) and its probe samplers: ``A Q = Q T + r e_k^T`` with ``Q``
orthonormal and ``T`` tridiagonal, ``k`` products of ``A``. The eigenpairs of ``T`` give
Ritz pairs whose residual norms ``||r|| |s_k|`` say how accurate they are; ``e_1^T log(T)
e_1`` is the Gauss quadrature of one probe's ``v^T log(A) v``.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx

from zdx_base import checks

from ._operators import names_of, square_size


class LowRankApproximation(eqx.Module):
    """``A ≈ V diag(eigenvalues) V^T + diag(diagonal)``: the leading eigenpairs of a
    symmetric operator from Lanczos, and the diagonal of what they miss.

    Attributes
    ----------
    eigenvalues
        ``(rank,)``, largest first: Ritz values of the operator.
    eigenvectors
        ``(n, rank)``: the Ritz vectors, orthonormal columns (flat ``zdx_base.ravel``
        order; ``operator.unflatten`` maps a column to the parameters' structure).
    residual_norms
        ``(rank,)``: ``||A v_j - lambda_j v_j||_2`` of each pair. Each Ritz value lies
        within its residual norm of an eigenvalue of ``A``, and a pair with a small
        residual norm relative to the gap to the next eigenvalue is accurate.
    next_eigenvalue
        The next Ritz value after the leading ``rank``: an estimate (from below) of the
        largest eigenvalue that the low-rank part misses, i.e. the spectral norm of
        ``A - V diag(eigenvalues) V^T``.
    diagonal
        ``(n,)``: the diagonal of ``A - V diag(eigenvalues) V^T``, exact when the
        operator's diagonal was given, else estimated with random sign probes.
    diagonal_standard_errors
        ``(n,)``: the standard error of each entry of ``diagonal`` (zero when exact),
        from the scatter over the probes.
    names
        One name per flat entry.
    order
        The number of Lanczos steps (products of ``A``).
    """

    eigenvalues: jax.Array
    eigenvectors: jax.Array
    residual_norms: jax.Array
    next_eigenvalue: jax.Array
    diagonal: jax.Array
    diagonal_standard_errors: jax.Array
    names: tuple[str, ...] = eqx.field(static=True)
    order: int = eqx.field(static=True)

    def mv(self, vector: jax.Array) -> jax.Array:
        """The approximation's product with a flat ``(n,)`` vector."""
        low_rank = self.eigenvectors @ (self.eigenvalues * (self.eigenvectors.T @ vector))
        return low_rank + self.diagonal * vector


class LogDeterminant(eqx.Module):
    """``log det A`` by stochastic Lanczos quadrature, with its accuracy.

    Attributes
    ----------
    value
        The estimate: the mean over the probes ``v`` of ``||v||^2 e_1^T log(T_v) e_1``.
    standard_error
        The standard error of ``value`` from the scatter of the probes
        (sample standard deviation over ``sqrt(probes)``). It does not include the
        quadrature's own error (see ``order_change``).
    order_change
        ``|value - value at half the Lanczos order|``: how much the estimate still moved
        over the second half of the Lanczos steps, a pessimistic indicator of the
        quadrature error. Raise ``order`` when it is not small against
        ``standard_error``.
    smallest_ritz_value
        The smallest Ritz value seen over all probes: an upper bound on ``A``'s smallest
        eigenvalue (a non-positive one proves ``A`` is not positive definite).
    probes
        The number of random sign probes.
    order
        The Lanczos order (products of ``A`` per probe).
    """

    value: jax.Array
    standard_error: jax.Array
    order_change: jax.Array
    smallest_ritz_value: jax.Array
    probes: int = eqx.field(static=True)
    order: int = eqx.field(static=True)


def _matfree(name: str) -> Any:
    """The ``matfree`` package, or an ``ImportError`` saying how to get it."""
    try:
        import matfree.decomp
        import matfree.stochtrace
    except ImportError as error:  # Python 3.10: matfree 0.6 needs 3.11 or newer
        raise ImportError(
            f"{name} needs matfree (Lanczos), which needs Python 3.11 or newer: "
            "`pip install matfree`."
        ) from error
    return matfree


def _lanczos(operator: lx.AbstractLinearOperator, order: int, start: jax.Array) -> tuple:
    """``(Q (order, n), T (order, order), residual (n,))`` of ``order`` Lanczos steps."""
    decomp = _matfree("Lanczos").decomp
    tridiagonal = decomp.tridiag_sym(order, reortho="full", materialize=True, custom_vjp=False)
    basis, matrix, residual, _ = tridiagonal(operator.mv, start)
    return basis, matrix, residual


def low_rank_approximation(
    operator: lx.AbstractLinearOperator,
    rank: int,
    *,
    order: int | None = None,
    key: Any = None,
    diagonal: Any = None,
    probes: int = 64,
    batch_size: int = 16,
) -> LowRankApproximation:
    """The leading ``rank`` eigenpairs of a symmetric operator by Lanczos, plus the
    diagonal of what they miss: ``A ≈ V Λ V^T + D``.

    ``order`` Lanczos steps (matfree, full reorthogonalisation) from a random start give
    Ritz pairs; the largest ``rank`` are kept with their residual norms. ``D`` is the
    diagonal of ``A - V Λ V^T``: exact from ``diagonal`` (e.g.
    :func:`hessian_diagonal`), else estimated from ``probes`` random sign vectors ``z``
    as the mean of ``z * ((A - V Λ V^T) z)``, with standard errors.

    Parameters
    ----------
    operator
        A symmetric lineax operator on flat vectors (:func:`hessian_operator`,
        :func:`fisher_operator`).
    rank
        How many leading eigenpairs, ``1 <= rank < order``.
    order
        Lanczos steps, ``rank < order <= n`` (default ``min(n, max(2 rank, rank + 20))``).
        More steps, more accurate pairs (see ``residual_norms``).
    key
        A JAX PRNG key or an int seed (default 0): the start vector and the probes.
    diagonal
        The operator's exact diagonal, ``(n,)``, or ``None`` to estimate the remainder's.
    probes
        Random sign probes for the estimated diagonal (at least 2).
    batch_size
        How many probe products run side by side.

    Returns
    -------
    A :class:`LowRankApproximation`.

    Raises
    ------
    TypeError
        If ``operator`` is not a lineax operator, or ``key`` or an option has the wrong
        type.
    ValueError
        If the operator is not symmetric on flat vectors, ``rank``, ``order``, ``probes``
        or ``batch_size`` is out of range, ``diagonal`` is not of shape ``(n,)``, or the
        Lanczos steps broke down (the operator has fewer than ``order`` distinct
        eigenvalues seen from the start vector: lower ``order``).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from zdx_batching import hessian_operator
    >>> f = lambda p: 0.5 * jnp.sum(jnp.arange(1.0, 31.0) * p**2)
    >>> approx = low_rank_approximation(hessian_operator(f, jnp.zeros(30)), 2, order=30)
    >>> approx.eigenvalues.round(6)
    Array([30., 29.], dtype=float64)
    """
    name = "low_rank_approximation"
    _matfree(name)
    n = square_size(name, operator)
    rank = checks.check_int(name, "rank", rank, minimum=1, maximum=n - 1)
    default = min(n, max(2 * rank, rank + 20))
    order = checks.check_int(name, "order", order, minimum=rank + 1, maximum=n, allow_none=True)
    order = default if order is None else order
    key = checks.as_key(name, "key", key)
    probes = checks.check_int(name, "probes", probes, minimum=2)
    batch_size = checks.check_int(name, "batch_size", batch_size, minimum=1)
    if diagonal is not None:
        diagonal = checks.as_array(name, "diagonal", diagonal)
        if diagonal.shape != (n,):
            raise ValueError(
                f"{name}: diagonal must be the operator's diagonal, of shape ({n},), got "
                f"shape {diagonal.shape}."
            )
    result = _low_rank(operator, rank, order, key, diagonal, probes, min(batch_size, probes))
    values, vectors, residuals, following, remainder, errors = result
    values = checks.fail_if(
        values,
        ~(jnp.all(jnp.isfinite(values)) & jnp.all(jnp.isfinite(vectors))),
        f"{name}: the Lanczos steps broke down (not finite): the operator has fewer than "
        f"order={order} distinct eigenvalues seen from the start vector, or is not finite. "
        "Lower order, or check the operator.",
    )
    return LowRankApproximation(
        eigenvalues=values,
        eigenvectors=vectors,
        residual_norms=residuals,
        next_eigenvalue=following,
        diagonal=remainder,
        diagonal_standard_errors=errors,
        names=names_of(operator, n),
        order=order,
    )


@eqx.filter_jit
def _low_rank(operator, rank, order, key, diagonal, probes, batch_size):
    n = operator.in_size()
    dtype = operator.in_structure().dtype
    start_key, probe_key = jax.random.split(key)
    start = jax.random.normal(start_key, (n,), dtype)
    basis, matrix, residual = _lanczos(operator, order, start)
    ritz, rotation = jnp.linalg.eigh(matrix)
    ritz, rotation = ritz[::-1], rotation[:, ::-1]  # largest first
    values = ritz[:rank]
    vectors = basis.T @ rotation[:, :rank]
    residuals = jnp.linalg.norm(residual) * jnp.abs(rotation[-1, :rank])
    kept = jnp.sum(vectors**2 * values, axis=1)  # diag(V Λ V^T)
    if diagonal is not None:
        remainder = diagonal.astype(dtype) - kept
        errors = jnp.zeros_like(remainder)
    else:
        sampler = _matfree("low_rank_approximation").stochtrace.sampler_signs
        signs = sampler(jnp.zeros(n, dtype), num=probes)(probe_key)

        def one(z: jax.Array) -> jax.Array:
            missed = operator.mv(z) - vectors @ (values * (vectors.T @ z))
            return z * missed

        samples = jax.lax.map(one, signs, batch_size=batch_size)
        remainder = jnp.mean(samples, axis=0)
        errors = jnp.std(samples, axis=0, ddof=1) / jnp.sqrt(probes)
    return values, vectors, residuals, ritz[rank], remainder, errors


def log_determinant(
    operator: lx.AbstractLinearOperator,
    *,
    probes: int = 64,
    order: int = 30,
    key: Any = None,
    batch_size: int = 8,
) -> LogDeterminant:
    """``log det A`` of a symmetric positive definite operator by stochastic Lanczos
    quadrature, with its standard error.

    ``log det A = tr log A = E[v^T log(A) v]`` for random sign vectors ``v``; each
    ``v^T log(A) v`` is the Gauss quadrature ``||v||^2 e_1^T log(T) e_1`` of ``order``
    Lanczos steps from ``v`` (matfree). The mean over ``probes`` probes is the estimate,
    their scatter its standard error. Costs ``probes * order`` products of ``A``.

    Parameters
    ----------
    operator
        A symmetric positive definite lineax operator on flat vectors (a Hessian at a
        minimum, a Fisher matrix of constrained parameters).
    probes
        Random sign probes, at least 2. The standard error falls as
        ``1 / sqrt(probes)``.
    order
        Lanczos steps per probe, ``2 <= order <= n``. The quadrature error falls
        geometrically with ``order``, faster for a better conditioned ``A`` (see
        ``order_change``).
    key
        A JAX PRNG key or an int seed (default 0).
    batch_size
        How many probes run side by side (each holds ``order`` vectors of ``n``
        numbers).

    Returns
    -------
    A :class:`LogDeterminant`: ``value``, ``standard_error``, ``order_change`` and the
    smallest Ritz value.

    Raises
    ------
    TypeError
        If ``operator`` is not a lineax operator, or ``key`` or an option has the wrong
        type.
    ValueError
        If the operator is not symmetric on flat vectors, an option is out of range, a
        Ritz value is not positive (the operator is not positive definite), or the
        Lanczos steps broke down (lower ``order``). Inside ``jax.jit`` the last two are
        raised when the program runs.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from zdx_batching import hessian_operator
    >>> f = lambda p: 0.5 * jnp.sum(jnp.arange(1.0, 11.0) * p**2)
    >>> estimate = log_determinant(hessian_operator(f, jnp.zeros(10)), order=10)
    >>> bool(jnp.abs(estimate.value - jnp.sum(jnp.log(jnp.arange(1.0, 11.0)))) < 1e-8)
    True
    """
    name = "log_determinant"
    _matfree(name)
    n = square_size(name, operator)
    probes = checks.check_int(name, "probes", probes, minimum=2)
    if n < 2:
        raise ValueError(f"{name}: the operator must have at least 2 parameters, got n={n}.")
    order = checks.check_int(name, "order", order, minimum=2, maximum=n)
    key = checks.as_key(name, "key", key)
    batch_size = checks.check_int(name, "batch_size", batch_size, minimum=1)
    value, error, change, smallest = _log_determinant(
        operator, probes, order, key, min(batch_size, probes)
    )
    value = checks.fail_if(
        value,
        ~jnp.isfinite(smallest),
        f"{name}: the Lanczos steps broke down (not finite): the operator has fewer than "
        f"order={order} distinct eigenvalues seen from a probe, or is not finite. Lower "
        "order, or check the operator.",
    )
    value = checks.fail_if(
        value,
        smallest <= 0,
        f"{name}: the operator is not positive definite: a Ritz value is <= 0, so its "
        "smallest eigenvalue is too (a Hessian away from a minimum, or a Fisher matrix of "
        "parameters the data do not constrain).",
    )
    return LogDeterminant(
        value=value,
        standard_error=error,
        order_change=change,
        smallest_ritz_value=smallest,
        probes=probes,
        order=order,
    )


@eqx.filter_jit
def _log_determinant(operator, probes, order, key, batch_size):
    n = operator.in_size()
    dtype = operator.in_structure().dtype
    sampler = _matfree("log_determinant").stochtrace.sampler_signs
    signs = sampler(jnp.zeros(n, dtype), num=probes)(key)
    half = order // 2

    def quadrature(matrix: jax.Array) -> jax.Array:
        ritz, rotation = jnp.linalg.eigh(matrix)
        return jnp.sum(rotation[0] ** 2 * jnp.log(ritz)), jnp.min(ritz)

    def one(v: jax.Array) -> tuple:
        _, matrix, _ = _lanczos(operator, order, v)
        full, smallest = quadrature(matrix)
        coarse, _ = quadrature(matrix[:half, :half])
        length = jnp.vdot(v, v)
        return length * full, length * coarse, smallest

    full, coarse, smallest = jax.lax.map(one, signs, batch_size=batch_size)
    value = jnp.mean(full)
    error = jnp.std(full, ddof=1) / jnp.sqrt(probes)
    change = jnp.abs(value - jnp.mean(coarse))
    return value, error, change, jnp.min(smallest)
