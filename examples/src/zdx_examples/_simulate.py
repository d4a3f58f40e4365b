"""Simulated data for the hierarchical optics fit, and where a fit starts from."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from zdx_base import Base, checks

from ._observation import Observation, take_image
from ._telescope import FilteredOpticalSystem, build_optics


class OpticsSimulation(Base):
    """The simulated data set of the tutorial: observations, the truth, the optics.

    Attributes
    ----------
    observations : list[Observation]
        One observation per filter, in the order of ``optics.filters``, with data and error.
    true_params : dict
        The parameters the data was simulated from (``wfe`` nm, ``position`` arcsec,
        ``flux`` log10 photons), in the layout of :func:`start_params`.
    optics : FilteredOpticalSystem
        The optical system, with zero wavefront error coefficients.
    """

    observations: list
    true_params: dict
    optics: FilteredOpticalSystem


def true_parameters(optics: Any, seed: int = 0) -> dict:
    """Random true parameters as the tutorial draws them.

    With ``keys = jax.random.split(jax.random.key(seed), 3)``: positions
    ``0.1 * normal(keys[0], (n_filters, 2))`` arcsec, fluxes
    ``6 * uniform(keys[1], (n_filters,), 0.8, 1.2)`` (log10 photons), wavefront error
    ``50 * normal(keys[2], coefficients.shape)`` nm.

    Parameters
    ----------
    optics : FilteredOpticalSystem
        Supplies the filter names and the number of Zernike coefficients.
    seed : int
        Seed of the draw.

    Returns
    -------
    params : dict
        ``{"wfe": Array, "position": {filter: (2,) Array}, "flux": {filter: scalar}}``.
    """
    seed = checks.check_int("true_parameters", "seed", seed, minimum=0)
    names = list(optics.filters)
    keys = jr.split(jr.key(seed), 3)
    positions = 0.1 * jr.normal(keys[0], (len(names), 2))
    fluxes = 6 * jr.uniform(keys[1], (len(names),), minval=0.8, maxval=1.2)
    wfe = 50 * jr.normal(keys[2], optics.layers["wfe"].coefficients.shape)
    return {
        "wfe": wfe,
        "position": {name: positions[i] for i, name in enumerate(names)},
        "flux": {name: fluxes[i] for i, name in enumerate(names)},
    }


@eqx.filter_jit
def _model_images(params: dict, optics: Any, observations: list) -> jnp.ndarray:
    return jnp.array([obs(params, optics) for obs in observations])


@eqx.filter_jit
def _mean_and_error(psfs: jnp.ndarray, seeds: jnp.ndarray, read_noise: Any):
    raw = jax.vmap(lambda seed: take_image(psfs, seed, read_noise))(seeds)
    return raw.mean(0), raw.std(0) / jnp.sqrt(raw.shape[0])


def simulate(
    optics: Any = None,
    seed: int = 0,
    n_images: int = 1000,
    read_noise: float = 10,
    *,
    true_params: dict | None = None,
) -> OpticsSimulation:
    """Simulate the tutorial's observations: one star per filter, averaged exposures.

    The steps are those of the tutorial's section 4: draw :func:`true_parameters` (unless
    given), model each filter's image, take ``n_images`` exposures of all of them with
    :func:`take_image`, and keep per pixel the mean as data and ``std / sqrt(n_images)`` as
    error. Exposure ``i`` uses seed ``seed * n_images + i``, so ``seed=0`` reproduces the
    tutorial exactly (seeds ``0 .. n_images - 1``).

    Parameters
    ----------
    optics : FilteredOpticalSystem | None
        The optical system; ``None`` builds the default one (:func:`build_optics`).
    seed : int
        Seed of the true parameters and of the exposures, >= 0.
    n_images : int
        Number of exposures averaged per filter, >= 2 (the error needs a spread).
    read_noise : float
        Read noise of each exposure, photons, >= 0.
    true_params : dict | None
        Parameters to simulate from instead of drawing them (layout of
        :func:`true_parameters`).

    Returns
    -------
    simulation : OpticsSimulation
        ``observations`` (with data and error), ``true_params`` and ``optics``.

    Raises
    ------
    TypeError
        If ``seed`` or ``n_images`` is not an integer, or ``read_noise`` not a number.
    ValueError
        If ``seed``, ``n_images`` or ``read_noise`` is out of range, or any resulting
        error is zero or not finite.
    """
    seed = checks.check_int("simulate", "seed", seed, minimum=0)
    n_images = checks.check_int("simulate", "n_images", n_images, minimum=2)
    read_noise = checks.check_number("simulate", "read_noise", read_noise, minimum=0.0)
    if optics is None:
        optics = build_optics()
    observations = [Observation(0.0, 0.0, name) for name in optics.filters]
    if true_params is None:
        true_params = true_parameters(optics, seed)
    psfs = _model_images(true_params, optics, observations)
    seeds = seed * n_images + jnp.arange(n_images)
    data, error = _mean_and_error(psfs, seeds, jnp.asarray(read_noise, float))
    if not bool(jnp.all(jnp.isfinite(error) & (error > 0))):
        raise ValueError(
            "The simulated errors contain zeros or non-finite values; use read_noise > 0 "
            "or a brighter source so that every pixel varies between exposures."
        )
    observations = [
        obs.set(["data", "error"], [d, e]) for obs, d, e in zip(observations, data, error)
    ]
    return OpticsSimulation(observations=observations, true_params=true_params, optics=optics)


def start_params(observations: list, optics: Any) -> dict:
    """The tutorial's starting guess, estimated from the data.

    Parameters
    ----------
    observations : list[Observation]
        Observations with data.
    optics : FilteredOpticalSystem
        Supplies the pixel scale and the number of Zernike coefficients.

    Returns
    -------
    params : dict
        ``wfe`` zeros; ``position`` from :meth:`Observation.est_pos`; ``flux`` the log10
        of the sum of each image.
    """
    return {
        "wfe": jnp.zeros(optics.layers["wfe"].coefficients.shape),
        "position": {obs.filter: obs.est_pos(optics) for obs in observations},
        "flux": {obs.filter: jnp.log10(obs.data.sum()) for obs in observations},
    }
