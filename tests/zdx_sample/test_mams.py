"""nuts(method="mams"): the Metropolis-adjusted microcanonical sampler on posteriors with
known answers, and a rank-uniformity check of both samplers over many data sets."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import stats

import zdx_sample as zs

MAMS = {"num_chains": 2, "method": "mams"}


@pytest.fixture(scope="module")
def result(problems, gauss):
    return problems.nuts(gauss, num_warmup=500, num_samples=2000, key=0, **MAMS)


def test_mams_draws_have_the_gaussians_widths_mean_and_covariance(gauss, result):
    assert result.method == "mams" and result.draws.shape == (2, 2000, gauss.n)
    draws = np.asarray(result.draws).reshape(-1, gauss.n)
    ess = np.asarray(result.ess_bulk)
    assert float(jnp.max(result.r_hat)) < 1.02 and ess.min() > 500
    assert result.num_divergences == 0
    np.testing.assert_allclose(draws.std(0), gauss.sigma, rtol=5 / math.sqrt(2 * ess.min()))
    np.testing.assert_array_less(np.abs(draws.mean(0) - gauss.mu), 5 * gauss.sigma / np.sqrt(ess))
    np.testing.assert_allclose(np.cov(draws.T), gauss.cov, atol=0.1 * np.max(gauss.cov))


def test_mams_counts_two_gradients_per_integration_step(result):
    steps = np.asarray(result.integration_steps)
    assert steps.min() >= 2 and np.all(steps % 2 == 0)
    assert result.num_gradient_evaluations > steps.sum()


def test_mams_draws_have_the_widths_of_heavier_tails(problems):
    logistic = problems.logistic_product(n=3)
    res = problems.nuts(logistic, num_warmup=500, num_samples=3000, key=1, **MAMS)
    draws = np.asarray(res.draws).reshape(-1, 3)
    ess = float(jnp.min(res.ess_bulk))
    assert float(jnp.max(res.r_hat)) < 1.02 and ess > 500
    # the standard deviation of a logistic sample is noisier than a Gaussian's (kurtosis 4.2)
    np.testing.assert_allclose(draws.std(0), logistic.sigma, rtol=5 * math.sqrt(2.2 / (2 * ess)))


def test_mams_posterior_of_a_gaussian_prior_and_likelihood(problems):
    model = problems.gaussian_with_gaussian_prior(n=3)
    res = problems.nuts(model, num_warmup=400, num_samples=2000, key=2, **MAMS)
    draws = np.asarray(res.draws).reshape(-1, 3)
    np.testing.assert_allclose(np.cov(draws.T), model.post_cov, atol=0.1 * np.max(model.post_cov))


class _Observations(eqx.Module):
    """``y_j ~ N(theta, noise^2)``, ``theta`` of two components: the data are leaves, so
    one compiled sampler serves every data set."""

    y: jax.Array
    noise: float = 0.5

    def __call__(self, params):
        return -0.5 * jnp.sum(((self.y - params["theta"]) / self.noise) ** 2)


def _ranks(method: str, replications: int, thin: int, seed: int = 0) -> np.ndarray:
    """Ranks of the true ``theta`` among thinned posterior draws, for data sets simulated
    from the prior ``N(0, 1)`` (simulation-based calibration, Talts et al. 2018)."""
    rng = np.random.default_rng(seed)
    prior = {"theta": dist.Normal(0.0, 1.0).expand([2])}
    ranks = []
    for r in range(replications):
        theta = rng.normal(size=2)
        y = theta + 0.5 * rng.normal(size=(5, 2))
        # the exact posterior mean, as the start and the whitening point
        mean = y.sum(0) / 0.25 / (1 + 5 / 0.25)
        res = zs.nuts(
            _Observations(jnp.asarray(y)),
            {"theta": jnp.asarray(mean)},
            prior,
            num_warmup=150,
            num_samples=99 * thin,
            key=r,
            progress=False,
            method=method,
        )
        kept = np.asarray(res.draws[0, ::thin])
        ranks.append(np.sum(kept < theta, axis=0))
    return np.concatenate(ranks)  # 0 .. 99


@pytest.mark.slow
@pytest.mark.parametrize("method", ["nuts", "mams"])
def test_ranks_of_the_truth_among_the_draws_are_uniform(method):
    # A cheap check of gross miscalibration: with 200 ranks it rejects a posterior 40 %
    # too narrow (p ~ 1e-10) but not one 20 % too narrow (p ~ 0.02); the width tests
    # above are the sharper ones.
    ranks = _ranks(method, replications=100, thin=3)
    counts = np.bincount(ranks // 10, minlength=10)  # 10 bins of 10 ranks
    assert stats.chisquare(counts).pvalue > 1e-3, counts
