"""The telescope of the hierarchical optics example: aperture, Zernike basis, optics.

This is the one home of the telescope model; ``zdx_examples.optics`` re-exports it with the
rest of the optics example (observations, simulation, loss and fit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import dLux as dl
import dLux.utils as dlu
import jax
import jax.numpy as jnp
import numpy as onp

from zdx_base import checks

from ._filters import check_filters, default_filters

# dLux broadcasts arrays of different ranks internally; allow it while we call into dLux
# even when a user (or a test suite) asks JAX to raise on implicit rank promotion.
_ALLOW_RANK_PROMOTION = "allow"


def allow_rank_promotion():
    """Context manager under which dLux's implicit broadcasting is allowed.

    dLux relies on NumPy-style rank promotion; this lets its calls trace even when
    ``jax_numpy_rank_promotion`` is set to ``"raise"``.

    >>> with allow_rank_promotion():
    ...     pass
    """
    return jax.numpy_rank_promotion(_ALLOW_RANK_PROMOTION)


def noll_to_nm(j: int) -> tuple[int, int]:
    """Radial order ``n`` and signed azimuthal order ``m`` of Noll index ``j``.

    Even ``j`` with ``m != 0`` is a cosine term (``m > 0``), odd ``j`` a sine term
    (``m < 0``), as in Noll (1976).

    Raises
    ------
    TypeError, ValueError
        If ``j`` is not an integer >= 1.

    >>> [noll_to_nm(j) for j in (1, 2, 3, 4, 5, 6)]
    [(0, 0), (1, 1), (1, -1), (2, 0), (2, -2), (2, 2)]
    """
    j = checks.check_int("noll_to_nm", "j", j, minimum=1)
    n = 0
    while (n + 1) * (n + 2) // 2 < j:
        n += 1
    first = n * (n + 1) // 2 + 1  # the first Noll index of radial order n
    # |m| runs over n % 2, n % 2 + 2, ..., n; each |m| > 0 takes two consecutive indices.
    abs_ms = []
    for abs_m in range(n % 2, n + 1, 2):
        abs_ms += [abs_m] if abs_m == 0 else [abs_m, abs_m]
    abs_m = abs_ms[j - first]
    if abs_m == 0:
        return n, 0
    return n, abs_m if j % 2 == 0 else -abs_m


def zernike_basis(js: Sequence[int], npix: int, diameter: float) -> jnp.ndarray:
    """Zernike polynomials (Noll order and normalisation) sampled on a square pupil grid.

    Each polynomial has unit RMS over the circle of diameter ``diameter`` and is zero
    outside it; the grid is the one dLux uses for a wavefront of ``npix`` pixels across
    ``diameter`` metres (pixel centres).

    Parameters
    ----------
    js : sequence of int
        Noll indices (1 is piston, 4 is defocus).
    npix : int
        Pixels across the grid.
    diameter : float
        Diameter of the grid and of the unit circle of the polynomials, metres.

    Returns
    -------
    basis : Array, shape ``(len(js), npix, npix)``

    >>> float(zernike_basis([1], 4, 1.0)[0, 1, 1])
    1.0
    """
    npix = checks.check_int("zernike_basis", "npix", npix, minimum=1)
    diameter = checks.check_number("zernike_basis", "diameter", diameter, positive=True)
    x = (onp.arange(npix) - (npix - 1) / 2) * (diameter / npix)
    xx, yy = onp.meshgrid(x, x)
    rho = onp.hypot(xx, yy) / (diameter / 2)
    theta = onp.arctan2(yy, xx)
    inside = rho <= 1.0
    basis = []
    for j in js:
        n, m = noll_to_nm(j)
        abs_m = abs(m)
        radial = onp.zeros_like(rho)
        for k in range((n - abs_m) // 2 + 1):
            coeff = (-1) ** k * math.factorial(n - k)
            coeff /= math.factorial(k)
            coeff /= math.factorial((n + abs_m) // 2 - k)
            coeff /= math.factorial((n - abs_m) // 2 - k)
            radial += coeff * rho ** (n - 2 * k)
        if m == 0:
            angular = onp.sqrt(n + 1) * onp.ones_like(theta)
        elif m > 0:
            angular = onp.sqrt(2 * (n + 1)) * onp.cos(abs_m * theta)
        else:
            angular = onp.sqrt(2 * (n + 1)) * onp.sin(abs_m * theta)
        basis.append(onp.where(inside, radial * angular, 0.0))
    return jnp.asarray(onp.array(basis).reshape(len(basis), npix, npix), dtype=float)


def telescope_aperture(
    npix: int,
    diameter: float,
    obscuration: float = 0.2,
    spider_width: float = 0.03,
    spider_angles: Sequence[float] = (90.0, 210.0, 330.0),
) -> jnp.ndarray:
    """Transmission of a circular primary with a central obscuration and spiders.

    Edges are anti-aliased: each edge is a linear ramp one pupil pixel wide, so that a
    pixel cut by an edge transmits (close to) the fraction of its area that is open.

    The default three spiders, 120 degrees apart, make the pupil differ from itself turned
    by half a turn. That matters for fitting: with a pupil symmetric under a half turn and
    no aberration, the PSF does not change to first order in the Zernike terms of even
    radial order (defocus, astigmatism, ...), whose sign it cannot tell, so the Fisher
    matrix at a zero-aberration start is singular. Three spiders keep it well conditioned.

    Parameters
    ----------
    npix : int
        Pixels across the pupil grid (the grid spans ``diameter``).
    diameter : float
        Diameter of the primary mirror, metres.
    obscuration : float
        Diameter of the central obscuration as a fraction of ``diameter``, in [0, 1).
    spider_width : float
        Width of each support spider, metres (0 for none).
    spider_angles : sequence of float
        Direction of each spider from the centre, degrees.

    Returns
    -------
    transmission : Array, shape ``(npix, npix)``, values in [0, 1].

    Raises
    ------
    ValueError
        If an argument is outside the ranges above.

    >>> telescope_aperture(16, 1.0).shape
    (16, 16)
    """
    fn = "telescope_aperture"
    npix = checks.check_int(fn, "npix", npix, minimum=2)
    diameter = checks.check_number(fn, "diameter", diameter, positive=True)
    obscuration = checks.check_number(fn, "obscuration", obscuration, minimum=0.0)
    if obscuration >= 1.0:
        raise ValueError(f"{fn}: obscuration must be in [0, 1), got obscuration={obscuration!r}.")
    spider_width = checks.check_number(fn, "spider_width", spider_width, minimum=0.0)
    if spider_width >= diameter:
        raise ValueError(
            f"{fn}: spider_width must be in [0, diameter={diameter}) metres, "
            f"got spider_width={spider_width!r}."
        )
    pixel = diameter / npix
    soft = pixel / 2
    with allow_rank_promotion():
        coords = dlu.pixel_coords(npix, diameter)
        transmission = dlu.soft_circle(coords, diameter / 2, clip_dist=soft)
        if obscuration > 0:
            transmission *= dlu.soft_circle(
                coords, obscuration * diameter / 2, clip_dist=soft, invert=True
            )
        if spider_width > 0 and len(spider_angles) > 0:
            angles = jnp.asarray(spider_angles, dtype=float)
            transmission *= dlu.soft_spider(
                coords, spider_width, angles, clip_dist=soft, invert=True
            )
    return jnp.asarray(transmission, dtype=float)


class NormalisingAperture(dl.TransmissiveLayer):
    """A transmissive layer that scales the wavefront it transmits to unit power.

    The same as ``dLux.TransmissiveLayer(transmission, normalise=True)``, with the power
    summed as ``real**2 + imag**2`` of the phasor rather than dLux's ``abs(phasor)**2``.
    The two are equal, but from JAX 0.11 on the second derivative of a complex ``abs`` at
    0 is NaN, and the phasor is 0 at every pixel the aperture blocks: through dLux's
    ``Wavefront.normalise`` every Hessian of a model with a blocking aperture is NaN. The
    sum of squares has well defined derivatives of every order everywhere.
    ``tests/zdx_examples/test_complex_abs_hessian.py`` keeps the reproducer.

    Parameters
    ----------
    transmission : array_like
        Transmission of each pupil pixel, in [0, 1].

    Examples
    --------
    >>> layer = NormalisingAperture(jnp.array([[1.0, 0.0], [1.0, 1.0]]))
    >>> wavefront = layer(dl.Wavefront(wavelength=1e-6, npixels=2, diameter=1.0))
    >>> round(float(wavefront.power), 12)
    1.0
    """

    def __init__(self, transmission: Any):
        super().__init__(transmission, normalise=True)

    def __call__(self, wavefront: Any) -> Any:
        """``wavefront`` times the transmission, scaled so that its power is 1."""
        wavefront = wavefront * self.transmission
        phasor = wavefront.phasor
        power = jnp.sum(jnp.square(phasor.real) + jnp.square(phasor.imag))
        return wavefront.multiply("phasor", jnp.sqrt(1.0 / power))


class FilteredOpticalSystem(dl.AngularOpticalSystem):
    """A dLux ``AngularOpticalSystem`` that also carries its filters.

    ``filters`` maps a filter name to its wavelengths in microns, so a model can look them
    up as ``optics.filters["blue"]`` and loop ``for name in optics.filters``.

    Parameters
    ----------
    wf_npixels, diameter, layers, psf_npixels, psf_pixel_scale, oversample
        As for ``dLux.AngularOpticalSystem`` (pixel scale in arcseconds).
    filters : Mapping[str, array_like]
        Filter name to 1-D wavelengths in microns; see :func:`check_filters`.

    Notes
    -----
    JAX flattens dicts in sorted key order, so after a JAX transformation the filters of
    a rebuilt system come back sorted by name.
    """

    filters: dict

    def __init__(
        self,
        wf_npixels: int,
        diameter: float,
        layers: list,
        psf_npixels: int,
        psf_pixel_scale: float,
        filters: Mapping[str, Any],
        oversample: int = 1,
    ):
        super().__init__(
            wf_npixels=wf_npixels,
            diameter=diameter,
            layers=layers,
            psf_npixels=psf_npixels,
            psf_pixel_scale=psf_pixel_scale,
            oversample=oversample,
        )
        self.filters = check_filters(filters)


def build_optics(
    filters: Mapping[str, Any] | None = None,
    npix: int = 256,
    diameter: float = 1.2,
    psf_npixels: int = 32,
    psf_pixel_scale: float = 0.075,
    n_zernike: int = 7,
    *,
    obscuration: float = 0.2,
    spider_width: float = 0.03,
    spider_angles: Sequence[float] = (90.0, 210.0, 330.0),
) -> FilteredOpticalSystem:
    """The optical system of the tutorial's hierarchical fit.

    Layers, in order: ``"aperture"``, a :class:`NormalisingAperture` (a normalising
    ``TransmissiveLayer``) holding :func:`telescope_aperture`; ``"wfe"``, a
    ``BasisLayer`` of ``n_zernike`` Zernike polynomials (Noll indices 4, 5, ..., i.e.
    defocus onwards; unit RMS over the primary) applied as optical path difference, with
    coefficients in metres, all zero.
    Because the aperture layer normalises the wavefront, ``optics.propagate`` returns a
    PSF whose total over an unbounded detector is 1; the ``psf_npixels`` field holds
    slightly less (0.93 to 0.94 for the defaults).

    Parameters
    ----------
    filters : Mapping[str, array_like] | None
        Filter name to 1-D wavelengths in microns; ``None`` gives :func:`default_filters`.
    npix : int
        Pixels across the pupil (wavefront) grid, >= 8.
    diameter : float
        Primary mirror diameter, metres.
    psf_npixels : int
        Pixels across the PSF, >= 1.
    psf_pixel_scale : float
        PSF pixel scale, arcseconds.
    n_zernike : int
        Number of Zernike terms in the ``"wfe"`` layer, >= 1.
    obscuration, spider_width, spider_angles
        Shape of the pupil; see :func:`telescope_aperture`.

    Returns
    -------
    optics : FilteredOpticalSystem
        A ``dLux.AngularOpticalSystem`` with a ``filters`` dict.

    Raises
    ------
    ValueError, TypeError
        If an argument is outside the ranges above (the message names it).

    >>> optics = build_optics(npix=32)
    >>> list(optics.layers), optics.coefficients.shape, list(optics.filters)
    (['aperture', 'wfe'], (7,), ['blue', 'green', 'red'])
    """
    filters = default_filters() if filters is None else check_filters(filters)
    fn = "build_optics"
    npix = checks.check_int(fn, "npix", npix, minimum=8)
    diameter = checks.check_number(fn, "diameter", diameter, positive=True)
    psf_npixels = checks.check_int(fn, "psf_npixels", psf_npixels, minimum=1)
    psf_pixel_scale = checks.check_number(fn, "psf_pixel_scale", psf_pixel_scale, positive=True)
    n_zernike = checks.check_int(fn, "n_zernike", n_zernike, minimum=1)

    transmission = telescope_aperture(npix, diameter, obscuration, spider_width, spider_angles)
    basis = zernike_basis(range(4, 4 + n_zernike), npix, diameter)
    layers = [
        ("aperture", NormalisingAperture(transmission)),
        ("wfe", dl.BasisLayer(basis, jnp.zeros(n_zernike), as_phase=False)),
    ]
    return FilteredOpticalSystem(
        wf_npixels=npix,
        diameter=diameter,
        layers=layers,
        psf_npixels=psf_npixels,
        psf_pixel_scale=psf_pixel_scale,
        filters=filters,
    )
