"""variational: SVI with a full-rank Gaussian in the whitened space, its ELBO and the
importance-corrected evidence."""

import jax.numpy as jnp
import numpy as np
import pytest

import zdx_sample as zs


@pytest.fixture(scope="module")
def result(gauss):
    return zs.variational(
        gauss.loglike, gauss.mode, gauss.prior, num_steps=1000, key=0, progress=False
    )


def test_gaussian_posterior_is_recovered(gauss, result):
    np.testing.assert_allclose(result.covariance, gauss.cov, atol=0.05 * np.max(gauss.cov))
    np.testing.assert_allclose(result.sigma["x"], gauss.sigma[:-1], rtol=0.05)
    flat = np.append(result.mean["x"], result.mean["y"])
    np.testing.assert_array_less(np.abs(flat - gauss.mu), 0.1 * gauss.sigma)
    assert result.names == gauss.names
    assert result.losses.shape == (1000,)


def test_elbo_is_a_tight_lower_bound_on_a_gaussian(gauss, result):
    elbo, err = float(result.elbo), float(result.elbo_error)
    assert elbo < gauss.log_z + 3 * err
    assert gauss.log_z - elbo < 0.05  # the family holds the posterior: the gap is ~0


def test_corrected_evidence_within_its_error(gauss, result):
    err = float(result.corrected_log_evidence_error)
    assert 0 < err < 0.05
    assert abs(float(result.corrected_log_evidence) - gauss.log_z) < 4 * err
    assert result.pareto_k < 0.7
    rows = result.evidence_estimates()
    assert [r.estimator for r in rows] == ["elbo", "variational+is"]
    assert rows[0].bound and not rows[1].bound


def test_starts_from_the_laplace_solution(gauss):
    # no steps to speak of: the fit is still the Laplace Gaussian (identity in the latent space)
    res = zs.variational(
        gauss.loglike,
        gauss.mode,
        gauss.prior,
        num_steps=1,
        learning_rate=1e-8,
        progress=False,
        importance_samples=0,
    )
    np.testing.assert_allclose(res.covariance, gauss.cov, rtol=1e-6, atol=1e-9)
    assert abs(float(res.elbo) - gauss.log_z) < 1e-6  # exact at the exact posterior
    with pytest.raises(ValueError, match="importance_samples=0"):
        _ = res.corrected_log_evidence


def test_samples_and_no_prior(gauss, result):
    draws = result.sample(1, 500)
    assert draws["x"].shape == (500, gauss.n - 1)
    res = zs.variational(gauss.loglike, gauss.mode, num_steps=10, progress=False)
    assert np.isfinite(float(res.elbo))
    with pytest.raises(ValueError, match="no `prior`"):
        _ = res.corrected_log_evidence
    assert res.evidence_estimates() == []
    assert bool(jnp.all(jnp.isfinite(res.covariance)))
