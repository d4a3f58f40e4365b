"""dLux (which requires zodiax>=0.5 and subclasses its Base) runs on this zodiax."""

import pathlib

import jax
import jax.numpy as jnp
import pytest

import zodiax

dl = pytest.importorskip("dLux")
dlu = pytest.importorskip("dLux.utils")

NPIX = 32


def test_dlux_takes_this_zodiax():
    here = pathlib.Path(zodiax.__file__).resolve()
    assert here.parts[-4:] == ("zodiax", "src", "zodiax", "__init__.py"), here
    assert issubclass(dl.AngularOpticalSystem, zodiax.Base)


@pytest.fixture(scope="module")
def optics():
    coords = dlu.pixel_coords(NPIX, 1.0)
    aperture = dlu.circle(coords, 0.5) - dlu.circle(coords, 0.1)
    basis = dlu.zernike_basis(jnp.arange(4, 8), coords, 1.0)
    layers = [
        ("aperture", dl.layers.TransmissiveLayer(aperture, normalise=True)),
        ("wfe", dl.layers.BasisLayer(basis, jnp.zeros(4))),
    ]
    return dl.AngularOpticalSystem(NPIX, 1.0, layers, 16, 0.1)


def test_propagate(optics):
    psf = optics.propagate(jnp.array([1e-6, 1.2e-6]), jnp.zeros(2))
    assert psf.shape == (16, 16)
    assert 0.5 < float(psf.sum()) <= 1.0 + 1e-6
    assert jnp.all(jnp.isfinite(psf))


def test_set_and_get_through_getattr_shortcuts(optics):
    coefficients = jnp.arange(4.0) * 1e-8
    via_layer = optics.set("wfe.coefficients", coefficients)
    via_shortcut = optics.set("coefficients", coefficients)
    assert jnp.array_equal(via_layer.layers["wfe"].coefficients, coefficients)
    assert jnp.array_equal(via_shortcut.get("coefficients"), coefficients)
    assert jnp.array_equal(via_shortcut.coefficients, via_layer.wfe.coefficients)
    moved = optics.add("psf_pixel_scale", 0.05)
    assert float(moved.psf_pixel_scale) == pytest.approx(0.15)
    with pytest.raises(KeyError, match="'aperture', 'wfe'"):
        optics.get("layers.mirror")


def test_differentiate_through_dlux(optics):
    wavels = jnp.array([1e-6])

    def peak(coefficients):
        return optics.set("coefficients", coefficients).propagate(wavels, jnp.zeros(2)).max()

    x = jnp.full(4, 2e-8)
    grad = jax.grad(peak)(x)
    # check one direction against a central finite difference
    h = 1e-10
    e = jnp.zeros(4).at[0].set(h)
    finite_difference = (peak(x + e) - peak(x - e)) / (2 * h)
    assert jnp.all(jnp.isfinite(grad))
    assert float(grad[0]) == pytest.approx(float(finite_difference), rel=1e-4)
