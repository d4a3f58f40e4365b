"""The Pareto k-hat and the MCMC diagnostics agree with ArviZ's reference implementations,
on either ArviZ line (0.x, or 1.x with arviz-stats)."""

import math
import warnings

import numpy as np
import pytest

import zdx_sample as zs
from zdx_sample._diagnostics import rhat_and_ess
from zdx_sample._inference_data import arviz_major

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az


def arviz_khat(log_weights):
    """ArviZ's Pareto k-hat of ``log_weights``, fitted to the ``M = ceil(min(S / 5, 3 sqrt(S)))``
    largest weights. ArviZ 0.x's ``psislw`` takes that tail. arviz-stats (ArviZ 1.x) takes
    ``floor(3 sqrt(S / r_eff))`` and log-likelihoods (weights ``exp(-values)``): it is given
    the negated values and the ``r_eff`` that makes its tail ``M`` (for ``S * r_eff > 225``)."""
    if arviz_major() == 0:
        return float(az.psislw(log_weights.copy())[1])
    from arviz_stats.base import array_stats

    size = log_weights.size
    tail = math.ceil(min(size / 5, 3 * math.sqrt(size)))
    r_eff = size * 9 / (tail + 0.5) ** 2
    assert size * r_eff > 225, "arviz-stats takes S / 5 weights below this"
    return float(array_stats.psislw(-log_weights, r_eff=r_eff)[1])


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng: rng.normal(size=1000),  # light tail: k < 0.5
        lambda rng: rng.standard_t(3, size=2000),  # heavy tail of log-weights: k > 1
        lambda rng: np.log(rng.pareto(1.5, size=500) + 1),  # Pareto weights: k near 1/1.5
        lambda rng: rng.normal(size=300) * 0.01,  # nearly equal weights
    ],
)
def test_pareto_khat_matches_arviz(draw):
    lw = draw(np.random.default_rng(0))
    assert abs(zs.pareto_khat(lw) - arviz_khat(lw)) < 1e-10


def test_pareto_khat_recovers_a_known_tail():
    rng = np.random.default_rng(1)
    # weights with a generalised Pareto tail of shape 0.6
    lw = np.log(rng.pareto(1 / 0.6, size=20000) + 1)
    assert abs(zs.pareto_khat(lw) - 0.6) < 0.1


def test_pareto_khat_extreme_and_bad_input():
    rng = np.random.default_rng(2)
    assert zs.pareto_khat(rng.standard_cauchy(4000) * 1e3) == float("inf")
    lw = rng.normal(size=100)
    lw[:50] = -np.inf  # zero weights are allowed
    assert np.isfinite(zs.pareto_khat(lw))
    with pytest.raises(ValueError, match="NaN"):
        zs.pareto_khat(np.array([np.nan] + [0.0] * 20))
    with pytest.raises(ValueError, match="at least 10"):
        zs.pareto_khat(np.zeros(5))
    with pytest.raises(ValueError, match="all -inf"):
        zs.pareto_khat(np.full(20, -np.inf))


@pytest.mark.parametrize("chains, rho", [(1, 0.0), (4, 0.5), (2, 0.9), (3, -0.3)])
def test_rhat_and_bulk_ess_match_arviz(chains, rho):
    rng = np.random.default_rng(3)
    num = 501
    e = rng.normal(size=(chains, num, 2))
    x = np.zeros_like(e)
    x[:, 0] = e[:, 0]
    for i in range(1, num):
        x[:, i] = rho * x[:, i - 1] + e[:, i]
    x[..., 1] = np.exp(x[..., 1]) + np.arange(chains)[:, None] * 0.3  # skewed, shifted chains
    r_hat, ess = rhat_and_ess(x)
    for i in range(2):
        ess_ref = az.ess(x[..., i], method="bulk")
        np.testing.assert_allclose(ess[i], ess_ref, rtol=1e-10)
        if chains > 1:
            np.testing.assert_allclose(r_hat[i], az.rhat(x[..., i]), rtol=1e-12)
        else:  # ArviZ needs two chains: compare with the two halves given as chains
            halves = np.stack([x[0, : num // 2, i], x[0, num - num // 2 :, i]])
            assert abs(r_hat[i] - 1) < 0.05 and np.isfinite(az.rhat(halves))


def test_constant_parameter_has_neutral_diagnostics():
    x = np.ones((2, 100, 1))
    r_hat, ess = rhat_and_ess(x)
    assert r_hat[0] == 1.0 and ess[0] == 200.0
