"""Eigen-decompositions and the whitening projection of a Fisher or covariance matrix."""

from __future__ import annotations

import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as onp

from zdx_base import checks

from ._fisher_name import fisher_argument

_ON_BAD = ("raise", "drop", "clip")


def _eigh_descending(matrix: jax.Array) -> tuple[jax.Array, jax.Array]:
    vals, vecs = jnp.linalg.eigh(matrix)
    return vals[::-1], vecs.T[::-1]


def decompose(
    matrix: Any, hermitian: bool = True, normalise: bool = False
) -> tuple[jax.Array, jax.Array]:
    """Eigenvalues (largest first) and eigenvectors (one per row) of a square matrix.

    Parameters
    ----------
    matrix : Array
        A real ``(n, n)`` matrix with finite entries.
    hermitian : bool, default True
        If True the matrix must be symmetric (up to rounding) and ``eigh`` is used. If
        False the general ``eig`` is used (CPU only in JAX); its eigenvalues must then be
        real (up to rounding).
    normalise : bool, default False
        If True the eigenvalues are divided by the largest one, which must be positive.

    Returns
    -------
    eigvals : Array
        ``(n,)`` eigenvalues sorted in descending order.
    eigvecs : Array
        ``(n, n)`` array whose ROW ``i`` is the unit eigenvector of ``eigvals[i]``.

    Raises
    ------
    ValueError
        If ``matrix`` is not square, has NaN or inf entries, is not symmetric while
        ``hermitian=True``, has complex eigenvalues while ``hermitian=False``, or
        ``normalise=True`` and its largest eigenvalue is not positive (dividing by it would
        give inf, NaN or a reversed order). Inside ``jit`` these raise when the program runs.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> vals, vecs = decompose(jnp.array([[2.0, 0.0], [0.0, 8.0]]), normalise=True)
    >>> vals
    Array([1.  , 0.25], dtype=float64)
    """
    m = checks.as_square_matrix("decompose", "matrix", matrix)
    m = checks.check_finite_matrix("decompose", "matrix", m)
    if hermitian:
        vals, vecs = _eigh_descending(checks.check_symmetric_matrix("decompose", "matrix", m))
    else:
        cvals, cvecs = jnp.linalg.eig(m)
        imag = jnp.max(jnp.abs(cvals.imag))
        tol = jnp.sqrt(jnp.finfo(m.dtype).eps) * jnp.max(jnp.abs(cvals))
        cvals = checks.fail_if(
            cvals,
            imag > tol,
            "`matrix` has complex eigenvalues, which decompose(hermitian=False) cannot "
            "return as real numbers.",
        )
        order = jnp.argsort(cvals.real)[::-1]
        vals, vecs = cvals.real[order], cvecs.real.T[order]
    if normalise:
        vals = checks.fail_if(
            vals,
            vals[0] <= 0,
            "normalise=True divides the eigenvalues by the largest one, but the largest "
            "eigenvalue of `matrix` is not positive.",
        )
        vals = vals / vals[0]
    return vals, vecs


def _warn_count(count: Any, n: int, action: str, which: str) -> None:
    def warn(k: Any) -> None:
        k = int(k)
        if k:
            warnings.warn(
                f"eigen_projection: {action} {k} of {n} directions of `{which}` whose "
                "eigenvalues were not positive enough (singular or indefinite matrix).",
                RuntimeWarning,
                stacklevel=3,
            )

    if checks.is_traced(count):
        jax.debug.callback(warn, count)
    else:
        warn(count)


