"""z-scores, the normal log-likelihood and chi-squared for independent Gaussian errors."""

import jax
import jax.numpy as jnp
import pytest
from jax.scipy.stats import norm

import zdx_stats as stats


@pytest.fixture(scope="module")
def sample(gaussian_data):
    return gaussian_data(0, (3, 4))


def test_loglike_is_the_normal_logpdf(sample):
    x, mean, std = sample
    assert jnp.allclose(stats.loglike(x, mean, std), norm.logpdf(x, mean, std), rtol=1e-14)


def test_chi2_is_the_sum_of_squared_z_scores(sample):
    x, mean, std = sample
    z = (mean - x) / std
    assert jnp.allclose(stats.z_score(x, mean, std), z, rtol=1e-15)
    assert float(stats.chi2(x, mean, std)) == pytest.approx(float(jnp.sum(z**2)), rel=1e-14)
    assert float(stats.chi2r(x, mean, std, 5)) == pytest.approx(float(jnp.sum(z**2)) / 5)
    assert float(stats.chi2r_from_z(z, 5)) == pytest.approx(float(jnp.sum(z**2)) / 5)


def test_chi2_is_minus_twice_loglike_up_to_the_normalisation(sample):
    x, mean, std = sample
    total = stats.loglike(x, mean, std).sum()
    norm_const = jnp.sum(jnp.log(std)) + x.size * 0.5 * jnp.log(2 * jnp.pi)
    assert float(stats.chi2(x, mean, std)) == pytest.approx(float(-2 * (total + norm_const)))


def test_scalars_broadcast_against_arrays():
    x = jnp.array([1.0, 2.0, 3.0])
    assert stats.z_score(x, 1.0, 2.0).tolist() == [0.0, -0.5, -1.0]
    assert stats.z_score(x[None, :], jnp.zeros((2, 1)), 1.0).shape == (2, 3)
    assert float(stats.chi2(x, 0.0, 1.0)) == 14.0


def test_the_tutorial_call_patterns():
    params = {"mean": jnp.zeros(2), "std": jnp.array(1.0)}
    data, model, error = jnp.arange(10.0), jnp.ones(10), jnp.full(10, 2.0)
    expected = float(jnp.sum(((data - model) / error) ** 2)) / (10 - 3)
    assert float(stats.chi2r(model, data, error, stats.ddof(params, data))) == pytest.approx(
        expected
    )
    zs = jnp.stack([stats.z_score(model, data, error)] * 2)
    datas = jnp.stack([data, data])
    assert float(stats.chi2r_from_z(zs, stats.ddof(params, datas))) == pytest.approx(
        2 * expected * 7 / 17
    )
    assert float(-stats.loglike(model, data, error).sum()) == pytest.approx(
        float(-norm.logpdf(data, model, error).sum())
    )


def test_nan_propagates_to_its_own_element_and_to_sums():
    x = jnp.array([jnp.nan, 1.0, 1.0])
    std = jnp.array([1.0, jnp.nan, 1.0])
    z = stats.z_score(x, 0.0, std)
    assert jnp.isnan(z[:2]).all() and float(z[2]) == -1.0
    ll = stats.loglike(x, 0.0, std)
    assert jnp.isnan(ll[:2]).all() and jnp.isfinite(ll[2])
    assert jnp.isnan(stats.chi2(x, 0.0, std))
    assert jnp.isnan(stats.chi2r(x, 0.0, std, 2))
    assert jnp.isnan(stats.chi2r_from_z(z, 2))


def test_zero_std_gives_infinities_not_numbers():
    assert stats.z_score(jnp.array([1.0, 0.0]), 0.0, 0.0)[0] == -jnp.inf
    assert jnp.isnan(stats.z_score(jnp.array([1.0, 0.0]), 0.0, 0.0)[1])


@pytest.mark.parametrize("bad", [0, -3, 0.0, -1.5])
def test_chi2r_rejects_a_non_positive_ddof(bad):
    with pytest.raises(ValueError, match=rf"chi2r: ddof must be positive.*got ddof={bad}"):
        stats.chi2r(jnp.ones(3), jnp.zeros(3), jnp.ones(3), bad)
    with pytest.raises(ValueError, match=rf"chi2r_from_z: ddof must be positive.*ddof={bad}"):
        stats.chi2r_from_z(jnp.ones(3), bad)


def test_chi2r_rejects_a_concrete_array_ddof_and_non_scalar_ddof():
    with pytest.raises(ValueError, match="ddof=0"):
        stats.chi2r(jnp.ones(3), jnp.zeros(3), jnp.ones(3), jnp.array(0))
    with pytest.raises(ValueError, match=r"ddof must be a scalar, got shape \(2,\)"):
        stats.chi2r(jnp.ones(3), jnp.zeros(3), jnp.ones(3), jnp.array([1, 2]))
    with pytest.raises(ValueError, match="ddof=nan"):
        stats.chi2r_from_z(jnp.ones(3), float("nan"))


def test_shapes_that_do_not_broadcast_are_named():
    message = r"z_score: the shapes of x \(shape \(3,\)\), mean \(shape \(4,\)\)"
    with pytest.raises(ValueError, match=message):
        stats.z_score(jnp.ones(3), jnp.ones(4), 1.0)
    with pytest.raises(ValueError, match=r"chi2: .*std \(shape \(2,\)\)"):
        stats.chi2(jnp.ones(3), jnp.ones(3), jnp.ones(2))
    with pytest.raises(ValueError, match="loglike: "):
        stats.loglike(jnp.ones((2, 3)), jnp.ones((3, 2)), 1.0)


def test_non_numeric_input_is_named():
    with pytest.raises(TypeError, match="z_score: std must be an array or a number, got str"):
        stats.z_score(1.0, 1.0, "one")


@pytest.fixture(scope="module")
def jitted_chi2r():
    return jax.jit(stats.chi2r)


def test_chi2r_under_jit_with_a_traced_ddof(jitted_chi2r, sample):
    x, mean, std = sample
    assert float(jitted_chi2r(x, mean, std, 4)) == pytest.approx(
        float(stats.chi2(x, mean, std)) / 4
    )
    # inside jit the value is unknown when tracing: no error, NaN instead of inf
    assert jnp.isnan(jitted_chi2r(x, mean, std, 0))
    assert jnp.isnan(jitted_chi2r(x, mean, std, -2))


def test_chi2r_from_z_under_jit_with_a_traced_ddof():
    f = jax.jit(stats.chi2r_from_z)
    assert float(f(jnp.array([1.0, 2.0]), 2)) == 2.5
    assert jnp.isnan(f(jnp.array([1.0, 2.0]), 0))


def test_gradients_match_the_closed_form(sample):
    x, mean, std = sample
    g = jax.grad(lambda m: stats.chi2(x, m, std))(mean)
    assert jnp.allclose(g, 2 * (mean - x) / std**2, rtol=1e-13)
    g = jax.grad(lambda m: stats.loglike(x, m, std).sum())(mean)
    assert jnp.allclose(g, -(mean - x) / std**2, rtol=1e-13)
    g = jax.grad(lambda s: stats.loglike(x, mean, s).sum())(std)
    assert jnp.allclose(g, (mean - x) ** 2 / std**3 - 1 / std, rtol=1e-12)
    g = jax.grad(lambda m: stats.chi2r(x, m, std, 6))(mean)
    assert jnp.allclose(g, 2 * (mean - x) / std**2 / 6, rtol=1e-13)
