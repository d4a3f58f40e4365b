"""Simulated observations of the optics example, the noise model, and the fit helpers."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as onp
import pytest
from jax.flatten_util import ravel_pytree

from zdx_examples import optics as ex

N_IMAGES = 1000


@pytest.fixture(scope="module")
def optics():
    return ex.build_optics(npix=64)


@pytest.fixture(scope="module")
def sim(optics):
    return ex.simulate(optics, seed=0, n_images=N_IMAGES)


def _stack(observations, field):
    return onp.array([getattr(obs, field) for obs in observations])


def test_simulation_is_the_tutorials_procedure(optics, sim):
    """Section 4 of the tutorial, written out, gives the same numbers."""
    observations = [ex.Observation(0.0, 0.0, f) for f in optics.filters]
    keys = jr.split(jr.key(0), 3)
    true_positions = 0.1 * jr.normal(keys[0], (3, 2))
    true_fluxes = 6 * jr.uniform(keys[1], (3,), minval=0.8, maxval=1.2)
    true_wfe = 50 * jr.normal(keys[2], optics.coefficients.shape)
    true_params = {
        "wfe": true_wfe,
        "position": {o.filter: true_positions[i] for i, o in enumerate(observations)},
        "flux": {o.filter: true_fluxes[i] for i, o in enumerate(observations)},
    }

    @eqx.filter_jit
    def tutorial_data(true_params, optics, observations):
        psfs = jnp.array([obs(true_params, optics) for obs in observations])
        raw = jax.vmap(lambda seed: ex.take_image(psfs, seed))(jnp.arange(N_IMAGES))
        return raw.mean(0), raw.std(0) / jnp.sqrt(N_IMAGES)

    data, error = tutorial_data(true_params, optics, observations)

    assert jax.tree.all(jax.tree.map(jnp.array_equal, sim.true_params, true_params))
    assert [obs.filter for obs in sim.observations] == ["blue", "green", "red"]
    onp.testing.assert_allclose(_stack(sim.observations, "data"), data, rtol=1e-12, atol=1e-9)
    onp.testing.assert_allclose(_stack(sim.observations, "error"), error, rtol=1e-9)
    assert sim.optics is optics


def test_simulation_is_reproducible_from_its_seed(optics, sim):
    again = ex.simulate(optics, seed=0, n_images=N_IMAGES)
    other = ex.simulate(optics, seed=1, n_images=N_IMAGES)
    onp.testing.assert_array_equal(
        _stack(again.observations, "data"), _stack(sim.observations, "data")
    )
    assert not onp.allclose(_stack(other.observations, "data"), _stack(sim.observations, "data"))
    assert not onp.allclose(other.true_params["wfe"], sim.true_params["wfe"])


def test_true_parameters_have_the_tutorials_scales(optics):
    flat = {s: ex.true_parameters(optics, s) for s in range(40)}
    wfe = onp.array([p["wfe"] for p in flat.values()])
    flux = onp.array([list(p["flux"].values()) for p in flat.values()])
    assert wfe.shape == (40, 7) and 35 < wfe.std() < 65
    assert flux.min() >= 4.8 and flux.max() <= 7.2


def test_truth_has_reduced_chi2_near_one(optics, sim):
    chi2r = float(ex.get_reduced_chi2(sim.true_params, optics, sim.observations))
    n_data = 3 * 32 * 32
    # chi2r of n independent z-scores scatters by sqrt(2 / n) around 1.
    assert abs(chi2r - 1) < 4 * onp.sqrt(2 / n_data)
    z = onp.asarray(ex.z_scores(sim.true_params, optics, sim.observations))
    assert abs(z.mean()) < 4 / onp.sqrt(n_data)


def test_start_is_far_from_truth_but_close_in_position_and_flux(optics, sim):
    params = ex.start_params(sim.observations, optics)
    onp.testing.assert_array_equal(params["wfe"], jnp.zeros(7))
    assert float(ex.get_reduced_chi2(params, optics, sim.observations)) > 1e4
    for obs in sim.observations:
        true_position = sim.true_params["position"][obs.filter]
        assert onp.abs(params["position"][obs.filter] - true_position).max() <= 0.075
        expected = onp.log10(obs.data.sum())
        assert float(params["flux"][obs.filter]) == pytest.approx(expected, rel=1e-12)
        # The field holds most of the light: log10(sum) sits just below the true flux.
        assert -0.05 < float(params["flux"][obs.filter] - sim.true_params["flux"][obs.filter]) < 0


def test_loss_and_loglike_are_the_closed_forms(optics, sim):
    params = sim.true_params
    model = onp.array([obs(params, optics) for obs in sim.observations])
    data, error = _stack(sim.observations, "data"), _stack(sim.observations, "error")
    z = (model - data) / error
    loss = float(ex.loss_fn(params, (optics, sim.observations)))
    assert loss == pytest.approx((z**2).sum(0).mean(), rel=1e-12)
    expected = -0.5 * (z**2).sum() - onp.log(error * onp.sqrt(2 * onp.pi)).sum()
    loglike = float(ex.loglike_fn(params, (optics, sim.observations)))
    assert loglike == pytest.approx(expected, rel=1e-12)


def test_gradients_are_finite_and_match_finite_differences(optics, sim):
    args = (optics, sim.observations)
    loss = eqx.filter_jit(ex.loss_fn)
    start = ex.start_params(sim.observations, optics)
    grads = eqx.filter_jit(jax.grad(ex.loss_fn))(start, args)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))

    x0, unravel = ravel_pytree(sim.true_params)
    x0 = x0 + 1e-3 * jr.normal(jr.key(3), x0.shape)
    direction = jr.normal(jr.key(4), x0.shape)
    _, slope = jax.jvp(lambda x: loss(unravel(x), args), (x0,), (direction,))
    h = 1e-5
    numeric = loss(unravel(x0 + h * direction), args) - loss(unravel(x0 - h * direction), args)
    numeric /= 2 * h
    assert float(slope) == pytest.approx(float(numeric), rel=1e-5)


def test_take_image_noise_has_poisson_plus_read_noise_statistics():
    psf = jnp.full((200, 200), 50.0)
    image = onp.asarray(ex.take_image(psf, seed=7, read_noise=10))
    n = image.size
    assert abs(image.mean() - 50) < 5 * onp.sqrt(150 / n)
    # The variance of a sample variance is about 2 sigma^4 / n (plus a small Poisson term).
    assert abs(image.var() - 150) < 5 * 150 * onp.sqrt(2 / n)


def test_take_image_without_read_noise_counts_photons():
    image = onp.asarray(ex.take_image(jnp.full((100, 100), 3.0), seed=0, read_noise=0))
    onp.testing.assert_array_equal(image, onp.round(image))
    assert abs(image.mean() - 3) < 5 * onp.sqrt(3 / image.size)
    assert abs(image.var() - 3) < 5 * 3 * onp.sqrt(2 / image.size + 1 / (3 * image.size))


def test_take_image_depends_only_on_its_seed():
    psf = jnp.full((4, 4), 100.0)
    onp.testing.assert_array_equal(ex.take_image(psf, 5), ex.take_image(psf, 5))
    assert not onp.array_equal(ex.take_image(psf, 5), ex.take_image(psf, 6))


def test_bad_simulation_arguments_are_named(optics):
    with pytest.raises(ValueError, match="n_images"):
        ex.simulate(optics, n_images=1)
    with pytest.raises(ValueError, match="read_noise"):
        ex.simulate(optics, read_noise=-1.0)
    with pytest.raises(ValueError, match="seed"):
        ex.simulate(optics, seed=-1)
    with pytest.raises(ValueError, match="read_noise"):
        ex.take_image(jnp.ones(3), 0, read_noise=float("inf"))


def test_simulation_refuses_zero_errors(optics, sim):
    faint = dict(sim.true_params, flux={f: jnp.asarray(0.0) for f in optics.filters})
    with pytest.raises(ValueError, match="errors contain zeros"):
        ex.simulate(optics, n_images=N_IMAGES, read_noise=0.0, true_params=faint)


def test_observation_names_missing_filters(optics, sim):
    with pytest.raises(KeyError, match=r"'infrared' is not in optics\.filters"):
        ex.Observation(0.0, 0.0, "infrared")(sim.true_params, optics)
    params = dict(sim.true_params, flux={"blue": jnp.asarray(6.0)})
    with pytest.raises(KeyError, match=r"params\['flux'\] has no entry for filter 'red'"):
        sim.observations[2](params, optics)
