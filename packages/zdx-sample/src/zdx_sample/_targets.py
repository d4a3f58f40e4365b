"""Posteriors whose answers are known in closed form, for checking a sampler or an evidence
estimator against the truth."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as onp
import numpyro.distributions as dist
from scipy.special import expit

from zdx_base import checks


class KnownTarget(NamedTuple):
    """A log-likelihood and prior with known posterior moments and evidence.

    Attributes
    ----------
    log_likelihood : callable
        ``log_likelihood(params) -> scalar``, traceable by JAX.
    prior : PyTree of numpyro distributions or None
        The prior, in the structure of ``params`` (None: flat and improper).
    mode : PyTree
        The posterior mode, in the structure of ``params``: a good start for a sampler.
    mean : numpy.ndarray
        ``(n,)`` the posterior mean, flattened (``zdx_base.ravel`` order).
    sigma : numpy.ndarray
        ``(n,)`` the marginal posterior standard deviations, flattened.
    covariance : numpy.ndarray or None
        ``(n, n)`` the posterior covariance, when the posterior is Gaussian.
    log_evidence : float or None
        ``log Z`` of ``likelihood x prior`` (None when the prior is improper or the
        likelihood is not normalised).
    names : tuple of str
        A name per flattened parameter.
    """

    log_likelihood: Callable[[Any], Any]
    prior: Any
    mode: Any
    mean: onp.ndarray
    sigma: onp.ndarray
    covariance: onp.ndarray | None
    log_evidence: float | None
    names: tuple[str, ...]


def correlated_gaussian(
    n: int = 10, seed: int = 0, box: float = 10.0, *, scalar_last: bool = False
) -> KnownTarget:
    """A correlated Gaussian likelihood in a uniform prior box.

    The likelihood is a normalised Gaussian density in the parameters with a random
    covariance ``A A^T / n + I / 2`` and a random mean (``numpy.random.default_rng(seed)``);
    the prior is uniform over ``mean +- box`` marginal sigmas, so the posterior is the
    Gaussian itself and ``log Z = -log V`` (the mass outside the box is about
    ``exp(-box^2 / 2)``).

    Parameters
    ----------
    n : int, default 10
        The number of scalar parameters (at least 2 with ``scalar_last``).
    seed : int, default 0
        Seed of the random covariance and mean.
    box : float, default 10.0
        Half-width of the prior box, in marginal sigmas.
    scalar_last : bool, default False
        The parameters are ``{"x": (n,)}``; with ``scalar_last`` they are
        ``{"x": (n - 1,), "y": ()}`` (a pytree with a scalar leaf).

    Returns
    -------
    KnownTarget
        With ``mean``, ``sigma``, ``covariance`` and ``log_evidence``.

    Raises
    ------
    TypeError, ValueError
        If ``n`` is not an integer of at least 1 (2 with ``scalar_last``).

    Examples
    --------
    >>> target = correlated_gaussian(n=3)
    >>> target.names, round(target.log_evidence, 3)
    (('x[0]', 'x[1]', 'x[2]'), -8.762)
    """
    n = checks.check_int("correlated_gaussian", "n", n, minimum=2 if scalar_last else 1)
    rng = onp.random.default_rng(seed)
    a = rng.normal(size=(n, n))
    cov = a @ a.T / n + 0.5 * onp.eye(n)
    mu = rng.normal(size=n)
    sig = onp.sqrt(onp.diag(cov))
    prec = onp.linalg.inv(cov)
    logdet = onp.linalg.slogdet(cov)[1]
    lo, hi = mu - box * sig, mu + box * sig
    log_z = -float(onp.sum(onp.log(hi - lo)))

    def gaussian(x):
        d = x - mu
        return -0.5 * d @ prec @ d - 0.5 * n * math.log(2 * math.pi) - 0.5 * logdet

    if scalar_last:

        def log_likelihood(p):
            return gaussian(jnp.concatenate([p["x"], jnp.atleast_1d(p["y"])]))

        prior = {
            "x": dist.Uniform(jnp.asarray(lo[:-1]), jnp.asarray(hi[:-1])),
            "y": dist.Uniform(float(lo[-1]), float(hi[-1])),
        }
        mode = {"x": jnp.asarray(mu[:-1]), "y": jnp.asarray(mu[-1])}
        names = (*(f"x[{i}]" for i in range(n - 1)), "y")
    else:

        def log_likelihood(p):
            return gaussian(p["x"])

        prior = {"x": dist.Uniform(jnp.asarray(lo), jnp.asarray(hi))}
        mode = {"x": jnp.asarray(mu)}
        names = tuple(f"x[{i}]" for i in range(n))
    return KnownTarget(log_likelihood, prior, mode, mu, sig, cov, log_z, names)


def logistic_product(n: int = 5, box: float = 40.0) -> KnownTarget:
    """A product of logistic densities (heavier tails than a Gaussian) in a uniform box.

    Parameter ``t[i]`` has a logistic likelihood with location ``linspace(-1, 1, n)[i]``
    and scale ``linspace(0.5, 1.5, n)[i]``, under a uniform prior over ``+- box`` scales
    around its location; the evidence is exact from the logistic CDF. A Gaussian
    approximation at the mode misses ``log Z`` by ``n log(sqrt(pi) / 2)``, which makes this
    a test of importance corrections.

    Parameters
    ----------
    n : int, default 5
        The number of scalar parameters, ``{"t": (n,)}``.
    box : float, default 40.0
        Half-width of the prior box, in scales.

    Returns
    -------
    KnownTarget
        With ``mean`` (the locations), ``sigma`` (``scale * pi / sqrt(3)``) and
        ``log_evidence``; no ``covariance``.

    Raises
    ------
    TypeError, ValueError
        If ``n`` is not an integer of at least 1.

    Examples
    --------
    >>> target = logistic_product(n=2)
    >>> target.names, round(target.log_evidence, 3)
    (('t[0]', 't[1]'), -8.476)
    """
    n = checks.check_int("logistic_product", "n", n, minimum=1)
    loc = onp.linspace(-1.0, 1.0, n)
    scale = onp.linspace(0.5, 1.5, n)

    def log_likelihood(p):
        z = (p["t"] - loc) / scale
        return jnp.sum(-z - 2 * jnp.logaddexp(0.0, -z) - jnp.log(scale))

    lo, hi = loc - box * scale, loc + box * scale
    mass = expit((hi - loc) / scale) - expit((lo - loc) / scale)
    log_z = float(onp.sum(onp.log(mass)) - onp.sum(onp.log(hi - lo)))
    prior = {"t": dist.Uniform(jnp.asarray(lo), jnp.asarray(hi))}
    names = tuple(f"t[{i}]" for i in range(n))
    sigma = scale * math.pi / math.sqrt(3)
    mode = {"t": jnp.asarray(loc)}
    return KnownTarget(log_likelihood, prior, mode, loc, sigma, None, log_z, names)


def rotated_gaussian(dim: int = 10, seed: int = 0) -> KnownTarget:
    """An ill-conditioned, rotated Gaussian with a flat prior: a test of whitening.

    The scales run geometrically from 0.1 to 1 along a random rotation
    (``numpy.random.default_rng(seed)``); the log-likelihood ``-0.5 d^T C^-1 d`` leaves out
    the normalising constant, and the prior is flat, so there is no evidence.

    Parameters
    ----------
    dim : int, default 10
        The number of scalar parameters, ``{"x": (dim,)}``.
    seed : int, default 0
        Seed of the rotation and the mean.

    Returns
    -------
    KnownTarget
        With ``mean``, ``sigma`` and ``covariance``; ``prior`` and ``log_evidence`` None.

    Raises
    ------
    TypeError
        If ``dim`` is not an integer.
    ValueError
        If ``dim`` is below 1.

    Examples
    --------
    >>> target = rotated_gaussian(dim=2)
    >>> target.covariance.shape, target.prior is None
    ((2, 2), True)
    """
    dim = checks.check_int("rotated_gaussian", "dim", dim, minimum=1)
    rng = onp.random.default_rng(seed)
    q, _ = onp.linalg.qr(rng.normal(size=(dim, dim)))
    scales = onp.geomspace(0.1, 1.0, dim)
    cov = (q * scales**2) @ q.T
    prec = jnp.asarray(onp.linalg.inv(cov))
    mu = rng.normal(size=dim)

    def log_likelihood(p):
        d = p["x"] - mu
        return -0.5 * d @ prec @ d

    names = tuple(f"x[{i}]" for i in range(dim))
    sigma = onp.sqrt(onp.diag(cov))
    return KnownTarget(log_likelihood, None, {"x": jnp.asarray(mu)}, mu, sigma, cov, None, names)
