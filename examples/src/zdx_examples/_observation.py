"""One image of one star through one filter, and the noise of a detector."""

from __future__ import annotations

import numbers
from typing import Any

import dLux.utils as dlu
import jax.numpy as jnp
import jax.random as jr

from zdx_base import Base, checks

from ._telescope import allow_rank_promotion


class Observation(Base):
    """The image of a star in one filter, and how to model it.

    Parameters are passed in convenient units and converted here: ``position`` in
    arcseconds, ``flux`` as log10 of the total photon count (on an unbounded detector),
    ``wfe`` as Zernike coefficients in nanometres.

    Parameters
    ----------
    data : array_like
        The image (or a placeholder such as ``0.0`` until data exists).
    error : array_like
        The one-sigma uncertainty of each pixel of ``data``.
    filter : str
        Name of the filter, a key of ``optics.filters``.

    Examples
    --------
    >>> obs = Observation(0.0, 0.0, "blue")
    >>> obs.filter
    'blue'
    """

    data: jnp.ndarray
    error: jnp.ndarray
    filter: str

    def __init__(self, data: Any, error: Any, filter: str):
        self.data = jnp.array(data, float)
        self.error = jnp.array(error, float)
        self.filter = str(filter)

    def __call__(self, params: dict, optics: Any) -> jnp.ndarray:
        """The model image of this observation.

        Parameters
        ----------
        params : dict
            ``{"wfe": (n_zernike,) nm, "position": {filter: (2,) arcsec},
            "flux": {filter: log10 photons}}``.
        optics : FilteredOpticalSystem
            The optical system (see :func:`zdx_examples.optics.build_optics`).

        Returns
        -------
        image : Array, shape ``(psf_npixels, psf_npixels)``
            ``10**flux`` times the PSF of a point source at ``position``.

        Raises
        ------
        KeyError
            If this observation's filter is not in ``optics.filters`` or ``params``.
        """
        if self.filter not in optics.filters:
            raise KeyError(
                f"Observation filter {self.filter!r} is not in optics.filters "
                f"(which has {list(optics.filters)})."
            )
        for key in ("position", "flux"):
            if self.filter not in params[key]:
                raise KeyError(
                    f"params[{key!r}] has no entry for filter {self.filter!r} "
                    f"(it has {list(params[key])})."
                )
        wavels = 1e-6 * optics.filters[self.filter]
        position = dlu.arcsec2rad(params["position"][self.filter])
        flux = 10 ** params["flux"][self.filter]
        optics = optics.set("wfe.coefficients", 1e-9 * params["wfe"])
        with allow_rank_promotion():
            return flux * optics.propagate(wavels, position)

    def est_pos(self, optics: Any) -> jnp.ndarray:
        """A rough position (arcsec) from the brightest pixel, to start a fit from.

        Parameters
        ----------
        optics : FilteredOpticalSystem
            Supplies ``psf_pixel_scale`` (arcsec per pixel).

        Returns
        -------
        position : Array, shape ``(2,)``
            ``(x, y)`` of the brightest pixel relative to the image centre, arcsec.
        """
        iy, ix = jnp.unravel_index(jnp.argmax(self.data), self.data.shape)
        ix = ix - self.data.shape[1] / 2
        iy = iy - self.data.shape[0] / 2
        return jnp.array([ix, iy]) * optics.psf_pixel_scale


def take_image(psf: Any, seed: Any, read_noise: Any = 10) -> jnp.ndarray:
    """One noisy exposure: Poisson photon noise plus Gaussian read noise.

    Parameters
    ----------
    psf : array_like
        Expected photons in each pixel (non-negative).
    seed : int or integer Array
        Seed of the exposure's random numbers (``jax.random.key(seed)``); may be traced,
        so that many exposures can be taken with ``jax.vmap``.
    read_noise : float
        Standard deviation of the read noise, photons; must be >= 0.

    Returns
    -------
    image : Array, same shape as ``psf``
        ``poisson(psf) + read_noise * normal()``; mean ``psf``, variance
        ``psf + read_noise**2``.

    Raises
    ------
    ValueError
        If ``read_noise`` is a negative or non-finite number.

    >>> take_image(jnp.zeros((2, 2)), 0, read_noise=0.0).tolist()
    [[0.0, 0.0], [0.0, 0.0]]
    """
    if isinstance(read_noise, numbers.Real):  # a traced one is checked by ``simulate``
        checks.check_number("take_image", "read_noise", read_noise, minimum=0.0)
    psf = jnp.asarray(psf, dtype=float)
    keys = jr.split(jr.key(seed), 2)
    photons = jr.poisson(keys[0], psf)
    read = read_noise * jr.normal(keys[1], psf.shape)
    return photons + read
