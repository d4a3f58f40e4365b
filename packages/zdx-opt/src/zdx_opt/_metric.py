"""The metric of a natural-gradient step in its three forms, and how each one is solved.

- **dense**: an ``(n, n)`` array, factorised by Cholesky inside the compiled program.
- **structured**: a ``zdx_batching.SparseMatrix`` (or a ``scipy.sparse`` matrix), solved
  exactly by ``zdx_batching.SchurFactor`` (the few global parameters eliminated last, the
  local block diagonal or factorised by SuperLU). That factorisation runs on the host, in
  numpy and scipy: compiled programs reach it through ``jax.pure_callback`` (``vmap``
  calls it once per batch element). The last few factorisations are kept, keyed by a
  digest of the matrix, so a metric that is not refreshed is factorised once.
- **matrix-free**: a lineax operator, or a Fisher-vector product ``v -> F v`` on flat
  vectors, solved by conjugate gradients (lineax ``CG``) inside the program, with its
  relative residual reported.

Damping is the same for every form: ``F_d = F + damping * diag(d)`` with ``d_i =
max(F_ii, eps * max_j |F_jj|)``. A matrix-free metric has no diagonal to read: ``d`` is
then the diagonal given by the user (which also preconditions CG), or ones.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import threading
from typing import Any

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import scipy.sparse as sp

import zdx_batching
from zdx_base import checks

DENSE, SPARSE, OPERATOR = "dense", "sparse", "operator"

METRIC_FORMS = (
    "an (n, n) array, a zdx_batching.SparseMatrix or scipy.sparse matrix, a lineax "
    "linear operator, or a Fisher-vector product v -> F v"
)


def metric_form(fn: str, name: str, value: Any) -> str:
    """``DENSE``, ``SPARSE`` or ``OPERATOR`` for a metric ``value``; ``TypeError`` naming
    ``fn`` and ``name`` for anything else."""
    if isinstance(value, zdx_batching.SparseMatrix) or sp.issparse(value):
        return SPARSE
    if isinstance(value, lx.AbstractLinearOperator) or callable(value):
        return OPERATOR
    if isinstance(value, (jax.Array, np.ndarray, list, tuple)):
        return DENSE
    raise TypeError(f"{fn}: {name} must be {METRIC_FORMS}, got {checks.describe(value)}.")


# --- dense ---------------------------------------------------------------------------------


def marquardt_diagonal(diagonal: jax.Array) -> jax.Array:
    """``d_i = max(F_ii, eps * max_j |F_jj|)``: the diagonal that scales the damping."""
    floor = jnp.finfo(diagonal.dtype).eps * jnp.max(jnp.abs(diagonal))
    return jnp.maximum(diagonal, floor)


def damped_cholesky(fisher: jax.Array, damping: float) -> tuple[jax.Array, jax.Array]:
    """Cholesky factor of the Marquardt-damped Fisher matrix, and whether it is usable."""
    fisher = (fisher + fisher.T) / 2
    damped = fisher + damping * jnp.diag(marquardt_diagonal(jnp.diag(fisher)))
    chol = jnp.linalg.cholesky(damped)
    pivots = jnp.diag(chol)
    eps = jnp.finfo(fisher.dtype).eps
    ok = (
        jnp.all(jnp.isfinite(chol))
        & jnp.all(pivots > 0)
        & (jnp.min(pivots) ** 2 > eps * jnp.max(pivots) ** 2)
    )
    return chol, ok


# --- structured ----------------------------------------------------------------------------


def as_sparse_matrix(fn: str, name: str, value: Any) -> zdx_batching.SparseMatrix:
    """A square ``SparseMatrix`` from a ``SparseMatrix`` or a ``scipy.sparse`` matrix."""
    if sp.issparse(value):
        csr = sp.csr_matrix(value, dtype=np.float64)
        csr.sum_duplicates()
        csr.sort_indices()
        coo = csr.tocoo()
        value = zdx_batching.SparseMatrix(
            data=jnp.asarray(coo.data),
            indices=jnp.asarray(np.stack([coo.row, coo.col], axis=1).astype(np.int32)),
            shape=tuple(int(s) for s in coo.shape),
            names=tuple(f"[{i}]" for i in range(coo.shape[1])),
            mismatch=jnp.zeros(()),
        )
    m, n = value.shape
    if m != n:
        raise ValueError(
            f"{fn}: {name} must be a square Fisher matrix, got a sparse matrix of shape "
            f"{value.shape} (a Jacobian? give sparse_fisher's J^T J)."
        )
    return value


def sparse_shift(matrix: zdx_batching.SparseMatrix, damping: float) -> jax.Array:
    """``damping * d``: what the damping adds to the diagonal of a sparse metric."""
    return damping * marquardt_diagonal(matrix.diagonal())


def check_mismatch(fn: str, matrix: zdx_batching.SparseMatrix) -> zdx_batching.SparseMatrix:
    """The matrix, or an error (when the program runs) if its own check against random
    products failed: a wrong sparsity pattern is an error, never a wrong step."""
    tolerance = float(np.sqrt(np.finfo(matrix.data.dtype).eps))
    data = checks.fail_if(
        matrix.data,
        matrix.mismatch > tolerance,
        f"{fn}: the sparse Fisher matrix disagrees with direct products by more than "
        f"{tolerance:.2g} (SparseMatrix.mismatch): its sparsity pattern is wrong; correct "
        "the declaration (declare=...) or let it be detected.",
    )
    return dataclasses.replace(matrix, data=data)


class HostFactors:
    """Exact solves with damped sparse metrics, factorised on the host by
    ``zdx_batching.SchurFactor``; the last ``keep`` factorisations are kept."""

    def __init__(self, keep: int = 8) -> None:
        self._kept: collections.OrderedDict = collections.OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()

    def factor(self, data, indices, shift, n: int) -> zdx_batching.SchurFactor | None:
        """The factorisation of ``F + diag(shift)``, or None when it is not positive
        definite (or not finite)."""
        data = np.asarray(data, np.float64)
        indices = np.asarray(indices)
        shift = np.asarray(shift, np.float64)
        digest = hashlib.blake2b(digest_size=32)
        for part in (data, indices, shift, np.asarray([n])):
            digest.update(np.ascontiguousarray(part).tobytes())
        key = digest.digest()
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        matrix = sp.csr_matrix((data, (indices[:, 0], indices[:, 1])), shape=(n, n))
        matrix = 0.5 * (matrix + matrix.T) + sp.diags(shift)
        try:
            factor = zdx_batching.SchurFactor(sp.csr_matrix(matrix))
        except ValueError:
            factor = None
        with self._lock:
            self._kept[key] = factor
            while len(self._kept) > self._keep:
                self._kept.popitem(last=False)
        return factor

    def _host_solve(self, data, indices, shift, gradient):
        gradient = np.asarray(gradient)
        factor = self.factor(data, indices, shift, gradient.shape[0])
        if factor is None:
            return np.full_like(gradient, np.nan), np.asarray(False)
        solved = factor.solve(gradient.astype(np.float64)).astype(gradient.dtype)
        return solved, np.asarray(bool(np.all(np.isfinite(solved))))

    def solve(
        self, matrix: zdx_batching.SparseMatrix, shift: jax.Array, gradient: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """``(F + diag(shift))^-1 g`` and whether the factorisation succeeded, through
        ``jax.pure_callback`` (works under ``jit`` and ``vmap``)."""
        shapes = (
            jax.ShapeDtypeStruct(gradient.shape, gradient.dtype),
            jax.ShapeDtypeStruct((), jnp.bool_),
        )
        return jax.pure_callback(
            self._host_solve,
            shapes,
            matrix.data,
            matrix.indices,
            shift,
            gradient,
            vmap_method="sequential",
        )


def fixed_metric(name: str, form: str, fisher: Any, damping: float, factors: HostFactors) -> Any:
    """A fixed structured or matrix-free metric given to the function ``name``, checked
    now (a structured one factorised, so that a singular one is refused at once)."""
    if form == SPARSE:
        matrix = as_sparse_matrix(name, "fisher", fisher)
        host = matrix.to_scipy()
        if not np.all(np.isfinite(host.data)):
            raise ValueError(f"{name}: fisher holds NaN or inf entries.")
        asymmetry = abs(host - host.T).max() if host.nnz else 0.0
        largest = abs(host).max() if host.nnz else 0.0
        if asymmetry > np.sqrt(np.finfo(np.float64).eps) * largest:
            raise ValueError(
                f"{name}: fisher must be symmetric, got max|F - F.T| = {asymmetry:.3g} "
                f"against max|F| = {largest:.3g}."
            )
        shift = sparse_shift(matrix, damping)
        if factors.factor(matrix.data, matrix.indices, shift, matrix.shape[0]) is None:
            raise ValueError(
                f"`fisher` plus damping={damping:g} is not numerically positive definite "
                "(it is singular or indefinite); increase `damping`."
            )
        return matrix
    structure = fisher.in_structure()
    shape = getattr(structure, "shape", None)
    if shape is None or len(shape) != 1:
        raise ValueError(
            f"{name}: fisher must act on flat vectors of shape (n,), got input structure "
            f"{structure}."
        )
    return as_operator(name, "fisher", fisher, shape[0], structure.dtype)


# --- matrix-free ---------------------------------------------------------------------------


def as_operator(fn: str, name: str, value: Any, n: int, dtype: Any) -> lx.AbstractLinearOperator:
    """A symmetric lineax operator on flat ``(n,)`` vectors: ``value`` itself, or the
    Fisher-vector product ``value`` wrapped (tagged symmetric positive semi-definite)."""
    if not isinstance(value, lx.AbstractLinearOperator):
        structure = jax.ShapeDtypeStruct((n,), dtype)
        tags = (lx.symmetric_tag, lx.positive_semidefinite_tag)
        return lx.FunctionLinearOperator(value, structure, tags)
    shape = getattr(value.in_structure(), "shape", None)
    if shape != (n,) or getattr(value.out_structure(), "shape", None) != (n,):
        raise ValueError(
            f"{fn}: {name} must act on flat vectors of the {n} parameters "
            f"(zdx_base.ravel order), got an operator from {value.in_structure()} to "
            f"{value.out_structure()}."
        )
    if not lx.is_symmetric(value):
        raise ValueError(
            f"{fn}: {name} must be tagged symmetric (lineax.symmetric_tag), as "
            "zdx_batching.fisher_operator is; wrap it in lineax.TaggedLinearOperator."
        )
    return value


def cg_solve(
    operator: lx.AbstractLinearOperator,
    diagonal: jax.Array | None,
    damping: float,
    gradient: jax.Array,
    rtol: float | None,
    max_steps: int | None,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``F_d^-1 g`` by conjugate gradients: the solution, whether it is usable (finite and
    ``g^T x > 0``, which fails when ``F_d`` is not positive definite), the relative residual
    ``||g - F_d x|| / ||g||`` (recomputed) and the steps taken.

    ``F_d = F + damping * diag(d)``, ``d`` the Marquardt diagonal of ``diagonal`` (or ones);
    a given ``diagonal`` also preconditions CG. The right-hand side is scaled to unit
    maximum, so ``rtol`` bounds every entry of the residual relative to ``max |g|``.
    """
    dtype = gradient.dtype
    if rtol is None:
        rtol = float(np.sqrt(np.finfo(dtype).eps))
    scale = jnp.ones_like(gradient) if diagonal is None else marquardt_diagonal(diagonal)
    damped = lx.TaggedLinearOperator(
        operator + lx.DiagonalLinearOperator(damping * scale),
        (lx.symmetric_tag, lx.positive_semidefinite_tag),
    )
    options = {}
    if diagonal is not None:
        options["preconditioner"] = lx.TaggedLinearOperator(
            lx.DiagonalLinearOperator(1.0 / ((1.0 + damping) * scale)),
            (lx.symmetric_tag, lx.positive_semidefinite_tag),
        )
    size = jnp.max(jnp.abs(gradient))
    size = jnp.where(size > 0, size, 1.0)
    solver = lx.CG(rtol=rtol, atol=rtol, max_steps=max_steps)
    solution = lx.linear_solve(damped, gradient / size, solver, options=options, throw=False)
    solved = solution.value * size
    residual = gradient - damped.mv(solved)
    norm = jnp.linalg.norm(gradient)
    relative = jnp.linalg.norm(residual) / jnp.where(norm > 0, norm, 1.0)
    ok = jnp.all(jnp.isfinite(solved)) & ((jnp.vdot(gradient, solved) > 0) | (norm == 0))
    return solved, ok, relative, solution.stats["num_steps"]


def check_cg_options(fn: str, rtol: Any, max_steps: Any) -> tuple[float | None, int | None]:
    """``rtol`` in (0, 1) or None, ``max_steps`` an int >= 1 or None."""
    rtol = checks.check_number(fn, "rtol", rtol, positive=True, maximum=1.0, allow_none=True)
    if rtol is not None and rtol >= 1.0:
        raise ValueError(f"{fn}: rtol must be a number in (0, 1), got rtol={rtol!r}.")
    max_steps = checks.check_int(fn, "max_steps", max_steps, minimum=1, allow_none=True)
    return rtol, max_steps
