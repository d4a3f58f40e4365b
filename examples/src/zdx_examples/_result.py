"""What the end-to-end optics fit found, stage by stage."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

import zdx_base

from ._fit import get_reduced_chi2
from ._sampling import PosteriorSamples
from ._simulate import OpticsSimulation
from ._start import StartChoice


class OpticsFit(eqx.Module):
    """Everything the end-to-end optics fit (:func:`fit`) found, stage by stage.

    Attributes
    ----------
    simulation : OpticsSimulation
        The data that was fitted, with the truth and the optics.
    start : dict
        The starting guess estimated from the data (:func:`start_params`).
    ngd_params : dict
        The fit of the natural-gradient descent.
    lbfgs_params : dict
        The fit of the whitened L-BFGS.
    params : dict
        The fit the error bars are taken at: whichever of the two has the lower loss (each
        method's own reduced chi-squared is in ``stages`` and :meth:`method_chi2r`).
    best_method : str
        ``"natural_gradient"`` or ``"lbfgs"``: where ``params`` comes from.
    loss_curvature : Array
        ``(n, n)`` the Gauss-Newton curvature of the loss at the start both methods ran from
        (the chosen start, or the data-based one without a sign search; the Hessian of the
        loss at zero residuals, :func:`loss_curvature`): the first metric of the natural
        gradient and the whitening of L-BFGS.
    hessian : Array
        ``(n, n)`` the Hessian of minus the log-likelihood at the best fit.
    covariance : Array
        ``(n, n)`` its inverse: the covariance of the fitted parameters.
    names : tuple[str, ...]
        A name per flattened parameter (``zdx_base.scalar_names``).
    ngd_losses : Array
        ``(steps,)`` the loss before each natural-gradient step.
    ngd_history : Array
        ``(steps + 1, n)`` the flattened parameters at the start and after each step.
    lbfgs_losses : Array
        The loss at every evaluation made by L-BFGS (line-search trials included).
    samples : PosteriorSamples | None
        The NUTS draws, or None when sampling was skipped.
    stages : dict[str, dict]
        Per stage (in the order they ran): ``steps``, ``seconds`` and what else the stage
        reports (``chi2r`` after it, the solver's ``result``, NUTS diagnostics).
    start_choice : StartChoice | None
        The sign search over the even Zernike terms that chose where both methods start
        (:func:`choose_start`), or None when it was skipped.
    """

    simulation: OpticsSimulation
    start: dict
    ngd_params: dict
    lbfgs_params: dict
    params: dict
    best_method: str = eqx.field(static=True)
    loss_curvature: jax.Array
    hessian: jax.Array
    covariance: jax.Array
    names: tuple[str, ...] = eqx.field(static=True)
    ngd_losses: jax.Array
    ngd_history: jax.Array
    lbfgs_losses: jax.Array
    samples: PosteriorSamples | None
    stages: dict = eqx.field(static=True)
    start_choice: StartChoice | None = None

    @property
    def truth(self) -> jax.Array:
        """``(n,)`` the flattened true parameters."""
        return zdx_base.ravel(self.simulation.true_params).flat

    @property
    def best(self) -> jax.Array:
        """``(n,)`` the flattened best fit."""
        return zdx_base.ravel(self.params).flat

    @property
    def sigma(self) -> jax.Array:
        """``(n,)`` the one-sigma uncertainties, square roots of the covariance diagonal."""
        return jnp.sqrt(jnp.diag(self.covariance))

    @property
    def pulls(self) -> jax.Array:
        """``(n,)`` ``(fit - truth) / sigma`` per parameter."""
        return (self.best - self.truth) / self.sigma

    @property
    def max_abs_pull(self) -> float:
        """The largest ``|fit - truth| / sigma`` over all parameters."""
        return float(jnp.max(jnp.abs(self.pulls)))

    def method_chi2r(self) -> dict[str, float]:
        """The reduced chi-squared each method reached on its own, by method name."""
        return {
            "natural_gradient": self.chi2r(self.ngd_params),
            "lbfgs": self.chi2r(self.lbfgs_params),
        }

    def chi2r(self, params: dict | None = None) -> float:
        """The reduced chi-squared of ``params`` (default: the best fit) on the data."""
        params = self.params if params is None else params
        sim = self.simulation
        return float(_chi2r(params, sim.optics, sim.observations))


_chi2r = eqx.filter_jit(get_reduced_chi2)
