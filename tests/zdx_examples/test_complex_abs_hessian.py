"""JAX 0.12.1's second derivative of a complex ``abs`` at 0 is NaN, and the optics model of
the examples no longer meets it.

dLux's ``Wavefront.normalise`` sums ``abs(phasor) ** 2``, and the phasor is 0 wherever the
aperture blocks the light: on JAX 0.12.1 every Hessian through a normalising dLux aperture
was NaN (the optics fit's Hessian error bars, ``tests/zdx_examples/test_pipeline.py``). The
examples' telescope uses :class:`NormalisingAperture`, which sums ``real**2 + imag**2``.
The reproducers below are marked so that a JAX that fixes the derivative is noticed.
"""

import dLux as dl
import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from zdx_batching.compat import COMPLEX_ABS_HESSIAN_NAN_AT_ZERO
from zdx_examples import optics as ex

JAX_BUG = pytest.mark.xfail(
    COMPLEX_ABS_HESSIAN_NAN_AT_ZERO,
    strict=True,  # a JAX that fixes it makes this XPASS, a failure: then drop the mark
    reason="JAX 0.12.1: the second derivative of a complex abs at 0 is NaN",
)

TRANSMISSION = jnp.array([[0.0, 1.0, 0.5], [1.0, 1.0, 0.0], [0.25, 1.0, 1.0]])  # zeros: blocked
X = jnp.linspace(-1.0, 1.0, 9).reshape(3, 3)  # where each pupil pixel is
WEIGHTS = jnp.linspace(0.5, 2.0, 9).reshape(3, 3)


@JAX_BUG
def test_jax_second_derivative_of_the_power_of_a_phasor_with_a_zero_is_finite():
    # The smallest program: |0 * e^{2it}|² has the derivatives of 0, but JAX 0.12.1 says NaN.
    def power(t):
        phasor = jnp.array([1.0, 0.0]) * jnp.exp(1j * t * jnp.array([1.0, 2.0]))
        return jnp.sum(jnp.abs(phasor) ** 2)

    assert bool(jnp.isfinite(jax.hessian(power)(0.3)))


def weighted_intensity(layer, a):
    """``sum(weights * |E|²)`` after ``layer``, for an incoming amplitude ``exp(a * x)``
    with a phase: smooth in ``a``, and the layer's normalisation is what depends on it.
    (``|E|²`` as ``real² + imag²``: only the layer may meet the complex ``abs``.)"""
    wavefront = dl.Wavefront(wavelength=1e-6, npixels=3, diameter=1.0)
    wavefront = wavefront.multiply("phasor", jnp.exp((a + 0.7j) * X))
    phasor = layer(wavefront).phasor
    return jnp.sum(WEIGHTS * (phasor.real**2 + phasor.imag**2))


def exact_weighted_intensity(a):
    """The same in real arithmetic: ``sum(w T² e^{2ax}) / sum(T² e^{2ax})``."""
    intensity = TRANSMISSION**2 * jnp.exp(2 * a * X)
    return jnp.sum(WEIGHTS * intensity) / jnp.sum(intensity)


def test_normalising_aperture_matches_dluxs_normalising_layer():
    ours = ex.NormalisingAperture(TRANSMISSION)
    theirs = dl.TransmissiveLayer(TRANSMISSION, normalise=True)
    assert ours.normalise and onp.array_equal(ours.transmission, TRANSMISSION)
    for a in (-0.4, 0.0, 0.9):
        onp.testing.assert_allclose(
            weighted_intensity(ours, a), weighted_intensity(theirs, a), rtol=1e-14
        )
        onp.testing.assert_allclose(
            weighted_intensity(ours, a), exact_weighted_intensity(a), rtol=1e-13
        )


def test_normalising_aperture_has_the_exact_hessian_on_every_jax():
    ours = jax.hessian(lambda a: weighted_intensity(ex.NormalisingAperture(TRANSMISSION), a))
    onp.testing.assert_allclose(ours(0.3), jax.hessian(exact_weighted_intensity)(0.3), rtol=1e-10)


@JAX_BUG
def test_dluxs_normalising_layer_has_a_finite_hessian():
    layer = dl.TransmissiveLayer(TRANSMISSION, normalise=True)
    assert bool(jnp.isfinite(jax.hessian(lambda a: weighted_intensity(layer, a))(0.3)))


def test_the_examples_telescope_normalises_with_normalising_aperture():
    optics = ex.build_optics(npix=8, psf_npixels=4, n_zernike=1)
    assert type(optics.layers["aperture"]) is ex.NormalisingAperture
