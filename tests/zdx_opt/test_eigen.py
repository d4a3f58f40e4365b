"""decompose and eigen_projection: eigen-decomposition and whitening, refusing bad matrices."""

import warnings

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import zdx_opt as opt


@pytest.fixture(scope="module")
def fisher():
    """A 6 x 6 positive definite Fisher matrix whose parameters span 6 decades of scale."""
    a = jr.normal(jr.key(3), (6, 6))
    scales = np.logspace(-3, 3, 6)
    return (a @ a.T + 0.1 * jnp.eye(6)) * np.outer(scales, scales)


def _singular():
    a = jr.normal(jr.key(5), (5, 3))
    return a @ a.T  # rank 3


def _indefinite():
    return jnp.diag(jnp.array([4.0, 2.0, -1.0])) + 0.1


# ---- decompose


def test_decompose_gives_descending_eigenvalues_and_row_eigenvectors(fisher):
    vals, vecs = opt.decompose(fisher)
    expected = np.linalg.eigvalsh(np.asarray(fisher))[::-1]
    np.testing.assert_allclose(vals, expected, rtol=0, atol=1e-13 * expected[0])
    for lam, v in zip(vals, vecs):
        np.testing.assert_allclose(fisher @ v, lam * v, atol=1e-9 * float(vals[0]))
    np.testing.assert_allclose(vecs @ vecs.T, np.eye(6), atol=1e-12)

    nvals, _ = opt.decompose(fisher, normalise=True)
    np.testing.assert_allclose(nvals, vals / vals[0], rtol=1e-14)


def test_decompose_non_hermitian_matches_numpy():
    m = jnp.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0]])
    vals, vecs = opt.decompose(m, hermitian=False)
    np.testing.assert_allclose(vals, [3.0, 2.0, 1.0], rtol=1e-12)
    for lam, v in zip(vals, vecs):
        np.testing.assert_allclose(m @ v, lam * v, atol=1e-12)


def test_decompose_refuses_what_would_be_silently_wrong():
    with pytest.raises(ValueError, match="1 NaN or inf"):
        opt.decompose(jnp.array([[1.0, jnp.nan], [jnp.nan, 1.0]]).at[0, 1].set(0.0))
    with pytest.raises(ValueError, match="symmetric"):
        opt.decompose(jnp.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="largest eigenvalue"):
        opt.decompose(-jnp.eye(2), normalise=True)
    with pytest.raises(ValueError, match="complex eigenvalues"):
        opt.decompose(jnp.array([[0.0, -1.0], [1.0, 0.0]]), hermitian=False)
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        opt.decompose(jnp.ones((2, 3)))
    with pytest.raises(Exception, match="NaN or inf"):
        jax.jit(opt.decompose)(jnp.full((2, 2), jnp.inf))


# ---- eigen_projection on good matrices


def test_eigen_projection_whitens_a_fisher_matrix(fisher):
    P = opt.eigen_projection(fmat=fisher)
    np.testing.assert_allclose(P.T @ fisher @ P, np.eye(6), atol=1e-9)


def test_eigen_projection_of_a_covariance_reproduces_it_and_whitens_its_inverse(fisher):
    cov = jnp.linalg.inv(fisher)
    P = opt.eigen_projection(cov=cov)
    np.testing.assert_allclose(P @ P.T, cov, rtol=1e-9, atol=1e-12 * float(jnp.abs(cov).max()))
    np.testing.assert_allclose(P.T @ fisher @ P, np.eye(6), atol=1e-7)


def test_eigen_projection_works_under_jit(fisher):
    P = jax.jit(opt.eigen_projection)(fisher)
    np.testing.assert_allclose(P, opt.eigen_projection(fmat=fisher), rtol=1e-12)


# ---- eigen_projection on bad matrices: refused by default, repaired on request


@pytest.mark.parametrize(
    "matrix, count",
    [
        (_singular(), "2 of 5"),
        (_indefinite(), "1 of 3"),
        (jnp.diag(jnp.array([1.0, 0.0])), "1 of 2"),
    ],
)
def test_eigen_projection_refuses_singular_and_indefinite_matrices(matrix, count):
    with pytest.raises(ValueError, match=f"singular or indefinite: {count}"):
        opt.eigen_projection(fmat=matrix)
    with pytest.raises(ValueError, match=f"singular or indefinite: {count}"):
        opt.eigen_projection(cov=matrix)


