"""laplace: the Gaussian approximation at the mode, its evidence, and the importance
correction, against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zdx_batching
import zdx_sample as zs


@pytest.fixture(scope="module")
def gauss(problems):
    return problems.correlated_gaussian(n=10, seed=0)


@pytest.fixture(scope="module")
def gauss_result(gauss):
    return zs.laplace(gauss.loglike, gauss.mode, gauss.prior, importance_samples=2000)


def test_gaussian_evidence_is_exact(gauss, gauss_result):
    # log L_max + n/2 log 2 pi + 1/2 log det Sigma - log V, with log L_max = -n/2 log 2 pi
    # - 1/2 log det Sigma: exactly -log V
    assert abs(float(gauss_result.log_evidence) - gauss.log_z) < 1e-6


def test_gaussian_mean_covariance_sigma_and_names(gauss, gauss_result):
    np.testing.assert_allclose(gauss_result.covariance, gauss.cov, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gauss_result.mean["x"], gauss.mu[:-1], rtol=0, atol=1e-14)
    np.testing.assert_allclose(gauss_result.sigma["x"], gauss.sigma[:-1], rtol=1e-9)
    np.testing.assert_allclose(gauss_result.sigma["y"], gauss.sigma[-1], rtol=1e-9)
    assert gauss_result.names == gauss.names
    assert gauss_result.sigma["y"].shape == ()


def test_importance_correction_agrees_on_a_gaussian(gauss, gauss_result):
    err = float(gauss_result.corrected_log_evidence_error)
    assert 0 < err < 0.05
    assert abs(float(gauss_result.corrected_log_evidence) - gauss.log_z) < 4 * err
    # a Student-t proposal over a Gaussian target: bounded weights, a light tail
    assert gauss_result.pareto_k < 0.5
    assert gauss_result.importance.num_samples == 2000


def test_given_fisher_gives_the_same_result(gauss, gauss_result):
    fisher = np.linalg.inv(gauss.cov)
    res = zs.laplace(gauss.loglike, gauss.mode, gauss.prior, fisher=fisher, importance_samples=0)
    assert abs(float(res.log_evidence) - float(gauss_result.log_evidence)) < 1e-9
    np.testing.assert_allclose(res.covariance, gauss_result.covariance, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="importance_samples=0"):
        _ = res.corrected_log_evidence


def test_gaussian_prior_curvature_and_density_enter_the_evidence(problems):
    prob = problems.gaussian_with_gaussian_prior()
    res = zs.laplace(prob.loglike, prob.mode, prob.prior, importance_samples=0)
    assert abs(float(res.log_evidence) - prob.log_z) < 1e-9
    np.testing.assert_allclose(res.covariance, prob.post_cov, rtol=1e-9)
    # a given likelihood Fisher matrix gets the prior's curvature added
    res2 = zs.laplace(
        prob.loglike, prob.mode, prob.prior, fisher=prob.fisher_likelihood, importance_samples=0
    )
    np.testing.assert_allclose(res2.covariance, prob.post_cov, rtol=1e-9)
    assert abs(float(res2.log_evidence) - prob.log_z) < 1e-9


def test_optimise_finds_the_mode_first(problems):
    prob = problems.gaussian_with_gaussian_prior()
    start = {"theta": prob.mode["theta"] + jnp.array([0.3, -0.2, 0.5])}
    res = zs.laplace(prob.loglike, start, prob.prior, optimise=True, importance_samples=0)
    np.testing.assert_allclose(res.mean["theta"], prob.mode["theta"], atol=1e-7)
    assert abs(float(res.log_evidence) - prob.log_z) < 1e-9


def test_non_gaussian_laplace_error_is_known_and_the_correction_removes_it(problems):
    prob = problems.logistic_product(n=3)
    res = zs.laplace(prob.loglike, prob.mode, prob.prior, importance_samples=4000, key=1)
    # the plain Laplace evidence is off by exactly n log(sqrt(pi)/2) (about -0.36 here)
    assert abs(float(res.log_evidence) - prob.log_z - prob.laplace_offset) < 1e-9
    corrected = float(res.corrected_log_evidence)
    assert abs(corrected - prob.log_z) < 0.05
    assert abs(corrected - prob.log_z) < 4 * float(res.corrected_log_evidence_error)
    assert res.pareto_k < 0.7


def test_without_a_prior_there_is_a_covariance_but_no_evidence(gauss):
    res = zs.laplace(gauss.loglike, gauss.mode)
    np.testing.assert_allclose(res.covariance, gauss.cov, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="no `prior` was given"):
        _ = res.log_evidence
    with pytest.raises(ValueError, match="improper"):
        _ = res.corrected_log_evidence
    assert res.evidence_estimates() == []


def test_samples_follow_the_covariance(gauss, gauss_result):
    draws = gauss_result.sample(jax.random.key(3), 20000)
    assert draws["x"].shape == (20000, gauss.n - 1) and draws["y"].shape == (20000,)
    flat = np.column_stack([draws["x"], draws["y"]])
    np.testing.assert_allclose(np.cov(flat.T), gauss.cov, atol=0.05 * np.max(gauss.cov))


def test_heavy_tailed_posterior_gets_a_large_pareto_k_and_a_warning():
    # a Cauchy-like likelihood: a Gaussian proposal (df=None) has far too light tails
    loglike = lambda p: -jnp.sum(jnp.log1p(p["t"] ** 2))  # noqa: E731
    import numpyro.distributions as dist

    prior = {"t": dist.Uniform(-1e4, 1e4).expand([2])}
    with pytest.warns(RuntimeWarning, match="Pareto k-hat"):
        res = zs.laplace(loglike, {"t": jnp.zeros(2)}, prior, df=None, importance_samples=2000)
    assert res.pareto_k > 0.7
    assert not res.importance.reliable


def test_float32_parameters_work_too(gauss):
    mode = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), gauss.mode)
    res = zs.laplace(gauss.loglike, mode, gauss.prior, importance_samples=0)
    assert res.covariance.dtype == jnp.float32 and res.log_evidence.dtype == jnp.float32
    assert abs(float(res.log_evidence) - gauss.log_z) < 1e-4  # float32 rounding


def test_hessian_uses_zdx_batching_and_matches_jax_hessian(problems):
    prob = problems.gaussian_with_gaussian_prior()
    res = zs.laplace(prob.loglike, prob.mode, prob.prior, importance_samples=0)

    def flat_logpost(t):
        return prob.loglike({"theta": t}) + jnp.sum(prob.prior["theta"].log_prob(t))

    expected = -jax.hessian(flat_logpost)(prob.mode["theta"])
    np.testing.assert_allclose(res.fisher, expected, rtol=1e-10)
    H, _ = zdx_batching.hessian(lambda p: -flat_logpost(p["theta"]), prob.mode)
    np.testing.assert_allclose(res.fisher, H, rtol=1e-12)


def test_multivariate_prior_distribution(problems):
    """A leaf may have a distribution with an event shape (here a MultivariateNormal)."""
    import numpyro.distributions as dist

    prob = problems.gaussian_with_gaussian_prior()
    normal = prob.prior["theta"]
    mvn = {"theta": dist.MultivariateNormal(normal.loc, jnp.diag(normal.scale**2))}
    res = zs.laplace(prob.loglike, prob.mode, mvn, importance_samples=0)
    assert abs(float(res.log_evidence) - prob.log_z) < 1e-9
    np.testing.assert_allclose(res.covariance, prob.post_cov, rtol=1e-9)
