"""Information criteria for model comparison."""

import math

import jax
import jax.numpy as jnp
import pytest

import zdx_stats as stats


def test_aic_formula_with_a_count_and_with_a_pytree():
    assert float(stats.aic(-12.5, 4)) == 2 * 4 + 25.0
    params = {"a": jnp.zeros((2, 2)), "b": [1.0, jnp.ones(3)]}
    assert float(stats.aic(-12.5, params)) == 2 * 8 + 25.0
    assert float(stats.aic(-12.5, jnp.array(8))) == 2 * 8 + 25.0


def test_bic_formula_with_counts_and_with_pytrees():
    expected = 3 * math.log(50) + 2 * 7.25
    assert float(stats.bic(-7.25, 3, 50)) == pytest.approx(expected, rel=1e-15)
    assert float(stats.bic(-7.25, jnp.ones(3), jnp.ones((5, 10)))) == pytest.approx(expected)
    data = [jnp.ones(20), {"b": jnp.ones((3, 10))}]
    assert float(stats.bic(-7.25, {"p": jnp.ones(3)}, data)) == pytest.approx(expected)


def test_bic_with_a_count_of_finite_pixels():
    data = jnp.array([1.0, jnp.nan, 2.0, 3.0])
    n = stats.finite_mask(data).sum()
    assert float(stats.bic(-1.0, 1, n)) == pytest.approx(math.log(3) + 2.0)


def test_criteria_of_several_models_at_once():
    loglikes = jnp.array([-10.0, -9.0])
    assert stats.aic(loglikes, 2).tolist() == [24.0, 22.0]
    assert stats.bic(loglikes, 0, 10).tolist() == [20.0, 18.0]


def test_under_jit_and_grad():
    f = jax.jit(lambda ll, n: stats.bic(ll, 2, n))
    assert float(f(-3.0, 9)) == pytest.approx(2 * math.log(9) + 6)
    assert jnp.isnan(f(-3.0, 0))  # traced n: no error, NaN
    assert float(jax.grad(lambda ll: stats.aic(ll, 3))(1.0)) == -2.0


def test_bad_counts_are_rejected():
    with pytest.raises(ValueError, match="aic: params must be a count >= 0, got params=-2"):
        stats.aic(0.0, -2)
    with pytest.raises(ValueError, match="bic: data must hold at least one data point, got n=0"):
        stats.bic(0.0, 1, 0)
    with pytest.raises(ValueError, match="bic: data must hold at least one data point, got n=0"):
        stats.bic(0.0, 1, jnp.ones(0))
    with pytest.raises(TypeError, match=r"aic: params must be an integer count or a pytree.*bool"):
        stats.aic(0.0, True)
    with pytest.raises(TypeError, match=r"bic: every leaf of data .*at data\['x'\]"):
        stats.bic(0.0, 1, {"x": "text"})