def test_eigen_projection_refuses_non_finite_and_ambiguous_input(fisher):
    with pytest.raises(ValueError, match="NaN or inf"):
        opt.eigen_projection(fmat=fisher.at[2, 2].set(jnp.inf))
    with pytest.raises(ValueError, match="exactly one"):
        opt.eigen_projection()
    with pytest.raises(ValueError, match="exactly one"):
        opt.eigen_projection(fmat=fisher, cov=fisher)
    with pytest.raises(ValueError, match="no positive eigenvalue"):
        opt.eigen_projection(fmat=-jnp.eye(3), on_bad="clip", rtol=1e-8)
    with pytest.raises(ValueError, match="on_bad"):
        opt.eigen_projection(fmat=fisher, on_bad="ignore")
    with pytest.raises(Exception, match="singular or indefinite"):
        jax.jit(opt.eigen_projection)(_singular())


def test_drop_removes_the_bad_directions_and_says_how_many():
    F = _singular()
    with pytest.warns(RuntimeWarning, match="dropped 2 of 5"):
        P = opt.eigen_projection(fmat=F, on_bad="drop")
    assert P.shape == (5, 3)
    assert np.all(np.isfinite(P))
    np.testing.assert_allclose(P.T @ F @ P, np.eye(3), atol=1e-9)

    with pytest.warns(RuntimeWarning, match="dropped 1 of 3"):
        P = opt.eigen_projection(fmat=_indefinite(), on_bad="drop")
    np.testing.assert_allclose(P.T @ _indefinite() @ P, np.eye(2), atol=1e-12)

    with pytest.raises(ValueError, match="concrete"):
        jax.jit(lambda m: opt.eigen_projection(fmat=m, on_bad="drop"))(F)


def test_clip_floors_the_bad_eigenvalues_and_says_how_many():
    F = _indefinite()
    with pytest.warns(RuntimeWarning, match="clipped 1 of 3"):
        P = opt.eigen_projection(fmat=F, on_bad="clip", rtol=1e-6)
    assert P.shape == (3, 3)
    assert np.all(np.isfinite(P))
    # The two good directions are whitened; the clipped one has eigenvalue 1e-6 * max.
    W = np.asarray(P.T @ F @ P)
    np.testing.assert_allclose(W[:2, :2], np.eye(2), atol=1e-10)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        good = opt.eigen_projection(fmat=jnp.eye(3) + 0.1, on_bad="clip", rtol=1e-6)
    np.testing.assert_allclose(good, opt.eigen_projection(fmat=jnp.eye(3) + 0.1))

    with pytest.warns(RuntimeWarning, match="clipped 1 of 3"):
        P_jit = jax.jit(lambda m: opt.eigen_projection(fmat=m, on_bad="clip", rtol=1e-6))(F)
        jax.effects_barrier()
    np.testing.assert_allclose(P_jit, P, rtol=1e-12)


# ---- the Fisher matrix under its glossary name `fisher=` and zodiax 0.5's `fmat=`


def test_eigen_projection_takes_the_fisher_matrix_as_fisher_or_as_fmat(fisher):
    by_glossary_name = opt.eigen_projection(fisher=fisher)
    np.testing.assert_array_equal(by_glossary_name, opt.eigen_projection(fmat=fisher))
    np.testing.assert_array_equal(by_glossary_name, opt.eigen_projection(fisher))
    with pytest.raises(TypeError, match=r"eigen_projection: .*fisher= and as fmat="):
        opt.eigen_projection(fisher=fisher, fmat=fisher)
    with pytest.raises(ValueError, match="exactly one"):
        opt.eigen_projection(fisher=fisher, cov=fisher)


def test_eigen_projection_checks_rtol(fisher):
    with pytest.raises(TypeError, match="eigen_projection: rtol must be a finite number"):
        opt.eigen_projection(fisher=fisher, rtol="small")
    with pytest.raises(ValueError, match=r"eigen_projection: rtol must be a number in \[0, 1\)"):
        opt.eigen_projection(fisher=fisher, rtol=1.0)
    with pytest.raises(ValueError, match="eigen_projection: rtol must be a finite number >= 0"):
        opt.eigen_projection(fisher=fisher, rtol=-1e-3)
