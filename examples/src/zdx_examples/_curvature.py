"""The Gauss-Newton curvature of the optics fit's loss, built from the Fisher matrix.

The loss (:func:`loss_fn`) is the mean over the pixels of one image of the squared
z-scores summed over the images. With ``F = J^T J`` the Fisher matrix of the whitened
model ``model / error`` (``zdx_batching.fisher``), the Hessian of that loss where the
model meets the data is ``(2 / pixels) F``: the 2 from the square, ``1 / pixels`` from the
mean. That scaled matrix is the *loss curvature*; it is computed here and nowhere else.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

import zdx_batching


def loss_curvature_scale(observations: list) -> float:
    """The factor from the Fisher matrix to the loss curvature: ``2 / pixels``.

    ``pixels`` is the number of pixels of one image (the loss averages over them).
    """
    return 2.0 / observations[0].data.size


class WhitenedModel(eqx.Module):
    """``params -> model / error`` for every observation: the Fisher matrix's input."""

    optics: Any
    observations: list

    def __call__(self, params: dict) -> jax.Array:
        return jnp.stack([obs(params, self.optics) / obs.error for obs in self.observations])


def loss_curvature(params: dict, optics: Any, observations: list, progress: bool = False):
    """The Gauss-Newton curvature of :func:`loss_fn` at ``params``: its Hessian at zero
    residuals, ``(2 / pixels) J^T J`` with ``J`` the Jacobian of ``model / error``.

    Only first derivatives are needed (``zdx_batching.fisher``), and it does not depend on
    the data, only on the errors. Traceable by JAX: it can be jitted and vmapped.

    Parameters
    ----------
    params : dict
        Where to evaluate it (e.g. the starting guess).
    optics : FilteredOpticalSystem
        The optical system.
    observations : list[Observation]
        Observations with errors.
    progress : bool
        Show a progress bar over the column blocks.

    Returns
    -------
    loss_curvature : Array
        ``(n, n)``, in ``zdx_base.ravel(params)`` order.
    """
    fisher, _ = zdx_batching.fisher(WhitenedModel(optics, observations), params, progress=progress)
    return loss_curvature_scale(observations) * fisher


def loss_curvature_fn(params: dict, args: tuple) -> jax.Array:
    """:func:`loss_curvature` with the loss's ``args = (optics, observations)``: the
    ``fisher_fn`` of :func:`zdx_opt.fit_many` and of the natural gradient."""
    optics, observations = args
    return loss_curvature(params, optics, observations)


loss_fisher = loss_curvature
"""The name the tutorial (``examples/tutorials``) calls :func:`loss_curvature` by; the
glossary's name for the ``(2 / pixels) J^T J`` matrix is the loss curvature."""