def eigen_projection(
    fisher: Any = None,
    cov: Any = None,
    *,
    fmat: Any = None,
    on_bad: str = "raise",
    rtol: float | None = None,
) -> jax.Array:
    """The projection ``P`` that whitens a Fisher (or covariance) matrix.

    With ``x = x0 + P @ u`` the latent vector ``u`` has identity Fisher matrix,
    ``P.T @ fisher @ P = I`` (for a covariance, ``P @ P.T = cov``). The matrix is first scaled
    to unit diagonal (a correlation-like matrix, so units do not dominate the spectrum),
    then eigen-decomposed: ``P = S @ V @ diag(vals ** -1/2)`` for a Fisher matrix and
    ``P = S^-1 @ V @ diag(vals ** 1/2)`` for a covariance, ``S = diag(diag(M) ** -1/2)``.
    The columns of ``P`` follow the eigenvalues of the scaled matrix, largest first.

    A direction is *bad* when its eigenvalue ``lam`` of the scaled matrix is
    ``lam <= rtol * lam_max``: zero (a singular matrix), negative (an indefinite one) or
    lost in rounding. Bad directions would give inf or NaN in ``P``; they are refused
    unless ``on_bad`` says how to repair them.

    Parameters
    ----------
    fisher : Array, optional
        A symmetric ``(n, n)`` Fisher information matrix (e.g. the Hessian of a negative
        log-likelihood).
    cov : Array, optional
        A symmetric ``(n, n)`` covariance matrix. Give exactly one of ``fisher`` and
        ``cov``.
    fmat : Array, optional
        The zodiax 0.5 name of ``fisher``, kept for its code: give at most one of the two.
    on_bad : {"raise", "drop", "clip"}, default "raise"
        ``"raise"``: a ``ValueError`` saying how many directions are bad. ``"drop"``:
        remove them, so ``P`` has shape ``(n, k)`` with ``k`` the good directions (needs a
        concrete matrix, not inside ``jit``). ``"clip"``: raise their eigenvalue to the
        floor ``rtol * lam_max`` (a very loose direction for a Fisher matrix, a very tight
        one for a covariance). Dropping and clipping issue a ``RuntimeWarning`` that says
        how many directions were changed.
    rtol : float, optional
        The relative eigenvalue threshold in ``[0, 1)``, default ``n * eps`` of the
        matrix dtype.

    Returns
    -------
    P : Array
        ``(n, n)``, or ``(n, k)`` with ``on_bad="drop"``; always finite.

    Raises
    ------
    TypeError
        If both ``fisher`` and ``fmat`` are given, or ``rtol`` is not a real number.
    ValueError
        If neither or both of the Fisher matrix and ``cov`` are given, the matrix is not
        square, not symmetric, has NaN or inf entries, has no positive eigenvalue at all,
        ``rtol`` is outside ``[0, 1)``, or (with ``on_bad="raise"``) the matrix has bad
        directions.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> F = jnp.array([[4.0, 1.0], [1.0, 2.0]])
    >>> P = eigen_projection(fisher=F)
    >>> bool(jnp.allclose(P.T @ F @ P, jnp.eye(2)))
    True
    """
    fisher_name = "fmat" if fmat is not None else "fisher"
    fisher = fisher_argument("eigen_projection", fisher, fmat)
    if (fisher is None) == (cov is None):
        raise ValueError(
            f"eigen_projection needs exactly one of `{fisher_name}` (a Fisher matrix) and "
            f"`cov` (a covariance matrix), got {'both' if fisher is not None else 'neither'}."
        )
    which = fisher_name if fisher is not None else "cov"
    checks.check_choice("eigen_projection", "on_bad", on_bad, _ON_BAD)
    m = checks.as_square_matrix("eigen_projection", which, fisher if fisher is not None else cov)
    m = checks.check_finite_matrix("eigen_projection", which, m)
    m = checks.check_symmetric_matrix("eigen_projection", which, m)
    n = m.shape[0]
    eps = jnp.finfo(m.dtype).eps
    if rtol is None:
        rtol = n * float(eps)
    rtol = checks.check_number("eigen_projection", "rtol", rtol, minimum=0)
    if rtol >= 1:  # a threshold of the largest eigenvalue itself leaves nothing
        raise ValueError(f"eigen_projection: rtol must be a number in [0, 1), got rtol={rtol!r}.")
    if on_bad == "clip" and rtol <= float(eps):
        raise ValueError(
            f"on_bad='clip' raises bad eigenvalues to rtol * max, so `rtol` must be "
            f"larger than eps ({float(eps):.3g}), got {rtol!r}."
        )

    # Scale to unit diagonal. A non-positive diagonal entry cannot be scaled that way; it
    # gets the typical scale instead, which keeps the signs of the eigenvalues (Sylvester).
    diag = jnp.diag(m)
    positive = diag > 0
    typical = jnp.sum(jnp.where(positive, diag, 0)) / jnp.maximum(jnp.sum(positive), 1)
    typical = jnp.where(typical > 0, typical, 1)
    scale = 1 / jnp.sqrt(jnp.where(positive, diag, typical))
    vals, vecs = _eigh_descending(scale[:, None] * m * scale[None, :])

    vals = checks.fail_if(
        vals,
        vals[0] <= 0,
        f"`{which}` has no positive eigenvalue, so no direction can be whitened.",
    )
    floor = rtol * vals[0]
    bad = vals <= floor
    count = jnp.sum(bad)
    if on_bad == "raise":
        if checks.is_traced(count):
            vals = eqx.error_if(
                vals,
                count > 0,
                f"`{which}` is singular or indefinite; pass on_bad='clip' to repair it.",
            )
        elif int(count):
            nonpos = onp.flatnonzero(onp.asarray(~positive)).tolist()
            extra = f" Diagonal entries <= 0 at indices {nonpos}." if nonpos else ""
            raise ValueError(
                f"`{which}` is singular or indefinite: {int(count)} of {n} eigenvalues of "
                f"its unit-diagonal form are <= rtol * max = {float(floor):.3g} (smallest "
                f"{float(vals[-1]):.3g}).{extra} Pass on_bad='drop' to remove those "
                "directions or on_bad='clip' to floor their eigenvalues."
            )
    elif on_bad == "drop":
        if checks.is_traced(count):
            raise ValueError(
                "on_bad='drop' changes the shape of P, so it needs a concrete matrix; "
                "call eigen_projection outside jit, or use on_bad='clip'."
            )
        keep = onp.flatnonzero(~onp.asarray(bad))
        vals, vecs = vals[keep], vecs[keep]
        _warn_count(count, n, "dropped", which)
    else:
        vals = jnp.where(bad, floor, vals)
        _warn_count(count, n, "clipped", which)

    if fisher is not None:
        return scale[:, None] * vecs.T * (1 / jnp.sqrt(vals))[None, :]
    return (1 / scale)[:, None] * vecs.T * jnp.sqrt(vals)[None, :]
