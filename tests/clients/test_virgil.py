"""virgil-astro (requires zodiax>=0.4.1): a small interferometry workflow on this zodiax."""

import jax
import jax.numpy as jnp
import pytest
from virgil.models import GaussianDisk, PointSource, System

import zodiax

U = jnp.linspace(-40.0, 40.0, 9)  # baselines in metres
V = jnp.linspace(30.0, -30.0, 9)
WAVELENGTH = 2.2e-6


@pytest.fixture(scope="module")
def scene():
    return System(star=PointSource(), disk=GaussianDisk(sigma=3.0, flux=0.2, dra=10.0))


def test_virgil_runs_on_our_zodiax(scene, assert_zodiax_is_ours):
    assert_zodiax_is_ours(zodiax)
    assert isinstance(scene, zodiax.Base)


def test_visibilities(scene):
    vis = scene.model(U, V, WAVELENGTH)
    assert vis.shape == U.shape and jnp.iscomplexobj(vis)
    assert float(jnp.abs(scene.model(jnp.zeros(1), jnp.zeros(1), WAVELENGTH))[0]) == (
        pytest.approx(1.0, abs=1e-12)  # normalised at zero baseline
    )
    assert bool(jnp.all(jnp.abs(vis) <= 1.0 + 1e-12))


def test_edit_by_path(scene):
    assert float(scene.get("disk.sigma")) == 3.0
    edited = scene.set("disk.sigma", 4.0).multiply(["disk.flux"], [0.5])
    assert (float(edited.disk.sigma), float(edited.disk.flux)) == (4.0, 0.1)
    values = edited.get(["disk.sigma", "disk.flux"], as_dict=True)
    assert {k: float(v) for k, v in values.items()} == {"disk.sigma": 4.0, "disk.flux": 0.1}


def test_gradient_matches_finite_differences(scene, central_difference):
    data = jnp.abs(scene.set("disk.sigma", 3.5).model(U, V, WAVELENGTH)) ** 2

    def chi2(sigma):
        model = jnp.abs(scene.set("disk.sigma", sigma).model(U, V, WAVELENGTH)) ** 2
        return jnp.sum((model - data) ** 2)

    gradient = float(jax.grad(chi2)(3.0))
    finite = central_difference(chi2, 3.0, 1e-5)
    assert gradient < 0.0
    assert gradient == pytest.approx(finite, rel=1e-6)
