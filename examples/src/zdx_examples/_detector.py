"""The detector-calibration problem: a pixel response fitted with the optics, on dLux.

A telescope with a secondary obstruction and a spider images a star through a defocus, at
several wavelengths, dithered over a grid of pointings. The detector blurs each image by a
jitter and multiplies it pixel by pixel by its response. The parameters are the
log10 flux, the star's position (arcseconds), the Zernike coefficients of the pupil
(nanometres), the log of the jitter (pixels; the blur is even in the jitter, so its sign
would be a second mode) and the log of the pixel response (one number per pixel):
for a ``npix x npix`` detector, ``npix**2 + 22`` numbers, almost all of them responses that
each touch one pixel of every image. It is the problem of dLux's instrumental-calibration
tutorial, sized by ``npix``.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import dLux as dl
import dLux.utils as dlu
import jax
import jax.numpy as jnp
import numpy as onp

from zdx_base import checks

from ._telescope import allow_rank_promotion

NOLL_TERMS = tuple(range(4, 22))  # defocus to the fifth radial order: 18 terms
TRUE_JITTER = 1.0  # pixels: where the images determine it (below about 0.5 they barely do)
BACKGROUND = 100.0  # counts per pixel added to the variance (read noise and sky)
# XLA's CPU backend (jaxlib 0.10) can crash with a segmentation fault while running this
# model's derivatives compiled at its default optimisation level; level 1 avoids it. It
# must be in XLA_FLAGS before JAX starts its backend (importing dLux already does).
SAFE_XLA_FLAG = "--xla_backend_optimization_level=1"


class DetectorProblem(NamedTuple):
    """A simulated calibration data set and the model that made it."""

    model: Any
    """``params -> images``: the expected counts, shape ``(ndither**2, npix, npix)``."""
    truth: dict
    """The parameters the data were simulated from."""
    data: jax.Array
    """The simulated counts."""
    sigma: jax.Array
    """The standard error of every pixel (Poisson and background)."""
    settings: dict
    """``npix``, ``pupil_npix``, ``ndither``, ``nwavels``, ``seed``: how it was built."""

    @property
    def residuals(self) -> Any:
        """``params -> (model - data) / sigma``: its sum of squares is the chi-squared.

        A ``functools.partial`` of the model and the data only, so that fits of data sets
        simulated with other seeds reuse one compiled program (the family's reuse rule
        compares everything but arrays by value).
        """
        return functools.partial(_residuals, self.model, self.data, self.sigma)

    @property
    def scaled_model(self) -> Any:
        """``params -> model / sigma``: the function whose Jacobian gives the Fisher matrix."""
        return functools.partial(_scaled_model, self.model, self.sigma)

    def chi2(self, params: Any) -> jax.Array:
        """The chi-squared of ``params`` against the data."""
        return jnp.sum(self.residuals(params) ** 2)


def _residuals(model: Any, data: jax.Array, sigma: jax.Array, params: Any) -> jax.Array:
    return (model(params) - data) / sigma


def _scaled_model(model: Any, sigma: jax.Array, params: Any) -> jax.Array:
    return model(params) / sigma


def _optics(pupil_npix: int, npix: int, wavelengths: jax.Array) -> tuple[Any, float]:
    coords = dlu.pixel_coords(pupil_npix, 1.0)
    primary = dlu.circle(coords, 0.5)
    secondary = dlu.circle(coords, 0.12)
    spider = dlu.rectangle(dlu.translate_coords(coords, jnp.array([0.0, 0.25])), 0.05, 0.5)
    aperture = primary * (1.0 - secondary) * (1.0 - spider)
    basis = 1e-9 * jnp.stack([dlu.zernike(j, coords, 1.0) for j in NOLL_TERMS])
    focus = dlu.zernike(4, coords, 1.0)
    focus = focus / (focus.max() - focus.min()) * float(wavelengths.mean())
    # Pixels of about half the diffraction width at the mean wavelength.
    pixel_arcsec = 0.35 * float(wavelengths.mean()) * 206265.0
    layers = [
        (
            "pupil",
            dl.layers.BasisOptic(basis, aperture, jnp.zeros(len(NOLL_TERMS)), normalise=True),
        ),
        ("defocus", dl.layers.AberratedLayer(opd=focus)),
    ]
    return dl.AngularOpticalSystem(pupil_npix, 1.0, layers, npix, pixel_arcsec), pixel_arcsec


def detector_problem(
    npix: int = 32,
    *,
    pupil_npix: int = 64,
    ndither: int = 3,
    nwavels: int = 3,
    response_scatter: float = 0.05,
    flat: float = 0.0,
    seed: int = 0,
) -> DetectorProblem:
    """Build the calibration problem and simulate its data.

    Parameters
    ----------
    npix
        Detector pixels on a side: the pixel response has ``npix**2`` parameters.
    pupil_npix
        Pupil samples on a side.
    ndither
        Pointings on a side of the dither grid (``ndither**2`` images).
    nwavels
        Wavelengths between 0.75 and 1 micron.
    response_scatter
        The true pixel response is ``exp(response_scatter * N(0, 1))``. The response is
        fitted by its logarithm: its overall scale is degenerate with the flux, and in
        logarithms that degeneracy is a straight line (``log_flux`` against the mean of
        ``log_response``), along which a Gaussian prior gives an exactly Gaussian posterior.
    flat
        Counts per pixel and image of a uniform illumination (a flat-field lamp or the sky)
        that the response multiplies too: with it every pixel's response is seen, not only
        those the star's dithered images reach. 0 (the default) is the tutorial's problem.
    seed
        The random seed of the truth and the noise.

    Returns
    -------
    DetectorProblem

    Raises
    ------
    TypeError, ValueError
        If a size is not an integer of at least 1 (``npix`` at least 4).
    """
    npix = checks.check_int("detector_problem", "npix", npix, minimum=4)
    pupil_npix = checks.check_int("detector_problem", "pupil_npix", pupil_npix, minimum=8)
    ndither = checks.check_int("detector_problem", "ndither", ndither, minimum=1)
    nwavels = checks.check_int("detector_problem", "nwavels", nwavels, minimum=1)
    flat = checks.check_number("detector_problem", "flat", flat, minimum=0)
    wavelengths = 1e-6 * jnp.linspace(0.75, 1.0, nwavels)
    optics, pixel_arcsec = _optics(pupil_npix, npix, wavelengths)
    # The dithers span a quarter of the detector, so every pixel sees the star's wings.
    steps = (jnp.arange(ndither) - (ndither - 1) / 2) * npix * pixel_arcsec / (ndither + 1)
    dithers = jnp.stack(jnp.meshgrid(steps, steps), axis=-1).reshape(-1, 2)

    def model(params: Any) -> jax.Array:
        with allow_rank_promotion():
            telescope = optics.set("pupil.coefficients", params["zernikes"])
            detector = dl.LayeredDetector(
                [
                    ("jitter", dl.ApplyJitter(jnp.exp(params["log_jitter"]), 5, 1)),
                    ("response", dl.ApplyPixelResponse(jnp.exp(params["log_response"]))),
                ]
            )
            pointings = dlu.arcsec2rad(params["position"][None, :] + dithers)

            def image(pointing):
                psf = telescope.propagate(wavelengths, pointing, return_psf=True)
                return detector(psf)  # the layers in order (a LayeredDetector has no `apply`)

            images = 10.0 ** params["log_flux"] * jax.vmap(image)(pointings)
            if flat:
                images = images + flat * jnp.exp(params["log_response"])
            return images

    keys = jax.random.split(jax.random.key(seed), 3)
    truth = {
        "log_flux": jnp.asarray(6.0),
        "position": jnp.array([0.01, -0.02]),
        "zernikes": 5.0 * jax.random.normal(keys[0], (len(NOLL_TERMS),)),
        "log_jitter": jnp.log(jnp.asarray(TRUE_JITTER)),
        "log_response": response_scatter * jax.random.normal(keys[1], (npix, npix)),
    }
    expected = model(truth)
    sigma = jnp.sqrt(expected + BACKGROUND)
    data = expected + sigma * jax.random.normal(keys[2], expected.shape)
    settings = {
        "npix": npix,
        "pupil_npix": pupil_npix,
        "ndither": ndither,
        "nwavels": nwavels,
        "flat": float(flat),
        "seed": seed,
        "nparams": int(sum(onp.size(v) for v in truth.values())),
    }
    return DetectorProblem(model, truth, data, sigma, settings)
