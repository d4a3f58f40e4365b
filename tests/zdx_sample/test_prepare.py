"""The preparation step every estimator around a mode shares: the posterior, its curvature
decomposed once, and the whitening map built from that decomposition."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zdx_sample as zs
from zdx_sample._prepare import decompose, prepare


@pytest.fixture(scope="module")
def prepared(gauss):
    return prepare("test", gauss.loglike, gauss.mode, gauss.prior)


def test_the_curvature_is_the_hessian_of_the_negative_log_posterior(gauss, prepared):
    # a flat prior box: the posterior Fisher matrix is the likelihood's precision
    np.testing.assert_allclose(prepared.curvature.fisher, np.linalg.inv(gauss.cov), rtol=1e-10)


def test_one_decomposition_gives_covariance_log_det_and_whitening(gauss, prepared):
    curv, latent_map = prepared.curvature, prepared.latent_map
    fisher = curv.fisher
    np.testing.assert_allclose(curv.covariance, gauss.cov, rtol=1e-10)
    assert curv.log_det == pytest.approx(np.linalg.slogdet(fisher)[1], rel=1e-12)
    proj = np.asarray(latent_map.projection)
    np.testing.assert_allclose(proj, curv.sqrt_covariance, rtol=1e-14)
    np.testing.assert_allclose(proj.T @ fisher @ proj, np.eye(gauss.n), atol=1e-10)
    # the map goes from the latent vector to the parameters around the mode
    u = jnp.arange(gauss.n, dtype=float) / 10
    flat = np.append(latent_map(u)["x"], latent_map(u)["y"])
    np.testing.assert_allclose(flat, gauss.mu + proj @ np.asarray(u), rtol=1e-12)


def test_the_whitening_is_zdx_opts_projection(gauss, prepared):
    from zdx_opt import eigen_projection

    expected = np.asarray(eigen_projection(fmat=jnp.asarray(prepared.curvature.fisher)))
    proj = np.asarray(prepared.latent_map.projection)
    # the same columns, largest eigenvalue of the unit-diagonal form first, up to sign
    signs = np.sign(np.sum(proj * expected, axis=0))
    np.testing.assert_allclose(proj * signs, expected, rtol=1e-8, atol=1e-12)


def test_laplace_reports_the_prepared_covariance(gauss, prepared):
    res = zs.laplace(gauss.loglike, gauss.mode, gauss.prior, importance_samples=0)
    np.testing.assert_allclose(res.covariance, prepared.curvature.covariance, rtol=1e-12)


def test_badly_scaled_but_positive_definite_fisher_is_accepted():
    # scales 1e-4 and 1e4: eigenvalues 1e-8 and 1e8 in the raw matrix, a ratio beyond
    # n * eps; in unit-diagonal form they are close to 1
    scale = np.array([1e-4, 1e4])
    corr = np.array([[1.0, 0.5], [0.5, 1.0]])
    fisher = corr / np.outer(scale, scale)
    curv = decompose("test", fisher, "`fisher`", ("a", "b"))
    np.testing.assert_allclose(
        curv.covariance, np.outer(scale, scale) * np.linalg.inv(corr), rtol=1e-10
    )


def test_a_matrix_that_is_not_positive_definite_is_refused_naming_the_direction():
    fisher = np.array([[1.0, 0.0, 0.0], [0.0, 4.0, 4.0], [0.0, 4.0, 4.0]])
    with pytest.raises(
        ValueError,
        match=r"test: `fisher`, scaled to unit diagonal, must be "
        r"positive definite, got 1 of 3 .*along \['b', 'c'",
    ):
        decompose("test", fisher, "`fisher`", ("a", "b", "c"))


def test_preparation_runs_no_second_decomposition(gauss, monkeypatch):
    calls = []
    original = np.linalg.eigh

    def counting(matrix, *args, **kwargs):
        calls.append(np.shape(matrix))
        return original(matrix, *args, **kwargs)

    monkeypatch.setattr(np.linalg, "eigh", counting)
    monkeypatch.setattr(jax.numpy.linalg, "eigh", lambda *a, **k: pytest.fail("jnp eigh"))
    prepare("test", gauss.loglike, gauss.mode, gauss.prior)
    assert calls == [(gauss.n, gauss.n)]
