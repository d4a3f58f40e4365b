"""sparse_laplace: every error bar and the evidence from sparse curvature, equal to laplace."""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.sparse as sp

import zdx_batching as zb
import zdx_sample

NPIX = 5
STACK = jax.random.uniform(jax.random.key(3), (3, NPIX, NPIX)) + 0.5
TRUTH = {"flux": jnp.array(2.0), "tilt": jnp.array(0.1), "response": jnp.ones((NPIX, NPIX))}
SIGMA = 0.05


def model(p):
    return p["flux"] * STACK * (1.0 + p["tilt"] * STACK) * p["response"]


DATA = model(TRUTH) + SIGMA * jax.random.normal(jax.random.key(4), STACK.shape)


def log_likelihood(p):
    return -0.5 * jnp.sum(((model(p) - DATA) / SIGMA) ** 2)


PRIOR = {
    "flux": dist.Normal(2.0, 1.0),
    "tilt": dist.Normal(0.0, 1.0),
    "response": dist.Normal(1.0, 0.05).expand([NPIX, NPIX]),
}


@pytest.fixture(scope="module")
def mode():
    result = zdx_sample.laplace(log_likelihood, TRUTH, PRIOR, optimise=True, importance_samples=0)
    return result


def test_equals_the_dense_laplace_approximation(mode):
    result = zdx_sample.sparse_laplace(log_likelihood, mode.mean, PRIOR)
    np.testing.assert_allclose(result.flat_sigma, np.sqrt(np.diag(mode.covariance)), rtol=1e-9)
    assert result.log_evidence == pytest.approx(float(mode.log_evidence), rel=1e-10, abs=1e-8)
    assert result.names == mode.names
    assert result.factor.dense.size == 2  # flux and tilt eliminated last


def test_fisher_given_as_a_sparse_matrix(mode):
    fisher = zb.sparse_fisher(lambda p: model(p) / SIGMA, mode.mean)
    result = zdx_sample.sparse_laplace(log_likelihood, mode.mean, PRIOR, fisher=fisher)
    dense = zdx_sample.laplace(
        log_likelihood, mode.mean, PRIOR, fisher=fisher.todense(), importance_samples=0
    )
    np.testing.assert_allclose(result.flat_sigma, np.sqrt(np.diag(dense.covariance)), rtol=1e-9)
    assert result.log_evidence == pytest.approx(float(dense.log_evidence), rel=1e-10)


def test_without_a_prior_there_is_no_evidence(mode):
    fisher = zb.sparse_fisher(lambda p: model(p) / SIGMA, mode.mean)
    result = zdx_sample.sparse_laplace(
        lambda p: log_likelihood(p) - 0.5 * jnp.sum(((p["response"] - 1) / 0.05) ** 2),
        mode.mean,
        fisher=fisher.to_scipy() + sp.diags(np.r_[0.0, np.full(NPIX**2, 400.0), 0.0]),
    )
    assert result.log_evidence is None
    assert "prior" in result.evidence_problem


def test_bad_fisher_is_refused(mode):
    with pytest.raises(TypeError, match=r"SparseMatrix or a scipy\.sparse matrix"):
        zdx_sample.sparse_laplace(log_likelihood, mode.mean, PRIOR, fisher=np.eye(27))
    with pytest.raises(ValueError, match=r"shape \(3, 3\); params have 27"):
        zdx_sample.sparse_laplace(log_likelihood, mode.mean, PRIOR, fisher=sp.eye(3))


def test_not_positive_definite_is_refused():
    flat_in_tilt = {"flux": jnp.array(2.0), "tilt": jnp.array(0.1), "response": jnp.ones((2, 2))}
    with pytest.raises(ValueError, match="not positive definite"):
        zdx_sample.sparse_laplace(lambda p: -0.5 * (p["flux"] - 2.0) ** 2, flat_in_tilt)


# --- matrix-free curvature ----------------------------------------------------------------


def residuals(p):
    return model(p) / SIGMA


@pytest.fixture(scope="module")
def exact_and_free(mode):
    exact = zdx_sample.sparse_laplace(
        log_likelihood, mode.mean, PRIOR, fisher=zb.sparse_fisher(residuals, mode.mean)
    )
    free = zdx_sample.sparse_laplace(
        log_likelihood, mode.mean, PRIOR, fisher=zb.fisher_operator(residuals, mode.mean), order=15
    )
    return exact, free


def test_matrix_free_sigmas_are_within_their_reported_error_of_the_exact_ones(exact_and_free):
    exact, free = exact_and_free
    assert free.factor is None and exact.approximate == ()
    assert set(free.approximate) == {"sigma", "flat_sigma", "log_det", "log_evidence"}
    error = np.abs(free.flat_sigma - exact.flat_sigma)
    assert np.all(error <= free.flat_sigma_error + 1e-14 * exact.flat_sigma)
    assert np.all(free.flat_sigma_error < 1e-6 * free.flat_sigma)  # CG to sqrt(eps)
    assert bool(np.all(free.variances.converged))
    np.testing.assert_array_equal(exact.flat_sigma_error, 0.0)


def test_matrix_free_log_evidence_is_within_three_standard_errors_of_the_exact_one(exact_and_free):
    exact, free = exact_and_free
    assert 0 < free.log_det_standard_error < 0.05 * abs(exact.log_det)
    assert abs(free.log_det - exact.log_det) <= 3 * free.log_det_standard_error
    assert free.log_evidence_standard_error == pytest.approx(free.log_det_standard_error / 2)
    assert abs(free.log_evidence - exact.log_evidence) <= 3 * free.log_evidence_standard_error
    assert free.log_determinant.probes == 64 and free.log_determinant.order == 15


def test_matrix_free_sigmas_of_chosen_parameters_only(exact_and_free, mode):
    exact, _ = exact_and_free
    operator = zb.fisher_operator(residuals, mode.mean)
    chosen = zdx_sample.sparse_laplace(
        log_likelihood, mode.mean, PRIOR, fisher=operator, which="flux", order=15
    )
    assert float(chosen.sigma["flux"]) == pytest.approx(float(exact.sigma["flux"]), rel=1e-7)
    assert np.all(np.isnan(chosen.sigma["response"])) and np.isnan(chosen.sigma["tilt"])


def test_bad_matrix_free_curvature_is_refused(mode):
    small = lx.MatrixLinearOperator(np.eye(3), lx.symmetric_tag)
    with pytest.raises(ValueError, match="flat vectors of the 27 parameters"):
        zdx_sample.sparse_laplace(log_likelihood, mode.mean, PRIOR, fisher=small)
    with pytest.raises(ValueError, match="tagged symmetric"):
        zdx_sample.sparse_laplace(
            log_likelihood, mode.mean, PRIOR, fisher=lx.MatrixLinearOperator(np.eye(27))
        )
    with pytest.raises(ValueError, match="which, rtol apply to matrix-free curvature only"):
        zdx_sample.sparse_laplace(log_likelihood, mode.mean, PRIOR, which="flux", rtol=1e-6)
    # Minus the identity is not a curvature: flux and tilt get a negative precision.
    negative = lx.TaggedLinearOperator(lx.MatrixLinearOperator(-2.0 * np.eye(27)), lx.symmetric_tag)
    with pytest.raises(ValueError, match=r"came out non-positive or not finite"):
        zdx_sample.sparse_laplace(log_likelihood, mode.mean, PRIOR, fisher=negative)
