"""Every function runs under jax.jit in float32 and float64 and keeps the input dtype."""

import jax
import jax.numpy as jnp
import pytest

import zdx_stats as stats

VECTOR = jnp.array([1.0, 2.0, 4.0])
MEAN = jnp.array([1.5, 1.0, 3.0])
STD = jnp.array([0.5, 2.0, 1.5])
COV = jnp.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 0.5]])

CASES = {
    "z_score": (stats.z_score, (VECTOR, MEAN, STD)),
    "loglike": (stats.loglike, (VECTOR, MEAN, STD)),
    "chi2": (stats.chi2, (VECTOR, MEAN, STD)),
    "chi2r": (lambda x, m, s: stats.chi2r(x, m, s, 2), (VECTOR, MEAN, STD)),
    "chi2r_from_z": (lambda z: stats.chi2r_from_z(z, 2), (VECTOR,)),
    "z_score_finite": (stats.z_score_finite, (VECTOR, MEAN, STD)),
    "loglike_finite": (stats.loglike_finite, (VECTOR, MEAN, STD)),
    "chi2_finite": (stats.chi2_finite, (VECTOR, MEAN, STD)),
    "chi2r_finite": (lambda x, m, s: stats.chi2r_finite(x, m, s, 1), (VECTOR, MEAN, STD)),
    "chi2r_from_z_finite": (lambda z: stats.chi2r_from_z_finite(z, 1), (VECTOR,)),
    "mv_z_score": (stats.mv_z_score, (VECTOR, MEAN, COV)),
    "mv_loglike": (stats.mv_loglike, (VECTOR, MEAN, COV)),
    "gauss_hessian": (stats.gauss_hessian, (COV[:, :2], COV)),
    "calc_entropy": (stats.calc_entropy, (COV,)),
    "gaussian_entropy": (stats.gaussian_entropy, (COV,)),
    "poisson_loglike": (stats.poisson_loglike, (VECTOR, MEAN)),
    "aic": (lambda ll: stats.aic(ll, 2), (VECTOR,)),
    "bic": (lambda ll: stats.bic(ll, 2, 10), (VECTOR,)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_under_jit_agrees_with_float64(name):
    fn, args = CASES[name]
    reference = fn(*args)
    result = jax.jit(fn)(*(a.astype(jnp.float32) for a in args))
    assert reference.dtype == jnp.float64
    assert result.dtype == jnp.float32
    assert jnp.allclose(result, reference.astype(jnp.float32), rtol=2e-6, atol=1e-6)


def test_integer_inputs_give_floating_results():
    assert stats.z_score(jnp.array([1, 2]), 0, 1).dtype == jnp.float64
    assert stats.chi2(jnp.array([1, 2]), 0, 1).dtype == jnp.float64
    assert stats.poisson_loglike(jnp.array([1, 2]), 3).dtype == jnp.float64


def test_matrix_checks_in_float32():
    assert bool(jax.jit(stats.check_symmetric)(COV.astype(jnp.float32)))
    assert bool(jax.jit(stats.check_positive_semi_definite)(COV.astype(jnp.float32)))


def test_value_and_grad_in_float32():
    x, m, s = (a.astype(jnp.float32) for a in (VECTOR, MEAN, STD))
    value, grad = jax.jit(jax.value_and_grad(lambda m: stats.chi2r(x, m, s, 2)))(m)
    assert value.dtype == grad.dtype == jnp.float32
    assert jnp.allclose(grad, (m - x) / s**2, rtol=1e-6)


def test_vmap_over_a_batch():
    x, m, e = jnp.ones((4, 3)), jnp.zeros((4, 3)), jnp.ones((4, 3)).at[0, 0].set(jnp.nan)
    batched = jax.vmap(stats.chi2r, in_axes=(0, 0, 0, None))(x, m, e, 2)
    assert jnp.isnan(batched[0]) and batched[1:].tolist() == [1.5, 1.5, 1.5]
    finite = jax.vmap(lambda a, b, c: stats.chi2r_finite(a, b, c, 1))(x, m, e)
    assert finite.tolist() == [2.0, 1.5, 1.5, 1.5]
    per_dof = jax.vmap(lambda d: stats.chi2r(x, m, 1.0, d))(jnp.array([1, 2, 0]))
    assert per_dof[:2].tolist() == [12.0, 6.0] and jnp.isnan(per_dof[2])
    mv = jax.vmap(stats.mv_loglike, in_axes=(0, 0, None))(x, m, jnp.eye(3))
    assert jnp.allclose(mv, stats.mv_loglike(x, m, jnp.eye(3)), rtol=1e-15)
