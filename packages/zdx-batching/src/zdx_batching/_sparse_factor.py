"""Exact solves, log-determinants and error bars from a sparse symmetric matrix.

A structured curvature matrix is usually *arrowhead*: a few global parameters (a flux, a
position, aberrations) couple to everything, and the many local ones (one per pixel)
couple only to the globals and to few others. :class:`SchurFactor` splits the parameters
that way and eliminates the local block first:

    A = [[A_LL, A_LG], [A_GL, A_GG]],  S = A_GG - A_GL A_LL^-1 A_LG  (the Schur complement)

With ``A_LL`` diagonal (or sparse, factorised by SuperLU) and ``S`` a small dense matrix,
solves, the log-determinant and the diagonal of the inverse (every parameter's variance)
are exact and cost about ``nnz`` plus ``g^3`` operations for ``g`` globals: no ``n x n``
array is ever formed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ._sparse_matrix import SparseMatrix

DIAGONAL_BLOCK = 256  # unit vectors per solve when A_LL's inverse diagonal is not direct


class SchurFactor:
    """A symmetric positive-definite sparse matrix, factorised by its Schur complement.

    Parameters
    ----------
    matrix
        A :class:`SparseMatrix` or a square ``scipy.sparse`` matrix, symmetric and positive
        definite (a Fisher matrix plus a prior's precision, a Hessian at a minimum).
    dense
        Indices of the global parameters, eliminated last. ``None`` (the default): the
        parameters whose row holds more than four times the median row count
        entries (for an arrowhead matrix, exactly the globals).

    Raises
    ------
    TypeError
        If ``matrix`` is not a SparseMatrix or scipy sparse matrix.
    ValueError
        If it is not square, not finite, or not positive definite (naming which block).
    """

    def __init__(self, matrix: Any, *, dense: Any = None) -> None:
        if isinstance(matrix, SparseMatrix):
            matrix = matrix.to_scipy()
        if not sp.issparse(matrix):
            raise TypeError(
                f"SchurFactor: matrix must be a SparseMatrix or a scipy.sparse matrix, got "
                f"{type(matrix).__name__}."
            )
        matrix = sp.csr_matrix(matrix, dtype=np.float64)
        n = matrix.shape[0]
        if matrix.shape != (n, n):
            raise ValueError(f"SchurFactor: matrix must be square, got shape {matrix.shape}.")
        if not np.all(np.isfinite(matrix.data)):
            raise ValueError("SchurFactor: matrix holds NaN or inf entries.")
        self.n = n
        self.dense = _dense_indices(matrix, dense)
        self.local = np.setdiff1d(np.arange(n), self.dense)
        local_block = matrix[self.local][:, self.local]
        self._coupling = matrix[self.local][:, self.dense].toarray()  # A_LG
        dense_block = matrix[self.dense][:, self.dense].toarray()
        off_diagonal = local_block - sp.diags(local_block.diagonal())
        if off_diagonal.count_nonzero() == 0:
            diagonal = local_block.diagonal()
            if np.any(diagonal <= 0):
                worst = int(self.local[np.argmin(diagonal)])
                raise ValueError(
                    f"SchurFactor: the matrix is not positive definite (diagonal entry "
                    f"{worst} is {diagonal.min():.3g})."
                )
            self._diagonal = diagonal
            self._lu = None
            self._logdet_local = float(np.sum(np.log(diagonal)))
        else:
            self._diagonal = None
            # Symmetric positive definite: no pivoting needed; a non-positive pivot shows
            # that the block is not positive definite.
            self._lu = spla.splu(
                sp.csc_matrix(local_block),
                permc_spec="MMD_AT_PLUS_A",
                diag_pivot_thresh=0.0,
                options={"SymmetricMode": True},
            )
            pivots = self._lu.U.diagonal()
            if np.any(pivots <= 0):
                raise ValueError(
                    "SchurFactor: the matrix is not positive definite (its local block has a "
                    "non-positive pivot)."
                )
            self._logdet_local = float(np.sum(np.log(pivots)))
        self._solved_coupling = self._solve_local(self._coupling)  # A_LL^-1 A_LG
        schur = dense_block - self._coupling.T @ self._solved_coupling
        schur = 0.5 * (schur + schur.T)
        _check_conditioning(schur, dense_block, len(self.dense))
        try:
            self._schur = sla.cho_factor(schur, lower=True) if schur.size else None
        except np.linalg.LinAlgError as error:
            raise ValueError(
                "SchurFactor: the matrix is not positive definite (the Schur complement of "
                f"its {len(self.dense)} global parameters is not)."
            ) from error

    def _solve_local(self, rhs: np.ndarray) -> np.ndarray:
        if self._diagonal is not None:
            return rhs / (self._diagonal[:, None] if rhs.ndim == 2 else self._diagonal)
        return self._lu.solve(np.asarray(rhs, dtype=np.float64))

    def _solve_schur(self, rhs: np.ndarray) -> np.ndarray:
        return sla.cho_solve(self._schur, rhs) if self._schur is not None else rhs

    def solve(self, b: Any) -> np.ndarray:
        """``A^-1 b`` for a vector (``n``) or matrix (``(n, k)``) ``b``, exactly."""
        b = np.asarray(b, dtype=np.float64)
        if b.shape[0] != self.n:
            raise ValueError(f"SchurFactor.solve: b has {b.shape[0]} rows, the matrix {self.n}.")
        local = self._solve_local(b[self.local])
        dense = self._solve_schur(b[self.dense] - self._coupling.T @ local)
        out = np.empty_like(b)
        out[self.dense] = dense
        out[self.local] = local - self._solved_coupling @ dense
        return out

    def logdet(self) -> float:
        """``log det A``, exactly."""
        schur = 2.0 * np.sum(np.log(np.diag(self._schur[0]))) if self._schur is not None else 0.0
        return self._logdet_local + float(schur)

    def inverse_diagonal(self) -> np.ndarray:
        """The diagonal of ``A^-1``: with ``A`` a precision matrix, every parameter's
        variance, exactly."""
        out = np.empty(self.n)
        dense_inverse = (
            sla.cho_solve(self._schur, np.eye(len(self.dense)))
            if self._schur is not None
            else np.zeros((0, 0))
        )
        out[self.dense] = np.diag(dense_inverse)
        correction = np.einsum(
            "ij,jk,ik->i", self._solved_coupling, dense_inverse, self._solved_coupling
        )
        out[self.local] = self._local_inverse_diagonal() + correction
        return out

    def dense_covariance(self) -> np.ndarray:
        """The block of ``A^-1`` among the global parameters (``dense`` order)."""
        if self._schur is None:
            return np.zeros((0, 0))
        return sla.cho_solve(self._schur, np.eye(len(self.dense)))

    def _local_inverse_diagonal(self) -> np.ndarray:
        if self._diagonal is not None:
            return 1.0 / self._diagonal
        size = len(self.local)
        out = np.empty(size)
        for start in range(0, size, DIAGONAL_BLOCK):
            stop = min(start + DIAGONAL_BLOCK, size)
            unit = np.zeros((size, stop - start))
            unit[np.arange(start, stop), np.arange(stop - start)] = 1.0
            out[start:stop] = self._lu.solve(unit)[np.arange(start, stop), np.arange(stop - start)]
        return out

    def __repr__(self) -> str:
        kind = "diagonal" if self._diagonal is not None else "sparse LU"
        return f"SchurFactor(n={self.n}, globals={len(self.dense)}, local block {kind})"


# Eliminating the local parameters subtracts from the globals' block what the locals
# explain. When a combination of parameters is not determined, that subtraction cancels to
# rounding: the Schur complement, scaled by the globals' block before elimination, then has
# an eigenvalue below SINGULAR_RELATIVE (rounding over thousands of terms stays far below).
SINGULAR_RELATIVE = 1e4 * np.finfo(np.float64).eps


def _check_conditioning(schur: np.ndarray, dense_block: np.ndarray, nglobal: int) -> None:
    """Refuse a Schur complement that is singular to working precision (a degeneracy)."""
    diagonal = np.diag(dense_block)
    if not schur.size or not np.all(diagonal > 0):
        return  # the Cholesky factorisation below reports a non-positive diagonal
    scale = np.sqrt(diagonal)
    smallest = np.linalg.eigvalsh(schur / scale[:, None] / scale[None, :])[0]
    if smallest < SINGULAR_RELATIVE:
        raise ValueError(
            f"SchurFactor: the matrix is singular to working precision (eliminating the "
            f"local parameters leaves the {nglobal} global ones a block whose smallest "
            f"relative eigenvalue is {smallest:.2g}): a combination of parameters is not "
            "determined."
        )


def _dense_indices(matrix: sp.csr_matrix, dense: Any) -> np.ndarray:
    n = matrix.shape[0]
    if dense is not None:
        dense = np.unique(np.asarray(dense, dtype=int).ravel())
        if dense.size and (dense.min() < 0 or dense.max() >= n):
            raise ValueError(f"SchurFactor: dense holds indices outside 0..{n - 1}.")
        return dense
    counts = np.diff(matrix.indptr)
    threshold = max(2.0, 4.0 * float(np.median(counts)))
    return np.flatnonzero(counts > threshold)
