"""Checks on square matrices: shape, finiteness, symmetry and positive definiteness.

The tolerances are the family's single definition: a matrix is symmetric when
``max|M - M.T| <= sqrt(eps) * max|M|``, and positive definite when every eigenvalue of its
symmetric part exceeds ``n * eps * max|eigenvalue|``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import describe, is_traced


def as_square_matrix(fn: str, name: str, value: Any, size: int | None = None) -> jax.Array:
    """``value`` as a real floating ``(n, n)`` array with ``n >= 1`` (``n == size`` if given).

    Integer matrices are cast to the default floating dtype.

    Raises
    ------
    TypeError
        If ``value`` is not an array, or is complex.
    ValueError
        If it is not square, is empty, or has the wrong side.
    """
    try:
        matrix = jnp.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{fn}: {name} must be a square matrix (an array of shape (n, n)), "
            f"got {describe(value)}."
        ) from error
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(
            f"{fn}: {name} must be a square matrix of shape (n, n) with n >= 1, "
            f"got shape {tuple(matrix.shape)}."
        )
    if size is not None and matrix.shape[0] != size:
        raise ValueError(
            f"{fn}: {name} must have shape ({size}, {size}), got shape {tuple(matrix.shape)}."
        )
    if jnp.issubdtype(matrix.dtype, jnp.complexfloating):
        raise TypeError(f"{fn}: {name} must be a real matrix, got dtype {matrix.dtype}.")
    if not jnp.issubdtype(matrix.dtype, jnp.floating):
        matrix = matrix.astype(jnp.result_type(float))
    return matrix


def check_finite_matrix(fn: str, name: str, matrix: jax.Array) -> jax.Array:
    """Return ``matrix``, or raise ``ValueError`` saying how many entries are NaN or inf.

    Inside ``jit`` the compiled program raises when it runs.
    """
    bad = ~jnp.isfinite(matrix)
    if is_traced(matrix):
        return eqx.error_if(matrix, jnp.any(bad), f"{fn}: {name} has NaN or inf entries.")
    count = int(jnp.sum(bad))
    if count:
        raise ValueError(
            f"{fn}: {name} must have finite entries, got {count} NaN or inf entries "
            f"(of {matrix.size})."
        )
    return matrix


def symmetry_tolerance(matrix: jax.Array) -> jax.Array:
    """The largest asymmetry taken for rounding: ``sqrt(eps) * max|M|``."""
    eps = jnp.finfo(matrix.dtype).eps
    return jnp.sqrt(eps) * jnp.max(jnp.abs(matrix))


def check_symmetric_matrix(fn: str, name: str, matrix: jax.Array) -> jax.Array:
    """Return the symmetric part ``(M + M.T) / 2`` of a matrix symmetric up to rounding.

    Raises ``ValueError`` (inside ``jit``: when the program runs) if the largest
    ``|M - M.T|`` exceeds :func:`symmetry_tolerance`.
    """
    asymmetry = jnp.max(jnp.abs(matrix - matrix.T))
    tolerance = symmetry_tolerance(matrix)
    if is_traced(asymmetry):
        matrix = eqx.error_if(
            matrix, asymmetry > tolerance, f"{fn}: {name} must be symmetric (beyond rounding)."
        )
    elif float(asymmetry) > float(tolerance):
        raise ValueError(
            f"{fn}: {name} must be symmetric, got a largest |M - M.T| of {float(asymmetry):.3g}, "
            f"above the rounding tolerance {float(tolerance):.3g} (sqrt(eps) * max|M|)."
        )
    return (matrix + matrix.T) / 2


def positive_definite_floor(eigenvalues: np.ndarray) -> float:
    """The smallest eigenvalue taken as positive: ``n * eps * max|eigenvalue|``."""
    eigenvalues = np.asarray(eigenvalues)
    eps = float(np.finfo(eigenvalues.dtype).eps)
    return eigenvalues.size * eps * float(np.max(np.abs(eigenvalues)))


def decompose_positive_definite(
    fn: str, name: str, matrix: Any, names: Sequence[str] | None = None, advice: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors (columns) of a positive-definite matrix.

    The decomposition is done once, in NumPy (the matrix is concrete), and returned so that
    the caller can whiten or invert with it instead of decomposing again.

    Parameters
    ----------
    fn, name : str
        The public function and the argument (or quantity) named in the error message.
    matrix : array
        A symmetric ``(n, n)`` matrix.
    names : sequence of str, optional
        A name for each row; the message then says along which parameters the worst
        direction lies.
    advice : str, optional
        A sentence appended to the message (what the user can do about it).

    Raises
    ------
    ValueError
        If an eigenvalue is not above :func:`positive_definite_floor` or every entry is 0.
    """
    matrix = np.asarray(matrix)
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    n = matrix.shape[0]
    top = float(np.max(np.abs(eigenvalues)))
    floor = positive_definite_floor(eigenvalues)
    bad = np.flatnonzero(eigenvalues <= floor)
    if top == 0 or bad.size:
        where = ""
        if names is not None:
            worst = eigenvectors[:, 0]
            lead = [names[i] for i in np.argsort(-np.abs(worst))[: min(3, n)]]
            where = f"; the worst direction is mostly along {lead}"
        raise ValueError(
            f"{fn}: {name} must be positive definite, got {max(bad.size, 1)} of {n} "
            f"eigenvalues <= {floor:.3g} (smallest {float(eigenvalues[0]):.3g}, largest "
            f"{float(eigenvalues[-1]):.3g}){where}." + (f" {advice}" if advice else "")
        )
    return eigenvalues, eigenvectors
