"""Matrix checks and the entropy of a Gaussian."""

import math

import jax
import jax.numpy as jnp
import pytest

import zdx_stats as stats

LOG_2PI_E = math.log(2 * math.pi * math.e)


@pytest.fixture(scope="module")
def cov():
    a = jax.random.normal(jax.random.key(4), (3, 3))
    return a @ a.T + jnp.eye(3)


def test_check_symmetric_uses_allclose_tolerances(cov):
    assert bool(stats.check_symmetric(cov))
    assert not bool(stats.check_symmetric(cov.at[0, 1].add(1e-3)))
    assert bool(stats.check_symmetric(cov.at[0, 1].add(1e-3), atol=1e-2))
    assert not bool(stats.check_symmetric(cov.at[0, 1].set(jnp.nan)))


def test_check_positive_semi_definite(cov):
    assert bool(stats.check_positive_semi_definite(cov))
    rank_one = jnp.outer(jnp.arange(3.0), jnp.arange(3.0))
    assert bool(stats.check_positive_semi_definite(rank_one, tol=1e-12))
    slightly = jnp.diag(jnp.array([1.0, 2.0, -1e-13]))
    assert not bool(stats.check_positive_semi_definite(slightly))
    assert bool(stats.check_positive_semi_definite(slightly, tol=1e-12))
    # the sign of v @ mat @ v is decided by the symmetric part
    skew = jnp.array([[1.0, 5.0], [-5.0, 1.0]])
    assert bool(stats.check_positive_semi_definite(skew))
    assert not bool(stats.check_positive_semi_definite(jnp.array([[1.0, 4.0], [0.0, 1.0]])))


def test_checks_work_under_jit(cov):
    assert bool(jax.jit(stats.check_symmetric)(cov))
    assert bool(jax.jit(stats.check_positive_semi_definite)(cov))


@pytest.mark.parametrize(
    "fn",
    [
        stats.check_symmetric,
        stats.check_positive_semi_definite,
        stats.calc_entropy,
        stats.gaussian_entropy,
    ],
)
def test_non_square_matrices_are_rejected(fn):
    with pytest.raises(
        ValueError, match=r"must be a square matrix of shape \(n, n\), got shape \(2, 3\)"
    ):
        fn(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"got shape \(3,\)"):
        fn(jnp.ones(3))


def test_gaussian_entropy_closed_form(cov):
    logdet = jnp.linalg.slogdet(cov)[1]
    assert float(stats.gaussian_entropy(cov)) == pytest.approx(
        float(0.5 * (3 * LOG_2PI_E + logdet))
    )
    assert float(stats.gaussian_entropy(jnp.array([[4.0]]))) == pytest.approx(
        0.5 * math.log(2 * math.pi * math.e * 4.0)
    )


def test_gaussian_entropy_agrees_with_scipy(cov):
    scipy_stats = pytest.importorskip("scipy.stats")
    expected = scipy_stats.multivariate_normal(mean=[0.0, 0.0, 0.0], cov=cov.tolist()).entropy()
    assert float(stats.gaussian_entropy(cov)) == pytest.approx(float(expected), rel=1e-12)


def test_calc_entropy_is_the_zodiax_05_measure(cov):
    # equal to the entropy in 1-D, and off by a constant for fixed size otherwise
    one = jnp.array([[2.5]])
    assert float(stats.calc_entropy(one)) == pytest.approx(float(stats.gaussian_entropy(one)))
    diff = stats.gaussian_entropy(cov) - stats.calc_entropy(cov)
    assert float(diff) == pytest.approx(LOG_2PI_E, rel=1e-13)


def test_entropy_of_invalid_covariances_is_nan(cov):
    assert jnp.isnan(stats.calc_entropy(-jnp.eye(2)))
    assert jnp.isnan(stats.gaussian_entropy(jnp.diag(jnp.array([1.0, -1.0]))))
    assert jnp.isnan(stats.gaussian_entropy(cov.at[1, 1].set(jnp.nan)))


def test_entropy_reads_the_symmetric_part_of_the_matrix(cov):
    # lower triangle positive definite, symmetric part (eigenvalue -0.84) not: NaN
    assert jnp.isnan(stats.calc_entropy(jnp.array([[2.942, 4.0], [0.5, 0.5]])))
    lopsided = cov.at[0, 1].add(0.4).at[1, 0].add(-0.4)  # the same symmetric part
    for entropy in (stats.calc_entropy, stats.gaussian_entropy):
        assert jnp.allclose(entropy(lopsided), entropy(cov), rtol=1e-14)


def test_entropy_gradient_is_half_the_inverse(cov):
    g = jax.grad(stats.gaussian_entropy)(cov)
    # cov enters through its symmetric part: compare symmetrised gradients
    assert jnp.allclose(g + g.T, jnp.linalg.inv(cov), rtol=1e-11)
