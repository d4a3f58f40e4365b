"""The stages of the end-to-end optics fit, on a tiny telescope, against closed forms."""

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

import zdx_base
from zdx_examples import optics as ex

FILTERS = {"blue": jnp.linspace(1.0, 1.2, 2), "red": jnp.linspace(1.4, 1.6, 2)}


@pytest.fixture(scope="module")
def tiny():
    """Two filters, 16 pupil pixels, 8 detector pixels, three Zernike terms: 9 parameters.
    The data is the noiseless model of the truth, with the simulated errors."""
    optics = ex.build_optics(FILTERS, npix=16, psf_npixels=8, n_zernike=3)
    sim = ex.simulate(optics, n_images=50)
    observations = [obs.set("data", obs(sim.true_params, optics)) for obs in sim.observations]
    return sim.set("observations", observations)


def _perturbed(params, scale, seed=0):
    flat, unravel, _ = zdx_base.ravel(params)
    sizes = jnp.where(jnp.abs(flat) > 1, 1e-3 * jnp.abs(flat), 1e-3)
    return unravel(flat + scale * sizes * jax.random.normal(jax.random.key(seed), flat.shape))


def test_loss_curvature_is_the_hessian_of_the_loss_where_the_model_meets_the_data(tiny):
    args = (tiny.optics, tiny.observations)
    flat, unravel, _ = zdx_base.ravel(tiny.true_params)
    exact = jax.hessian(lambda x: ex.loss_fn(unravel(x), args))(flat)
    curvature = ex.loss_curvature(tiny.true_params, *args)
    assert curvature.shape == (9, 9)
    onp.testing.assert_allclose(
        curvature, exact, rtol=1e-7, atol=1e-9 * float(jnp.max(jnp.abs(exact)))
    )


def test_natural_gradient_descent_converges_and_keeps_its_history(tiny):
    args = (tiny.optics, tiny.observations)
    start = _perturbed(tiny.true_params, 3.0)
    params, losses, history = ex.natural_gradient_descent(
        start, args, steps=40, learning_rate=0.5, progress=False
    )
    assert losses.shape == (40,)
    assert history.shape == (41, 9)
    onp.testing.assert_array_equal(history[0], zdx_base.ravel(start)[0])
    # Noiseless data: the loss at the truth is 0, and the descent gets there geometrically.
    assert float(ex.loss_fn(params, args)) < 1e-10 * float(losses[0])
    assert float(ex.loss_fn(params, args)) <= float(jnp.min(losses)) * (1 + 1e-6)  # the best seen
    truth = zdx_base.ravel(tiny.true_params)[0]
    onp.testing.assert_allclose(zdx_base.ravel(params)[0], truth, rtol=1e-6)


def test_natural_gradient_descent_stops_with_a_warning_when_it_blows_up(tiny):
    args = (tiny.optics, tiny.observations)
    start = _perturbed(tiny.true_params, 3.0)
    with pytest.warns(RuntimeWarning, match="natural gradient: (stopped after|the loss became)"):
        params, losses, history = ex.natural_gradient_descent(
            start, args, steps=50, learning_rate=9.9, progress=False
        )
    assert losses.size < 50 and history.shape == (losses.size + 1, 9)
    # What comes back is the best point seen, never the one that broke.
    assert float(ex.loss_fn(params, args)) <= float(losses.min()) * (1 + 1e-9)
    assert bool(jnp.all(jnp.isfinite(zdx_base.ravel(params)[0])))


def test_natural_gradient_descent_stops_at_an_unusable_refreshed_curvature(tiny):
    # Refreshed every step, at a rate far above the Newton step, the curvature stops being
    # positive definite within a few steps: the descent says so and keeps its best point.
    args = (tiny.optics, tiny.observations)
    start = _perturbed(tiny.true_params, 3.0)
    with pytest.warns(
        RuntimeWarning,
        match=r"stopped after \d+ steps: natural_gradient_descent: the refreshed loss "
        "curvature must be positive definite",
    ):
        params, losses, _ = ex.natural_gradient_descent(
            start, args, steps=50, learning_rate=9.9, refresh_every=1, progress=False
        )
    assert 0 < losses.size < 50
    assert float(ex.loss_fn(params, args)) <= float(losses.min()) * (1 + 1e-9)


