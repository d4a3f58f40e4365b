"""SchurFactor: exact solves, log-determinants and variances from a sparse matrix."""

import numpy as np
import pytest
import scipy.sparse as sp

import zdx_batching as zb


def arrowhead(nlocal=200, nglobal=5, seed=0, banded=False):
    """A random symmetric positive-definite matrix: a diagonal (or tridiagonal) local
    block, dense couplings to a few globals."""
    rng = np.random.default_rng(seed)
    n = nlocal + nglobal
    coupling = rng.normal(size=(nlocal, nglobal))
    dense = np.zeros((n, n))
    dense[:nlocal, :nlocal] = np.diag(rng.uniform(1.0, 3.0, nlocal) + nglobal * 4.0)
    if banded:
        off = rng.uniform(-0.5, 0.5, nlocal - 1)
        dense[np.arange(nlocal - 1), np.arange(1, nlocal)] = off
        dense[np.arange(1, nlocal), np.arange(nlocal - 1)] = off
    dense[:nlocal, nlocal:] = coupling
    dense[nlocal:, :nlocal] = coupling.T
    globals_ = rng.normal(size=(nglobal, nglobal))
    dense[nlocal:, nlocal:] = globals_ @ globals_.T + nlocal * np.eye(nglobal)
    # Shuffle so the globals are not at the end.
    order = rng.permutation(n)
    return dense[np.ix_(order, order)], order


@pytest.mark.parametrize("banded", [False, True])
def test_factor_equals_dense_linear_algebra(banded):
    dense, order = arrowhead(banded=banded)
    factor = zb.SchurFactor(sp.csr_matrix(dense))
    assert sorted(order[factor.dense]) == list(range(200, 205))  # the globals were found
    b = np.linspace(-1.0, 1.0, dense.shape[0])
    np.testing.assert_allclose(factor.solve(b), np.linalg.solve(dense, b), rtol=1e-10)
    inverse = np.linalg.inv(dense)
    np.testing.assert_allclose(factor.inverse_diagonal(), np.diag(inverse), rtol=1e-10)
    np.testing.assert_allclose(factor.logdet(), np.linalg.slogdet(dense)[1], rtol=1e-12)
    block = inverse[np.ix_(factor.dense, factor.dense)]
    np.testing.assert_allclose(factor.dense_covariance(), block, rtol=1e-10)
    B = np.stack([b, b**2], axis=1)
    np.testing.assert_allclose(factor.solve(B), np.linalg.solve(dense, B), rtol=1e-10)


def test_factor_of_a_sparse_fisher_matrix():
    import jax
    import jax.numpy as jnp

    stack = jax.random.uniform(jax.random.key(0), (2, 5, 5)) + 0.5

    def scaled(p):
        return p["flux"] * stack * (1.0 + p["tilt"] * stack) * p["prf"] / 0.1

    x = {"flux": jnp.array(2.0), "tilt": jnp.array(0.1), "prf": jnp.ones((5, 5))}
    fisher = zb.sparse_fisher(scaled, x)
    precision = fisher.to_scipy() + sp.identity(fisher.shape[0])  # a unit Gaussian prior
    factor = zb.SchurFactor(precision)
    dense = precision.toarray()
    np.testing.assert_allclose(factor.inverse_diagonal(), np.diag(np.linalg.inv(dense)), rtol=1e-9)
    assert len(factor.dense) == 2


def test_explicit_globals_and_no_globals():
    dense, _ = arrowhead(nlocal=30, nglobal=2)
    everything_dense = zb.SchurFactor(sp.csr_matrix(dense), dense=np.arange(32))
    np.testing.assert_allclose(
        everything_dense.inverse_diagonal(), np.diag(np.linalg.inv(dense)), rtol=1e-10
    )
    diagonal = sp.diags(np.arange(1.0, 6.0))
    factor = zb.SchurFactor(diagonal)
    np.testing.assert_allclose(factor.inverse_diagonal(), 1.0 / np.arange(1.0, 6.0))
    assert factor.logdet() == pytest.approx(np.log(120.0))


@pytest.mark.parametrize(
    ("matrix", "error", "match"),
    [
        (np.eye(3), TypeError, "SparseMatrix or a scipy.sparse matrix, got ndarray"),
        (sp.csr_matrix(np.ones((2, 3))), ValueError, r"square, got shape \(2, 3\)"),
        (sp.diags([1.0, -2.0, 3.0]), ValueError, "not positive definite.*entry 1"),
        (sp.diags([1.0, np.nan]), ValueError, "NaN or inf"),
    ],
)
def test_bad_matrices_are_refused(matrix, error, match):
    with pytest.raises(error, match=match):
        zb.SchurFactor(matrix)


def test_indefinite_schur_complement_is_refused():
    dense, _ = arrowhead(nlocal=40, nglobal=3)
    globals_ = np.argsort(np.diff(sp.csr_matrix(dense).indptr))[-3:]
    dense[np.ix_(globals_, globals_)] = -np.eye(3)
    with pytest.raises(ValueError, match="Schur complement of its 3 global"):
        zb.SchurFactor(sp.csr_matrix(dense))


def test_an_undetermined_combination_is_refused():
    # J's global column is the sum of its local columns: J^T J is singular, though
    # rounding leaves its Schur complement a tiny positive number.
    rng = np.random.default_rng(1)
    local = sp.diags(rng.uniform(1.0, 2.0, 300))
    total = np.asarray(local.sum(axis=1))
    jacobian = sp.hstack([local, sp.csr_matrix(total), sp.csr_matrix(rng.normal(size=(300, 1)))])
    with pytest.raises(ValueError, match="singular to working precision"):
        zb.SchurFactor(sp.csr_matrix(jacobian.T @ jacobian))
