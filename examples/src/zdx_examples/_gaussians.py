"""The sum-of-Gaussians example of the tutorial: model, data and starting guess."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr

import zdx_stats
from zdx_base import Base, checks


class GaussianModel(Base):
    """A sum of (powered) Gaussians on a fixed 1-D grid.

    Each component is ``gauss(x) ** power / (std * sqrt(2 pi))`` with
    ``gauss(x) = exp(-0.5 * ((x - mean) / std) ** 2)``; the model is their sum on
    ``xs = linspace(-width, width, nsamples)``.

    Parameters
    ----------
    mean, std, power : array_like
        One value per component; all three must have the same shape.
    width : float
        Half-width of the grid, > 0.
    nsamples : int
        Number of grid points, >= 1.

    Raises
    ------
    ValueError
        If the shapes differ, or ``width`` / ``nsamples`` are out of range.

    >>> model = GaussianModel(mean=[2, -3], std=[0.5, 2], power=[1.5, 1])
    >>> model().shape
    (500,)
    """

    mean: jnp.ndarray
    std: jnp.ndarray
    power: jnp.ndarray
    xs: jnp.ndarray

    def __init__(self, mean: Any, std: Any, power: Any, width: float = 10, nsamples: int = 500):
        super().__init__()
        self.mean = jnp.array(mean, float)
        self.std = jnp.array(std, float)
        self.power = jnp.array(power, float)
        if self.mean.shape != self.std.shape or self.mean.shape != self.power.shape:
            raise ValueError(
                "GaussianModel: mean, std and power must have the same shape, got "
                f"{self.mean.shape}, {self.std.shape} and {self.power.shape}."
            )
        width = checks.check_number("GaussianModel", "width", width, positive=True)
        nsamples = checks.check_int("GaussianModel", "nsamples", nsamples, minimum=1)
        self.xs = jnp.linspace(-width, width, nsamples)

    @staticmethod
    def gaussian(x: Any, mean: Any, std: Any, power: Any) -> jnp.ndarray:
        """One component, ``exp(-0.5 ((x - mean) / std)**2)**power / (std sqrt(2 pi))``."""
        factor = 1 / (std * jnp.sqrt(2 * jnp.pi))
        gauss = jnp.exp(-0.5 * ((x - mean) / std) ** 2)
        return factor * gauss**power

    @jax.jit
    def __call__(self, params: dict | None = None) -> jnp.ndarray:
        """The model on ``xs``, with ``params`` (a dict of paths to values) set first."""
        if params is not None:
            self = self.set(params)
        mean = jnp.atleast_1d(self.mean)
        std = jnp.atleast_1d(self.std)
        power = jnp.atleast_1d(self.power)

        def eval_fn(mean, std, power):
            return self.gaussian(self.xs, mean, std, power)

        return jax.vmap(eval_fn)(mean, std, power).sum(axis=0)


class GaussianSimulation(Base):
    """Simulated data of the sum-of-Gaussians example.

    Attributes
    ----------
    model : GaussianModel
        The model, holding the true values.
    true_values : Array
        The noiseless model on ``model.xs``.
    data : Array
        ``true_values`` plus Gaussian noise.
    error : Array
        The standard deviation of that noise (a scalar).
    """

    model: GaussianModel
    true_values: jnp.ndarray
    data: jnp.ndarray
    error: jnp.ndarray


def default_model() -> GaussianModel:
    """The tutorial's model: means (2, -3), stds (0.5, 2), powers (1.5, 1)."""
    return GaussianModel(mean=[2, -3], std=[0.5, 2], power=[1.5, 1])


def simulate(model: GaussianModel | None = None, error: float = 0.05, seed: int = 0):
    """The tutorial's data: the model plus ``error * normal(jax.random.key(seed))``.

    Parameters
    ----------
    model : GaussianModel | None
        The true model; ``None`` gives :func:`default_model`.
    error : float
        Standard deviation of the noise, > 0.
    seed : int
        Seed of the noise.

    Returns
    -------
    simulation : GaussianSimulation

    Raises
    ------
    ValueError
        If ``error`` is not a positive finite number.

    >>> sim = simulate()
    >>> sim.data.shape, float(sim.error)
    ((500,), 0.05)
    """
    error = checks.check_number("simulate", "error", error, positive=True)
    if model is None:
        model = default_model()
    true_values = model()
    data = true_values + error * jr.normal(jr.key(seed), true_values.shape)
    return GaussianSimulation(
        model=model, true_values=true_values, data=data, error=jnp.asarray(error, float)
    )


def init_params(model: GaussianModel, seed: int = 1) -> dict:
    """The tutorial's starting guess: each true value plus ``uniform(0, 1)`` noise.

    Parameters
    ----------
    model : GaussianModel
        The model holding the true values.
    seed : int
        Seed of the perturbation (the tutorial uses 1).

    Returns
    -------
    params : dict
        ``{"mean": ..., "std": ..., "power": ...}``.
    """
    keys = jr.split(jr.key(seed), 3)
    return {
        "mean": jr.uniform(keys[0], model.mean.shape) + model.mean,
        "std": jr.uniform(keys[1], model.std.shape) + model.std,
        "power": jr.uniform(keys[2], model.power.shape) + model.power,
    }


def loss_fn(params: dict, args: tuple) -> jnp.ndarray:
    """The tutorial's loss: the mean squared z-score. ``args`` is ``(model, data, error)``."""
    model, data, error = args
    z = zdx_stats.z_score(model(params), data, error)
    return jnp.square(z).mean()


def neg_loglike_fn(params: dict, args: tuple) -> jnp.ndarray:
    """Minus the Gaussian log-likelihood summed over the data (for Hessians).

    ``args`` is ``(model, data, error)``.
    """
    model, data, error = args
    return -zdx_stats.loglike(model(params), data, error).sum()
