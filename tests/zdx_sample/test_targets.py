"""zdx_sample.targets: the known answers are right, checked independently of the
builders' own formulas."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import dblquad

import zdx_base
from zdx_sample import targets


def test_correlated_gaussian_is_a_normalised_density_with_its_stated_moments():
    target = targets.correlated_gaussian(n=3, seed=4)
    cov = target.covariance
    np.testing.assert_allclose(target.sigma, np.sqrt(np.diag(cov)), rtol=1e-15)
    # the log-likelihood is the Gaussian log-density with that mean and covariance
    x = target.mean + np.array([0.3, -0.2, 0.5])
    d = x - target.mean
    expected = -0.5 * d @ np.linalg.solve(cov, d) - 0.5 * np.linalg.slogdet(2 * np.pi * cov)[1]
    assert float(target.log_likelihood({"x": jnp.asarray(x)})) == pytest.approx(expected, 1e-12)
    # the evidence is minus the log volume of the prior box
    box = target.prior["x"]
    log_volume = float(jnp.sum(jnp.log(box.high - box.low)))
    assert target.log_evidence == pytest.approx(-log_volume, rel=1e-14)


def test_correlated_gaussian_with_a_scalar_leaf_is_the_same_density():
    flat = targets.correlated_gaussian(n=4, seed=1)
    split = targets.correlated_gaussian(n=4, seed=1, scalar_last=True)
    assert split.names == ("x[0]", "x[1]", "x[2]", "y")
    assert split.names == zdx_base.ravel(split.mode).names
    x = flat.mean + 0.1
    p = {"x": jnp.asarray(x[:-1]), "y": jnp.asarray(x[-1])}
    assert float(split.log_likelihood(p)) == float(flat.log_likelihood({"x": jnp.asarray(x)}))
    assert split.log_evidence == flat.log_evidence


def test_logistic_product_evidence_matches_quadrature():
    target = targets.logistic_product(n=2, box=6.0)
    low, high = np.asarray(target.prior["t"].low), np.asarray(target.prior["t"].high)
    log_likelihood = jax.jit(target.log_likelihood)

    def likelihood(t1, t0):
        return math.exp(float(log_likelihood({"t": jnp.array([t0, t1])})))

    mass, _ = dblquad(likelihood, low[0], high[0], low[1], high[1], epsabs=0, epsrel=1e-10)
    log_z = math.log(mass) - float(np.sum(np.log(high - low)))
    assert target.log_evidence == pytest.approx(log_z, abs=1e-8)


def test_rotated_gaussian_has_scales_from_a_tenth_to_one():
    target = targets.rotated_gaussian(dim=5, seed=2)
    eigvals = np.linalg.eigvalsh(target.covariance)
    np.testing.assert_allclose(np.sqrt(eigvals), np.geomspace(0.1, 1.0, 5), rtol=1e-12)
    assert target.prior is None and target.log_evidence is None
    grad = jax.grad(target.log_likelihood)(target.mode)
    np.testing.assert_allclose(grad["x"], 0.0, atol=1e-12)


@pytest.mark.parametrize(
    ("build", "kwargs", "error", "words"),
    [
        (targets.correlated_gaussian, {"n": 1, "scalar_last": True}, ValueError, "n"),
        (targets.correlated_gaussian, {"n": 2.5}, TypeError, "n"),
        (targets.logistic_product, {"n": 0}, ValueError, "n"),
        (targets.rotated_gaussian, {"dim": "3"}, TypeError, "dim"),
    ],
)
def test_bad_sizes_name_the_builder_and_the_argument(build, kwargs, error, words):
    with pytest.raises(error, match=f"{build.__name__}.*{words}"):
        build(**kwargs)
