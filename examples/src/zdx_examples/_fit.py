"""Loss, reduced chi-squared and log-likelihood of the hierarchical optics fit."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

import zdx_stats


def z_scores(params: dict, optics: Any, observations: list) -> jnp.ndarray:
    """The z-score of every pixel of every observation.

    Parameters
    ----------
    params : dict
        Model parameters (see :class:`Observation`).
    optics : FilteredOpticalSystem
        The optical system.
    observations : list[Observation]
        Observations with data and error.

    Returns
    -------
    z : Array, shape ``(n_observations, psf_npixels, psf_npixels)``
        ``zdx_stats.z_score(model, data, error)`` stacked over observations.
    """
    return jnp.array(
        [zdx_stats.z_score(obs(params, optics), obs.data, obs.error) for obs in observations]
    )


def loss_fn(params: dict, args: tuple) -> jnp.ndarray:
    """The tutorial's loss: the mean over pixels of the squared z-scores summed over images.

    Parameters
    ----------
    params : dict
        Model parameters.
    args : tuple
        ``(optics, observations)``.

    Returns
    -------
    loss : Array, scalar
    """
    optics, observations = args
    zs = z_scores(params, optics, observations)
    return jnp.mean(jnp.square(zs).sum(0))


def get_reduced_chi2(params: dict, optics: Any, observations: list) -> jnp.ndarray:
    """Reduced chi-squared: squared z-scores summed, over pixels minus parameters.

    Parameters
    ----------
    params, optics, observations
        As for :func:`z_scores`.

    Returns
    -------
    chi2r : Array, scalar
        Near 1 for a good fit with correct errors.
    """
    zs = z_scores(params, optics, observations)
    data = jnp.array([obs.data for obs in observations])
    return zdx_stats.chi2r_from_z(zs, zdx_stats.ddof(params, data))


def loglike_fn(params: dict, args: tuple) -> jnp.ndarray:
    """Gaussian log-likelihood of all the data, summed over every pixel of every image.

    Parameters
    ----------
    params, args
        As for :func:`loss_fn`.

    Returns
    -------
    loglike : Array, scalar
        Use ``-loglike_fn`` for a Hessian whose inverse is the parameter covariance.
    """
    optics, observations = args
    pred = jnp.array([obs(params, optics) for obs in observations])
    error = jnp.array([obs.error for obs in observations])
    data = jnp.array([obs.data for obs in observations])
    return zdx_stats.loglike(pred, data, error).sum()
