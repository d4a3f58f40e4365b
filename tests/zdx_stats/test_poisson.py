"""The Poisson log-likelihood for photon counts."""

import math

import jax
import jax.numpy as jnp
import pytest
from jax.scipy.stats import norm, poisson

import zdx_stats as stats


def test_integer_counts_match_the_poisson_logpmf():
    counts = jnp.array([0, 1, 2, 5, 17, 250, 3000])
    rate = jnp.array([0.3, 1.0, 4.5, 5.0, 12.0, 260.0, 2950.0])
    expected = poisson.logpmf(counts, rate)
    assert jnp.allclose(stats.poisson_loglike(counts, rate), expected, rtol=1e-13)
    assert stats.poisson_loglike(counts, rate).dtype == jnp.float64


def test_the_closed_form_at_small_counts():
    rate = 2.0
    for k in range(5):
        expected = k * math.log(rate) - rate - math.log(math.factorial(k))
        assert float(stats.poisson_loglike(k, rate)) == pytest.approx(expected, rel=1e-14)


def test_edge_cases():
    result = stats.poisson_loglike(
        jnp.array([0.0, 3.0, -1.0, -0.5, 2.0, jnp.nan]), jnp.array([0.0, 0.0, 2.0, 2.0, -1.0, 1.0])
    )
    assert float(result[0]) == 0.0  # nothing expected, nothing seen: certain
    assert result[1] == -jnp.inf  # counts where none are expected: impossible
    assert result[2] == -jnp.inf and result[3] == -jnp.inf  # negative counts: impossible
    assert jnp.isnan(result[4])  # a negative rate is not a rate
    assert jnp.isnan(result[5])  # NaN propagates
    assert jnp.isnan(stats.poisson_loglike(0.0, -1.0))


def test_non_integer_counts_use_the_gamma_function():
    k, rate = 2.5, 3.0
    expected = k * math.log(rate) - rate - math.lgamma(k + 1)
    assert float(stats.poisson_loglike(k, rate)) == pytest.approx(expected, rel=1e-14)


def test_the_gaussian_limit_at_large_counts():
    rate = 1e8
    sigma = math.sqrt(rate)
    z = jnp.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    counts = jnp.round(rate + z * sigma)
    exact = stats.poisson_loglike(counts, rate)
    gauss = norm.logpdf(counts, rate, sigma)
    # the difference is the skewness term, about z**3 / (6 sqrt(rate)) ~ 1e-4
    assert jnp.abs(exact - gauss).max() < 3e-4
    # and it shrinks like 1 / sqrt(rate)
    rate_small = 1e4
    counts_small = jnp.round(rate_small + z * math.sqrt(rate_small))
    gap_small = jnp.abs(
        stats.poisson_loglike(counts_small, rate_small)
        - norm.logpdf(counts_small, rate_small, math.sqrt(rate_small))
    ).max()
    assert 30 < float(gap_small) / float(jnp.abs(exact - gauss).max()) < 300


def test_gradient_with_respect_to_the_rate():
    counts = jnp.array([0.0, 1.0, 7.0, 40.0])
    rate = jnp.array([0.0, 2.0, 5.0, 35.0])
    g = jax.grad(lambda r: stats.poisson_loglike(counts, r).sum())(rate)
    assert float(g[0]) == -1.0  # finite at zero counts and zero rate
    assert jnp.allclose(g[1:], counts[1:] / rate[1:] - 1, rtol=1e-14)


def test_jit_and_broadcasting():
    f = jax.jit(stats.poisson_loglike)
    counts = jnp.arange(6).reshape(2, 3)
    assert jnp.allclose(f(counts, 2.0), poisson.logpmf(counts, 2.0), rtol=1e-13)
    with pytest.raises(
        ValueError,
        match=r"poisson_loglike: the shapes of counts \(shape \(2, 3\)\), rate \(shape \(2,\)\)",
    ):
        stats.poisson_loglike(counts, jnp.ones(2))
