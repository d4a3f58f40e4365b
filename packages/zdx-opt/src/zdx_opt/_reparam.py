"""Reparametrisation: a whitened latent vector and the map back to the parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

import zdx_base
from zdx_base import checks

from ._eigen import eigen_projection
from ._fisher_name import fisher_argument


class LatentMap(eqx.Module):
    """The affine map ``u -> unravel(x0 + P @ u)`` from a latent vector to parameters.

    Built by :func:`reparametrise`. Calling it maps a latent vector to a parameter pytree;
    ``to_latent`` goes the other way (least squares when ``P`` has fewer columns than
    rows).

    Attributes
    ----------
    x0 : Array
        ``(n,)`` the flattened best-guess parameters (``zdx_base.ravel`` order).
    projection : Array
        ``(n, k)`` the projection ``P`` from :func:`eigen_projection`.
    unravel : callable
        Turns an ``(n,)`` vector back into the parameter pytree.
    """

    x0: jax.Array
    projection: jax.Array
    unravel: Callable[[jax.Array], Any] = eqx.field(static=True)

    @property
    def dim(self) -> int:
        """The number of latent dimensions, ``k``."""
        return self.projection.shape[-1]

    def start(self) -> jax.Array:
        """The latent vector of the best guess: zeros of shape ``(k,)``."""
        return jnp.zeros(self.dim, self.x0.dtype)

    def __call__(self, u: jax.Array) -> Any:
        """The parameters ``unravel(x0 + P @ u)`` of the latent vector ``u`` (shape ``(k,)``)."""
        u = checks.as_array("LatentMap", "u", u)
        if u.shape != (self.dim,):
            raise ValueError(
                f"LatentMap: u (the latent vector) must have shape ({self.dim},), got {u.shape}."
            )
        return self.unravel(self.x0 + self.projection @ u)

    def to_latent(self, params: Any) -> jax.Array:
        """The latent vector of ``params`` (the least-squares one if ``P`` is not square)."""
        flat = zdx_base.ravel(params).flat
        if flat.shape != self.x0.shape:
            raise ValueError(
                f"LatentMap.to_latent: params has {flat.shape[0]} entries once flattened, "
                f"expected {self.x0.shape[0]}."
            )
        delta = flat - self.x0
        if self.projection.shape[0] == self.projection.shape[1]:
            return jnp.linalg.solve(self.projection, delta)
        return jnp.linalg.lstsq(self.projection, delta)[0]


def reparametrise(
    params: Any,
    fisher: Any = None,
    cov: Any = None,
    *,
    fmat: Any = None,
    on_bad: str = "raise",
    rtol: float | None = None,
) -> tuple[jax.Array, LatentMap]:
    """Whiten the parameters around a best guess: ``params = x0 + P @ u``.

    In the latent vector ``u`` the Fisher matrix is the identity, so optimisers and
    samplers see a round, unit-scale problem. ``u = 0`` is the best guess.

    Parameters
    ----------
    params : PyTree
        The best guess (a pytree of floating-point arrays); flattened with
        ``zdx_base.ravel``.
    fisher, cov : Array, optional
        The ``(n, n)`` Fisher or covariance matrix of the flattened parameters (exactly one).
    fmat : Array, optional
        The zodiax 0.5 name of ``fisher``, kept for its code: give at most one of the two.
    on_bad, rtol
        How to treat singular or indefinite directions; see :func:`eigen_projection`.

    Returns
    -------
    u0 : Array
        ``(k,)`` zeros: the latent start.
    to_params : LatentMap
        ``to_params(u)`` gives the parameter pytree of a latent vector.

    Raises
    ------
    TypeError
        If ``params`` holds non-floating-point arrays, or both ``fisher`` and ``fmat`` are
        given.
    ValueError
        If the matrix size does not match the number of parameters, or as
        :func:`eigen_projection` does.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> params = {"a": jnp.array(1.0), "b": jnp.array([2.0, 3.0])}
    >>> F = jnp.array([[4.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    >>> u0, to_params = reparametrise(params, fisher=F)
    >>> to_params(u0)["b"]
    Array([2., 3.], dtype=float64)
    >>> P = to_params.projection
    >>> bool(jnp.allclose(P.T @ F @ P, jnp.eye(3)))
    True
    """
    which = ("fmat" if fmat is not None else "fisher") if cov is None else "cov"
    fisher_argument("reparametrise", fisher, fmat)  # raises if given under both names
    x0, unravel, _ = zdx_base.ravel(params)
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        raise TypeError(
            f"reparametrise: params must hold floating-point arrays, got dtype {x0.dtype}."
        )
    P = eigen_projection(fisher, cov, fmat=fmat, on_bad=on_bad, rtol=rtol)
    if P.shape[0] != x0.shape[0]:
        raise ValueError(
            f"reparametrise: `{which}` is {P.shape[0]} x {P.shape[0]} but `params` has "
            f"{x0.shape[0]} entries once flattened with zdx_base.ravel."
        )
    latent_map = LatentMap(x0=x0, projection=P.astype(x0.dtype), unravel=unravel)
    return latent_map.start(), latent_map
