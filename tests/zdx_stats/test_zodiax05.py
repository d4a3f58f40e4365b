"""The names zodiax 0.5 had give the numbers zodiax 0.5 gave (values recorded from 0.5.0)."""

import jax.numpy as jnp
import pytest

import zdx_stats as stats

X = jnp.array([1.0, 2.0, 3.0])
MEAN = jnp.array([1.5, 1.0, 3.5])
STD = jnp.array([0.5, 2.0, 1.0])
COV = jnp.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 0.5]])
J = jnp.arange(6.0).reshape(3, 2)


def test_z_score_is_mean_minus_x_over_std():
    assert stats.z_score(X, MEAN, STD).tolist() == [1.0, -0.5, 0.5]


def test_chi2_family():
    assert float(stats.chi2(X, MEAN, STD)) == 1.5
    assert float(stats.chi2r(X, MEAN, STD, 2)) == 0.75
    assert float(stats.chi2r_from_z(jnp.array([1.0, 2.0]), 2)) == 2.5
    assert float(stats.chi2r_from_z(jnp.array([[1.0, 2.0], [3.0, 4.0]]), 2)) == 15.0


def test_loglike():
    expected = [-0.7257913526447274, -1.737085713764618, -1.0439385332046727]
    assert stats.loglike(X, MEAN, STD).tolist() == pytest.approx(expected, rel=1e-14)


def test_multivariate_and_entropy():
    assert float(stats.mv_z_score(X, MEAN, COV)) == pytest.approx(2.1016042780748663, rel=1e-13)
    assert float(stats.mv_loglike(X, MEAN, COV)) == pytest.approx(-3.7740133638047264, rel=1e-13)
    assert float(stats.calc_entropy(COV)) == pytest.approx(1.3853341583579475, rel=1e-13)


def test_gauss_hessian():
    assert stats.gauss_hessian(J).tolist() == [[20.0, 26.0], [26.0, 35.0]]
    expected = [[33.540106951871664, 42.37433155080215], [42.37433155080215, 54.160427807486634]]
    result = stats.gauss_hessian(J, COV)
    assert jnp.allclose(result, jnp.array(expected), rtol=1e-13, atol=0)


def test_ddof_counts_every_scalar_of_both_pytrees():
    assert stats.ddof({"a": jnp.ones(3), "b": 1.0}, jnp.ones((4, 5))) == 16
    assert stats.ddof(jnp.ones(2), [jnp.ones(3), 2.0]) == 2
    assert type(stats.ddof(jnp.ones(2), jnp.ones(5))) is int


def test_matrix_checks():
    eye = jnp.eye(2)
    assert bool(stats.check_symmetric(COV))
    assert bool(stats.check_symmetric(eye.at[0, 1].set(1e-8)))
    assert not bool(stats.check_symmetric(eye.at[0, 1].set(2e-8)))
    assert bool(stats.check_positive_semi_definite(COV))
    assert bool(stats.check_positive_semi_definite(jnp.zeros((2, 2))))
    assert not bool(stats.check_positive_semi_definite(-COV))
    assert not bool(stats.check_positive_semi_definite(jnp.diag(jnp.array([1.0, -1e-16]))))
    assert not bool(stats.check_positive_semi_definite(COV.at[0, 0].set(jnp.nan)))
