"""dLuxToliman 0.5.1 (requires zodiax==0.5.*): a small Toliman workflow on this zodiax."""

import dLux
import dLuxToliman as dlT
import jax
import jax.numpy as jnp
import pytest

import zodiax


@pytest.fixture(scope="module")
def telescope():
    optics = dlT.TolimanOpticalSystem(
        wf_npixels=64, psf_npixels=16, oversample=2, noll_indices=jnp.arange(4, 8)
    )
    return dlT.Toliman(optics, dlT.AlphaCen(n_wavels=2))


def test_dluxtoliman_runs_on_our_zodiax(telescope, assert_zodiax_is_ours):
    assert_zodiax_is_ours(zodiax)
    assert isinstance(telescope, zodiax.Base) and isinstance(telescope, dLux.Telescope)


def test_model_a_psf(telescope):
    psf = telescope.model()
    assert psf.shape == (32, 32)
    assert bool(jnp.all(jnp.isfinite(psf))) and float(psf.min()) >= 0.0
    # a 16-pixel crop of the diffractive pupil's wide PSF holds part of the 10**log_flux
    # photons, never more
    assert 0.05 < float(psf.sum()) / 10 ** float(telescope.source.log_flux) <= 1.0 + 1e-9


def test_edit_by_path_through_the_telescopes_getattr(telescope):
    # "separation" lives on the source and "coefficients" on the optics: Toliman's own
    # __getattr__ finds them, as zodiax 0.5's paths did
    assert float(telescope.get("separation")) == 10.0
    edited = telescope.set("separation", 12.0).add("coefficients", jnp.arange(4.0))
    assert float(edited.source.separation) == 12.0
    assert jnp.array_equal(edited.get("coefficients"), jnp.arange(4.0))
    assert float(telescope.source.separation) == 10.0  # the original is unchanged
    moved = telescope.set(["x_position", "y_position"], [0.5])  # one value for both paths
    assert (float(moved.source.x_position), float(moved.source.y_position)) == (0.5, 0.5)
    assert not jnp.allclose(moved.model(), telescope.model())


def test_gradient_matches_finite_differences(telescope, central_difference):
    data = telescope.set("separation", 10.2).model()

    def loss(separation):
        model = telescope.set("separation", separation).model()
        return jnp.sum((model - data) ** 2) / jnp.sum(data**2)

    gradient = float(jax.grad(loss)(10.0))
    finite = central_difference(loss, 10.0, 1e-4)
    assert gradient < 0.0  # moving towards the data's separation lowers the loss
    assert gradient == pytest.approx(finite, rel=1e-5)
