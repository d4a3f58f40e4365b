"""reparametrise and minimise: fitting in the whitened space x0 + P @ u (tutorial section 6)."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optimistix as optx
import pytest
from jax.flatten_util import ravel_pytree

import zdx_opt as opt

XS = jnp.linspace(-10, 10, 500)
ERROR = 0.05
TRUTH = {
    "mean": jnp.array([2.0, -3.0]),
    "std": jnp.array([0.5, 2.0]),
    "power": jnp.array([1.5, 1.0]),
}


def gaussians(params):
    """The tutorial's sum of Gaussians, a pure function of a params dict."""

    def one(mean, std, power):
        return (1 / (std * jnp.sqrt(2 * jnp.pi))) * jnp.exp(
            -0.5 * ((XS - mean) / std) ** 2
        ) ** power

    return jax.vmap(one)(params["mean"], params["std"], params["power"]).sum(axis=0)


def loss_fn(params, data):
    return jnp.mean(jnp.square((gaussians(params) - data) / ERROR))


def chi2r(params, data):
    z = (gaussians(params) - data) / ERROR
    return float(jnp.sum(z**2) / (data.size - ravel_pytree(params)[0].size))


@pytest.fixture(scope="module")
def fit():
    data = gaussians(TRUTH) + ERROR * jr.normal(jr.key(0), XS.shape)
    keys = jr.split(jr.key(1), 3)
    start = {k: jr.uniform(key, TRUTH[k].shape) + TRUTH[k] for k, key in zip(TRUTH, keys)}
    # Fisher matrix at the start: the Hessian of the loss against data simulated there.
    flat, unravel = ravel_pytree(start)
    F = jax.jit(jax.hessian(lambda x: loss_fn(unravel(x), gaussians(start))))(flat)
    return data, start, F


def test_reparametrise_maps_zero_to_the_start_and_whitens(fit):
    _, start, F = fit
    u0, to_params = opt.reparametrise(start, fmat=F)
    assert u0.shape == (6,) and not np.any(u0)
    for k in start:
        np.testing.assert_allclose(to_params(u0)[k], start[k], rtol=1e-15)
    P = to_params.projection
    np.testing.assert_allclose(P.T @ F @ P, np.eye(6), atol=1e-9)
    u = jnp.arange(6.0) / 10
    np.testing.assert_allclose(to_params.to_latent(to_params(u)), u, atol=1e-9)
    np.testing.assert_allclose(ravel_pytree(to_params(u))[0], ravel_pytree(start)[0] + P @ u)
    with pytest.raises(ValueError, match="3 x 3 but `params` has 6"):
        opt.reparametrise(start, fmat=jnp.eye(3))
    u0_glossary, by_glossary_name = opt.reparametrise(start, fisher=F)
    np.testing.assert_array_equal(by_glossary_name.projection, P)
    np.testing.assert_array_equal(u0_glossary, u0)
    with pytest.raises(TypeError, match=r"reparametrise: .*fisher= and as fmat="):
        opt.reparametrise(start, fisher=F, fmat=F)


@pytest.mark.slow
def test_minimise_in_the_latent_space_fits_the_sum_of_gaussians(fit):
    data, start, F = fit
    assert chi2r(start, data) > 5.0
    out = opt.minimise(loss_fn, start, data, fmat=F)
    assert out.result == optx.RESULTS.successful
    assert 0 < int(out.num_steps) <= 256
    assert chi2r(out.params, data) < 1.2
    assert jax.tree_util.tree_structure(out.params) == jax.tree_util.tree_structure(start)
    np.testing.assert_allclose(out.loss, loss_fn(out.params, data), rtol=1e-12)
    for k in start:
        np.testing.assert_allclose(out.latent_map(out.value)[k], out.params[k])
    # The same optimum as a tightly converged BFGS in the original parameters (section 2).
    solver = optx.BestSoFarMinimiser(optx.BFGS(rtol=1e-12, atol=1e-12))
    reference = optx.minimise(loss_fn, solver, start, data, throw=False).value
    for k in start:
        np.testing.assert_allclose(out.params[k], reference[k], atol=1e-4)
    assert float(out.loss) <= float(loss_fn(reference, data)) * (1 + 1e-9)


def test_minimise_with_a_covariance_or_with_no_matrix():
    loss = lambda p, args: jnp.sum((p["x"] - args) ** 2 * jnp.array([1.0, 1e4]))  # noqa: E731
    params = {"x": jnp.zeros(2)}
    target = jnp.array([1.0, 2.0])
    cov = jnp.diag(1 / jnp.array([2.0, 2e4]))
    with_cov = opt.minimise(loss, params, target, cov=cov)
    np.testing.assert_allclose(with_cov.params["x"], target, atol=1e-6)
    with_fisher = opt.minimise(loss, params, target, fisher=jnp.diag(jnp.array([2.0, 2e4])))
    np.testing.assert_allclose(with_fisher.params["x"], target, atol=1e-6)
    plain = opt.minimise(loss, params, target)
    assert plain.latent_map is None
    np.testing.assert_allclose(plain.params["x"], target, atol=1e-6)
    with pytest.raises(ValueError, match="at most one"):
        opt.minimise(loss, params, target, fmat=cov, cov=cov)
    with pytest.raises(ValueError, match="at most one"):
        opt.minimise(loss, params, target, fisher=cov, cov=cov)
    with pytest.raises(TypeError, match=r"minimise: .*fisher= and as fmat="):
        opt.minimise(loss, params, target, fisher=cov, fmat=cov)
    with pytest.raises(ValueError, match="singular or indefinite"):
        opt.minimise(loss, params, target, fmat=jnp.diag(jnp.array([1.0, 0.0])))
