"""The sum-of-Gaussians example: the model, its simulated data and the starting guess."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as onp
import pytest

from zdx_examples import gaussians


@pytest.fixture(scope="module")
def sim():
    return gaussians.simulate()


def test_model_is_the_sum_of_powered_gaussians():
    model = gaussians.GaussianModel(mean=[2, -3], std=[0.5, 2], power=[1.5, 1])
    x = onp.linspace(-10, 10, 500)
    expected = sum(
        onp.exp(-0.5 * ((x - m) / s) ** 2) ** p / (s * onp.sqrt(2 * onp.pi))
        for m, s, p in [(2, 0.5, 1.5), (-3, 2, 1)]
    )
    onp.testing.assert_allclose(model(), expected, rtol=1e-12, atol=1e-300)
    onp.testing.assert_allclose(model.xs, x, rtol=0, atol=1e-14)


def test_params_replace_the_models_values():
    model = gaussians.default_model()
    moved = model({"mean": jnp.array([0.0, 1.0])})
    expected = gaussians.GaussianModel(mean=[0, 1], std=[0.5, 2], power=[1.5, 1])()
    onp.testing.assert_allclose(moved, expected, rtol=1e-12)


def test_a_single_gaussian_of_power_one_integrates_to_one():
    model = gaussians.GaussianModel(mean=0.0, std=1.0, power=1.0, width=12, nsamples=4001)
    assert float(jnp.trapezoid(model(), model.xs)) == pytest.approx(1.0, abs=1e-12)


def test_simulation_is_the_tutorials(sim):
    model = gaussians.GaussianModel(mean=[2, -3], std=[0.5, 2], power=[1.5, 1])
    true_values = model()
    data = true_values + 0.05 * jr.normal(jr.key(0), true_values.shape)
    onp.testing.assert_array_equal(sim.true_values, true_values)
    onp.testing.assert_array_equal(sim.data, data)
    assert float(sim.error) == 0.05


def test_init_params_is_the_tutorials(sim):
    keys = jr.split(jr.key(1), 3)
    params = gaussians.init_params(sim.model)
    onp.testing.assert_array_equal(params["mean"], jr.uniform(keys[0], (2,)) + sim.model.mean)
    onp.testing.assert_array_equal(params["std"], jr.uniform(keys[1], (2,)) + sim.model.std)
    onp.testing.assert_array_equal(params["power"], jr.uniform(keys[2], (2,)) + sim.model.power)


def test_truth_fits_the_data_to_within_the_noise(sim):
    z = (sim.true_values - sim.data) / sim.error
    assert abs(float(jnp.mean(z**2)) - 1) < 4 * onp.sqrt(2 / z.size)
    truth = {"mean": sim.model.mean, "std": sim.model.std, "power": sim.model.power}
    args = (sim.model, sim.data, sim.error)
    assert float(gaussians.loss_fn(truth, args)) == pytest.approx(float(jnp.mean(z**2)), rel=1e-12)
    start = gaussians.init_params(sim.model)
    assert float(gaussians.loss_fn(start, args)) > 5


def test_neg_loglike_gradient_matches_finite_differences(sim):
    args = (sim.model, sim.data, sim.error)
    params = gaussians.init_params(sim.model)
    grads = jax.grad(gaussians.neg_loglike_fn)(params, args)
    h = 1e-6
    for key in params:
        for i in range(2):
            up = dict(params, **{key: params[key].at[i].add(h)})
            down = dict(params, **{key: params[key].at[i].add(-h)})
            numeric = gaussians.neg_loglike_fn(up, args) - gaussians.neg_loglike_fn(down, args)
            assert float(grads[key][i]) == pytest.approx(float(numeric) / (2 * h), rel=1e-6)


def test_neg_loglike_is_the_gaussian_closed_form(sim):
    truth = {"mean": sim.model.mean, "std": sim.model.std, "power": sim.model.power}
    r = onp.asarray(sim.true_values - sim.data)
    expected = 0.5 * (r**2).sum() / 0.05**2 + r.size * onp.log(0.05 * onp.sqrt(2 * onp.pi))
    value = float(gaussians.neg_loglike_fn(truth, (sim.model, sim.data, sim.error)))
    assert value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mean": [1.0, 2.0], "std": [1.0], "power": [1.0]}, "same shape"),
        ({"mean": [1.0], "std": [1.0], "power": [1.0, 2.0]}, "same shape"),
        ({"mean": 1.0, "std": 1.0, "power": 1.0, "width": 0}, "width"),
        ({"mean": 1.0, "std": 1.0, "power": 1.0, "nsamples": 0}, "nsamples"),
    ],
)
def test_bad_model_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gaussians.GaussianModel(**kwargs)


def test_bad_error_is_named():
    with pytest.raises(ValueError, match="error"):
        gaussians.simulate(error=0.0)