def test_natural_gradient_descent_refuses_bad_settings(tiny):
    args = (tiny.optics, tiny.observations)
    fn = "natural_gradient_descent"
    with pytest.raises(ValueError, match=f"{fn}: steps must be an integer >= 1, got steps=0"):
        ex.natural_gradient_descent(tiny.true_params, args, steps=0)
    with pytest.raises(
        ValueError, match=f"{fn}: learning_rate must be a finite number > 0 and <= 10, got"
    ):
        ex.natural_gradient_descent(tiny.true_params, args, learning_rate=-0.1)
    with pytest.raises(ValueError, match=f"{fn}: refresh_every must be an integer >= 1"):
        ex.natural_gradient_descent(tiny.true_params, args, refresh_every=0)
    with pytest.raises(TypeError, match=f"{fn}: steps must be an integer >= 1, got float 2.5"):
        ex.natural_gradient_descent(tiny.true_params, args, steps=2.5)


def test_whitened_lbfgs_records_every_loss_evaluation(tiny):
    args = (tiny.optics, tiny.observations)
    start = _perturbed(tiny.true_params, 3.0, seed=1)
    curvature = ex.loss_curvature(start, *args)
    result, losses = ex.whitened_lbfgs(start, args, curvature, progress=False)
    assert losses.ndim == 1 and losses.size >= int(result.num_steps) >= 1
    assert float(losses[0]) == pytest.approx(float(ex.loss_fn(start, args)), rel=1e-12)
    assert float(losses[-1]) == pytest.approx(float(result.loss), rel=1e-12)
    assert float(result.loss) < 1e-8 * float(losses[0])


def test_hessian_covariance_is_the_inverse_hessian_of_minus_loglike(tiny):
    args = (tiny.optics, tiny.observations)
    hessian, covariance = ex.hessian_covariance(tiny.true_params, args, progress=False)
    flat, unravel, _ = zdx_base.ravel(tiny.true_params)
    exact = jax.hessian(lambda x: -ex.loglike_fn(unravel(x), args))(flat)
    onp.testing.assert_allclose(hessian, exact, rtol=1e-8, atol=1e-10 * float(jnp.max(exact)))
    onp.testing.assert_allclose(covariance @ exact, jnp.eye(9), atol=1e-6)


def test_hessian_covariance_refuses_parameters_the_data_does_not_see(tiny):
    blue_only = (tiny.optics, tiny.observations[:1])  # the red position and flux are free
    with pytest.raises(ValueError, match=r"hessian_covariance: .* must be positive definite"):
        ex.hessian_covariance(tiny.true_params, blue_only, progress=False)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"ngd_steps": 0}, "fit: ngd_steps must be an integer >= 1, got ngd_steps=0"),
        ({"max_steps": -1}, "fit: max_steps must be an integer >= 1, got max_steps=-1"),
        ({"nuts_samples": 2}, "fit: nuts_samples must be 0 .no sampling. or >= 4, got"),
        ({"nuts_chains": 0}, "fit: nuts_chains must be an integer >= 1, got nuts_chains=0"),
        ({"learning_rate": 20}, "fit: learning_rate must be a finite number > 0 and <= 10"),
    ],
)
def test_fit_refuses_bad_settings(tiny, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ex.fit(tiny, progress=False, **kwargs)


# ---- NUTS, on a correlated Gaussian whose answer is known


MEAN = {"a": jnp.array(1.0), "b": jnp.array([-2.0, 3.0])}
COV = jnp.array([[0.04, 0.01, 0.0], [0.01, 0.09, -0.02], [0.0, -0.02, 0.25]])
PRECISION = jnp.linalg.inv(COV)


def gaussian_loglike(params):
    d = zdx_base.ravel(params)[0] - zdx_base.ravel(MEAN)[0]
    return -0.5 * d @ PRECISION @ d


def test_sample_posterior_draws_the_known_gaussian():
    samples = ex.sample_posterior(
        gaussian_loglike, MEAN, PRECISION, num_warmup=200, num_samples=1000, progress=False
    )
    assert samples.backend == "zdx_sample"
    assert samples.draws.shape == (1, 1000, 3)
    assert samples.names == zdx_base.scalar_names(MEAN) == ("a", "b[0]", "b[1]")
    sigma = jnp.sqrt(jnp.diag(COV))
    # NUTS draws of a Gaussian are nearly independent: the mean is off by ~sigma / sqrt(1000).
    onp.testing.assert_array_less(jnp.abs(samples.mean - zdx_base.ravel(MEAN)[0]), 5 * sigma / 30)
    onp.testing.assert_allclose(samples.sigma, sigma, rtol=0.15)
    assert float(jnp.max(samples.r_hat)) < 1.05
    assert samples.divergences == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_warmup": -1}, "sample_posterior: num_warmup must be an integer >= 0, got"),
        ({"num_samples": 3}, "sample_posterior: num_samples must be an integer >= 4, got"),
        ({"num_chains": 0}, "sample_posterior: num_chains must be an integer >= 1, got"),
    ],
)
def test_sample_posterior_refuses_bad_lengths(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ex.sample_posterior(gaussian_loglike, MEAN, PRECISION, **kwargs)
