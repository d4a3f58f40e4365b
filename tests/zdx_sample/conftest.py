"""Posteriors with known answers for the tests of zdx_sample (float64 is on): those of
``zdx_sample.targets`` under the names the tests use, and one more.

Tests reach the problems through the ``problems`` fixture (conftest modules are not
importable under ``--import-mode=importlib``).
"""

import math
import types

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import zdx_sample as zs
from zdx_sample import targets


def as_problem(target, **extra):
    """A ``zdx_sample.targets.KnownTarget`` under the names the tests use, with ``extra``
    attributes."""
    return types.SimpleNamespace(
        loglike=target.log_likelihood,
        prior=target.prior,
        mode=target.mode,
        sigma=target.sigma,
        log_z=target.log_evidence,
        **extra,
    )


def correlated_gaussian(n=4, seed=0, box=10.0):
    """``zdx_sample.targets.correlated_gaussian`` with the parameters
    ``{"x": (n - 1,), "y": ()}``: log Z = -log V up to ~exp(-box^2/2)."""
    target = targets.correlated_gaussian(n, seed, box, scalar_last=True)
    return as_problem(target, n=n, mu=target.mean, cov=target.covariance, names=target.names)


def gaussian_with_gaussian_prior(n=3, seed=1):
    """A Gaussian likelihood ``N(theta; mu, C)`` under a Gaussian prior ``N(m, S)``:
    Z = N(mu; m, C + S), the posterior is Gaussian with precision C^-1 + S^-1."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n))
    cov = a @ a.T / n + 0.3 * np.eye(n)
    mu = rng.normal(size=n)
    m = rng.normal(size=n)
    s = rng.uniform(0.5, 2.0, size=n)
    prec = np.linalg.inv(cov)
    logdet = np.linalg.slogdet(cov)[1]

    def loglike(p):
        d = p["theta"] - mu
        return -0.5 * d @ prec @ d - 0.5 * n * math.log(2 * math.pi) - 0.5 * logdet

    post_prec = prec + np.diag(1 / s**2)
    post_cov = np.linalg.inv(post_prec)
    post_mean = post_cov @ (prec @ mu + m / s**2)
    total = cov + np.diag(s**2)
    d = mu - m
    log_z = -0.5 * d @ np.linalg.solve(total, d) - 0.5 * n * math.log(2 * math.pi)
    log_z -= 0.5 * np.linalg.slogdet(total)[1]
    return types.SimpleNamespace(
        n=n,
        loglike=loglike,
        prior={"theta": dist.Normal(jnp.asarray(m), jnp.asarray(s))},
        mode={"theta": jnp.asarray(post_mean)},
        post_cov=post_cov,
        log_z=float(log_z),
        fisher_likelihood=prec,
    )


def logistic_product(n=3, box=40.0):
    """``zdx_sample.targets.logistic_product``. The Laplace evidence is off by exactly
    ``n log(sqrt(pi) / 2)`` (each factor's curvature at its mode is ``1 / (2 s^2)``, its
    height ``1 / (4 s)``)."""
    offset = n * math.log(math.sqrt(math.pi) / 2)
    return as_problem(targets.logistic_product(n, box), n=n, laplace_offset=offset)


def run_nuts(problem, **settings):
    """``zdx_sample.nuts`` on a problem of this file (its likelihood, mode and prior),
    without a progress bar."""
    return zs.nuts(problem.loglike, problem.mode, problem.prior, progress=False, **settings)


@pytest.fixture(scope="session")
def problems():
    """The problem builders of this file, and :func:`run_nuts`, as attributes."""
    return types.SimpleNamespace(
        correlated_gaussian=correlated_gaussian,
        gaussian_with_gaussian_prior=gaussian_with_gaussian_prior,
        logistic_product=logistic_product,
        nuts=run_nuts,
    )


@pytest.fixture(scope="session")
def gauss():
    """The 4-D correlated Gaussian most tests of the estimators share."""
    return correlated_gaussian(n=4, seed=3)
