"""The result of structured curvature: a sparse matrix with a name for every parameter."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jax.experimental import sparse as jsparse


@dataclasses.dataclass(frozen=True)
class SparseMatrix:
    """A sparse Jacobian, Hessian or Fisher matrix in coordinate form, with names.

    A pytree (``data`` and ``indices`` are its leaves), so it passes through ``jax.jit``.
    Entries not listed are exactly zero by the function's structure.

    Attributes
    ----------
    data
        The ``nnz`` values, in the order of ``indices``.
    indices
        ``(nnz, 2)`` integer (row, column) pairs, row-major, each once.
    shape
        ``(m, n)``: ``n`` parameters in ``zdx_base.ravel`` order; ``m`` outputs for a
        Jacobian, ``n`` for a Hessian or Fisher matrix.
    names
        The name of each of the ``n`` parameters (``"prf[3,7]"``), as ``zdx_base.ravel``.
    mismatch
        The largest difference found between the matrix times a random vector and the
        same product computed directly by automatic differentiation, relative to the
        largest entry of ``|matrix| |vector|``: rounding (about ``1e-15`` in float64)
        when the sparsity pattern is right. The zodiax-style calls raise when it is not.
    """

    data: jax.Array
    indices: jax.Array
    shape: tuple[int, int]
    names: tuple[str, ...]
    mismatch: jax.Array

    @property
    def nnz(self) -> int:
        """How many entries are stored."""
        return int(self.data.shape[0])

    @property
    def bcoo(self) -> jsparse.BCOO:
        """The matrix as a ``jax.experimental.sparse.BCOO`` (works under ``jax.jit``)."""
        return jsparse.BCOO(
            (self.data, self.indices),
            shape=self.shape,
            indices_sorted=True,
            unique_indices=True,
        )

    def todense(self) -> jax.Array:
        """The ``(m, n)`` dense array (only for matrices that fit in memory)."""
        return (
            jnp.zeros(self.shape, self.data.dtype)
            .at[self.indices[:, 0], self.indices[:, 1]]
            .set(self.data)
        )

    def to_scipy(self) -> sp.csr_matrix:
        """The matrix as a ``scipy.sparse.csr_matrix`` on the host (for sparse solvers)."""
        indices = np.asarray(self.indices)
        return sp.csr_matrix(
            (np.asarray(self.data), (indices[:, 0], indices[:, 1])), shape=self.shape
        )

    def diagonal(self) -> jax.Array:
        """The diagonal (length ``min(m, n)``), zeros where no entry is stored."""
        on = self.indices[:, 0] == self.indices[:, 1]
        size = min(self.shape)
        return (
            jnp.zeros(size, self.data.dtype)
            .at[jnp.where(on, self.indices[:, 0], size)]
            .add(jnp.where(on, self.data, 0), mode="drop")
        )

    def __matmul__(self, vector: Any) -> jax.Array:
        """The product with a vector (length ``n``) or a matrix (``(n, k)``)."""
        vector = jnp.asarray(vector)
        if vector.shape[0] != self.shape[1]:
            raise ValueError(
                f"SparseMatrix @ vector: the vector has {vector.shape[0]} rows; the matrix "
                f"has {self.shape[1]} columns."
            )
        rows, cols = self.indices[:, 0], self.indices[:, 1]
        terms = self.data.reshape((-1,) + (1,) * (vector.ndim - 1)) * vector[cols]
        return jax.ops.segment_sum(terms, rows, num_segments=self.shape[0], indices_are_sorted=True)

    def __repr__(self) -> str:
        m, n = self.shape
        return f"SparseMatrix(shape=({m}, {n}), nnz={self.data.shape[0]}, dtype={self.data.dtype})"


jax.tree_util.register_dataclass(
    SparseMatrix, data_fields=["data", "indices", "mismatch"], meta_fields=["shape", "names"]
)
