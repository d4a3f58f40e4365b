"""Checks on matrices: symmetry and positive semi-definiteness."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import Array

from ._checks import square_matrix


def check_symmetric(mat: Any, *, rtol: float = 1e-5, atol: float = 1e-8) -> Array:
    """Whether a matrix equals its transpose to within a tolerance.

    Element by element ``|mat - mat.T| <= atol + rtol * |mat.T|``, as in
    ``jnp.allclose(mat, mat.T)``.

    Parameters
    ----------
    mat : Array
        A square matrix.
    rtol, atol : float
        The relative and absolute tolerances (the defaults of ``numpy.allclose``).

    Returns
    -------
    is_symmetric : Array
        A boolean scalar: ``True`` if symmetric within tolerance. Any NaN gives ``False``.

    Raises
    ------
    ValueError
        If ``mat`` is not a square 2-D matrix.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> bool(zdx_stats.check_symmetric(jnp.array([[1.0, 2.0], [2.0, 1.0]])))
    True
    """
    mat = square_matrix("check_symmetric", "mat", mat)
    return jnp.allclose(mat, mat.T, rtol=rtol, atol=atol)


def check_positive_semi_definite(mat: Any, *, tol: float = 0.0) -> Array:
    """Whether a matrix is positive semi-definite: every eigenvalue at least ``-tol``.

    The eigenvalues are those of the symmetric part ``(mat + mat.T) / 2``, which decides
    the sign of ``v @ mat @ v`` for every ``v``.

    Parameters
    ----------
    mat : Array
        A square matrix, as in :func:`check_symmetric`.
    tol : float, default 0.0
        How far below zero an eigenvalue may be, to forgive rounding (a covariance from an
        inverted Hessian often has eigenvalues of about ``-1e-12`` times the largest).

    Returns
    -------
    is_positive_semi_definite : Array
        A boolean scalar: ``True`` if every eigenvalue is ``>= -tol`` and ``mat`` has no
        NaN; ``False`` otherwise.

    Raises
    ------
    ValueError
        As :func:`check_symmetric`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> bool(zdx_stats.check_positive_semi_definite(jnp.array([[2.0, 1.0], [1.0, 2.0]])))
    True
    >>> bool(zdx_stats.check_positive_semi_definite(jnp.array([[1.0, 2.0], [2.0, 1.0]])))
    False
    """
    mat = square_matrix("check_positive_semi_definite", "mat", mat)
    mat = mat.astype(jnp.result_type(mat, float))
    has_nan = jnp.any(jnp.isnan(mat))
    safe = jnp.where(has_nan, 0, mat)
    eigenvalues = jnp.linalg.eigvalsh((safe + safe.T) / 2)
    return jnp.logical_and(~has_nan, jnp.all(eigenvalues >= -tol))
