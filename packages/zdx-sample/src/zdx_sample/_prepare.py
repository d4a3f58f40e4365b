"""The one preparation step of ``laplace``, ``nuts`` and ``variational``: the checked
posterior, its curvature decomposed once, and the whitening map built from that
decomposition."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as onp

from zdx_base import checks
from zdx_opt import LatentMap

from ._posterior import Posterior, curvature, setup


class Curvature:
    """A positive-definite posterior Fisher matrix ``F`` and its eigen-decomposition.

    ``F`` is decomposed in its unit-diagonal form ``C = S F S`` with
    ``S = diag(F_ii ** -1/2)`` (the parameters' units then leave the spectrum alone), as
    ``zdx_opt.eigen_projection`` does: ``C = V diag(eigvals) V.T``, eigenvalues largest
    first.
    """

    def __init__(self, fisher: onp.ndarray, scale: onp.ndarray, eigvals, eigvecs):
        self.fisher = fisher
        self.scale = scale
        self.eigvals = eigvals
        self.eigvecs = eigvecs

    @property
    def sqrt_covariance(self) -> onp.ndarray:
        """``A = S V diag(eigvals ** -1/2)``: ``A @ A.T = F^-1`` and ``A.T @ F @ A = I``,
        so ``A`` is also the whitening projection."""
        return self.scale[:, None] * self.eigvecs / onp.sqrt(self.eigvals)

    @property
    def covariance(self) -> onp.ndarray:
        """``F^-1``."""
        root = self.sqrt_covariance
        cov = root @ root.T
        return 0.5 * (cov + cov.T)

    @property
    def log_det(self) -> float:
        """``log det F`` (``det C / det S^2``)."""
        return float(onp.sum(onp.log(self.eigvals)) - 2.0 * onp.sum(onp.log(self.scale)))


_ADVICE = (
    "A Laplace approximation and the whitening need a positive-definite Fisher matrix: pass "
    "the posterior mode as `params` (or optimise=True), fix or free the parameters that the "
    "data do not constrain, or give a positive-definite `fisher`."
)


def _unit_diagonal_scale(mat: onp.ndarray) -> onp.ndarray:
    """``F_ii ** -1/2``; a non-positive diagonal entry gets the typical scale instead,
    which keeps the signs of the eigenvalues (Sylvester), so that the check below reports
    the matrix as not positive definite."""
    diag = onp.diag(mat)
    positive = diag > 0
    typical = float(onp.mean(diag[positive])) if positive.any() else 1.0
    return 1.0 / onp.sqrt(onp.where(positive, diag, typical))


def decompose(fn_name: str, mat: onp.ndarray, source: str, names: tuple[str, ...]) -> Curvature:
    """Decompose the symmetric ``mat`` once (see :class:`Curvature`).

    Raises
    ------
    ValueError
        Naming the directions, if ``mat`` is not positive definite: an eigenvalue of its
        unit-diagonal form at or below ``n * eps`` times the largest
        (``zdx_base.checks.decompose_positive_definite``).
    """
    scale = _unit_diagonal_scale(mat)
    vals, vecs = checks.decompose_positive_definite(
        fn_name,
        f"{source}, scaled to unit diagonal,",
        scale[:, None] * mat * scale[None, :],
        names,
        advice=_ADVICE,
    )
    return Curvature(mat, scale, vals[::-1], vecs[:, ::-1])


class Prepared(NamedTuple):
    """What every estimator around a mode starts from.

    Attributes
    ----------
    posterior : Posterior
        The checked likelihood and prior around the start point ``x0``.
    curvature : Curvature
        The posterior Fisher matrix at ``x0``, decomposed.
    latent_map : zdx_opt.LatentMap
        ``u -> unravel(x0 + P @ u)`` with ``P = curvature.sqrt_covariance``.
    """

    posterior: Posterior
    curvature: Curvature
    latent_map: LatentMap


def prepare(
    fn_name: str,
    log_likelihood: Any,
    params: Any,
    prior: Any = None,
    fisher: Any = None,
    *,
    optimise: bool = False,
) -> Prepared:
    """Check the arguments, optionally move to the mode, compute the posterior Fisher
    matrix and decompose it once, and build the whitening map from that decomposition.

    Raises
    ------
    TypeError, ValueError
        As :func:`~zdx_sample._posterior.setup` and
        :func:`~zdx_sample._posterior.curvature` do, and as :func:`decompose` does for a
        matrix that is not positive definite.
    """
    post = setup(fn_name, log_likelihood, params, prior, optimise=optimise)
    mat, source = curvature(fn_name, post, fisher)
    curv = decompose(fn_name, mat, source, post.names)
    projection = jnp.asarray(curv.sqrt_covariance, post.x0.dtype)
    return Prepared(post, curv, LatentMap(x0=post.x0, projection=projection, unravel=post.unravel))
