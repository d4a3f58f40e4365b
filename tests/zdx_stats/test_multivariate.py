"""Correlated Gaussian errors: Mahalanobis distance, log-likelihood, Gauss-Newton Hessian."""

import jax
import jax.numpy as jnp
import pytest
from jax.scipy.stats import multivariate_normal

import zdx_stats as stats


@pytest.fixture(scope="module")
def problem():
    k1, k2, k3, k4 = jax.random.split(jax.random.key(2), 4)
    a = jax.random.normal(k1, (4, 4))
    cov = a @ a.T + 2 * jnp.eye(4)
    x = jax.random.normal(k2, (4,))
    mean = jax.random.normal(k3, (4,))
    batch = jax.random.normal(k4, (3, 4))
    return x, mean, cov, batch


def test_mv_z_score_is_the_squared_mahalanobis_distance(problem):
    x, mean, cov, _ = problem
    r = mean - x
    expected = r @ jnp.linalg.solve(cov, r)
    assert float(stats.mv_z_score(x, mean, cov)) == pytest.approx(float(expected), rel=1e-13)


def test_mv_loglike_is_the_multivariate_normal_logpdf(problem):
    x, mean, cov, _ = problem
    expected = multivariate_normal.logpdf(x, mean, cov)
    assert float(stats.mv_loglike(x, mean, cov)) == pytest.approx(float(expected), rel=1e-13)


def test_a_diagonal_covariance_gives_the_independent_results(problem):
    x, mean, _, _ = problem
    std = jnp.array([0.5, 1.0, 2.0, 3.0])
    cov = jnp.diag(std**2)
    assert float(stats.mv_z_score(x, mean, cov)) == pytest.approx(float(stats.chi2(x, mean, std)))
    assert float(stats.mv_loglike(x, mean, cov)) == pytest.approx(
        float(stats.loglike(x, mean, std).sum())
    )


def test_a_batch_of_vectors_gives_one_value_each(problem):
    _, mean, cov, batch = problem
    result = stats.mv_loglike(batch, mean, cov)
    assert result.shape == (3,)
    assert jnp.allclose(
        result, jax.vmap(lambda v: multivariate_normal.logpdf(v, mean, cov))(batch), rtol=1e-13
    )
    z = stats.mv_z_score(batch, mean, cov)
    assert z.shape == (3,)
    assert float(z[1]) == pytest.approx(float(stats.mv_z_score(batch[1], mean, cov)))
    assert float(stats.mv_z_score(jnp.ones(4), 0.0, jnp.eye(4))) == 4.0


def test_nan_and_non_positive_definite_covariances_give_nan(problem):
    x, mean, cov, batch = problem
    assert jnp.isnan(stats.mv_loglike(x.at[0].set(jnp.nan), mean, cov))
    values = stats.mv_loglike(batch.at[0, 1].set(jnp.nan), mean, cov)
    assert jnp.isnan(values[0]) and jnp.isfinite(values[1:]).all()
    assert jnp.isnan(stats.mv_loglike(x, mean, -cov))
    assert jnp.isnan(stats.mv_z_score(x, mean, jnp.diag(jnp.array([1.0, -1.0, 1.0, 1.0]))))


def test_the_covariance_must_be_square_and_match_the_vectors():
    with pytest.raises(
        ValueError, match=r"mv_z_score: cov must be a square matrix .*got shape \(3, 2\)"
    ):
        stats.mv_z_score(jnp.ones(3), jnp.zeros(3), jnp.ones((3, 2)))
    with pytest.raises(
        ValueError, match=r"mv_loglike: cov has shape \(2, 2\), but the data have 3"
    ):
        stats.mv_loglike(jnp.ones(3), jnp.zeros(3), jnp.eye(2))
    with pytest.raises(
        ValueError, match=r"mv_loglike: the shapes of x \(shape \(3,\)\), mean \(shape \(4,\)\)"
    ):
        stats.mv_loglike(jnp.ones(3), jnp.zeros(4), jnp.eye(3))
    with pytest.raises(ValueError, match="got scalars"):
        stats.mv_loglike(1.0, 0.0, jnp.eye(1))


def test_a_covariance_enters_through_its_symmetric_part(problem, linear_model):
    x, mean, cov, _ = problem
    lopsided = cov.at[0, 1].add(0.3).at[1, 0].add(-0.3)  # the same symmetric part
    assert jnp.allclose(stats.mv_loglike(x, mean, lopsided), stats.mv_loglike(x, mean, cov))
    design, cov6 = linear_model
    lopsided6 = cov6.at[2, 4].add(0.5).at[4, 2].add(-0.5)
    assert jnp.allclose(stats.gauss_hessian(design, lopsided6), stats.gauss_hessian(design, cov6))
    # a positive definite lower triangle does not make a covariance
    skew = jnp.eye(4).at[0, 1].set(5.0)
    assert jnp.isnan(stats.mv_z_score(x, mean, skew))


def test_mv_loglike_gradients(problem):
    x, mean, cov, _ = problem
    g = jax.grad(stats.mv_loglike, argnums=1)(x, mean, cov)
    assert jnp.allclose(g, -jnp.linalg.solve(cov, mean - x), rtol=1e-12)
    g_cov = jax.grad(stats.mv_loglike, argnums=2)(x, mean, cov)
    g_ref = jax.grad(multivariate_normal.logpdf, argnums=2)(x, mean, cov)
    # cov enters through its symmetric part: compare the symmetric sums of the gradients.
    assert jnp.allclose(g_cov + g_cov.T, g_ref + g_ref.T, rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def linear_model():
    k1, k2 = jax.random.split(jax.random.key(3))
    design = jax.random.normal(k1, (6, 3))
    a = jax.random.normal(k2, (6, 6))
    cov = a @ a.T + jnp.eye(6)
    return design, cov


def test_gauss_hessian_is_the_hessian_of_a_linear_gaussian_fit(linear_model):
    design, cov = linear_model
    data = jnp.arange(6.0)
    p0 = jnp.array([0.1, -0.2, 0.3])
    h_cov = jax.hessian(lambda p: -stats.mv_loglike(design @ p, data, cov))(p0)
    assert jnp.allclose(stats.gauss_hessian(design, cov), h_cov, rtol=1e-11)
    h_eye = jax.hessian(lambda p: 0.5 * jnp.sum((design @ p - data) ** 2))(p0)
    assert jnp.allclose(stats.gauss_hessian(design), h_eye, rtol=1e-12)


def test_gauss_hessian_with_variances_equals_a_diagonal_covariance(linear_model):
    design, _ = linear_model
    variances = jnp.linspace(0.5, 3.0, 6)
    h = stats.gauss_hessian(design, variances)
    assert jnp.allclose(h, stats.gauss_hessian(design, jnp.diag(variances)), rtol=1e-13)
    assert jnp.array_equal(h, h.T)


def test_gauss_hessian_shape_errors(linear_model):
    design, _ = linear_model
    with pytest.raises(
        ValueError, match=r"gauss_hessian: J must be a Jacobian of shape \(m, p\).*\(6,\)"
    ):
        stats.gauss_hessian(design[:, 0])
    with pytest.raises(
        ValueError, match=r"cov must have shape \(6, 6\) .*or \(6,\).*got shape \(5, 5\)"
    ):
        stats.gauss_hessian(design, jnp.eye(5))
