"""The sign search over the even Zernike terms: every method converges from every seed."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from zdx_examples import optics as ex
from zdx_examples._curvature import loss_curvature_fn
from zdx_examples._start import choose_start, even_zernike_terms, flip_even_terms, sign_patterns
from zdx_examples.optics import filter_set


def test_even_terms_are_those_of_even_radial_order():
    # Noll 4..14: defocus, 2 astigmatisms (n=2), 2 comae, 2 trefoils (n=3), spherical and
    # 4 more of n=4.
    assert even_zernike_terms(11) == (0, 1, 2, 7, 8, 9, 10)
    assert even_zernike_terms(1) == (0,)


def test_sign_patterns_are_all_distinct_and_include_the_mirror_image():
    patterns = sign_patterns(3)
    assert patterns.shape == (8, 3)
    assert len({tuple(p) for p in patterns}) == 8
    assert patterns[0].tolist() == [1, 1, 1] and patterns[-1].tolist() == [-1, -1, -1]


def test_flip_changes_only_the_even_terms():
    params = {"wfe": jnp.arange(1.0, 6.0), "flux": jnp.array(3.0)}
    flipped = flip_even_terms(params, (0, 2), [[1, 1], [-1, 1], [-1, -1]])
    onp.testing.assert_array_equal(
        flipped["wfe"], [[1, 2, 3, 4, 5], [-1, 2, 3, 4, 5], [-1, 2, -3, 4, 5]]
    )
    onp.testing.assert_array_equal(flipped["flux"], [3.0, 3.0, 3.0])


@pytest.fixture(scope="module")
def optics():
    return ex.build_optics(filters=filter_set(3), npix=64, psf_npixels=24, n_zernike=7)


def test_the_loss_curvature_maps_over_many_starts(optics):
    # the sign search runs it under vmap (zdx_opt.fit_many): each row is the one-start value
    sim = ex.simulate(optics, seed=1, n_images=20)
    args = (optics, sim.observations)
    starts = jax.tree.map(lambda leaf: jnp.stack([leaf, 1.01 * leaf]), sim.true_params)
    many = eqx.filter_jit(jax.vmap(loss_curvature_fn, in_axes=(0, None)))(starts, args)
    for i in range(2):
        one = jax.tree.map(lambda leaf, i=i: leaf[i], starts)
        onp.testing.assert_allclose(many[i], ex.loss_curvature(one, *args), rtol=1e-9, atol=1e-12)


def test_a_centrosymmetric_pupil_cannot_tell_the_sign_of_the_even_terms():
    # The physics behind the search: with a pupil equal to itself turned by half a turn
    # (no spiders), flipping every even term leaves the image unchanged; our three
    # spiders break the symmetry, so the data can tell (slightly).
    filters = {"blue": jnp.linspace(1.0, 1.2, 3)}
    for spiders, same in [((), True), ((90.0, 210.0, 330.0), False)]:
        optics = ex.build_optics(
            filters, npix=32, psf_npixels=16, n_zernike=7, spider_angles=spiders
        )
        obs = ex.Observation(0.0, 0.0, "blue")
        params = {
            "wfe": jnp.array([40.0, -30.0, 20.0, 15.0, -10.0, 5.0, 8.0]),
            "position": {"blue": jnp.array([0.05, -0.02])},
            "flux": {"blue": jnp.array(5.0)},
        }
        mirror = {**params, "wfe": params["wfe"] * jnp.array([-1, -1, -1, 1, 1, 1, 1.0])}
        image, flipped = obs(params, optics), obs(mirror, optics)
        difference = float(jnp.max(jnp.abs(image - flipped)) / jnp.max(image))
        if same:
            assert difference < 1e-10
        else:
            assert difference > 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 5, 6])
def test_each_method_converges_on_its_own_after_the_sign_search(optics, seed):
    # Seeds 3, 5 and 6 are those where the natural gradient from the data-based start
    # ends far from the noise at these sizes (chi2r 5e3, 2e5, 2e4).
    sim = ex.simulate(optics, seed=seed, n_images=1000)
    args = (optics, sim.observations)
    choice = choose_start(ex.start_params(sim.observations, optics), args)
    assert choice.losses.shape == (8,)
    assert int(jnp.argmin(choice.losses)) == choice.chosen
    ngd, _, _ = ex.natural_gradient_descent(choice.params, args, steps=100, progress=False)
    curvature = ex.loss_curvature(choice.params, *args)
    lbfgs, _ = ex.whitened_lbfgs(choice.params, args, curvature, progress=False)
    for params in (ngd, lbfgs.params):
        chi2r = float(ex.get_reduced_chi2(params, optics, sim.observations))
        assert 0.9 <= chi2r <= 1.1
        # the even terms have the sign of the truth
        even = jnp.asarray(even_zernike_terms(7))
        truth = sim.true_params["wfe"][even]
        big = jnp.abs(truth) > 5
        assert bool(jnp.all(jnp.sign(params["wfe"][even])[big] == jnp.sign(truth)[big]))
    jax.clear_caches()


def test_the_sign_search_names_its_caller_when_a_step_count_is_out_of_range():
    from zdx_examples._start import search_signs

    starts = {"wfe": jnp.zeros((2, 7))}
    for setting in ("pilot_steps", "trial_steps", "max_terms"):
        with pytest.raises(ValueError, match=rf"^calibrate_optics: {setting} must be an integer"):
            search_signs("calibrate_optics", starts, (None, []), **{setting: 0})
